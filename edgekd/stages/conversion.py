"""Stages that turn the torch student into deployable files: ONNX, calibration set, ORT int8, TFLite.

No stage names a converter: export and quantize take the registered converter between two formats, the
tflite stage the ones its recipe section names (TfliteConfig.converter_runs); each converter's input is the
upstream artifact of the format its registry line declares, and its PyPI distributions key the cache.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgekd import __version__, registry
from edgekd.artifacts import Artifact
from edgekd.errors import ConversionError, EdgekdError
from edgekd.pipeline import StageContext, StageResult
from edgekd.recipe import Recipe
from edgekd.stages.base import BaseStage
from edgekd.stages.training import DATASET, load_split_data

if TYPE_CHECKING:
    from edgekd.pipeline import KeyContext

STUDENT = "student_torch"
ONNX_FP32 = "onnx_fp32"
CALIBRATION = "calibration"
#: [quantize] fields only the accuracy ladder reads
LADDER_FIELDS = {"max_accuracy_drop", "qat", "raise_to"}

# The upstream artifact a converter gets, by the input format its registry line declares (first match).
SOURCE_BY_FORMAT = {"torch": STUDENT, "onnx": ONNX_FP32}


def converter_between(source: str, output: str) -> str:
    """The registered converter from `source` artifacts to `output` files (the first in table order)."""
    names = registry.converters_between(source, output)
    if not names:
        raise ConversionError(f"no registered converter turns {source} into {output}", hint="see edgekd.registry")
    return names[0]


def run_converters(ctx: StageContext, runs: list[tuple[str, dict[str, Any]]]) -> list[Artifact]:
    """Run each (converter name, options) on the upstream artifact of the format it takes."""
    artifacts: list[Artifact] = []
    for name, values in runs:
        entry = registry.converter_entry(name)
        source = next((SOURCE_BY_FORMAT[f] for f in entry.inputs if f in SOURCE_BY_FORMAT), None)
        if source is None:
            raise ConversionError(f"converter {name!r} takes {', '.join(entry.inputs)}: no stage makes that")
        artifacts += registry.run_converter(name, ctx.artifact(source), values, ctx.workdir)
    return artifacts


def packages_of(names: list[str]) -> tuple[str, ...]:
    """The PyPI distributions the named converters declare, once each, in order (cache-key tools)."""
    return tuple(dict.fromkeys(p for name in names for p in registry.converter_entry(name).packages))


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
        values = {**ctx.recipe.export.model_dump(), "metadata": metadata}
        return StageResult(run_converters(ctx, [(converter_between("torch", "onnx"), values)]), {})

    def tools(self, ctx: KeyContext) -> tuple[str, ...]:
        return packages_of([converter_between("torch", "onnx")])


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

    def tools(self, ctx: KeyContext) -> tuple[str, ...]:
        return ("numpy",)  # the seeded draw is numpy's Generator


class QuantizeStage(BaseStage):
    """ORT int8 of the ONNX export; with `[quantize] max_accuracy_drop`, the accuracy ladder (stages.quant_ladder),
    which also needs the student and the teacher (quantization-aware distillation, rung 4)."""

    name = "quantize"
    needs = ("data", "teacher", "distill", "export", "calibrate")

    def enabled(self, recipe: Recipe) -> bool:
        return recipe.quantize.enabled

    def config(self, recipe: Recipe) -> dict[str, Any]:
        from edgekd.stages.quant_ladder import ladder_runtimes

        config: dict[str, Any] = {"quantize": recipe.quantize.model_dump(mode="json")}
        if recipe.quantize.max_accuracy_drop is not None:  # the ladder's runtimes follow [tflite] and [handoff]
            config["ladder_runtimes"] = list(ladder_runtimes(recipe))
            config["seed"] = recipe.run.seed
        return config

    def run(self, ctx: StageContext) -> StageResult:
        calibration = ctx.find(CALIBRATION)
        if ctx.recipe.quantize.max_accuracy_drop is not None:
            from edgekd.stages.quant_ladder import run_quant_ladder

            if calibration is None:
                raise ConversionError("the quantization ladder needs the calibration set", hint="enable [calibration]")
            artifacts, summary = run_quant_ladder(ctx, ctx.artifact(ONNX_FP32), calibration)
            return StageResult(artifacts, summary)
        # the ladder's options are not the plain quantizer's (and its validator refuses them without a budget)
        values = {**ctx.recipe.quantize.model_dump(exclude=LADDER_FIELDS), "calibration": calibration}
        return StageResult(run_converters(ctx, [(converter_between("onnx", "onnx"), values)]), {})

    def tools(self, ctx: KeyContext) -> tuple[str, ...]:
        if ctx.recipe.quantize.max_accuracy_drop is not None:
            from edgekd.stages.quant_ladder import ladder_tools

            return ladder_tools(ctx.recipe)
        return packages_of([converter_between("onnx", "onnx")])

    def gate(self, recipe: Recipe, summary: dict[str, Any]) -> EdgekdError | None:
        from edgekd.stages.quant_ladder import budget_gate

        return budget_gate(summary)  # a budget no rung holds stops the run after the ladder's rows are kept


class TfliteStage(BaseStage):
    name = "tflite"
    needs = ("distill", "export", "calibrate")

    def enabled(self, recipe: Recipe) -> bool:
        return recipe.tflite.enabled and bool(recipe.tflite.precisions)

    def config(self, recipe: Recipe) -> dict[str, Any]:
        return {"tflite": recipe.tflite.model_dump(mode="json")}

    def run(self, ctx: StageContext) -> StageResult:
        options = ctx.recipe.tflite
        common = {**options.model_dump(), "calibration": ctx.find(CALIBRATION)}
        runs = [(name, {**common, **extra}) for name, extra in options.converter_runs()]
        return StageResult(run_converters(ctx, runs), {"converter": options.converter})

    def tools(self, ctx: KeyContext) -> tuple[str, ...]:
        return packages_of([name for name, _ in ctx.recipe.tflite.converter_runs()])
