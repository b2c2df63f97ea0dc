"""The SSH path on a loopback OpenSSH sshd: transport costs, fleet concurrency, and whether benchmarking over
SSH distorts latency.

Rows (as an unprivileged /bin/sh user, like a Pi's): connect (handshake + `mktemp -d`); `true` round trip
on an open connection; push of 20 MB (sha256 checked on the device) and pull; a fleet of two targets each running a 2 s command (goal: wall time
< 1.3x one target's, i.e. targets really run concurrently); then one model benchmarked interleaved on
`local` and over SSH, both on this CPU with this machine's Python (the SSH login is root on a throwaway
loopback daemon, because the project venv lives under /root). Goal: SSH/local p50 <= 1.05, i.e. SSH adds
set-up cost only, never per-inference cost (the runner times on the device). Finally the device probe
(`info()`) on the emulated Pi 5 (aarch64 Python under qemu) - an emulation figure, not a Pi's.
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
GOAL_FLEET = 1.3


def _median_ms(seconds: list[float]) -> float:
    return round(statistics.median(seconds) * 1000, 2)


def _timed(action: Any, times: int) -> list[float]:
    spent = []
    for _ in range(times):
        began = time.perf_counter()
        action()
        spent.append(time.perf_counter() - began)
    return spent


def run(quick: bool) -> dict[str, Any]:
    from edgekd.artifacts import describe_file
    from edgekd.bench.fleet import bench_fleet
    from edgekd.bench.orchestrate import bench_artifacts
    from edgekd.config.bench import BenchConfig
    from edgekd.targets.local import LocalTarget
    from edgekd.targets.ssh.target import SshTarget
    from tests.support.aarch64 import aarch64_root, install_python_wrapper
    from tests.support.bench_models import make_matmul_onnx
    from tests.support.sshd import LoopbackSshd, authorize, ensure_user, keygen

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="edgekd-bench-ssh-") as tmp_text:
        tmp = Path(tmp_text)
        host_key, client_key = keygen(tmp / "host_key", "bench-host"), keygen(tmp / "client", "bench-client")
        keys_dir = tmp / "authorized"
        keys_dir.mkdir(mode=0o755)
        authorize(keys_dir / "root", Path(f"{client_key}.pub").read_text().strip())
        os.chmod(keys_dir / "root", 0o600)
        daemon = LoopbackSshd(
            tmp / "sshd",
            host_key,
            extra=[
                "PermitRootLogin prohibit-password",
                "StrictModes no",  # keys under /tmp, which is world-writable
                f"AuthorizedKeysFile {keys_dir}/%u .ssh/authorized_keys",
            ],
        ).start()
        (tmp / "known_hosts").write_text(daemon.known_hosts_line())
        # root: this machine's Python (the venv lives under /root), for the latency comparison only;
        # edgekd-pi5 (a /bin/sh user like a Pi's) for transport figures: root's bash startup would add to them
        entry = {
            "host": "127.0.0.1",
            "port": daemon.port,
            "user": "root",
            "key": str(client_key),
            "known_hosts": str(tmp / "known_hosts"),
            "python": sys.executable,
            "power": "none",
        }
        pi_user = ensure_user("edgekd-pi5", Path(f"{client_key}.pub"))
        pi_entry = {**entry, "user": pi_user.name, "python": "python3"}
        try:
            target = SshTarget.from_entry("loopback", pi_entry, tmp)
            connects = _timed(lambda: (target.connect(), target.cleanup()), 5 if quick else 20)
            rows.append({"measure": "connect + mktemp -d", "median_ms": _median_ms(connects), "n": len(connects)})
            target.connect()
            trips = _timed(lambda: target.run(["true"], timeout=30), 20 if quick else 100)
            rows.append(
                {"measure": "run `true` on an open connection", "median_ms": _median_ms(trips), "n": len(trips)}
            )
            blob = tmp / "blob.bin"
            blob.write_bytes(os.urandom(20_000_000))
            pushes = []
            for _ in range(1 if quick else 3):
                target._pushed.clear()
                pushes += _timed(lambda: target.push(blob), 1)
            rows.append(
                {
                    "measure": "push 20 MB (sha256 checked)",
                    "median_ms": _median_ms(pushes),
                    "mb_per_s": round(20 / statistics.median(pushes), 1),
                    "n": len(pushes),
                }
            )
            remote = target.push(blob)
            pulls = _timed(lambda: target.pull(remote, tmp / "back.bin"), 1 if quick else 3)
            rows.append(
                {
                    "measure": "pull 20 MB",
                    "median_ms": _median_ms(pulls),
                    "mb_per_s": round(20 / statistics.median(pulls), 1),
                    "n": len(pulls),
                }
            )
            target.cleanup()

            def busy(device: Any, artifacts: Any, config: Any) -> list[Any]:
                device.connect()
                try:
                    device.run(["sleep", "2"], timeout=30)
                finally:
                    device.cleanup()
                return []

            fleet = [SshTarget.from_entry(f"pi{n}", pi_entry, tmp) for n in range(2)]
            [single] = _timed(lambda: bench_fleet(fleet[:1], [None], None, bench=busy), 1)  # type: ignore[list-item]
            [both] = _timed(lambda: bench_fleet(fleet, [None], None, bench=busy), 1)  # type: ignore[list-item]
            rows.append(
                {
                    "measure": "fleet of 2, each `sleep 2`",
                    "single_ms": round(single * 1000),
                    "fleet_ms": round(both * 1000),
                    "ratio": round(both / single, 3),
                    "goal": f"<= {GOAL_FLEET}",
                    "met": both / single <= GOAL_FLEET,
                }
            )

            model = describe_file(make_matmul_onnx(tmp / "chain.onnx", layers=4, size=128))
            config = BenchConfig(runs=300 if quick else 2000, warmup=50, energy=False, governor=None)
            medians: dict[str, list[float]] = {"local": [], "ssh": []}
            for _ in range(2 if quick else 5):  # interleaved rounds: local, ssh, local, ssh, ...
                for name, device in (
                    ("local", LocalTarget.from_entry("local", {}, tmp)),
                    ("ssh", SshTarget.from_entry("loopback", entry, tmp)),
                ):
                    [result] = bench_artifacts(device, [model], config)
                    medians[name].append(result.stats.p50_ns / 1e6)
            local_p50, ssh_p50 = statistics.median(medians["local"]), statistics.median(medians["ssh"])
            ratio = ssh_p50 / local_p50
            rows.append(
                {
                    "measure": "runner p50, ssh/local",
                    "local_p50_ms": round(local_p50, 5),
                    "ssh_p50_ms": round(ssh_p50, 5),
                    "ratio": round(ratio, 3),
                    "goal": f"<= {GOAL_RATIO}",
                    "met": ratio <= GOAL_RATIO,
                }
            )

            install_python_wrapper(pi_user.bin_dir, aarch64_root(), "litert", owner=pi_user.name)
            pi = SshTarget.from_entry("pi5", pi_entry, tmp)
            pi.connect()
            probes = _timed(pi.info, 2 if quick else 5)
            pi.cleanup()
            rows.append(
                {
                    "measure": "info() probe on the emulated Pi 5 (qemu)",
                    "median_ms": _median_ms(probes),
                    "n": len(probes),
                }
            )
        finally:
            daemon.stop()
    fleet_row = next(row for row in rows if row["measure"].startswith("fleet"))
    ratio_row = next(row for row in rows if row["measure"].startswith("runner p50"))
    notes = (
        "Loopback OpenSSH sshd (tests/support/sshd.py) and SshTarget (asyncssh); transport figures are "
        "loopback upper bounds of throughput and lower bounds of latency compared with a Pi on Ethernet. "
        f"Fleet concurrency: two targets' 2 s commands took {fleet_row['ratio']}x one target's "
        f"(goal <= {GOAL_FLEET}: {'met' if fleet_row['met'] else 'NOT met'}). "
        f"Runner latency over SSH vs local on the same CPU: ssh/local p50 = {ratio_row['ratio']} "
        f"(goal <= {GOAL_RATIO}: {'met' if ratio_row['met'] else 'NOT met'}). "
        "The emulated Pi's probe time measures qemu, not a Raspberry Pi."
    )
    return {"rows": rows, "notes": notes}
