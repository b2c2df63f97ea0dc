"""model_manifest.json and model_manifest.h: what the firmware must know to feed the model and read it.

Names, shapes, dtypes and layout of every input and output, their scale and zero point, the preprocessing
from the device's raw values to input 0 (see input_prep.py), the label list, the arena size and the model's
identity. The JSON is the source; the header is rendered from it, so the two cannot disagree.
"""

from __future__ import annotations

import math
from typing import Any

from edgekd.artifacts import TensorSpec
from edgekd.handoff.c_array import C_TYPES, c_comment, c_float, c_string, generated_banner
from edgekd.handoff.identifiers import BundleSymbols
from edgekd.handoff.input_prep import preprocessing_section, render_preprocessing
from edgekd.handoff.tflite_reader import TENSOR_TYPES, TfliteModel

MANIFEST_SCHEMA = "edgekd.handoff.manifest/1"
_DEFAULT_LAYOUTS = {4: "NHWC", 3: "NWC", 2: "NC", 1: "C"}  # TFLite's conventions by rank


def tensor_entry(index: int, spec: TensorSpec, tensor_name: str, declared: TensorSpec | None) -> dict[str, Any]:
    """One input/output as manifest JSON. Layout: the producer's declaration, else TFLite's convention."""
    shape = [int(d) for d in spec.shape]
    elements = math.prod(max(d, 1) for d in shape)
    if declared is not None and declared.layout:
        layout, layout_source = declared.layout, "declared by the converter"
    else:
        layout, layout_source = _DEFAULT_LAYOUTS.get(len(shape)), "TFLite convention for this rank"
    quant = None
    if spec.quant is not None:
        quant = {
            "scale": list(spec.quant.scale),
            "zero_point": list(spec.quant.zero_point),
            "axis": spec.quant.axis,
            "formula": "real = scale * (q - zero_point)",
        }
    return {
        "index": index,
        "name": spec.name,
        "tensor_name": tensor_name,
        "shape": shape,
        "dtype": spec.dtype,
        "c_type": C_TYPES.get(spec.dtype),
        "layout": layout,
        "layout_source": layout_source,
        "elements": elements,
        "bytes": elements * TENSOR_TYPES.get(spec.dtype.upper(), ("", 1))[1],
        "quantization": quant,
    }


def _declared(specs: tuple[TensorSpec, ...], index: int, *names: str) -> TensorSpec | None:
    """The producer's description of a tensor, matched by signature or tensor name, else by position."""
    for spec in specs:
        if spec.name in names:
            return spec
    return specs[index] if index < len(specs) else None


def build_manifest(
    model: TfliteModel,
    *,
    model_name: str,
    symbols: BundleSymbols,
    file_name: str,
    file_bytes: int,
    sha256: str,
    precision: str | None,
    platform: str,
    labels: list[str],
    preprocessing: dict[str, Any],
    operators: list[str],
    arena: dict[str, Any] | None = None,
    declared_inputs: tuple[TensorSpec, ...] = (),
    declared_outputs: tuple[TensorSpec, ...] = (),
) -> dict[str, Any]:
    """The manifest as a JSON-ready dict (`arena` may be filled in later, before rendering).

    Raises HandoffError when the preprocessing does not fit input 0 (counts, zero std, non-finite values)."""
    inputs = [
        tensor_entry(i, spec, name, _declared(declared_inputs, i, spec.name, name))
        for i, (spec, name) in enumerate(zip(model.inputs, model.input_tensor_names, strict=True))
    ]
    outputs = [
        tensor_entry(i, spec, name, _declared(declared_outputs, i, spec.name, name))
        for i, (spec, name) in enumerate(zip(model.outputs, model.output_tensor_names, strict=True))
    ]
    prep = preprocessing_section(preprocessing, inputs)
    model_layout = inputs[0]["layout"] if inputs else None
    if prep.get("layout") and model_layout and prep["layout"] != model_layout:
        # e.g. torch trained on NCHW, onnx2tf made the TFLite input NHWC: the firmware writes NHWC.
        prep["layout_note"] = (
            f"training data was {prep['layout']}; the model input is {model_layout}: "
            f"write input elements in {model_layout} order"
        )
    return {
        "schema": MANIFEST_SCHEMA,
        "model": {
            "name": model_name,
            "file": file_name,
            "bytes": file_bytes,
            "sha256": sha256,
            "precision": precision,
            "tflite_schema_version": model.schema_version,
            "min_runtime_version": model.metadata.get("min_runtime_version"),
        },
        "platform": platform,
        "symbols": {
            "model_array": symbols.model_array,
            "model_length": symbols.model_length,
            "manifest_namespace": symbols.namespace,
            "op_resolver_type": symbols.resolver_type,
            "op_resolver_function": symbols.resolver_function,
        },
        "inputs": inputs,
        "outputs": outputs,
        "preprocessing": prep,
        "labels": list(labels),
        "operators": operators,
        "arena": arena or {},
    }


def _floats(values: list[float]) -> str:
    return ", ".join(c_float(v) for v in values)


def _tensor_lines(kind: str, entry: dict[str, Any]) -> list[str]:
    prefix = f"k{kind}{entry['index']}"
    dims = ", ".join(str(d) for d in entry["shape"]) or "1"
    lines = [
        f"// {kind.lower()} {entry['index']}: {c_comment(entry['name'])} ({c_comment(entry['tensor_name'])}) "
        f"{entry['dtype']} {entry['shape']} {entry['layout'] or ''}".rstrip(),
        f"constexpr const char* {prefix}Name = {c_string(entry['name'])};",
        f"constexpr int {prefix}Rank = {len(entry['shape'])};",
        f"constexpr int {prefix}Dims[{max(len(entry['shape']), 1)}] = {{{dims}}};",
        f"constexpr unsigned int {prefix}Elements = {entry['elements']}u;",
        f"constexpr unsigned int {prefix}Bytes = {entry['bytes']}u;",
        f"constexpr const char* {prefix}Layout = {c_string(entry['layout'] or '')};",
    ]
    quant = entry["quantization"]
    if quant is not None and len(quant["scale"]) == 1:
        lines += [
            f"constexpr float {prefix}Scale = {_floats(quant['scale'])};",
            f"constexpr int {prefix}ZeroPoint = {int(quant['zero_point'][0])};",
        ]
    elif quant is not None:  # per-channel along `axis`
        count = len(quant["scale"])
        lines += [
            f"constexpr int {prefix}QuantAxis = {quant['axis']};",
            f"constexpr float {prefix}Scales[{count}] = {{{_floats(quant['scale'])}}};",
            f"constexpr int {prefix}ZeroPoints[{count}] = {{{', '.join(str(int(z)) for z in quant['zero_point'])}}};",
        ]
    return lines + [""]


def render_manifest_header(manifest: dict[str, Any], symbols: BundleSymbols, *, edgekd_version: str) -> str:
    """model_manifest.h: the manifest as C++11 constexpr constants in namespace `<name>_manifest`."""
    guard = symbols.header_guard("model_manifest_h")
    model = manifest["model"]
    arena = manifest["arena"]
    lines = [
        generated_banner(model["file"], edgekd_version).rstrip("\n"),
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        "#include <cmath>  // std::nearbyint in PrepareInput0",
        "#include <cstdint>",
        "",
        f"namespace {symbols.namespace} {{",
        "",
        f"constexpr const char* kModelName = {c_string(model['name'])};",
        f"constexpr unsigned int kModelBytes = {model['bytes']}u;",
        f"constexpr const char* kModelSha256 = {c_string(model['sha256'])};",
        f"constexpr int kTfliteSchemaVersion = {model['tflite_schema_version']};",
        "",
        (
            f"// Tensor arena: {arena['method']} ({arena['basis_bytes']} bytes) + {arena['margin']:.0%} margin, "
            "rounded up to 16."
        ),
        f"constexpr unsigned int kTensorArenaBytes = {arena['bytes']}u;",
        f"constexpr const char* kTensorArenaMethod = {c_string(arena['method'])};",
        "",
        f"constexpr int kNumInputs = {len(manifest['inputs'])};",
        f"constexpr int kNumOutputs = {len(manifest['outputs'])};",
        "",
    ]
    for entry in manifest["inputs"]:
        lines += _tensor_lines("Input", entry)
    for entry in manifest["outputs"]:
        lines += _tensor_lines("Output", entry)
    if manifest["inputs"]:
        lines += render_preprocessing(manifest["preprocessing"], manifest["inputs"][0])
    labels = manifest["labels"]
    lines.append(f"constexpr int kNumLabels = {len(labels)};")
    if labels:
        lines.append(
            f"constexpr const char* kLabels[{len(labels)}] = {{{', '.join(c_string(str(lb)) for lb in labels)}}};"
        )
    lines += ["", f"}}  // namespace {symbols.namespace}", "", f"#endif  // {guard}", ""]
    return "\n".join(lines)
