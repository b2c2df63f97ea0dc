"""`edgekd bench MODEL --target pi5 --target pi4` against a loopback Pi and one that is down: the fleet path
of the CLI keeps the working Pi's results, exits non-zero naming the failed one, and the Pi's profile and
firmware state reach the result."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ssh, pytest.mark.aarch64]
EDGEKD = str(Path(sys.executable).parent / "edgekd")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _inventory(path: Path, targets: dict[str, dict]) -> Path:
    lines = []
    for name, entry in targets.items():
        lines += [f"[targets.{name}]", 'kind = "ssh"'] + [
            f"{key} = {json.dumps(value)}" for key, value in entry.items()
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_fleet_from_the_cli_keeps_the_working_pi(pi_entry, pi_models, tmp_path: Path) -> None:
    inventory = _inventory(
        tmp_path / "targets.toml",
        {
            "pi5": pi_entry("edgekd-pi5", profile="rpi5"),
            "pi4": pi_entry("edgekd-pi4", profile="rpi4", port=_closed_port(), retries=0, connect_timeout=2.0),
        },
    )
    env = {**os.environ, "EDGEKD_HISTORY": str(tmp_path / "history.sqlite")}
    argv = [
        EDGEKD,
        "--json",
        "bench",
        str(pi_models["fp32"]),
        "--target",
        "pi5",
        "--target",
        "pi4",
        "--inventory",
        str(inventory),
        "--runs",
        "10",
        "--warmup",
        "1",
        "--no-energy",
    ]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL, env=env, check=False
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stdout + done.stderr
    assert "1 of 2 targets failed (pi4:" in done.stderr and "results of pi5 were kept" in done.stderr
    report = json.loads(done.stdout)
    assert report["targets"] == ["pi5", "pi4"] and list(report["errors"]) == ["pi4"]
    [row] = report["results"]
    assert row["target"] == "pi5" and len(row["latencies_ns"]) == 10 and row["env"]["arch"] == "aarch64"
    # The rpi5 profile chose the threads and pinning (the user set neither), and says so.
    settings = row["env"]["settings"]
    threads = min(4, row["env"]["cores"])  # the profile's 4, capped at the cores the emulated Pi reports
    assert settings["from_profile"]["profile"] == "Raspberry Pi 5" and settings["from_profile"]["threads"] == threads
    assert row["env"]["threads"] == threads and settings["set_by_user"] == []
    assert row["env"]["device_details"]["profile"] == "Raspberry Pi 5"
    assert row["env"]["throttled"].startswith("ok (never throttled")  # vcgencmd get_throttled, decoded
    assert row["env"]["throttled_after"].startswith("ok") and "vcgencmd" in row["env"]["temps_c_end"]
    # The working Pi's result is in the history under the run id printed.
    history = subprocess.run(
        [EDGEKD, "--json", "bench", "history", report["run_id"]],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert history.returncode == 0 and [r["target"] for r in json.loads(history.stdout)["results"]] == ["pi5"]
