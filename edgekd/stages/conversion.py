"""Stages that turn the torch student into deployable files: ONNX, calibration set, ORT int8, TFLite."""

from __future__ import annotations

from typing import Any

from edgekd import __version__, registry
from edgekd.errors import ConversionError
from edgekd.pipeline import StageContext, StageResult
from edgekd.recipe import Recipe
from edgekd.stages.base import BaseStage
from edgekd.stages.training import DATASET, load_split_data

STUDENT = "student_torch"
ONNX_FP32 = "onnx_fp32"
CALIBRATION = "calibration"


def _available(name: str) -> Any:
    converter = registry.converter(name)
    reason = converter.available()
    if reason:
        raise ConversionError(f"converter {name!r} is not available: {reason}")
    return converter


class ExportStage(BaseStage):
    name = "export"
    needs = ("data", "distill")

    def config(self, recipe: Recipe) -> dict[str, Any]:
        return {"export": recipe.export.model_dump(mode="json")}

    def run(self, ctx: StageContext) -> StageResult:
        dataset = ctx.artifact(DATASET)
        metadata = {
            "edgekd_version": __version__,
            "recipe_hash": ctx.recipe.recipe_hash(),
            "labels": dataset.config.get("label_names", []),
            "preprocessing": dataset.config.get("preprocessing", {}),
        }
        onnx = _available("torch_onnx").convert(ctx.artifact(STUDENT), ctx.recipe.export, ctx.workdir, metadata=metadata)
        return StageResult([onnx], {})


class CalibrateStage(BaseStage):
    name = "calibrate"
    needs = ("data",)

    def enabled(self, recipe: Recipe) -> bool:
        needs_int8 = recipe.quantize.enabled and recipe.quantize.mode == "static"
        return needs_int8 or (recipe.tflite.enabled and "int8" in recipe.tflite.precisions)

    def config(self, recipe: Recipe) -> dict[str, Any]:
        return {"calibration": recipe.calibration.model_dump(mode="json"), "seed": recipe.run.seed}

    def run(self, ctx: StageContext) -> StageResult:
        from edgekd.calibration import make_calibration_set
        from edgekd.preflight import DataFacts, calibration_size, check_calibration_size

        data = load_split_data(ctx)
        facts = DataFacts(tuple(data.input_shape), data.num_classes, len(data.x_train))
        note = check_calibration_size(ctx.recipe, facts, None)  # refuses an oversized explicit size here too
        size = calibration_size(ctx.recipe, len(data.x_train))
        calibration = make_calibration_set(data, size, ctx.recipe.run.seed, ctx.workdir / "calibration.npz")
        return StageResult([calibration], {"size": size, "requested": ctx.recipe.calibration.size,
                                           "warnings": [note] if note else []})  # fmt: skip


class QuantizeStage(BaseStage):
    name = "quantize"
    needs = ("export", "calibrate")

    def enabled(self, recipe: Recipe) -> bool:
        return recipe.quantize.enabled

    def config(self, recipe: Recipe) -> dict[str, Any]:
        return {"quantize": recipe.quantize.model_dump(mode="json")}

    def run(self, ctx: StageContext) -> StageResult:
        int8 = _available("ort_quant").convert(
            ctx.artifact(ONNX_FP32), ctx.recipe.quantize, ctx.workdir, calibration=ctx.find(CALIBRATION)
        )
        return StageResult([int8], {})


class TfliteStage(BaseStage):
    name = "tflite"
    needs = ("distill", "export", "calibrate")

    def enabled(self, recipe: Recipe) -> bool:
        return recipe.tflite.enabled and bool(recipe.tflite.precisions)

    def config(self, recipe: Recipe) -> dict[str, Any]:
        return {"tflite": recipe.tflite.model_dump(mode="json")}

    def run(self, ctx: StageContext) -> StageResult:
        options = ctx.recipe.tflite
        calibration = ctx.find(CALIBRATION)
        if options.converter == "onnx2tf":
            artifacts = list(_available("onnx2tf").convert(
                ctx.artifact(ONNX_FP32), options, ctx.workdir, calibration=calibration, per_channel=options.per_channel
            ))
        else:
            artifacts = list(_available("litert_torch").convert(ctx.artifact(STUDENT), options, ctx.workdir, calibration=calibration))
        if options.also_litert_torch and options.converter == "onnx2tf":
            # The second converter's files are named student.litert_torch.<precision>.tflite; precisions it
            # cannot make (fp16, dynamic range) are skipped rather than failing the first converter's work.
            artifacts += list(_available("litert_torch").convert(
                ctx.artifact(STUDENT), options, ctx.workdir, calibration=calibration,
                name_prefix="litert_torch", skip_unsupported=True,
            ))  # fmt: skip
        return StageResult(artifacts, {"converter": options.converter})
