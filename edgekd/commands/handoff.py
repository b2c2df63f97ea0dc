"""`edgekd handoff`: bundle one .tflite for firmware, outside a recipe run.

A plain typer-annotated function; cli.py registers it. Heavy packages are imported by the handoff modules
only when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from edgekd import console
from edgekd.errors import UsageError


def parse_labels(labels: str | None) -> list[str]:
    """Labels from a text file (one per line) or a comma-separated list; None gives no labels."""
    if labels is None:
        return []
    path = Path(labels)
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(
                f"cannot read the label file {path}: {exc}", hint="a UTF-8 text file, one label per line"
            ) from None
        return [line.strip() for line in text.splitlines() if line.strip()]
    if "," not in labels and ("/" in labels or labels.endswith(".txt")):
        raise UsageError(f"label file {labels} does not exist", hint="give a file with one label per line, or 'a,b,c'")
    return [part.strip() for part in labels.split(",") if part.strip()]


def _number(text: str) -> float:
    """A number, or a fraction such as 1/255 (exactly the float 1 / 255)."""
    numerator, slash, denominator = text.partition("/")
    if not slash:
        return float(text)
    return float(numerator) / float(denominator)  # ZeroDivisionError for x/0


def _floats(text: str | None, option: str) -> list[float] | None:
    if text is None:
        return None
    try:
        values = [_number(part) for part in text.split(",") if part.strip()]
    except (ValueError, ZeroDivisionError):
        raise UsageError(
            f"{option} takes numbers separated by commas, got {text!r}",
            hint=f"e.g. {option} 0.5, {option} 0.48,0.46,0.41 or {option} 1/255",
        ) from None
    if not values:
        raise UsageError(f"{option} is empty", hint=f"e.g. {option} 0.5")
    return values


def _preprocessing(
    source_config: dict[str, Any], scale: str | None, mean: str | None, std: str | None
) -> dict[str, Any]:
    """The model's recorded preprocessing (sidecar), with --scale/--mean/--std taking precedence."""
    prep = dict(source_config.get("preprocessing") or {})
    scale_values = _floats(scale, "--scale")
    if scale_values is not None:
        if len(scale_values) != 1:
            raise UsageError(
                f"--scale takes one number, got {len(scale_values)}",
                hint="the raw -> float step for every channel, e.g. --scale 0.00392156863 (1/255) for uint8 pixels",
            )
        prep["scale"] = scale_values[0]
    for option, values in (("mean", _floats(mean, "--mean")), ("std", _floats(std, "--std"))):
        if values is not None:
            prep[option] = values[0] if len(values) == 1 else values
    return prep


def _check_preprocessing(model: Path, prep: dict[str, Any]) -> None:
    """--scale/--mean/--std against each other and model input 0's channel count, before any work."""
    from edgekd.handoff.input_prep import input_channels, preprocessing_problem
    from edgekd.handoff.manifest import tensor_entry
    from edgekd.handoff.tflite_reader import parse_tflite
    from edgekd.preprocessing import Preprocessing

    try:
        parsed = parse_tflite(model.read_bytes(), source=model.name)
    except OSError:
        return  # build_handoff reports the unreadable file
    if not parsed.inputs:
        return
    channels, _ = input_channels(tensor_entry(0, parsed.inputs[0], parsed.input_tensor_names[0], None))
    problem = preprocessing_problem(Preprocessing.from_dict(prep), channels)
    if problem:
        raise UsageError(
            f"--scale/--mean/--std do not fit {model.name}: {problem}",
            hint=(f"give one value, or {channels} (one per channel), " if channels > 1 else "give one value ")
            + "to --mean and to --std; --std and --scale positive, e.g. --scale 0.00392156863 --mean 0.5 --std 0.25",
        )


def handoff_cmd(
    model: Annotated[Path, typer.Argument(help=".tflite model to hand over (full int8 or fp32 for microcontrollers)")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="bundle folder to write (a .zip is written beside it)")
    ] = Path("handoff"),
    platform: Annotated[str, typer.Option(help="micro (TFLite Micro: ops checked), linux or android")] = "micro",
    model_name: Annotated[
        str, typer.Option("--model-name", help="C identifiers derive from it: g_<name>, g_<name>_len")
    ] = "model",
    labels: Annotated[str | None, typer.Option(help="labels: a text file (one per line) or 'a,b,c'")] = None,
    calibration: Annotated[
        Path | None,
        typer.Option("--calibration", "-c", help="calibration .npz: hashed, and sample 0 is the golden input"),
    ] = None,
    scale: Annotated[
        str | None,
        typer.Option(help="raw -> float step applied before mean/std: 1/255 for uint8 pixels, 1/16 for digits"),
    ] = None,
    mean: Annotated[
        str | None, typer.Option(help="preprocessing mean (one value or one per channel, comma-separated)")
    ] = None,
    std: Annotated[
        str | None, typer.Option(help="preprocessing std (one value or one per channel, comma-separated)")
    ] = None,
    arena_margin: Annotated[
        float, typer.Option("--arena-margin", help="fraction added to the measured arena (0 to 10)")
    ] = 0.2,
    zip_bundle: Annotated[bool, typer.Option("--zip/--no-zip", help="also write <out>.zip")] = True,
    require_compiler: Annotated[
        bool, typer.Option("--require-compiler", help="fail when g++ is missing instead of skipping the compile check")
    ] = False,
    max_arena_kb: Annotated[
        float | None,
        typer.Option("--max-arena-kb", help="fail when the arena (+ margin) exceeds this many KiB (micro)"),
    ] = None,
    max_flash_kb: Annotated[
        float | None,
        typer.Option("--max-flash-kb", help="fail when model + estimated TFLM code exceeds this many KiB (micro)"),
    ] = None,
) -> None:
    """Write a verified firmware bundle: model_data.cc/.h, manifest, op_resolver.h, golden vectors, README."""
    from pydantic import ValidationError

    from edgekd.artifacts import describe_file
    from edgekd.commands.export import calibration_artifact
    from edgekd.config.handoff import HandoffConfig
    from edgekd.errors import HandoffError
    from edgekd.handoff.arena import margin_problem
    from edgekd.handoff.bundle import build_handoff
    from edgekd.handoff.identifiers import bundle_symbols

    # the options' own messages first (HandoffConfig would say it in pydantic's words)
    problem = margin_problem(arena_margin)
    if problem:
        raise UsageError(f"--arena-margin: {problem}", hint="e.g. --arena-margin 0.2")
    try:
        bundle_symbols(model_name)
    except HandoffError as exc:
        raise UsageError(exc.message.replace("handoff model_name", "--model-name", 1), hint=exc.hint) from None
    try:
        config = HandoffConfig(
            platform=platform,
            model_name=model_name,
            arena_margin=arena_margin,
            zip=zip_bundle,
            require_compiler=require_compiler,
            max_arena_kb=max_arena_kb,
            max_flash_kb=max_flash_kb,
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        option = "--" + "-".join(str(p) for p in error["loc"]).replace("_", "-") if error["loc"] else "--platform"
        raise UsageError(
            f"invalid option {option}: {error['msg'].removeprefix('Value error, ')}",
            hint="--platform is micro, linux or android; --arena-margin is >= 0; --max-arena-kb / --max-flash-kb are "
            "positive and apply to --platform micro",
        ) from None
    source = describe_file(model)
    if source.format != "tflite":
        raise UsageError(
            f"{model.name} is {source.format}; edgekd handoff takes a .tflite model",
            hint="convert it first: edgekd quantize MODEL.onnx --to tflite -c calibration.npz",
        )
    prep = _preprocessing(source.config, scale, mean, std)
    _check_preprocessing(model, prep)
    label_list = parse_labels(labels) or [
        str(v) for v in source.config.get("label_names") or source.config.get("labels") or []
    ]
    result = build_handoff(
        source,
        out,
        config,
        labels=label_list,
        preprocessing=prep,
        calibration=calibration_artifact(calibration) if calibration is not None else None,
        bench_summary=[],
        versions={},
    )
    summary = result.summary()
    if console.is_json():
        console.emit_json({"handoff": summary})
        return
    verified = (
        "compiled with g++, round trip and 16-byte alignment verified"
        if summary["compiled"]
        else f"compile check skipped: {summary['compile_skipped']}"
    )
    console.say(f"[bold]wrote[/bold] {result.path}" + (f" and {result.zip_path}" if result.zip_path else ""))
    console.say(
        f"  symbols: {summary['symbols']['model_array']}[] / {summary['symbols']['model_length']}; "
        f"{len(summary['operators'])} ops: {', '.join(summary['operators'])}"
    )
    console.say(
        f"  arena: {summary['arena_bytes']} bytes ({summary['arena_method']}, "
        f"+{summary['arena_margin']:.0%}); {verified}"
    )
    memory = summary.get("memory")
    if memory:
        flash, ram = memory["flash"], memory["ram"]
        console.say(
            f"  flash: {flash['total_bytes']} bytes (model {flash['model_bytes']} + code {flash['kernel_code_bytes'] + flash['core_code_bytes']}, "
            f"code estimated); RAM: {ram['total_bytes']} bytes (arena {ram['arena_bytes']} + I/O {ram['io_bytes']})"
        )
    vela = summary.get("ethos_u")
    if vela:
        console.say(
            f"  {vela['accelerator']} (Vela estimates): {vela['npu_operators']} NPU / {vela['cpu_operators']} CPU ops, "
            f"SRAM {vela['sram_bytes']} bytes, flash {vela['off_chip_flash_bytes'] + vela['on_chip_flash_bytes']} bytes, "
            f"{vela['cycles_total']} cycles, {vela['inferences_per_second']:.0f} inferences/s at {vela['core_clock_hz'] / 1e6:g} MHz"
        )
