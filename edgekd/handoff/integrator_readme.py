"""README.md for the firmware integrator: what each file is, how to feed the model, what was verified."""

from __future__ import annotations

from typing import Any

from edgekd.handoff.identifiers import BundleSymbols
from edgekd.handoff.self_test import self_test_function

FILE_PURPOSES: dict[str, str] = {
    "model_data.cc": "the .tflite as `alignas(16) const unsigned char` array (compile it into the firmware)",
    "model_data.h": "declares the model array and its length",
    "model_manifest.json": "inputs/outputs (names, shapes, dtypes, layout, scale, zero point), preprocessing, labels, "
    "arena",
    "model_manifest.h": "the manifest as C++11 constants",
    "op_resolver.h": "a `tflite::MicroMutableOpResolver<N>` with exactly the model's operators",
    "golden.h": "one input and the expected outputs, for an on-device self-test",
    "self_test.cc": "the on-device self-test: returns 0 when the device reproduces golden.h",
    "golden.npz": "the same golden vectors for host-side tools (numpy)",
    "bundle.json": "SHA-256 of every file, calibration set, versions, benchmark summary, verification results",
    "SHA256SUMS": "checksums in `sha256sum -c` format",
    "README.md": "this file",
}


_CELL_CHARS = 80  # longer texts (e.g. why energy was unavailable) are cut; bundle.json keeps them whole


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "—"
    text = str(value).replace("|", "\\|")
    return text if len(text) <= _CELL_CHARS else text[: _CELL_CHARS - 1] + "…"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(_cell(v) for v in row) + " |" for row in rows),
        "",
    ]


def _tensor_rows(entries: list[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for entry in entries:
        quant = entry["quantization"]
        scale = (
            (quant["scale"][0] if len(quant["scale"]) == 1 else f"per-channel ({len(quant['scale'])})")
            if quant
            else None
        )
        zero = (quant["zero_point"][0] if len(quant["zero_point"]) == 1 else "per-channel") if quant else None
        rows.append(
            [entry["index"], f"`{entry['name']}`", entry["shape"], entry["dtype"], entry["layout"], scale, zero]
        )
    return rows


#: Benchmark columns worth an integrator's attention, in this order (others stay in bundle.json).
BENCH_COLUMNS = ("target", "artifact", "runtime", "runtime_version", "p50_ms", "p90_ms", "p99_ms", "init_ms",
                 "peak_rss_kb", "energy_j_per_inference", "energy_unavailable")  # fmt: skip


def _bench_rows(bench: list[dict[str, Any]]) -> list[str]:
    if not bench:
        return ["No benchmark was run for this bundle.", ""]
    columns = [c for c in BENCH_COLUMNS if any(row.get(c) is not None for row in bench)]
    if not columns:  # rows from elsewhere: their first scalar fields
        columns = list(dict.fromkeys(k for row in bench for k, v in row.items() if not isinstance(v, (dict, list))))[:9]
    return [
        *_table(columns, [[row.get(c) for c in columns] for row in bench]),
        "Full rows: `bundle.json` → `bench`.",
        "",
    ]


_SHOWN_CHANNELS = 16  # more channels/features: the values are in the manifest and its header


def _preprocessing_lines(manifest: dict[str, Any], ns: str) -> list[str]:
    """How the device turns its raw values into input 0, starting from the raw values (see input_prep.py)."""
    prep = manifest["preprocessing"]
    if "device_formula" not in prep:
        return []
    lines = ["## Preprocessing: from the device's raw values to input 0", ""]
    if not prep.get("recorded"):
        lines += [
            (
                "**Not recorded**: edgekd had no record of how this model's inputs were made (no sidecar, no "
                "`--scale/--mean/--std`), so the formula below is the identity. If the model was trained on scaled or "
                "normalised inputs, rebuild the bundle with them."
            ),
            "",
        ]
    elif not prep.get("scale_recorded"):
        lines += [
            (
                "The recorded preprocessing has no integer->float `scale`: `raw` below means the values exactly as the "
                "data set held them when the model was trained (scale 1)."
            ),
            "",
        ]
    lines += [
        (
            "The model was trained on inputs made from the raw values like this; do exactly the same on the device "
            f"(c = channel of the element, `(i / {ns}::kInputChannelStride) % {ns}::kInputChannels` for element i):"
        ),
        "",
        "```",
        *prep["device_formula"],
        "```",
        "",
    ]
    per = prep["per_channel"]
    if prep["channels"] <= _SHOWN_CHANNELS:
        lines += _table(
            ["channel", "mean", "std", "multiply", "add"],
            [[c, per["mean"][c], per["std"][c], per["multiply"][c], per["add"][c]] for c in range(prep["channels"])],
        )
    if prep.get("firmware_function"):
        lines += [
            (
                f"`{ns}::{prep['firmware_function']}(raw, input)` in `model_manifest.h` does exactly this for every "
                "element of input 0 (raw values in the input's memory order, any numeric type). Arithmetic: "
                f"{prep['arithmetic']}: with it the device writes bit for bit the inputs edgekd's verify stage fed the "
                "model."
            ),
        ]
    lines += [
        (
            f"`{ns}::kInputMul[c]`/`kInputAdd[c]` fold the first line into `x = raw * multiply + add` (one "
            "multiply-add; may differ by one step at a rounding tie)."
        ),
        "",
    ]
    if prep.get("layout_note"):
        lines += [f"Layout: {prep['layout_note']}.", ""]
    return lines


def _memory_lines(memory: dict[str, Any] | None) -> list[str]:
    """The flash / RAM budget (platform micro): exact parts and estimated parts said apart."""
    if not memory:
        return []
    flash, ram = memory["flash"], memory["ram"]
    lines = [
        "## Memory (flash exact for the model, estimated for code)",
        "",
        (
            f"- Flash: {flash['total_bytes']} bytes = model {flash['model_bytes']} (exact) + kernel code "
            f"{flash['kernel_code_bytes']} + TFLM core {flash['core_code_bytes']} (**estimates**: {flash['basis']})."
        ),
        (
            f"- RAM: {ram['total_bytes']} bytes = tensor arena {ram['arena_bytes']} ({ram['arena_method']}) + "
            f"application I/O buffers {ram['io_bytes']}. {ram['note']}."
        ),
    ]
    if flash["ops_without_estimate"]:
        lines.append("- No code estimate for: " + ", ".join(f"`{op}`" for op in flash["ops_without_estimate"]) + ".")
    return [*lines, ""]


def _ethos_u_lines(vela: dict[str, Any] | None) -> list[str]:
    """The Vela-compiled model and Vela's figures, labelled as estimates."""
    if not vela:
        return []
    cpu = ", ".join(f"`{op}` x{n}" for op, n in vela["cpu_operator_types"].items()) or "none"
    return [
        f"## Arm {vela['accelerator']} (Vela {vela['version']}: estimates, not measured on hardware)",
        "",
        (
            f"`{vela['file']}` is the model compiled by Vela: its NPU part is one `ethos-u` custom operator (register "
            "`AddEthosU()` and link the Ethos-U driver); the plain int8 model and everything above is the Cortex-M-only build."
        ),
        "",
        (
            f"- System config {vela['system_config']}, memory mode {vela['memory_mode']}, clock {vela['core_clock_hz'] / 1e6:g} MHz."
        ),
        (
            f"- SRAM {vela['sram_bytes']} bytes, off-chip flash {vela['off_chip_flash_bytes']} bytes, on-chip flash "
            f"{vela['on_chip_flash_bytes']} bytes, DRAM {vela['dram_bytes']} bytes."
        ),
        f"- Operators: {vela['npu_operators']} on the NPU, {vela['cpu_operators']} on the CPU ({cpu}).",
        (
            f"- {vela['cycles_total']} cycles ({vela['cycles_npu']} NPU), {1e3 * vela['inference_time_s']:.3f} ms, "
            f"{vela['inferences_per_second']:.0f} inferences/s; {vela['macs']} MACs."
        ),
        "",
    ]


def render_readme(
    *,
    manifest: dict[str, Any],
    symbols: BundleSymbols,
    files: dict[str, str],
    verification: dict[str, Any],
    golden: dict[str, Any],
    bench: list[dict[str, Any]],
    versions: dict[str, Any],
    calibration: dict[str, Any] | None,
) -> str:
    model, arena, ns = manifest["model"], manifest["arena"], symbols.namespace
    lines = [
        f"# {model['name']}: firmware handoff bundle",
        "",
        (
            f"Written by edgekd {versions.get('edgekd', '')} for platform **{manifest['platform']}**. "
            f"Model `{model['file']}`: {model['bytes']} bytes, precision {model['precision'] or 'unknown'}, "
            f"TFLite schema v{model['tflite_schema_version']}, sha256 `{model['sha256']}`."
        ),
        "",
        "## Files",
        "",
        *_table(
            ["file", "what it is", "sha256"],
            [
                [
                    f"`{name}`",
                    FILE_PURPOSES.get(name, "the model flatbuffer" if name.endswith(".tflite") else ""),
                    f"`{digest[:16]}…`",
                ]
                for name, digest in sorted(files.items())
            ],
        ),
        "Check them with `sha256sum -c SHA256SUMS`.",
        "",
        "## Inputs and outputs",
        "",
        "Quantized tensors: `real = scale * (q - zero_point)`.",
        "",
        "Inputs:",
        "",
        *_table(["#", "name", "shape", "dtype", "layout", "scale", "zero point"], _tensor_rows(manifest["inputs"])),
        "Outputs:",
        "",
        *_table(["#", "name", "shape", "dtype", "layout", "scale", "zero point"], _tensor_rows(manifest["outputs"])),
    ]
    lines += _preprocessing_lines(manifest, ns)
    labels = manifest["labels"]
    lines += [
        "## Labels",
        "",
        (", ".join(f"{i}: `{lb}`" for i, lb in enumerate(labels)) if labels else "No label list was given."),
        "",
    ]
    lines += [
        "## Tensor arena",
        "",
        (
            f"`{ns}::kTensorArenaBytes = {arena['bytes']}`: {arena['method']} basis {arena['basis_bytes']} bytes "
            f"+ {arena['margin']:.0%} margin, rounded up to 16. {arena.get('note', '')}"
        ),
        "",
        *_memory_lines(manifest.get("memory")),
        *_ethos_u_lines(manifest.get("ethos_u")),
        "## Operators",
        "",
        f"{len(manifest['operators'])} operator(s): " + ", ".join(f"`{op}`" for op in manifest["operators"]) + ".",
        "`op_resolver.h` registers exactly these (one `Add…()` each).",
        "",
        "## Using it with TensorFlow Lite Micro",
        "",
        "Add `model_data.cc` (and `self_test.cc`) to the firmware build next to TFLite Micro, then:",
        "",
        "```cpp",
        '#include "model_data.h"',
        '#include "model_manifest.h"',
        '#include "op_resolver.h"',
        '#include "tensorflow/lite/micro/micro_interpreter.h"',
        "",
        f"alignas(16) static uint8_t tensor_arena[{ns}::kTensorArenaBytes];",
        f"static {symbols.resolver_type} resolver;",
        f"{symbols.resolver_function}(resolver);",
        f"static tflite::MicroInterpreter interpreter(tflite::GetModel({symbols.model_array}), resolver,",
        "                                             tensor_arena, sizeof(tensor_arena));",
        "interpreter.AllocateTensors();",
        "// fill interpreter.input(0)->data as the manifest says, Invoke(), read interpreter.output(0)",
        "```",
        "",
        "## On-device self-test",
        "",
        (
            f"`self_test.cc` defines `int {self_test_function(symbols)}()`: it runs the golden input(s) of `golden.h` "
            "through the model as above and returns the number of output elements outside their tolerance "
            "(0 = the device reproduces the host; negative = a setup step failed, see the file). "
            f"Inputs: {golden.get('input_source')}; outputs: LiteRT on the host."
        ),
    ]
    if golden.get("tflm_max_abs_diff") is not None:
        lines.append(
            f"TFLite Micro on the host reproduced them within {golden['tflm_max_abs_diff']:.4g} "
            "(integer outputs: quantized steps)."
        )
    lines += ["", "## Verified on the host", ""]
    if verification.get("compiled"):
        lines += [
            (
                f"- `model_data.cc` and a check program built with {verification['compiler']} "
                f"`{' '.join(verification['flags'])}` (two translation units including every header)."
            ),
            f"- The array written back has sha256 `{verification['round_trip_sha256']}`, equal to the `.tflite`.",
            f"- `{symbols.model_array}` is {verification['alignment']}-byte aligned at run time.",
        ]
    else:
        lines.append(f"- Compilation skipped: {verification.get('skipped')}.")
    tflm = verification.get("tflm_headers", {})
    if tflm.get("compiled"):
        lines.append(
            f"- `self_test.cc` and `op_resolver.h` compiled against the TFLM headers in "
            f"{', '.join(tflm['include_dirs'])} (`{' '.join(tflm['flags'])}`)."
        )
    else:
        lines.append(f"- `self_test.cc` not compiled: {tflm.get('skipped', 'TFLM headers not given')}.")
    resolver = verification.get("op_resolver", {})
    lines += [
        (
            f"- `op_resolver.h`: {resolver.get('check', 'not checked')}: {resolver.get('op_count', 0)} Add calls "
            "match the model's operators and the template count."
        ),
        "",
    ]
    lines += ["## Benchmarks", "", *_bench_rows(bench)]
    if calibration:
        lines += ["## Calibration set", "", f"`{calibration.get('name')}` sha256 `{calibration.get('sha256')}`.", ""]
    lines += ["## Versions", "", *(f"- {key}: {value}" for key, value in sorted(versions.items())), ""]
    return "\n".join(lines)
