"""Golden vectors for an on-device self-test: one input per model input and the outputs LiteRT computes.

The input comes from the calibration set when its sample shape fits the model input (NCHW samples are
transposed to an NHWC input), quantized with the input's scale and zero point for an int8 model; otherwise
it is seeded random data in the same domain. Outputs come from the LiteRT interpreter
(`ai_edge_litert.interpreter`), the reference TFLite runtime on the host.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.artifacts import TensorSpec
from edgekd.errors import HandoffError
from edgekd.handoff.c_array import c_float, c_type, generated_banner, value_lines
from edgekd.handoff.identifiers import BundleSymbols

INT_TOLERANCE = 1  # quantized steps: TFLM reference kernels may round differently from LiteRT's optimized ones
FLOAT_TOLERANCE = 1e-4  # absolute, plus the same relative to the output's magnitude


@dataclass(frozen=True)
class GoldenVectors:
    inputs: list[np.ndarray]
    outputs: list[np.ndarray]
    input_source: str  # "calibration set sample 0" | "seeded random"

    def npz_arrays(self) -> dict[str, np.ndarray]:
        arrays = {f"input_{i}": a for i, a in enumerate(self.inputs)}
        arrays.update({f"output_{i}": a for i, a in enumerate(self.outputs)})
        return arrays


def quantize(values: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Float data into the input's integer domain: q = round(x / scale) + zero_point, saturated."""
    info = np.iinfo(spec.dtype)
    if spec.quant is None:
        return np.clip(np.rint(values), info.min, info.max).astype(spec.dtype)
    scale = np.asarray(spec.quant.scale, dtype=np.float64)
    zero = np.asarray(spec.quant.zero_point, dtype=np.float64)
    if spec.quant.axis is not None and scale.size > 1:
        shape = [1] * values.ndim
        shape[spec.quant.axis] = scale.size
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return np.clip(np.rint(values / scale) + zero, info.min, info.max).astype(spec.dtype)


def _calibration_sample(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """Sample 0 of the calibration set, shaped like the input (NCHW -> NHWC when needed), or None."""
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None  # not an .npz: the caller falls back to seeded random data
    if not isinstance(archive, np.lib.npyio.NpzFile):
        return None
    with archive:
        names = ["x"] if "x" in archive.files else list(archive.files)
        for name in names:
            data = archive[name]
            if data.ndim < 1 or data.shape[0] < 1 or not np.issubdtype(data.dtype, np.floating):
                continue
            sample = data[:1].astype(np.float32)
            if sample.shape == shape:
                return sample
            if sample.ndim == 4 and (sample.shape[0], sample.shape[2], sample.shape[3], sample.shape[1]) == shape:
                return sample.transpose(0, 2, 3, 1)  # (1, C, H, W) -> (1, H, W, C) for TFLite's NHWC input
    return None


def make_inputs(
    specs: tuple[TensorSpec, ...], calibration: Path | None, *, seed: int = 0
) -> tuple[list[np.ndarray], str]:
    rng = np.random.default_rng(seed)
    inputs, sources = [], []
    for spec in specs:
        shape = tuple(max(int(d), 1) for d in spec.shape)
        sample = _calibration_sample(calibration, shape) if calibration is not None and len(specs) == 1 else None
        sources.append("calibration set sample 0" if sample is not None else "seeded random")
        if sample is None and np.issubdtype(np.dtype(spec.dtype), np.integer):
            info = np.iinfo(spec.dtype)  # every quantized value is a valid input: sample them uniformly
            inputs.append(
                rng.integers(
                    max(info.min, -(2**15)), min(info.max, 2**15 - 1), shape, endpoint=True, dtype=np.int64
                ).astype(spec.dtype)
            )
            continue
        real = sample if sample is not None else rng.standard_normal(shape).astype(np.float32)  # standardised data
        if np.issubdtype(np.dtype(spec.dtype), np.floating):
            inputs.append(real.astype(spec.dtype))
        elif spec.dtype == "bool":
            inputs.append(real > 0)
        else:
            inputs.append(quantize(real, spec))
    return inputs, ", ".join(sorted(set(sources))) or "none"


def run_litert(model_path: Path, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Outputs of the LiteRT interpreter for the given inputs (in the model's input order).

    LiteRT's reference kernels (no XNNPACK): the arithmetic TFLite Micro's kernels are ports of, so the
    device's self-test compares like with like (XNNPACK's int8 rounding differed by one step on a MobileNet).
    """
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        raise HandoffError(
            "golden vectors need the LiteRT interpreter, which is not installed",
            hint="pip install 'edgekd[tflite]' (ai-edge-litert)",
        ) from None
    try:
        interpreter = Interpreter(
            model_path=str(model_path), num_threads=1, experimental_op_resolver_type=OpResolverType.BUILTIN_REF
        )
        interpreter.allocate_tensors()
        for detail, value in zip(interpreter.get_input_details(), inputs, strict=True):
            interpreter.set_tensor(detail["index"], value)
        interpreter.invoke()
        return [np.array(interpreter.get_tensor(d["index"])) for d in interpreter.get_output_details()]
    except (RuntimeError, ValueError) as exc:
        raise HandoffError(
            f"LiteRT could not run {model_path.name}: {exc}",
            hint="check the model with `edgekd verify`; the bundle needs a runnable model",
        ) from None


def golden_vectors(model_path: Path, specs: tuple[TensorSpec, ...], calibration: Path | None) -> GoldenVectors:
    inputs, source = make_inputs(specs, calibration)
    return GoldenVectors(inputs=inputs, outputs=run_litert(model_path, inputs), input_source=source)


def max_difference(expected: list[np.ndarray], actual: list[np.ndarray]) -> float:
    """Largest absolute difference over all outputs (in quantized steps for integer outputs)."""
    worst = 0.0
    for want, got in zip(expected, actual, strict=True):
        if want.shape != got.shape:
            return math.inf
        diff = np.abs(want.astype(np.float64) - got.astype(np.float64))
        worst = max(worst, float(diff.max()) if diff.size else 0.0)
    return worst


def tolerance(output: np.ndarray) -> float:
    if np.issubdtype(output.dtype, np.integer):
        return float(INT_TOLERANCE)
    magnitude = float(np.abs(output).max()) if output.size else 0.0
    return FLOAT_TOLERANCE * (1.0 + magnitude)


def render_golden_header(
    golden: GoldenVectors,
    symbols: BundleSymbols,
    *,
    source: str,
    edgekd_version: str,
    tolerances: list[float] | None = None,
) -> str:
    """golden.h: 16-byte aligned input arrays to copy into the input tensors and the expected outputs.

    `tolerances` (one per output) default to `tolerance(output)`; the bundle widens them to what TFLM on
    the host actually differed by, so the self-test passes on a correct deployment.
    """
    if tolerances is None:
        tolerances = [tolerance(out) for out in golden.outputs]
    guard = symbols.header_guard("golden_h")
    lines = [
        generated_banner(source, edgekd_version).rstrip("\n"),
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        "#include <cmath>  // INFINITY/NAN, if an output holds them",
        "#include <cstdint>",
        "",
        f"// Inputs: {golden.input_source}. Outputs: LiteRT on the host. On the device, copy each input into",
        "// the interpreter's input tensor, Invoke(), and compare every output element within the tolerance",
        "// (integer outputs: quantized steps; float outputs: absolute).",
        "",
    ]
    for kind, arrays, name_of in (
        ("input", golden.inputs, symbols.golden_input),
        ("output", golden.outputs, symbols.golden_output),
    ):
        for index, array in enumerate(arrays):
            name = name_of(index)
            ctype = c_type(array.dtype.name)
            lines.append(f"// {kind} {index}: {array.dtype.name} {list(array.shape)}")
            lines.append(f"alignas(16) const {ctype} {name}[{max(array.size, 1)}] = {{")
            lines.append(value_lines(array) if array.size else "    0")
            lines.append("};")
            lines.append(f"const unsigned int {name}_len = {array.size}u;")
            if kind == "output":
                tol = tolerances[index]
                integer = np.issubdtype(array.dtype, np.integer)
                literal = f"{math.ceil(tol)}" if integer else c_float(tol)
                lines.append(f"const {'int' if integer else 'float'} {name}_tolerance = {literal};")
            lines.append("")
    lines += [f"#endif  // {guard}", ""]
    return "\n".join(lines)


def golden_summary(golden: GoldenVectors) -> dict[str, Any]:
    return {
        "input_source": golden.input_source,
        "inputs": [{"shape": list(a.shape), "dtype": a.dtype.name} for a in golden.inputs],
        "outputs": [{"shape": list(a.shape), "dtype": a.dtype.name, "tolerance": tolerance(a)} for a in golden.outputs],
    }
