"""`edgekd bench MODEL --target NAME` against the loopback phone gives the same result format as local."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.adb


def _bench(model: Path, target: str, inventory: Path, env: dict[str, str]) -> dict:
    edgekd = Path(sys.executable).parent / "edgekd"
    argv = [str(edgekd), "bench", str(model), "--target", target, "--inventory", str(inventory), "--runs", "20",
            "--warmup", "2", "--no-energy", "--no-history", "--json"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_cli_bench_on_phone_matches_local_format(phone, adb_env, onnx_model: Path, tmp_path: Path) -> None:
    inventory = tmp_path / "targets.toml"
    inventory.write_text(f'[targets.pixel]\nkind = "adb"\nserial = "{phone.serial}"\n')
    env = {**os.environ, **{k: adb_env.env[k] for k in ("HOME", "ANDROID_ADB_SERVER_PORT")}}
    on_phone = _bench(onnx_model, "pixel", inventory, env)
    local = _bench(onnx_model, "local", inventory, env)
    assert on_phone.keys() == local.keys() and on_phone["schema"] == local["schema"] == "edgekd.bench/1"
    [phone_row], [local_row] = on_phone["results"], local["results"]
    assert phone_row.keys() == local_row.keys()
    assert phone_row["env"].keys() >= local_row["env"].keys() - {"rapl", "perf"}
    assert phone_row["target"] == "pixel" and phone_row["env"]["kind"] == "adb"
    assert len(phone_row["latencies_ns"]) == 20 and phone_row["p50_ms"] > 0
    assert phone_row["artifact_sha256"] == local_row["artifact_sha256"]
    assert phone_row["energy_unavailable"] and phone_row["env"]["governor"] == "sched_pixel"
