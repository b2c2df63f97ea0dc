"""self_test.cc: the on-device self-test, and the integration example the README points to.

`int <name>_self_test()` builds the resolver and interpreter exactly as firmware would, copies each golden
input into its input tensor, invokes, and returns how many output elements differ from golden.h by more
than their tolerance (0 = the deployment reproduces the host), or a negative setup error. It needs the
TFLM headers, so the host compiles it only when `[handoff] tflm_include` names a TFLM tree (verify.py).
"""

from __future__ import annotations

from typing import Any

from edgekd.handoff.c_array import generated_banner
from edgekd.handoff.identifiers import BundleSymbols

#: numpy dtype -> the TfLiteTensor data union member holding it.
TENSOR_DATA_MEMBERS: dict[str, str] = {
    "float32": "f", "int8": "int8", "uint8": "uint8", "int16": "i16", "int32": "i32", "int64": "i64", "bool": "b",
}  # fmt: skip


def self_test_function(symbols: BundleSymbols) -> str:
    return f"{symbols.base}_self_test"


def render_self_test(manifest: dict[str, Any], symbols: BundleSymbols, *, edgekd_version: str) -> str:
    ns, function = symbols.namespace, self_test_function(symbols)
    lines = [
        generated_banner(manifest["model"]["file"], edgekd_version).rstrip("\n"),
        "// Call it once after boot: 0 means the model on this device reproduces the host's golden outputs.",
        "#include <cmath>",
        "#include <cstdint>",
        "#include <cstdlib>",
        "#include <cstring>",
        "",
        '#include "golden.h"',
        '#include "model_data.h"',
        '#include "model_manifest.h"',
        '#include "op_resolver.h"',
        '#include "tensorflow/lite/micro/micro_interpreter.h"',
        "",
        "namespace {",
        f"alignas(16) uint8_t tensor_arena[{ns}::kTensorArenaBytes];",
        "}  // namespace",
        "",
        "// Returns the number of output elements outside tolerance, or -1 resolver, -2 arena, -3 invoke,",
        "// -4 a tensor of an unexpected size.",
        f"int {function}() {{",
        f"  static {symbols.resolver_type} resolver;",
        f"  if ({symbols.resolver_function}(resolver) != kTfLiteOk) return -1;",
        f"  const tflite::Model* model = tflite::GetModel({symbols.model_array});",
        "  static tflite::MicroInterpreter interpreter(model, resolver, tensor_arena, sizeof(tensor_arena));",
        "  if (interpreter.AllocateTensors() != kTfLiteOk) return -2;  // raise kTensorArenaBytes",
    ]
    for entry in manifest["inputs"]:
        index, name = entry["index"], symbols.golden_input(entry["index"])
        lines += [
            f"  TfLiteTensor* input_{index} = interpreter.input({index});",
            f"  if (input_{index}->bytes != {ns}::kInput{index}Bytes) return -4;",
            f"  std::memcpy(input_{index}->data.raw, {name}, {ns}::kInput{index}Bytes);",
        ]
    lines += ["  if (interpreter.Invoke() != kTfLiteOk) return -3;", "  int mismatches = 0;"]
    for entry in manifest["outputs"]:
        index, name = entry["index"], symbols.golden_output(entry["index"])
        member = TENSOR_DATA_MEMBERS.get(entry["dtype"])
        if member is None:
            lines.append(f"  // output {index} ({entry['dtype']}): compare it by hand")
            continue
        difference = (
            f"std::fabs(output_{index}[i] - {name}[i])"
            if entry["dtype"] == "float32"
            else f"std::abs(static_cast<long long>(output_{index}[i]) - static_cast<long long>({name}[i]))"
        )
        lines += [
            f"  const TfLiteTensor* tensor_{index} = interpreter.output({index});",
            f"  if (tensor_{index}->bytes != {ns}::kOutput{index}Bytes) return -4;",
            f"  const auto* output_{index} = tensor_{index}->data.{member};",
            f"  for (unsigned int i = 0; i < {name}_len; ++i) {{",
            f"    if ({difference} > {name}_tolerance) ++mismatches;",
            "  }",
        ]
    lines += ["  return mismatches;", "}", ""]
    return "\n".join(lines)
