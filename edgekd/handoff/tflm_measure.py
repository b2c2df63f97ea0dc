"""Measure a model's tensor arena with TensorFlow Lite Micro, safely, in a worker process.

`print_allocations()` reports "Arena allocation total N bytes" after an inference, but that total is not
always enough: kernels' Prepare() takes temporary memory beyond it (measured: an int8 CNN reports 2144
bytes and needs 2416). So the reported total is tried, and when it fails, the smallest working size is
found by bisection (to 16 bytes) between it and the known-good trial size. Every trial runs in the
`tflm_probe` worker (a fork per trial), because TFLM segfaults at some too-small sizes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Self

import numpy as np

ALIGNMENT = 16
_TRIAL_TIMEOUT_S = 300.0
_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")
_HEAD = re.compile(r"Arena allocation head (\d+) bytes")
_TAIL = re.compile(r"Arena allocation tail (\d+) bytes")
# Reasons that no arena size fixes; anything else on a failed trial is taken as "arena too small".
_FATAL = re.compile(r"Didn't find op|not supported|unsupported|Hybrid|Failed to get registration", re.IGNORECASE)


class TflmFailure(Exception):
    """TFLM could not run the model at all; `reason` is what it printed (or how it died)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Trial:
    ok: bool
    crashed: str | None  # signal name when the trial process died
    report: str  # what TFLM printed on fd 2

    @property
    def reason(self) -> str:
        lines = [
            line.strip()
            for line in self.report.splitlines()
            if line.strip() and not line.startswith("INFO:") and "RecordingMicroAllocator" not in line
        ]
        text = "; ".join(line.removeprefix("EDGEKD-PROBE-ERROR: ") for line in lines)
        return f"crashed with {self.crashed}" + (f" after: {text}" if text else "") if self.crashed else text


def tflm_available() -> str | None:
    """None when the TFLM Python interpreter can be used, else why not."""
    try:
        from tflite_micro import runtime  # noqa: F401
    except ImportError as exc:
        return f"tflite-micro is not installed ({exc.name or exc})"
    return None


class TflmProbe:
    """Client of one `python -m edgekd.handoff.tflm_probe` worker for one model and its inputs."""

    def __init__(self, model_path: Path, inputs: list[np.ndarray], num_outputs: int) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="edgekd-tflm-")
        folder = Path(self._dir.name)
        np.savez(folder / "inputs.npz", **{f"input_{i}": value for i, value in enumerate(inputs)})
        self.num_outputs = num_outputs
        self._stderr: IO[bytes] = open(folder / "worker.stderr", "w+b")  # noqa: SIM115 (closed in close())
        # The worker must import this very edgekd, installed or not: put its parent folder on the path.
        source_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [source_root, os.environ.get("PYTHONPATH")])))
        self._process = subprocess.Popen(
            [sys.executable, "-m", "edgekd.handoff.tflm_probe", str(model_path), str(folder / "inputs.npz")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=env,
            start_new_session=True,  # its own process group: a hung trial's forked child is killed with it
        )

    def trial(self, arena: int, *, keep_outputs: bool = False) -> tuple[Trial, list[np.ndarray] | None]:
        outputs_path = Path(self._dir.name) / f"outputs-{arena}.npz" if keep_outputs else None
        request = {
            "arena": arena,
            "outputs": str(outputs_path) if outputs_path else None,
            "num_outputs": self.num_outputs,
        }
        if self._process.stdin is None or self._process.stdout is None:
            raise TflmFailure("the TFLM worker is closed")
        try:
            self._process.stdin.write(json.dumps(request) + "\n")
            self._process.stdin.flush()
        except BrokenPipeError:
            raise TflmFailure(f"the TFLM worker exited: {self._worker_stderr()}") from None
        ready, _, _ = select.select([self._process.stdout], [], [], _TRIAL_TIMEOUT_S)
        if not ready:
            self._kill()
            raise TflmFailure(f"a TFLM inference with a {arena}-byte arena took over {_TRIAL_TIMEOUT_S:.0f} s")
        line = self._process.stdout.readline()
        if not line:
            raise TflmFailure(f"the TFLM worker exited: {self._worker_stderr()}")
        answer = json.loads(line)
        trial = Trial(ok=answer["ok"], crashed=answer["crashed"], report=answer["report"])
        outputs = None
        if trial.ok and outputs_path is not None:
            with np.load(outputs_path) as archive:
                outputs = [archive[f"output_{i}"] for i in range(self.num_outputs)]
        return trial, outputs

    def _worker_stderr(self) -> str:
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", errors="replace").strip()
        return text.splitlines()[-1] if text else "no message"

    def _kill(self) -> None:
        """End the worker and any trial child it forked (same process group, which it leads)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait()

    def close(self) -> None:
        if self._process.poll() is None:
            if self._process.stdin:
                self._process.stdin.close()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._kill()
        if self._process.stdout:
            self._process.stdout.close()
        self._stderr.close()
        self._dir.cleanup()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _align(size: int) -> int:
    return (size + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def measure_tflm(model_path: Path, inputs: list[np.ndarray], num_outputs: int, estimate: int) -> dict[str, Any]:
    """An arena size TFLM provably runs the model in, its allocation report, and the outputs it computed.

    Raises TflmFailure with TFLM's own reason when the model cannot run at any size.
    """
    arena = max(10 * model_path.stat().st_size, 4 * estimate, 64 * 1024)
    with TflmProbe(model_path, inputs, num_outputs) as probe:
        for _ in range(4):  # grow the trial arena if it was too small for this model
            first, outputs = probe.trial(arena, keep_outputs=True)
            if first.ok or _FATAL.search(first.report):
                break
            arena *= 4
        if not first.ok:
            raise TflmFailure(first.reason or f"allocation failed even with a {arena // 4}-byte arena")
        totals = _TOTAL.findall(first.report)
        if not totals:
            raise TflmFailure("print_allocations() printed no 'Arena allocation total' line")
        reported = int(totals[-1])
        working, attempts = reported, 2
        if not probe.trial(reported)[0].ok:
            failing, working = reported, arena
            while working - failing > ALIGNMENT:
                middle = _align((failing + working) // 2)
                middle = middle if failing < middle < working else failing + ALIGNMENT
                attempts += 1
                if probe.trial(middle)[0].ok:
                    working = middle
                else:
                    failing = middle
    head, tail = _HEAD.findall(first.report), _TAIL.findall(first.report)
    return {
        "working_bytes": working,
        "reported_total": reported,
        "head_bytes": int(head[-1]) if head else None,
        "tail_bytes": int(tail[-1]) if tail else None,
        "trials": attempts,
        "outputs": outputs,
    }
