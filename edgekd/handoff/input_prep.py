"""From the raw values a device has to the bytes of the model's input 0: the manifest's preprocessing.

Starts at the raw stored values (uint8 pixels 0..255, the digits' 0..16, a CSV's units), because that is
what firmware holds, and spells out every step in the order edgekd itself computes it, so the device gets
exactly the int8 inputs the verify stage fed the model:

    x = (raw * scale - mean[c]) / std[c]                 float32, each operation rounded, no fused multiply-add
    q = clamp(round_half_even(x / s) + zero_point, qmin, qmax)      s, zero_point: the input tensor's quantization

`Preprocessing.apply` (the data stage) is the first line, `edgekd.verify.backends.quantize` (numpy's
`np.round`, half to even) the second; `model_manifest.h` implements both as `PrepareInput0` with
`std::nearbyint` (half to even in the default rounding mode). A folded per-channel affine
x = raw * multiply[c] + add[c] is given too (one multiply-add per element) for firmware that prefers speed
over the last bit: it can differ by one float32 ulp, so by one quantization step at an exact rounding tie.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edgekd.errors import HandoffError
from edgekd.preprocessing import Preprocessing

ARITHMETIC = (
    "float32 throughout, each operation rounded in the written order (no fused multiply-add: GCC's "
    "-std=c++NN default, -ffp-contract=off under gnu++NN); round half to even (std::nearbyint in the default "
    "rounding mode), as edgekd's verify stage does with numpy"
)
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def input_channels(entry: dict[str, Any]) -> tuple[int, int]:
    """(channels, stride) of a manifest input entry: element i belongs to channel (i // stride) % channels.

    NCHW inputs (litert-torch keeps them) have channels on axis 1; everything else TFLite makes (NHWC, NWC,
    NC) has them last, with stride 1.
    """
    shape = [max(int(d), 1) for d in entry["shape"]] or [1]
    if entry.get("layout") == "NCHW" and len(shape) == 4:
        return shape[1], shape[2] * shape[3]
    return shape[-1], 1


def preprocessing_problem(prep: Preprocessing, channels: int) -> str | None:
    """What makes `prep` unusable for an input with `channels` channels, or None."""
    problem = prep.check(channels)
    if problem:
        return problem
    for name, values in (("mean", prep.mean), ("std", prep.std), ("scale", (prep.scale,))):
        if any(not math.isfinite(v) or abs(v) > _FLOAT32_MAX for v in values):
            return f"{name} must be finite float32 numbers (|value| <= 3.4e38)"
    multiply, add = prep.affine(channels)
    if not (np.isfinite(multiply).all() and np.isfinite(add).all()):
        return "scale / std or mean / std overflows float32 (std too small)"
    return None


def preprocessing_section(recorded: dict[str, Any] | None, inputs: list[dict[str, Any]]) -> dict[str, Any]:
    """The manifest's `preprocessing`: the recorded contract plus what firmware needs per channel of input 0."""
    recorded = dict(recorded or {})
    prep = Preprocessing.from_dict(recorded)
    section = prep.to_dict()
    section["recorded"] = bool(recorded)
    section["scale_recorded"] = "scale" in recorded
    if not inputs:
        return section
    entry = inputs[0]
    channels, stride = input_channels(entry)
    problem = preprocessing_problem(prep, channels)
    if problem:
        raise HandoffError(
            f"the preprocessing does not fit {entry['name']!r}: {problem}",
            hint="give one value, or one per channel of the model input, for mean and std; std and scale "
            "non-zero (edgekd handoff --scale/--mean/--std)",
        )
    mean = np.zeros(channels, np.float32) + np.asarray(prep.mean or (0.0,), np.float32)
    std = np.ones(channels, np.float32) * np.asarray(prep.std or (1.0,), np.float32)
    multiply, add = prep.affine(channels)
    section.update(
        applies_to="input 0",
        channels=channels,
        channel_stride=stride,
        channel_of_element="c = (i // channel_stride) % channels, i = element index in the input's memory order",
        per_channel={
            "mean": [float(v) for v in mean],
            "std": [float(v) for v in std],
            "multiply": [float(v) for v in multiply],
            "add": [float(v) for v in add],
        },
        folded="x = raw * multiply[c] + add[c]: faster, may differ from the formula by 1 ulp (1 step at a tie)",
        arithmetic=ARITHMETIC,
        device_formula=device_formula(section, entry),
        firmware_function="PrepareInput0" if input_store(entry) else None,
    )
    return section


def _raw_words(section: dict[str, Any]) -> str:
    dtype, value_range = section.get("raw_dtype"), section.get("raw_range")
    if dtype or value_range:
        span = f" in {value_range[0]:g}..{value_range[1]:g}" if value_range else ""
        return f"raw = the stored value ({dtype or 'type not recorded'}{span})"
    if not section["scale_recorded"]:
        return "raw = the value as the model's data set held it (no integer->float scaling recorded; scale 1)"
    return "raw = the stored value"


def input_store(entry: dict[str, Any]) -> str | None:
    """How `PrepareInput0` writes x into input 0: "quantize" (per-tensor int input), "float", or None (no
    function: per-channel or unquantized integer inputs, which firmware handles from the formula)."""
    from edgekd.handoff.c_array import C_TYPES

    quant = entry.get("quantization")
    kind = np.dtype(entry["dtype"]).kind
    if entry["dtype"] not in C_TYPES:
        return None
    if quant and len(quant["scale"]) == 1 and kind in "iu" and np.dtype(entry["dtype"]).itemsize <= 2:
        return "quantize"  # int8/uint8/int16: every clamp bound is exact in float32
    return "float" if kind == "f" else None


def device_formula(section: dict[str, Any], entry: dict[str, Any]) -> list[str]:
    """The steps, with this model's numbers, from raw values to what is written into input 0."""
    scale = section["scale"]
    lines = [_raw_words(section)]
    if section.get("resize"):
        height, width = section["resize"]
        how = f" with {section['resize_filter']}" if section.get("resize_filter") else ""
        lines.append(f"raw images resized to {height}x{width}{how} first, as edgekd did when loading")
    lines.append(f"x = (raw * {scale:.9g} - mean[c]) / std[c]   (mean/std per channel: per_channel.mean/std)")
    quant = entry.get("quantization")
    dtype = np.dtype(entry["dtype"])
    if quant and len(quant["scale"]) == 1 and dtype.kind in "iu":
        info = np.iinfo(dtype)
        zp = int(quant["zero_point"][0])
        zero_point = f"+ {zp}" if zp >= 0 else f"- {-zp}"
        lines.append(
            f"q = clamp(round_half_even(x / {quant['scale'][0]:.9g}) {zero_point}, "
            f"{info.min}, {info.max})   -> {entry['dtype']} input"
        )
    elif dtype.kind == "f":
        lines.append(f"write x into the {entry['dtype']} input")
    return lines


def render_preprocessing(section: dict[str, Any], entry: dict[str, Any]) -> list[str]:
    """model_manifest.h lines: the constants and `PrepareInput0`, computing exactly `device_formula`."""
    from edgekd.handoff.c_array import C_TYPES, c_float

    if "per_channel" not in section:
        return []
    per = section["per_channel"]
    count = section["channels"]

    def array(name: str, values: list[float]) -> str:
        return f"constexpr float {name}[{count}] = {{{', '.join(c_float(v) for v in values)}}};"

    lines = [
        "// Preprocessing of input 0, from the raw values the device has (see model_manifest.json):",
        *(f"//   {line}" for line in section["device_formula"]),
        f"// c = (i / kInputChannelStride) % kInputChannels for element i of input 0 ({entry['layout'] or 'model'} order).",
        "// Arithmetic: float32, each operation rounded in this order, no fused multiply-add",
        "// (-ffp-contract=off; GCC's default under -std=c++NN), round half to even: exactly what edgekd's verify",
        "// stage fed the model. kInputMul/kInputAdd fold the first line into one multiply-add (x = raw * kInputMul[c]",
        "// + kInputAdd[c]); that may differ in the last bit, so by one step at a rounding tie.",
        f"constexpr bool kPreprocessingRecorded = {'true' if section['recorded'] else 'false'};",
        f"constexpr float kRawScale = {c_float(section['scale'])};",
        f"constexpr int kInputChannels = {count};",
        f"constexpr unsigned int kInputChannelStride = {section['channel_stride']}u;",
        f"constexpr int kNumMeanStd = {count};",
        array("kMean", per["mean"]),
        array("kStd", per["std"]),
        array("kInputMul", per["multiply"]),
        array("kInputAdd", per["add"]),
        "",
        "// x for one raw value of channel c.",
        "static inline float PreprocessRaw(float raw, int c) { return (raw * kRawScale - kMean[c]) / kStd[c]; }",
    ]
    store, ctype = input_store(entry), C_TYPES.get(entry["dtype"])
    if store is None:
        return [*lines, ""]
    if store == "quantize":
        info = np.iinfo(np.dtype(entry["dtype"]))
        low, high = c_float(float(info.min)), c_float(float(info.max))
        lines += [
            "",
            f"// q for one x: clamp(round_half_even(x / kInput0Scale) + kInput0ZeroPoint, {info.min}, {info.max}).",
            f"static inline {ctype} QuantizeInput0(float x) {{",
            "  const float q = std::nearbyint(x / kInput0Scale) + static_cast<float>(kInput0ZeroPoint);",
            f"  return static_cast<{ctype}>(q < {low} ? {low} : (q > {high} ? {high} : q));",
            "}",
        ]
    lines += [
        "",
        "// Every element of input 0 from raw values in the input's memory order (raw: uint8_t, float, ...).",
        "template <typename Raw>",
        f"static inline void PrepareInput0(const Raw* raw, {ctype}* input) {{",
        "  for (unsigned int i = 0; i < kInput0Elements; ++i) {",
        "    const int c = static_cast<int>((i / kInputChannelStride) % static_cast<unsigned int>(kInputChannels));",
        "    const float x = PreprocessRaw(static_cast<float>(raw[i]), c);",
        f"    input[i] = {'QuantizeInput0(x)' if store == 'quantize' else 'x'};",
        "  }",
        "}",
        "",
    ]
    return lines
