"""The adb path on the loopback phone: transport costs, and whether benchmarking through adb distorts latency.

Rows: `adb shell true` round trip; push/pull throughput of 20 MB through the loopback device (real adb
client, sync protocol, proot sandbox); AdbTarget.info() probe time; then the same model benchmarked
interleaved on `local` and on the phone in runner mode (both execute on this CPU: the phone's python3 is
this machine's, run under proot). Goal: the phone's median within 5 % of local's, i.e. adb, proot and
taskset add start-up cost only, not per-inference cost.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GOAL_RATIO = 1.05


def _median_ms(seconds: list[float]) -> float:
    return round(statistics.median(seconds) * 1000, 2)


def run(quick: bool) -> dict[str, Any]:
    from edgekd.artifacts import describe_file
    from edgekd.bench.orchestrate import bench_artifacts
    from edgekd.config.bench import BenchConfig
    from edgekd.targets.adb.target import AdbTarget
    from edgekd.targets.local import LocalTarget
    from tests.support.adb_client import AdbClient, make_device
    from tests.support.bench_models import make_matmul_onnx

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="edgekd-bench-adb-") as tmp_text:
        tmp = Path(tmp_text)
        (tmp / "home").mkdir()
        client = AdbClient(tmp / "home")
        client("start-server")
        saved = {key: os.environ.get(key) for key in ("HOME", "ANDROID_ADB_SERVER_PORT")}
        os.environ.update({key: client.env[key] for key in saved})
        device = make_device(tmp / "phone")
        try:
            client.connect(device)
            trips = []
            for _ in range(10 if quick else 50):
                began = time.perf_counter()
                client("-s", device.serial, "shell", "true")
                trips.append(time.perf_counter() - began)
            rows.append({"measure": "adb shell true", "median_ms": _median_ms(trips), "n": len(trips)})
            blob = tmp / "blob.bin"
            blob.write_bytes(os.urandom(20_000_000))
            for verb, args in (
                ("push", (str(blob), "/data/local/tmp/blob.bin")),
                ("pull", ("/data/local/tmp/blob.bin", str(tmp / "back.bin"))),
            ):
                times = []
                for _ in range(1 if quick else 3):
                    began = time.perf_counter()
                    client("-s", device.serial, verb, *args, timeout=120)
                    times.append(time.perf_counter() - began)
                rows.append(
                    {
                        "measure": f"adb {verb} 20 MB",
                        "median_ms": _median_ms(times),
                        "mb_per_s": round(20 / statistics.median(times), 1),
                        "n": len(times),
                    }
                )
            target = AdbTarget.from_entry("pixel", {"serial": device.serial}, tmp)
            target.connect()
            probes = []
            for _ in range(3 if quick else 10):
                began = time.perf_counter()
                target.info()
                probes.append(time.perf_counter() - began)
            target.cleanup()
            rows.append({"measure": "AdbTarget.info() probe", "median_ms": _median_ms(probes), "n": len(probes)})
            model = describe_file(make_matmul_onnx(tmp / "chain.onnx", layers=4, size=128))
            config = BenchConfig(runs=300 if quick else 2000, warmup=50, energy=False)
            medians: dict[str, list[float]] = {"local": [], "phone": []}
            for _ in range(2 if quick else 5):  # interleaved rounds: local, phone, local, phone, ...
                for name, where in (
                    ("local", LocalTarget()),
                    ("phone", AdbTarget.from_entry("pixel", {"serial": device.serial}, tmp)),
                ):
                    [result] = bench_artifacts(where, [model], config)
                    medians[name].append(result.stats.p50_ns / 1e6)
            ratio = statistics.median(medians["phone"]) / statistics.median(medians["local"])
            rows.append(
                {
                    "measure": "runner p50, phone/local",
                    "local_p50_ms": round(statistics.median(medians["local"]), 5),
                    "phone_p50_ms": round(statistics.median(medians["phone"]), 5),
                    "ratio": round(ratio, 3),
                    "goal": f"<= {GOAL_RATIO}",
                    "met": ratio <= GOAL_RATIO,
                }
            )
        finally:
            client("disconnect", device.serial)
            device.stop()
            client.kill_server()
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    verdict = "met" if rows[-1]["met"] else "NOT met"
    return {
        "rows": rows,
        "notes": (
            "Loopback adb device (tests/support/adb_device.py) driven by Debian's adb 29.0.6; device commands run "
            "under proot, so round trips and probe times are upper bounds of a USB phone's, throughput is the "
            f"protocol stack's. Runner-mode latency through adb vs local on the same CPU: goal phone/local p50 "
            f"<= {GOAL_RATIO}, {verdict} (ratio {rows[-1]['ratio']})."
        ),
    }
