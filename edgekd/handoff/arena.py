"""Tensor arena size: measured with the TensorFlow Lite Micro interpreter, else estimated, always labelled.

Measurement (tflm_measure.py): the TFLM Python interpreter runs the model on the golden inputs in a
worker process; the size it provably runs in, plus the configured margin, is the recommendation. The
host is 64-bit: pointer-holding bookkeeping is larger than on a 32-bit MCU, so the figure is an upper
bound there. Measured against a native C++ TFLM build (x86-64, same commit as the op table): a small int8
CNN ran at 2144 bytes (Python: 2416) and failed at 2048; an int8 MobileNet-style model ran at 8448 (Python:
8704) and failed at 8192. So the Python figure is a safe upper bound before the margin is added.

Estimate: the same greedy-by-size, liveness-based placement TFLM's planner uses for activations (the
"head"), plus per-tensor and per-node bookkeeping (the "tail") sized from host measurements.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.handoff.tflite_reader import TfliteModel
from edgekd.handoff.tflm_measure import TflmFailure, measure_tflm, tflm_available

__all__ = ["MAX_ARENA_MARGIN", "ArenaPlan", "TflmFailure", "estimate_head", "estimate_tail", "margin_problem",
           "plan_arena", "tflm_available"]  # fmt: skip

ARENA_ALIGNMENT = 16
MAX_ARENA_MARGIN = 10.0  # a fraction: 10 = an arena 11x the measured one; more is a typo, not a safety margin
# Bookkeeping bytes in the arena tail on a 64-bit host, measured with tflite-micro (RecordingMicroAllocator).
_FIXED_BYTES = 640  # model, subgraph and allocator structures, independent of the model's size
_EVAL_TENSOR_BYTES = 24  # 'TfLiteEvalTensor data' per tensor
_NODE_BYTES = 64  # 'NodeAndRegistration struct' per operator
_IO_TENSOR_BYTES = 64  # 'Persistent TfLiteTensor data' per model input/output
_OP_DATA_BYTES = 96  # 'Persistent buffer data' per operator (kernel op data; conv/fc per-channel data more)
_QUANT_BYTES_PER_CHANNEL = 8  # per-channel int32 multiplier + int32 shift kept by quantized conv/fc kernels
# Prepare() needs temporary memory beyond the final total (temp TfLiteTensors with their quantization
# arrays); measured: 272 B for an int8 CNN (14 channels), 752 B / 2288 B for int8 dense 256 / 1024 (512 /
# 2048 channels): about 240 B plus 1 B per quantized channel.
_PREPARE_BASE_BYTES = 256
_PREPARE_BYTES_PER_CHANNEL = 1


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


def _quantized_channels(model: TfliteModel) -> int:
    """Output channels of every operator whose weights (input 1) are quantized: conv, depthwise, dense."""
    sub = model.main
    return sum(
        len(sub.tensors[op.inputs[1]].quant.scale)
        for op in sub.operators
        if len(op.inputs) > 1 and op.inputs[1] >= 0 and sub.tensors[op.inputs[1]].quant is not None
    )


def estimate_tail(model: TfliteModel) -> int:
    """Persistent bookkeeping: per tensor, per node, per input/output, per quantized channel, plus Prepare()'s
    temporary peak (see the constants)."""
    sub = model.main
    channels = _quantized_channels(model)
    return (
        _FIXED_BYTES
        + _EVAL_TENSOR_BYTES * len(sub.tensors)
        + (_NODE_BYTES + _OP_DATA_BYTES) * len(sub.operators)
        + _IO_TENSOR_BYTES * (len(sub.inputs) + len(sub.outputs))
        + _QUANT_BYTES_PER_CHANNEL * channels
        + _PREPARE_BASE_BYTES
        + _PREPARE_BYTES_PER_CHANNEL * channels
    )


def margin_problem(margin: float) -> str | None:
    """None when `margin` is a usable arena margin (a fraction of the measured arena), else why not."""
    if not math.isfinite(margin) or margin < 0 or margin > MAX_ARENA_MARGIN:
        return (
            f"arena margin {margin:g} is not a fraction between 0 and {MAX_ARENA_MARGIN:g} "
            f"(0.2 adds 20 % to the measured arena; {MAX_ARENA_MARGIN:g} makes it {MAX_ARENA_MARGIN + 1:g}x)"
        )
    return None


def _with_margin(basis: int, margin: float) -> int:
    return _align(math.ceil(basis * (1.0 + margin)))


def plan_arena(
    model_path: Path, model: TfliteModel, inputs: list[np.ndarray], *, margin: float, skip_tflm: str | None = None
) -> ArenaPlan:
    """Measure with TFLM when available (raising TflmFailure if TFLM rejects the model), else estimate.

    `skip_tflm` (why not to measure) forces the estimate, e.g. for a Linux bundle TFLM cannot run.
    """
    head, tail = estimate_head(model), estimate_tail(model)
    estimate = _align(head + tail)
    why_not = skip_tflm or tflm_available()
    if why_not is None:
        found = measure_tflm(model_path, inputs, len(model.outputs), estimate)
        return ArenaPlan(
            bytes=_with_margin(found["working_bytes"], margin),
            basis_bytes=found["working_bytes"],
            method="measured-tflm",
            margin=margin,
            head_bytes=found["head_bytes"],
            tail_bytes=found["tail_bytes"],
            reported_total=found["reported_total"],
            note="TFLite Micro Python interpreter on a 64-bit host: ran at this size (the reported "
            "total, or the smallest working size found by bisection when Prepare() needed more); "
            "32-bit MCUs need the same or less",
            tflm_outputs=tuple(found["outputs"]),
        )
    return ArenaPlan(
        bytes=_with_margin(estimate, margin),
        basis_bytes=estimate,
        method="estimate",
        margin=margin,
        head_bytes=head,
        tail_bytes=tail,
        note=f"liveness-based planner estimate, not measured: {why_not}",
    )
