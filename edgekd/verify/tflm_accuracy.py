"""Firmware-path accuracy: the int8 .tflite run in TensorFlow Lite Micro's interpreter over the test split.

This is the model and the runtime the microcontroller will run (TFLM's reference kernels, one sample at a
time, in a fixed arena), so its accuracy and its top-1 agreement with the torch student are the figures a
firmware integrator can rely on; LiteRT's int8 kernels on the host can round differently.

Inputs are prepared exactly as the LiteRT path does (`backends`: NCHW -> NHWC for channels-last models,
quantized with the input tensor's scale and zero point) and outputs dequantized with the output tensor's,
so the two rows differ only by the runtime. TFLM runs in a child process (`python -m
edgekd.verify.tflm_accuracy MODEL INPUTS.npz ARENA OUTPUTS.npz`, standard library + numpy + tflite_micro),
because TFLM's Python interpreter can crash the process it runs in (see edgekd.handoff.tflm_probe).

The arena: the handoff's measured size when given, else 10x the file size (TFLM's own default), at least
64 KiB.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekd.errors import ModelError

if TYPE_CHECKING:
    from edgekd.artifacts import Artifact
    from edgekd.config.export import Threshold

ROW_NAME = "tflm_int8"
CHILD_ERROR = "EDGEKD-TFLM-ERROR: "
MIN_ARENA = 64 * 1024
TIMEOUT_S = 1800.0


def default_arena(path: Path) -> int:
    return max(10 * path.stat().st_size, MIN_ARENA)


def predict_tflm(artifact: Artifact, x: np.ndarray, *, arena_bytes: int | None = None) -> np.ndarray:
    """(N, classes) float outputs of `artifact` (a single-input, single-output .tflite) run in TFLM, batch of one."""
    from edgekd.handoff.arena import tflm_available
    from edgekd.verify.backends import _quant_of, dequantize, quantize
    from edgekd.verify.model_io import tflite_interpreter

    missing = tflm_available()
    if missing:
        raise ModelError(f"cannot run {artifact.path.name} in TensorFlow Lite Micro: {missing}",
                         hint="pip install tflite-micro")  # fmt: skip
    details = tflite_interpreter(artifact.path)
    inputs, outputs = details.get_input_details(), details.get_output_details()
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelError(f"{artifact.path.name} has {len(inputs)} inputs and {len(outputs)} outputs; the firmware-path "
                         "accuracy is measured for single-input, single-output classifiers")  # fmt: skip
    in_detail, out_detail = inputs[0], outputs[0]
    spec = artifact.inputs[0] if artifact.inputs else None
    if x.ndim == 4 and (spec is None or spec.layout != "NCHW"):
        x = x.transpose(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C), as the LiteRT path feeds onnx2tf models
    expected = tuple(int(d) for d in in_detail["shape"][1:])
    if tuple(x.shape[1:]) != expected:
        raise ModelError(f"{artifact.path.name} expects samples of shape {expected}, the data has {tuple(x.shape[1:])}",
                         hint="this model was made for another data set or input size")  # fmt: skip
    in_dtype, out_dtype = np.dtype(in_detail["dtype"]), np.dtype(out_detail["dtype"])
    feed = quantize(x, _quant_of(in_detail), in_dtype) if in_dtype.kind in "iu" else x.astype(in_dtype)
    arena = int(arena_bytes) if arena_bytes else default_arena(artifact.path)
    raw = _run_child(artifact.path, feed, arena)
    return dequantize(raw, _quant_of(out_detail)) if out_dtype.kind in "iu" else raw.astype(np.float32)


def _run_child(model: Path, feed: np.ndarray, arena: int) -> np.ndarray:
    with tempfile.TemporaryDirectory(prefix="edgekd-tflm-acc-") as tmp:
        inputs, outputs = Path(tmp) / "inputs.npz", Path(tmp) / "outputs.npz"
        np.savez(inputs, x=feed)
        source_root = str(Path(__file__).resolve().parents[2])  # the child imports this very edgekd
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [source_root, os.environ.get("PYTHONPATH")])))
        try:
            done = subprocess.run([sys.executable, "-m", "edgekd.verify.tflm_accuracy", str(model), str(inputs), str(arena),
                                   str(outputs)], capture_output=True, text=True, timeout=TIMEOUT_S, env=env, check=False)  # fmt: skip
        except subprocess.TimeoutExpired:
            raise ModelError(f"TensorFlow Lite Micro took over {TIMEOUT_S:.0f} s on {model.name}") from None
        if done.returncode != 0:
            lines = [line.strip().removeprefix(CHILD_ERROR) for line in done.stderr.splitlines() if line.strip()]
            lines = [
                line for line in dict.fromkeys(lines) if not line.startswith(("INFO:", "WARNING:"))
            ]  # TFLM's reason first
            why = "; ".join(lines[:4]) or (
                f"killed by signal {-done.returncode}" if done.returncode < 0 else "no message"
            )
            raise ModelError(f"TensorFlow Lite Micro cannot run {model.name} with a {arena}-byte arena: {why}",
                             hint="the handoff's measured arena fits the model; a model TFLM lacks an op for cannot run "
                                  "on the microcontroller either")  # fmt: skip
        with np.load(outputs, allow_pickle=False) as archive:
            return np.asarray(archive["y"])


def tflm_parity_row(reference_out: np.ndarray, artifact: Artifact, x: np.ndarray, y: np.ndarray | None,
                    threshold: Threshold, *, arena_bytes: int | None = None) -> dict[str, Any]:  # fmt: skip
    """The `tflm_int8` parity row: TFLM's outputs against the torch student's (`reference_out`), gated like int8."""
    from edgekd.verify.parity import check_thresholds, output_metrics

    arena = int(arena_bytes) if arena_bytes else default_arena(artifact.path)
    row: dict[str, Any] = {
        "artifact": ROW_NAME, "path": str(artifact.path), "format": "tflite", "precision": artifact.precision or "int8",
        "runtime": "tflite-micro", "arena_bytes": arena,
        "arena_source": "the handoff's measurement" if arena_bytes else "10x the file size (at least 64 KiB)",
        "threshold": threshold.model_dump(),
    }  # fmt: skip
    ref_pred = reference_out.argmax(axis=1)
    ref_acc = float((ref_pred == y).mean()) if y is not None else None
    row["reference_accuracy"] = ref_acc
    try:
        out = predict_tflm(artifact, x, arena_bytes=arena)
    except ModelError as exc:
        return {**row, "passed": False, "failures": [f"could not run: {exc.message}"], "accuracy": None,
                "top1_agreement": None, "accuracy_delta": None}  # fmt: skip
    pred = out.argmax(axis=1)
    row.update(output_metrics(reference_out, out))
    row["top1_agreement"] = float((pred == ref_pred).mean())
    row["accuracy"] = float((pred == y).mean()) if y is not None else None
    row["accuracy_delta"] = row["accuracy"] - ref_acc if row["accuracy"] is not None and ref_acc is not None else None
    row["failures"] = check_thresholds(row, threshold)
    row["passed"] = not row["failures"]
    return row


def main(argv: list[str]) -> int:
    """Child: run MODEL in TFLM over INPUTS.npz's `x`, one sample at a time; write the raw outputs as `y`."""
    from tflite_micro import runtime

    model, inputs, arena, outputs = Path(argv[0]), Path(argv[1]), int(argv[2]), Path(argv[3])
    with np.load(inputs, allow_pickle=False) as archive:
        x = archive["x"]
    results = []
    try:  # TFLM prints its reason ("Didn't find op for builtin opcode ...") to fd 2 before raising
        interpreter = runtime.Interpreter.from_bytes(model.read_bytes(), arena_size=arena)
        for i in range(len(x)):
            interpreter.set_input(x[i : i + 1], 0)
            interpreter.invoke()
            results.append(np.array(interpreter.get_output(0)))
    except (RuntimeError, ValueError) as exc:
        print(f"{CHILD_ERROR}{exc} (sample {len(results)})", file=sys.stderr, flush=True)
        return 1
    np.savez(outputs, y=np.concatenate(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
