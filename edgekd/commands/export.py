"""`edgekd export`, `edgekd quantize` and `edgekd verify`: the conversion stages, one file at a time.

Plain typer-annotated functions; cli.py registers them. Heavy packages are imported inside.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from edgekd import console
from edgekd.config.export import DEFAULT_OPSET
from edgekd.errors import ConversionError, DataError, ModelError, UsageError

if TYPE_CHECKING:
    import numpy as np

    from edgekd.artifacts import Artifact
    from edgekd.recipe import Recipe

RecipeOption = Annotated[Optional[Path], typer.Option("--recipe", "-r", help="recipe whose data/thresholds to use")]


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
        raise UsageError(f"invalid export option: {exc.errors()[0]['msg']}", hint=f"--opset must lie in 18..23 (default {DEFAULT_OPSET})") from None
    source = load_artifact(model)
    metadata: dict[str, Any] = {
        "labels": source.config.get("label_names") or source.config.get("labels") or [],
        "preprocessing": source.config.get("preprocessing", {}),
    }
    if recipe is not None:
        metadata["recipe_hash"] = _load_recipe(recipe).recipe_hash()
    converter = _converter(registry, "torch_onnx")
    artifact = converter.convert(source, options, out, metadata=metadata)
    _report_written([artifact])


def quantize_cmd(
    model: Annotated[Path, typer.Argument(help="ONNX fp32 model (from edgekd export)")],
    calibration: Annotated[Path, typer.Option("--calibration", "-c", help="calibration set .npz (array 'x', NCHW float32)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="directory to write into")] = Path("."),
    to: Annotated[str, typer.Option("--to", help="onnx (ONNX Runtime int8) or tflite (onnx2tf)")] = "onnx",
    mode: Annotated[str, typer.Option(help="onnx: static (QDQ) or dynamic (MatMul/Gemm-only models)")] = "static",
    per_channel: Annotated[bool, typer.Option("--per-channel/--per-tensor")] = True,
    method: Annotated[str, typer.Option(help="onnx static calibration: minmax, entropy or percentile")] = "minmax",
    activation_type: Annotated[str, typer.Option(help="onnx activations: int8 or uint8")] = "int8",
    int8_io: Annotated[str, typer.Option(help="tflite int8 model inputs/outputs: int8 or float")] = "int8",
    keep_nchw: Annotated[bool, typer.Option("--keep-nchw", help="tflite: keep NCHW inputs")] = False,
) -> None:
    """Quantize an ONNX model to int8 with a calibration set (ORT static QDQ, or full-int8 TFLite)."""
    from pydantic import ValidationError

    from edgekd import registry
    from edgekd.artifacts import describe_file
    from edgekd.config.export import QuantizeConfig, TfliteConfig

    source = describe_file(model)
    if source.format != "onnx":
        raise UsageError(f"{model.name} is {source.format}, quantize takes an ONNX fp32 model", hint="run edgekd export first")
    calib = calibration_artifact(calibration)
    try:
        if to == "onnx":
            options: Any = QuantizeConfig(mode=mode, per_channel=per_channel, method=method, activation_type=activation_type)
            artifacts = [_converter(registry, "ort_quant").convert(source, options, out, calibration=calib)]
        elif to == "tflite":
            options = TfliteConfig(precisions=["int8"], int8_io=int8_io, keep_nchw=keep_nchw)
            artifacts = _converter(registry, "onnx2tf").convert(source, options, out, calibration=calib)
        else:
            raise UsageError(f"--to must be onnx or tflite, not {to!r}")
    except ValidationError as exc:
        error = exc.errors()[0]
        raise UsageError(f"invalid option --{'-'.join(str(p) for p in error['loc']).replace('_', '-')}: {error['msg']}") from None
    _report_written(artifacts)


def verify_cmd(
    model: Annotated[Path, typer.Argument(help="model to check (.onnx, .tflite or .pt)")],
    reference: Annotated[Optional[Path], typer.Option("--reference", help="torch/onnx reference model to compare with")] = None,
    recipe: RecipeOption = None,
    data: Annotated[Optional[Path], typer.Option("--data", help=".npz with x_test/y_test (or x/y) instead of the recipe's split")] = None,
) -> None:
    """Check a model file: it loads, runs on the held-out split, and (with --reference) holds parity."""
    from edgekd.artifacts import describe_file
    from edgekd.verify.backends import predict
    from edgekd.verify.ops import audit
    from edgekd.verify.parity import verify_artifacts

    candidate = describe_file(model)
    open_model(candidate)  # a corrupt or truncated file fails here with one message
    loaded_recipe = _load_recipe(recipe) if recipe is not None else None
    x, y = _held_out(loaded_recipe, data)
    if reference is None:
        predictions = predict(candidate, x).argmax(axis=1)
        result = {"artifact": candidate.name, "format": candidate.format, "samples": len(x),
                  "accuracy": float((predictions == y).mean()), "ops": audit(candidate)}
        if console.is_json():
            console.emit_json(result)
        else:
            console.say(f"{model}: loads and runs; accuracy {result['accuracy']:.4f} on {len(x)} held-out samples")
            console.say(f"ops: {result['ops'].get('ops', {})}")
        return
    from edgekd.config.export import VerifyConfig

    ref = describe_file(reference)
    open_model(ref)
    config = loaded_recipe.verify if loaded_recipe is not None else VerifyConfig()
    candidate = _with_precision(candidate)
    report = verify_artifacts(ref, [candidate], x, y, config)
    if console.is_json():
        console.emit_json(report.to_dict())
    else:
        console.say(report.table())
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
            raise ModelError(f"{artifact.path.name} has no edgekd sidecar saying which model it holds",
                             hint="verify torch models written by edgekd (they carry <file>.json), or export to ONNX")
        from edgekd.distill.models import load_torch_model

        load_torch_model(artifact)


def calibration_artifact(path: Path) -> Artifact:
    """A calibration set from edgekd (with sidecar) or a plain .npz holding an NCHW float array `x`."""
    from edgekd.artifacts import Artifact, load_artifact, sidecar_path
    from edgekd.fileio import sha256_file

    if not path.is_file():
        raise DataError(f"calibration set {path} does not exist", hint="give the calibration.npz of a run, or an .npz with array 'x'")
    if sidecar_path(path).exists():
        return load_artifact(path)
    return Artifact(path=path, name="calibration", format="npz", sha256=sha256_file(path), config={"layout": "NCHW"})


def _with_precision(artifact: Artifact) -> Artifact:
    """Files without a sidecar: guess the precision from the name so the right thresholds apply."""
    from dataclasses import replace

    if artifact.precision:
        return artifact
    name = artifact.path.name
    for precision in ("int8", "fp16", "dynamic_range"):
        if f".{precision}." in name or f"_{precision}" in name:
            return replace(artifact, precision=precision)
    return replace(artifact, precision="fp32")


def _held_out(recipe: Recipe | None, data: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) from an .npz, else the recipe's (or the default recipe's) test split."""
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

    chosen = recipe or Recipe()
    dataset = load_dataset(chosen.data, chosen.run.seed)
    return dataset.x_test, dataset.y_test


def _load_recipe(path: Path) -> Recipe:
    from edgekd.recipe import load_recipe

    return load_recipe(path)[0]


def _converter(registry: Any, name: str) -> Any:
    converter = registry.converter(name)
    reason = converter.available()
    if reason:
        raise ConversionError(f"converter {name!r} is not available: {reason}")
    return converter


def _report_written(artifacts: list[Artifact]) -> None:
    if console.is_json():
        console.emit_json({"artifacts": [a.to_dict() for a in artifacts]})
        return
    for artifact in artifacts:
        console.say(f"wrote {artifact.path} ({artifact.name}, {artifact.size_bytes / 1024:.1f} KiB)")
