"""`edgekd handoff`: bundle one .tflite for firmware, outside a recipe run.

A plain typer-annotated function; cli.py registers it. Heavy packages are imported by the handoff modules
only when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

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


def _floats(text: str | None, option: str) -> list[float] | None:
    if text is None:
        return None
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(
            f"{option} takes numbers separated by commas, got {text!r}", hint=f"e.g. {option} 0.5 or 0.48,0.46,0.41"
        ) from None
    if not values:
        raise UsageError(f"{option} is empty", hint=f"e.g. {option} 0.5")
    return values


def _preprocessing(source_config: dict[str, Any], mean: str | None, std: str | None) -> dict[str, Any]:
    prep = dict(source_config.get("preprocessing") or {})
    mean_values, std_values = _floats(mean, "--mean"), _floats(std, "--std")
    if mean_values is not None:
        prep["mean"] = mean_values[0] if len(mean_values) == 1 else mean_values
    if std_values is not None:
        if any(v <= 0 for v in std_values):
            raise UsageError("--std values must be positive", hint="std divides the input: x = (raw - mean) / std")
        prep["std"] = std_values[0] if len(std_values) == 1 else std_values
    return prep


def handoff_cmd(
    model: Annotated[Path, typer.Argument(help=".tflite model to hand over (full int8 or fp32 for microcontrollers)")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="bundle folder to write (a .zip is written beside it)")
    ] = Path("handoff"),
    platform: Annotated[str, typer.Option(help="micro (TFLite Micro: ops checked), linux or android")] = "micro",
    model_name: Annotated[
        str, typer.Option("--model-name", help="C identifiers derive from it: g_<name>, g_<name>_len")
    ] = "model",
    labels: Annotated[Optional[str], typer.Option(help="labels: a text file (one per line) or 'a,b,c'")] = None,
    calibration: Annotated[
        Optional[Path],
        typer.Option("--calibration", "-c", help="calibration .npz: hashed, and sample 0 is the golden input"),
    ] = None,
    mean: Annotated[
        Optional[str], typer.Option(help="preprocessing mean (one value or one per channel, comma-separated)")
    ] = None,
    std: Annotated[
        Optional[str], typer.Option(help="preprocessing std (one value or one per channel, comma-separated)")
    ] = None,
    arena_margin: Annotated[float, typer.Option("--arena-margin", help="fraction added to the measured arena")] = 0.2,
    zip_bundle: Annotated[bool, typer.Option("--zip/--no-zip", help="also write <out>.zip")] = True,
    require_compiler: Annotated[
        bool, typer.Option("--require-compiler", help="fail when g++ is missing instead of skipping the compile check")
    ] = False,
) -> None:
    """Write a verified firmware bundle: model_data.cc/.h, manifest, op_resolver.h, golden vectors, README."""
    from pydantic import ValidationError

    from edgekd.artifacts import describe_file
    from edgekd.commands.export import calibration_artifact
    from edgekd.config.handoff import HandoffConfig
    from edgekd.handoff.bundle import build_handoff

    try:
        config = HandoffConfig(
            platform=platform,
            model_name=model_name,
            arena_margin=arena_margin,
            zip=zip_bundle,
            require_compiler=require_compiler,
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        option = "--" + "-".join(str(p) for p in error["loc"]).replace("_", "-")
        raise UsageError(
            f"invalid option {option}: {error['msg']}",
            hint="--platform is micro, linux or android; --arena-margin is >= 0",
        ) from None
    source = describe_file(model)
    if source.format != "tflite":
        raise UsageError(
            f"{model.name} is {source.format}; edgekd handoff takes a .tflite model",
            hint="convert it first: edgekd quantize MODEL.onnx --to tflite -c calibration.npz",
        )
    label_list = parse_labels(labels) or [
        str(v) for v in source.config.get("label_names") or source.config.get("labels") or []
    ]
    result = build_handoff(
        source,
        out,
        config,
        labels=label_list,
        preprocessing=_preprocessing(source.config, mean, std),
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
