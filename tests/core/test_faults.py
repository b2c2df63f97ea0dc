"""Injected faults in the pipeline: SIGTERM and Ctrl-C mid-stage, a full disk, a corrupted artifact."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SLOW_PIPELINE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from edgekd.artifacts import create_artifact
    from edgekd.pipeline import Pipeline, StageResult
    from edgekd.recipe import parse_recipe
    from edgekd.stages.base import BaseStage
    from edgekd.cli import _terminate
    import signal

    class Step(BaseStage):
        def __init__(self, name, needs=(), seconds=0.0):
            self.name, self.needs, self.seconds = name, needs, seconds
        def config(self, recipe):
            return {}
        def run(self, ctx):
            path = ctx.workdir / (self.name + ".bin")
            with open(path, "wb") as handle:
                handle.write(b"partial")
                handle.flush()
                print("started", self.name, flush=True)
                time.sleep(self.seconds)
                handle.write(b"-complete")
            return StageResult([create_artifact(path, name=self.name, format="bin")])

    signal.signal(signal.SIGTERM, _terminate)
    stages = [Step("first"), Step("slow", ("first",), float(sys.argv[2]))]
    try:
        outcomes = Pipeline(stages, parse_recipe({}), Path("."), Path(sys.argv[1])).execute()
        print("statuses", [o.status for o in outcomes], flush=True)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(130)
    """
)


def start(script: Path, run: Path, seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(script), str(run), str(seconds)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_stage_keeps_completed_stages_and_never_uses_half_files(tmp_path: Path, signum: int) -> None:
    script = tmp_path / "pipeline.py"
    script.write_text(SLOW_PIPELINE)
    run = tmp_path / "run"
    proc = start(script, run, 60)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("started slow"):
            break
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "interrupted" in out
    assert (run / "first.bin").read_bytes() == b"partial-complete"
    assert not (run / "slow.bin").exists()  # the half-written file never reached its final name
    assert not (run / ".edgekd" / "stages" / "slow.json").exists()
    again = subprocess.run(
        [sys.executable, str(script), str(run), "0"], capture_output=True, text=True, cwd=ROOT, timeout=60, check=False
    )
    assert "statuses ['cached', 'ran']" in again.stdout, again.stdout + again.stderr
    assert (run / "slow.bin").read_bytes() == b"partial-complete"
    assert not any((run / ".edgekd" / "tmp").iterdir())


def test_corrupted_artifact_is_detected_by_hash_and_recomputed(tmp_path: Path) -> None:
    script = tmp_path / "pipeline.py"
    script.write_text(SLOW_PIPELINE)
    run = tmp_path / "run"
    subprocess.run([sys.executable, str(script), str(run), "0"], check=True, capture_output=True, cwd=ROOT, timeout=60)
    (run / "first.bin").write_bytes(b"bit rot")
    again = subprocess.run(
        [sys.executable, str(script), str(run), "0"], capture_output=True, text=True, cwd=ROOT, timeout=60, check=False
    )
    assert "statuses ['ran', 'cached']" in again.stdout, again.stdout + again.stderr
    assert (run / "first.bin").read_bytes() == b"partial-complete"


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 700 KiB tmpfs: room for the data stage's splits, not for the teacher's weights."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=700k", "tmpfs", str(mount)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.slow
def test_full_disk_is_one_clear_message_and_completed_stages_stay(tiny_disk: Path) -> None:
    out = tiny_disk / "run"
    result = subprocess.run(
        [sys.executable, "-m", "edgekd.cli", "run", "examples/digits.toml", "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    check=False,)  # fmt: skip
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "no space left" in result.stderr, result.stderr[-2000:]
    manifest = json.loads((out / ".edgekd" / "stages" / "data.json").read_text())
    assert manifest["artifacts"][0]["name"] == "dataset" and (out / "data.npz").exists()
    assert not (out / ".edgekd" / "stages" / "teacher.json").exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_edgekd_run_interrupted_says_so_and_resumes(tmp_path: Path, signum: int) -> None:
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgekd.cli", "run", "examples/digits.toml", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip().startswith("✓ data"):
            break  # the data stage finished; the teacher is training now
    time.sleep(1.0)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "interrupted" in err and "Traceback" not in err
    assert (out / ".edgekd" / "stages" / "data.json").exists()
    assert not (out / ".edgekd" / "stages" / "teacher.json").exists()


LATE_FAILURE_FACTORY = textwrap.dedent(
    """
    import torch
    from torch import nn

    class GatedNet(nn.Module):
        def __init__(self, input_shape, num_classes):
            super().__init__()
            self.conv = nn.Conv2d(input_shape[0], 4, 3, padding=1)
            self.fc = nn.Linear(4 * input_shape[1] * input_shape[2], num_classes)

        def forward(self, x):
            # |y| through torch.sign: invisible to preflight (no module), SIGN in TFLite, which TFLM has no kernel for
            y = self.conv(x)
            return self.fc((y * torch.sign(y)).flatten(1))

    def make(*, input_shape, num_classes):
        return GatedNet(input_shape, num_classes)
    """
)


def _run_late(tmp_path: Path, extra: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    (tmp_path / "h5_gated.py").write_text(LATE_FAILURE_FACTORY)
    (tmp_path / "late.toml").write_text(textwrap.dedent(
        """
        [run]
        name = "late"
        [teacher]
        model = { arch = "mlp", width = 64, depth = 1 }
        train = { epochs = 10 }
        [distill]
        train = { epochs = 2 }
        baseline = false
        [quantize]
        enabled = false
        [tflite]
        precisions = ["int8"]
        [bench]
        enabled = false
        """
    ) + textwrap.dedent(extra))  # fmt: skip
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = subprocess.run([sys.executable, "-m", "edgekd.cli", "run", "late.toml", "--out", "run"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=900, check=False)  # fmt: skip
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    return result, report


def _reports_name_the_failure(run: Path, report: dict, stage: str, error: str, words: str) -> None:
    assert report["failure"]["stage"] == stage and report["failure"]["type"] == error
    assert words in report["failure"]["message"]
    assert {row["stage"]: row["status"] for row in report["stages"]}[stage] == "failed"
    assert report["passed"] is False
    for name in ("report.html", "report.md"):
        text = (run / name).read_text()
        assert stage in text and words in text, name
    manifest = json.loads((run / ".edgekd" / "stages" / f"{stage}.json").read_text())
    assert manifest["status"] == "failed" and manifest["error"]["exit_code"] == 1


@pytest.mark.slow
def test_a_handoff_that_fails_late_still_writes_the_reports_naming_it(tmp_path: Path) -> None:
    """Issue 13: a recipe whose handoff cannot succeed (here: an arena budget no model meets) still writes
    report.json/html/md naming the failed stage and its error; the run exits with the handoff's code."""
    result, report = _run_late(
        tmp_path,
        """
        [handoff]
        artifact = "tflite_int8"
        platform = "micro"
        max_arena_kb = 0.001
        """,
    )
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "max_arena_kb" in result.stderr and "Traceback" not in result.stderr
    assert "✗ handoff" in result.stdout and "report.html" in result.stdout
    _reports_name_the_failure(tmp_path / "run", report, "handoff", "HandoffError", "max_arena_kb")


@pytest.mark.slow
def test_an_op_tflm_lacks_fails_at_the_firmware_path_parity_row(tmp_path: Path) -> None:
    """A functional torch.sign (invisible to preflight) becomes SIGN, which TFLite Micro lacks: the
    verify stage runs the int8 model in TFLM (the tflm_int8 row) and names it, before any bundle is built."""
    result, report = _run_late(
        tmp_path,
        """
        [student]
        model = { arch = "custom", factory = "h5_gated:make" }
        [handoff]
        artifact = "tflite_int8"
        platform = "micro"
        """,
    )
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    said = " ".join(result.stderr.split())
    assert "tflm_int8" in said and "SIGN" in said and "Traceback" not in said
    assert "TensorFlow Lite Micro cannot run the int8 model the firmware would get" in said
    # a parity gate, not a crashed stage: the verify stage finished, its tflm_int8 row failed, and the report
    # names the stop (the gate) and what it kept from running
    assert report["passed"] is False
    assert report["failure"]["stage"] == "verify" and report["failure"]["gate"] is True
    assert report["failure"]["type"] == "ParityError" and "handoff" in report["failure"]["not_run"]
    row = {r["artifact"]: r for r in report["parity"]}["tflm_int8"]
    assert row["passed"] is False and "SIGN" in " ".join(row["failures"])
    for name in ("report.html", "report.md"):
        assert "SIGN" in (tmp_path / "run" / name).read_text(), name
    assert not (tmp_path / "run" / "handoff").exists()
