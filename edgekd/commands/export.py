"""`edgekd export`, `edgekd quantize` and `edgekd verify`: the conversion stages, one file at a time.

Plain typer-annotated functions; cli.py registers them. Heavy packages are imported inside.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from edgekd import console
from edgekd.config.export import DEFAULT_OPSET
from edgekd.errors import DataError, ModelError, UsageError

if TYPE_CHECKING:
    import numpy as np

    from edgekd.artifacts import Artifact
    from edgekd.recipe import Recipe

RecipeOption = Annotated[Path | None, typer.Option("--recipe", "-r", help="recipe whose data/thresholds to use")]


def export_cmd(
    model: Annotated[Path, typer.Argument(help="torch student (.pt with its edgekd sidecar)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="directory to write the .onnx into")] = Path("."),
    opset: Annotated[int, typer.Option(help="ONNX opset (18-23)")] = DEFAULT_OPSET,
    dynamic_batch: Annotated[bool, typer.Option("--dynamic-batch", help="make the batch dimension symbolic")] = False,
    simplify: Annotated[bool, typer.Option("--simplify/--no-simplify", help="run onnxsim on the graph")] = True,
    recipe: RecipeOption = None,
) -> None:
    """Export a torch model to one self-contained ONNX file (dynamo exporter, checked, with metadata)."""
    from pydantic import ValidationError

    from edgekd import registry
    from edgekd.artifacts import load_artifact
    from edgekd.config.export import ExportConfig

    try:
        options = ExportConfig(opset=opset, dynamic_batch=dynamic_batch, simplify=simplify)
    except ValidationError as exc:
        raise UsageError(
            f"invalid export option: {exc.errors()[0]['msg']}",
            hint=f"--opset must lie in 18..23 (default {DEFAULT_OPSET})",
        ) from None
    source = load_artifact(model)
    metadata: dict[str, Any] = {
        "labels": source.config.get("label_names") or source.config.get("labels") or [],
        "preprocessing": source.config.get("preprocessing", {}),
    }
    if recipe is not None:
        metadata["recipe_hash"] = load_recipe_file(recipe)[0].recipe_hash()
    _report_written(registry.run_converter("torch_onnx", source, {**dict(options), "metadata": metadata}, out))


# Which quantize options each --to takes; any other option given explicitly is refused, never ignored.
QUANTIZE_OPTIONS = {
    "onnx": ("--mode", "--per-channel/--per-tensor", "--method", "--activation-type"),
    "tflite": ("--per-channel/--per-tensor", "--int8-io", "--keep-nchw"),
}
_FLAGS = {
    "mode": "--mode",
    "per_channel": "--per-channel/--per-tensor",
    "method": "--method",
    "activation_type": "--activation-type",
    "int8_io": "--int8-io",
    "keep_nchw": "--keep-nchw",
}


def quantize_cmd(
    model: Annotated[Path, typer.Argument(help="ONNX fp32 model (from edgekd export)")],
    calibration: Annotated[
        Path, typer.Option("--calibration", "-c", help="calibration set .npz (array 'x', NCHW float32)")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="directory to write into")] = Path("."),
    to: Annotated[str, typer.Option("--to", help="onnx (ONNX Runtime int8) or tflite (onnx2tf)")] = "onnx",
    mode: Annotated[
        str | None, typer.Option(help="onnx: static (QDQ, default) or dynamic (MatMul/Gemm-only models)")
    ] = None,
    per_channel: Annotated[
        bool | None,
        typer.Option(
            "--per-channel/--per-tensor",
            help="onnx and tflite: weight scales per output channel (default) or one per tensor",
        ),
    ] = None,
    method: Annotated[
        str | None, typer.Option(help="onnx static calibration: minmax (default), entropy or percentile")
    ] = None,
    activation_type: Annotated[str | None, typer.Option(help="onnx activations: int8 (default) or uint8")] = None,
    int8_io: Annotated[
        str | None, typer.Option(help="tflite int8 model inputs/outputs: int8 (default) or float")
    ] = None,
    keep_nchw: Annotated[bool | None, typer.Option("--keep-nchw", help="tflite: keep NCHW inputs")] = None,
    max_drop: Annotated[
        float | None,
        typer.Option(
            "--max-drop",
            help="onnx: an accuracy budget (absolute, 0.01 = 1 "
            "point vs the fp32 model, measured on --data): PTQ with the best calibration method, per-op "
            "sensitivity, then mixed precision until it holds (ladder.json, sensitivity.json)",
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            "-d",
            help="with --max-drop: validation set .npz, 'x' (model inputs, float) and 'y' (class indices)",
        ),
    ] = None,
    raise_to: Annotated[
        str | None,
        typer.Option(
            "--raise-to",
            help="with --max-drop: sensitive ops go to float "
            "(default; fast on CPUs) or to int16 activations first (for NPUs)",
        ),
    ] = None,
) -> None:
    """Quantize an ONNX model to int8 with a calibration set (ORT static QDQ, or full-int8 TFLite); with
    --max-drop, within an accuracy budget."""
    from pydantic import ValidationError

    from edgekd import registry
    from edgekd.artifacts import describe_file
    from edgekd.config.export import QuantizeConfig, TfliteConfig

    given = {
        "mode": mode,
        "per_channel": per_channel,
        "method": method,
        "activation_type": activation_type,
        "int8_io": int8_io,
        "keep_nchw": keep_nchw,
    }
    chosen = {key: value for key, value in given.items() if value is not None}  # the options the user typed
    _refuse_options_for(to, {_FLAGS[key] for key in chosen})
    if max_drop is not None or data is not None or raise_to is not None:
        _refuse_ladder_options(to, max_drop, data, {_FLAGS[key] for key in chosen})
        from edgekd.commands.ladder import run_and_print_ladder

        # --to tflite: the ORT rungs plus the full-int8 TFLite rows, measured in LiteRT and in TFLite Micro
        runtimes = ("ort",) if to == "onnx" else ("ort", "litert", "tflm")
        run_and_print_ladder(
            model, data, calibration, out, max_drop=max_drop, raise_to=raise_to or "float", runtimes=runtimes
        )  # type: ignore[arg-type]
        return
    source = describe_file(model)
    if source.format != "onnx":
        raise UsageError(
            f"{model.name} is {source.format}, quantize takes an ONNX fp32 model", hint="run edgekd export first"
        )
    calib = calibration_artifact(calibration)
    try:
        if to == "onnx":
            values: dict[str, Any] = dict(QuantizeConfig(**chosen))
            artifacts = registry.run_converter("ort_quant", source, {**values, "calibration": calib}, out)
        else:
            values = dict(TfliteConfig(precisions=["int8"], **chosen))
            artifacts = registry.run_converter("onnx2tf", source, {**values, "calibration": calib}, out)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise UsageError(
            f"invalid option --{'-'.join(str(p) for p in error['loc']).replace('_', '-')}: {error['msg']}"
        ) from None
    _report_written(artifacts)


def _refuse_ladder_options(to: str, max_drop: float | None, data: Path | None, given: set[str]) -> None:
    """The budgeted ladder needs --max-drop and --data and chooses what it tunes itself."""
    if max_drop is None or data is None:
        raise UsageError(
            "--max-drop and --data go together (the budget is measured on the validation set)",
            hint="edgekd quantize MODEL.onnx -c calib.npz --max-drop 0.01 --data val.npz",
        )
    if given:
        raise UsageError(
            f"the ladder chooses the calibration method and precisions itself: drop {', '.join(sorted(given))}",
            hint="per-channel static QDQ is its first rung",
        )


def _refuse_options_for(to: str, given: set[str]) -> None:
    """UsageError for an unknown --to, or for options the chosen converter does not have."""
    if to not in QUANTIZE_OPTIONS:
        raise UsageError(
            f"--to must be onnx or tflite, not {to!r}",
            hint="onnx: ONNX Runtime int8; tflite: full-int8 TFLite (onnx2tf)",
        )
    foreign = sorted(
        given - set(QUANTIZE_OPTIONS[to]), key=list(QUANTIZE_OPTIONS["onnx"] + QUANTIZE_OPTIONS["tflite"]).index
    )
    if foreign:
        other = next(name for name in QUANTIZE_OPTIONS if name != to)
        raise UsageError(
            f"{', '.join(foreign)} {'does' if len(foreign) == 1 else 'do'} not apply to --to {to}: "
            f"--to {to} takes {', '.join(QUANTIZE_OPTIONS[to])}",
            hint=f"drop {', '.join(foreign)}, or use --to {other} (which takes {', '.join(QUANTIZE_OPTIONS[other])})",
        )


def verify_cmd(
    model: Annotated[Path, typer.Argument(help="model to check (.onnx, .tflite or .pt)")],
    reference: Annotated[
        Path | None, typer.Option("--reference", help="torch/onnx reference model to compare with")
    ] = None,
    recipe: RecipeOption = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help=".npz with x_test/y_test (or x/y) instead of the recipe's split; "
            "for a multi-input model, one array per input name (and y)",
        ),
    ] = None,
) -> None:
    """Check a model file: it loads, runs on the held-out split, and (with --reference) holds parity."""
    from edgekd.artifacts import describe_file
    from edgekd.verify.backends import predict, sample_count
    from edgekd.verify.feeds import input_specs, multi_input_feeds
    from edgekd.verify.ops import audit
    from edgekd.verify.parity import verify_artifacts

    candidate = describe_file(model)
    open_model(candidate)  # a corrupt or truncated file fails here with one message
    loaded_recipe = load_recipe_file(recipe) if recipe is not None else None
    if data is not None:
        check_npz_path(data, "--data", "give an .npz with arrays x_test/y_test (or x/y), or one array per input name")
    specs = input_specs(candidate)
    if len(specs) > 1:  # no data set edgekd knows feeds it: the user's named arrays, or seeded random inputs
        x, y, source = multi_input_feeds(candidate, specs, data)
    else:
        (x, y), source = _held_out(loaded_recipe, data), "held-out samples"
    n = sample_count(x)
    if reference is None:
        predictions = predict(candidate, x).argmax(axis=1)
        accuracy = float((predictions == y).mean()) if y is not None else None
        result = {
            "artifact": candidate.name,
            "format": candidate.format,
            "samples": n,
            "accuracy": accuracy,
            "ops": audit(candidate),
        }
        if console.is_json():
            console.emit_json(result)
        else:
            said = f"accuracy {accuracy:.4f} on {n} {source}" if accuracy is not None else f"ran on {n} {source}"
            console.say(f"{model}: loads and runs; {said}")
            console.say(f"ops: {result['ops'].get('ops', {})}")
        return
    from edgekd.config.export import VerifyConfig

    ref = describe_file(reference)
    open_model(ref)
    config = loaded_recipe[0].verify if loaded_recipe is not None else VerifyConfig()
    candidate = _with_precision(candidate)
    report = verify_artifacts(ref, [candidate], x, y, config)
    if console.is_json():
        console.emit_json({**report.to_dict(), "source": source})
    else:
        console.say(report.table())
        console.say(f"on {n} {source}")
    report.raise_if_failed()


def open_model(artifact: Artifact) -> None:
    """Parse the file in its own format so damage is reported as a ModelError, not a runtime crash."""
    from edgekd.verify.model_io import load_onnx, tflite_interpreter

    if artifact.format == "onnx":
        load_onnx(artifact.path)
    elif artifact.format == "tflite":
        tflite_interpreter(artifact.path)
    elif artifact.format == "torch":
        if "model" not in artifact.config:
            raise ModelError(
                f"{artifact.path.name} has no edgekd sidecar saying which model it holds",
                hint="verify torch models written by edgekd (they carry <file>.json), or export to ONNX",
            )
        from edgekd.distill.models import load_torch_model

        load_torch_model(artifact)


def calibration_artifact(path: Path) -> Artifact:
    """A calibration set from edgekd (with sidecar) or a plain .npz holding an NCHW float array `x`."""
    from edgekd.artifacts import Artifact, load_artifact, sidecar_path
    from edgekd.fileio import sha256_file

    check_npz_path(path, "calibration set", "give the calibration.npz of a run, or an .npz with array 'x'")
    if sidecar_path(path).exists():
        return load_artifact(path)
    return Artifact(path=path, name="calibration", format="npz", sha256=sha256_file(path), config={"layout": "NCHW"})


def check_npz_path(path: Path, what: str, hint: str) -> None:
    """Say what is wrong with an .npz path that is not a readable file: missing, a directory, a symlink loop..."""
    import errno

    try:
        status = path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DataError(
                f"{what} {path} is a symlink loop (following its links never reaches a file)",
                hint=f"point the link at the .npz file, or {hint}",
            ) from None
        if exc.errno == errno.ENOENT and path.is_symlink():
            raise DataError(
                f"{what} {path} is a broken symlink (to {os.readlink(path)}, which does not exist)", hint=hint
            ) from None
        if exc.errno == errno.ENOENT:
            raise DataError(f"{what} {path} does not exist", hint=hint) from None
        raise DataError(f"{what} {path} cannot be read: {exc.strerror}", hint=hint) from None
    if stat.S_ISDIR(status.st_mode):
        raise DataError(
            f"{what} {path} is a directory, expected an .npz file", hint=f"name the .npz file inside it, or {hint}"
        )
    if not stat.S_ISREG(status.st_mode):
        raise DataError(f"{what} {path} is not a regular file", hint=hint)


def _with_precision(artifact: Artifact) -> Artifact:
    """Files without a sidecar: read the precision from the model's tensor types so the right thresholds
    apply (a file's name says nothing reliable: an int8 model named model.tflite is still int8)."""
    from dataclasses import replace

    from edgekd.verify.model_io import model_precision

    if artifact.precision:
        return artifact
    return replace(artifact, precision=model_precision(artifact))


def _held_out(recipe: tuple[Recipe, Path] | None, data: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) from an .npz, else the recipe's (or the default recipe's) test split.

    `recipe` is (recipe, the directory its relative paths are taken from).
    """
    import numpy as np

    if data is not None:
        try:
            with np.load(data, allow_pickle=False) as archive:
                keys = ("x_test", "y_test") if "x_test" in archive.files else ("x", "y")
                return archive[keys[0]].astype(np.float32), archive[keys[1]].astype(np.int64)
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(f"{data} is not an .npz with x_test/y_test (or x/y): {exc}") from None
    from edgekd.data.datasets import load_dataset
    from edgekd.recipe import Recipe

    chosen, base = recipe or (Recipe(), None)
    dataset = load_dataset(chosen.data, chosen.run.seed, base)
    return dataset.x_test, dataset.y_test


def load_recipe_file(path: Path) -> tuple[Recipe, Path]:
    """The recipe and the directory its relative paths (e.g. [data] path) are taken from."""
    from edgekd.recipe import load_recipe

    return load_recipe(path)


def _report_written(artifacts: list[Artifact]) -> None:
    if console.is_json():
        console.emit_json({"artifacts": [a.to_dict() for a in artifacts]})
        return
    for artifact in artifacts:
        console.say(f"wrote {artifact.path} ({artifact.name}, {artifact.size_bytes / 1024:.1f} KiB)")
