"""Tensor arena size: measured with the TensorFlow Lite Micro interpreter, else estimated, always labelled.

Measurement: `tflite_micro.runtime.Interpreter` runs the model once on the golden inputs, then
`print_allocations()` reports "Arena allocation total N bytes" on the C-level stderr (file descriptor 2,
not sys.stderr), so fd 2 is redirected into a temporary file around every TFLM call; allocation failures
raise a bare RuntimeError whose reason is only on that stream. The total is then confirmed by building an
interpreter with exactly N bytes. The host is 64-bit: pointer-holding bookkeeping is larger than on a
32-bit MCU, so the figure is an upper bound there.

Estimate: the same greedy-by-size, liveness-based placement TFLM's planner uses for activations (the
"head"), plus per-tensor and per-node bookkeeping (the "tail") sized from host measurements.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from edgekd.handoff.tflite_reader import TfliteModel

ARENA_ALIGNMENT = 16
# Bookkeeping bytes in the arena tail on a 64-bit host, measured with tflite-micro (RecordingMicroAllocator).
_FIXED_BYTES = 640  # model, subgraph and allocator structures, independent of the model's size
_EVAL_TENSOR_BYTES = 24  # 'TfLiteEvalTensor data' per tensor
_NODE_BYTES = 64  # 'NodeAndRegistration struct' per operator
_IO_TENSOR_BYTES = 64  # 'Persistent TfLiteTensor data' per model input/output
_OP_DATA_BYTES = 96  # 'Persistent buffer data' per operator (kernel op data; conv/fc per-channel data more)
_QUANT_BYTES_PER_CHANNEL = 8  # per-channel multipliers and shifts kept by quantized conv/fc kernels

_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")
_HEAD = re.compile(r"Arena allocation head (\d+) bytes")
_TAIL = re.compile(r"Arena allocation tail (\d+) bytes")
_FATAL = re.compile(r"Didn't find op|not supported|unsupported|Hybrid|Unsupported", re.IGNORECASE)
T = TypeVar("T")


@dataclass(frozen=True)
class ArenaPlan:
    """The arena the bundle recommends: `bytes` = basis × (1 + margin), rounded up to 16."""

    bytes: int
    basis_bytes: int
    method: str  # "measured-tflm" | "estimate"
    margin: float
    head_bytes: int | None = None
    tail_bytes: int | None = None
    reported_total: int | None = None  # what print_allocations() said after one inference
    note: str = ""
    tflm_outputs: tuple[np.ndarray, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("tflm_outputs")
        return data


class TflmFailure(Exception):
    """TFLM could not run the model; `reason` is what it printed on stderr."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@contextlib.contextmanager
def captured_fd2() -> Iterator[Callable[[], str]]:
    """Redirect file descriptor 2 into a temp file; yields a function returning what was written."""
    sys.stderr.flush()
    with tempfile.TemporaryFile() as capture:
        saved = os.dup(2)
        os.dup2(capture.fileno(), 2)
        text: list[str] = []
        try:
            yield lambda: "".join(text)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text.append(capture.read().decode("utf-8", errors="replace"))


def _with_capture(action: Callable[[], T]) -> tuple[T | None, str, Exception | None]:
    with captured_fd2() as stderr_text:
        try:
            result, error = action(), None
        except (RuntimeError, ValueError) as exc:
            result, error = None, exc
    return result, stderr_text(), error


def tflm_available() -> str | None:
    """None when the TFLM Python interpreter can be used, else why not."""
    try:
        from tflite_micro import runtime  # noqa: F401
    except ImportError as exc:
        return f"tflite-micro is not installed ({exc.name or exc})"
    return None


def _run_tflm(data: bytes, arena_size: int, inputs: list[np.ndarray], num_outputs: int) -> tuple[str, list[np.ndarray]]:
    """One TFLM inference with a given arena. Returns the allocation report and the outputs."""
    from tflite_micro import runtime

    def action() -> list[np.ndarray]:
        interpreter = runtime.Interpreter.from_bytes(data, arena_size=arena_size)
        for index, value in enumerate(inputs):
            interpreter.set_input(value, index)
        interpreter.invoke()
        interpreter.print_allocations()
        return [np.array(interpreter.get_output(i)) for i in range(num_outputs)]

    outputs, text, error = _with_capture(action)
    if error is not None or outputs is None:
        lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("INFO:")]
        reason = "; ".join(lines) or str(error)
        raise TflmFailure(reason)
    return text, outputs


def _is_size_failure(reason: str) -> bool:
    """True when TFLM failed for lack of arena (retry larger), False for a model it cannot run at all."""
    return _FATAL.search(reason) is None


def measure_tflm(data: bytes, inputs: list[np.ndarray], num_outputs: int, estimate: int) -> dict[str, Any]:
    """An arena size TFLM provably runs the model in, with its allocation report and outputs.

    The reported total is not always enough: kernels' Prepare() takes temporary memory beyond it (int8
    conv needs per-channel data while the plan is built), so when the model fails at the reported total,
    the smallest working size is found by bisection (to 16 bytes) between it and the known-good trial size.
    Raises TflmFailure with TFLM's own reason when the model cannot run at all.
    """
    arena = max(10 * len(data), 4 * estimate, 64 * 1024)
    for _ in range(4):  # grow the trial arena if it was too small for this model
        try:
            text, outputs = _run_tflm(data, arena, inputs, num_outputs)
            break
        except TflmFailure as failure:
            if not _is_size_failure(failure.reason):
                raise
            arena *= 4
    else:
        raise TflmFailure(f"allocation failed even with a {arena // 4}-byte arena")
    totals = _TOTAL.findall(text)
    if not totals:
        raise TflmFailure("print_allocations() printed no 'Arena allocation total' line")
    reported = int(totals[-1])

    def runs_in(size: int) -> bool:
        try:
            _run_tflm(data, size, inputs, num_outputs)
            return True
        except TflmFailure:
            return False

    smallest, attempts = reported, 1
    if not runs_in(reported):
        failing, working = reported, arena
        while working - failing > ARENA_ALIGNMENT:
            middle = _align((failing + working) // 2)
            middle = middle if failing < middle < working else failing + ARENA_ALIGNMENT
            attempts += 1
            if runs_in(middle):
                working = middle
            else:
                failing = middle
        smallest = working
    return {
        "working_bytes": smallest,
        "reported_total": reported,
        "head_bytes": int(_HEAD.findall(text)[-1]) if _HEAD.search(text) else None,
        "tail_bytes": int(_TAIL.findall(text)[-1]) if _TAIL.search(text) else None,
        "attempts": attempts,
        "outputs": outputs,
    }


def _align(size: int) -> int:
    return (size + ARENA_ALIGNMENT - 1) // ARENA_ALIGNMENT * ARENA_ALIGNMENT


def estimate_head(model: TfliteModel) -> int:
    """Peak bytes of non-constant tensors of the main subgraph, placed greedily by size over their lifetimes."""
    sub = model.main
    first: dict[int, int] = {i: -1 for i in sub.inputs}
    last: dict[int, int] = {}
    for step, op in enumerate(sub.operators):
        for tensor in (*op.outputs, *op.intermediates):
            if tensor >= 0:
                first.setdefault(tensor, step)
        for tensor in op.inputs:
            if tensor >= 0:
                last[tensor] = step
    end = len(sub.operators)
    for tensor in sub.outputs:
        last[tensor] = end
    live = []
    for tensor, start in first.items():
        info = sub.tensors[tensor]
        if info.constant:
            continue
        stop = end if info.variable else last.get(tensor, start)
        live.append((_align(info.nbytes), start, max(stop, start)))
    placed: list[tuple[int, int, int, int]] = []  # (offset, size, start, stop)
    peak = 0
    for size, start, stop in sorted(live, key=lambda item: -item[0]):
        offset = 0
        for other_offset, other_size, other_start, other_stop in sorted(placed):
            overlaps_in_time = not (stop < other_start or other_stop < start)
            if overlaps_in_time and offset + size > other_offset and offset < other_offset + other_size:
                offset = _align(other_offset + other_size)
        placed.append((offset, size, start, stop))
        peak = max(peak, offset + size)
    return peak


def estimate_tail(model: TfliteModel) -> int:
    sub = model.main
    channels = sum(len(sub.tensors[op.inputs[1]].quant.scale) for op in sub.operators
                   if len(op.inputs) > 1 and op.inputs[1] >= 0 and sub.tensors[op.inputs[1]].quant is not None)
    return (_FIXED_BYTES + _EVAL_TENSOR_BYTES * len(sub.tensors) + (_NODE_BYTES + _OP_DATA_BYTES) * len(sub.operators)
            + _IO_TENSOR_BYTES * (len(sub.inputs) + len(sub.outputs)) + _QUANT_BYTES_PER_CHANNEL * 2 * channels)


def _with_margin(basis: int, margin: float) -> int:
    return _align(math.ceil(basis * (1.0 + margin)))


def plan_arena(model_path: Path, model: TfliteModel, inputs: list[np.ndarray], *, margin: float,
               skip_tflm: str | None = None) -> ArenaPlan:
    """Measure with TFLM when available (raising TflmFailure if TFLM rejects the model), else estimate.

    `skip_tflm` (why not to measure) forces the estimate, e.g. for a Linux bundle TFLM cannot run.
    """
    head, tail = estimate_head(model), estimate_tail(model)
    estimate = _align(head + tail)
    why_not = skip_tflm or tflm_available()
    if why_not is None:
        found = measure_tflm(model_path.read_bytes(), inputs, len(model.outputs), estimate)
        return ArenaPlan(bytes=_with_margin(found["working_bytes"], margin), basis_bytes=found["working_bytes"],
                         method="measured-tflm", margin=margin, head_bytes=found["head_bytes"],
                         tail_bytes=found["tail_bytes"], reported_total=found["reported_total"],
                         note="TFLite Micro Python interpreter on a 64-bit host: ran at this size (the reported "
                         "total, or the smallest working size found by bisection when Prepare() needed more); "
                         "32-bit MCUs need the same or less",
                         tflm_outputs=tuple(found["outputs"]))
    return ArenaPlan(bytes=_with_margin(estimate, margin), basis_bytes=estimate, method="estimate", margin=margin,
                     head_bytes=head, tail_bytes=tail,
                     note=f"liveness-based planner estimate, not measured: {why_not}")
