"""A TensorFlow Lite Micro worker process: runs a model with a given arena size and reports what happened.

Why a separate process, and a fork per trial: the TFLM Python interpreter segfaults for some arena sizes
that are too small (measured: a 256x256 int8 dense model crashes at 6528 and 5000 bytes, fails cleanly
at 6400 and runs at 6544), so probing sizes in edgekd's own process could kill it. The worker imports
only the standard library, numpy and tflite_micro; it is single-threaded, so forking it per trial is safe.
Each child redirects file descriptor 2 (where TFLM prints its allocation report and its error reasons)
into a file the worker reads back.

Protocol: `python -m edgekd.handoff.tflm_probe MODEL.tflite INPUTS.npz`; then one JSON request per stdin
line, {"arena": N, "outputs": "path.npz" | null, "num_outputs": K}, answered by one JSON line on stdout:
{"ok": bool, "crashed": str | null, "report": "<what TFLM printed>"}.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any


def _trial(model: bytes, inputs: list[Any], arena: int, outputs_path: str | None, num_outputs: int) -> bool:
    """Runs in the forked child (or in-process without fork): one TFLM inference, report on fd 2."""
    import numpy as np
    from tflite_micro import runtime

    try:
        interpreter = runtime.Interpreter.from_bytes(model, arena_size=arena)
        for index, value in enumerate(inputs):
            interpreter.set_input(value, index)
        interpreter.invoke()
        interpreter.print_allocations()
        if outputs_path:
            np.savez(outputs_path, **{f"output_{i}": np.array(interpreter.get_output(i)) for i in range(num_outputs)})
        return True
    except (RuntimeError, ValueError) as exc:
        print(f"EDGEKD-PROBE-ERROR: {exc}", file=sys.stderr, flush=True)
        return False


def _run_one(model: bytes, inputs: list[Any], arena: int, outputs_path: str | None, num_outputs: int) -> dict[str, Any]:
    with tempfile.TemporaryFile() as report:
        if not hasattr(os, "fork"):  # no fork (Windows): in-process; a crash ends this worker
            saved = os.dup(2)
            os.dup2(report.fileno(), 2)
            try:
                ok = _trial(model, inputs, arena, outputs_path, num_outputs)
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
            crashed = None
        else:
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:  # child: never returns
                os.dup2(report.fileno(), 2)
                code = 0 if _trial(model, inputs, arena, outputs_path, num_outputs) else 1
                sys.stderr.flush()
                os._exit(code)
            _, status = os.waitpid(pid, 0)
            ok = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
            crashed = signal.Signals(os.WTERMSIG(status)).name if os.WIFSIGNALED(status) else None
        report.seek(0)
        text = report.read().decode("utf-8", errors="replace")
    return {"ok": ok, "crashed": crashed, "report": text}


def main(argv: list[str]) -> int:
    import numpy as np

    if len(argv) != 2:
        print("usage: python -m edgekd.handoff.tflm_probe MODEL.tflite INPUTS.npz", file=sys.stderr)
        return 2
    model = Path(argv[0]).read_bytes()
    with np.load(argv[1], allow_pickle=False) as archive:
        inputs = [archive[f"input_{i}"] for i in range(len(archive.files))]
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        answer = _run_one(
            model, inputs, int(request["arena"]), request.get("outputs"), int(request.get("num_outputs", 0))
        )
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
