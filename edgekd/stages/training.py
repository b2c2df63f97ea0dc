"""Stages that make the models: data -> teacher -> distill (KD student and from-scratch baseline)."""

from __future__ import annotations

from typing import Any

from edgekd.artifacts import Artifact, create_artifact
from edgekd.data.datasets import Dataset, load_dataset
from edgekd.pipeline import KeyContext, StageContext, StageResult
from edgekd.recipe import Recipe
from edgekd.stages.base import BaseStage

DATASET = "dataset"


def load_split_data(ctx: StageContext) -> Dataset:
    """The data stage's splits, as written to the run directory."""
    artifact = ctx.artifact(DATASET)
    return Dataset.load(artifact.path, artifact.config.get("preprocessing"))


def training_tools(recipe: Recipe) -> tuple[str, ...]:
    """What trains or runs the teacher and student: torch, plus onnxruntime when the teacher is an ONNX file."""
    return ("numpy", "torch", *(("onnxruntime",) if recipe.teacher.kind == "onnx" else ()))


class DataStage(BaseStage):
    name = "data"

    def config(self, recipe: Recipe) -> dict[str, Any]:
        return {"data": recipe.data.model_dump(mode="json"), "seed": recipe.run.seed}

    def tools(self, ctx: KeyContext) -> tuple[str, ...]:
        # scikit-learn splits every source (and holds the digits); PIL decodes an image folder and resizes images
        data = ctx.recipe.data
        images = ("pillow",) if data.source == "image_folder" or data.image_size is not None else ()
        return ("numpy", "scikit-learn", *images)

    def run(self, ctx: StageContext) -> StageResult:
        data = load_dataset(ctx.recipe.data, ctx.recipe.run.seed, base=ctx.base_dir)
        path = ctx.workdir / "data.npz"
        data.save(path)
        sizes = {"train": len(data.x_train), "val": len(data.x_val), "test": len(data.x_test)}
        artifact = create_artifact(
            path, name=DATASET, format="npz", producer="data",
            config={"preprocessing": data.preprocessing, "label_names": data.label_names, "sizes": sizes,
                    "input_shape": list(data.input_shape)},
        )  # fmt: skip
        summary = {"num_classes": data.num_classes, "label_names": data.label_names, "sizes": sizes,
                   "input_shape": list(data.input_shape), "preprocessing": data.preprocessing}  # fmt: skip
        return StageResult([artifact], summary)


class TeacherStage(BaseStage):
    name = "teacher"
    needs = ("data",)
    resumable = True

    def config(self, recipe: Recipe) -> dict[str, Any]:
        return {"teacher": recipe.teacher.model_dump(mode="json"), "seed": recipe.run.seed}

    def tools(self, ctx: KeyContext) -> tuple[str, ...]:
        return training_tools(ctx.recipe)

    def run(self, ctx: StageContext) -> StageResult:
        from edgekd.distill.api import prepare_teacher, teacher_summary

        teacher = prepare_teacher(
            ctx.recipe.teacher, load_split_data(ctx), seed=ctx.recipe.run.seed, out_dir=ctx.workdir,
            base_dir=ctx.base_dir, progress=ctx.progress, resume=ctx.resume,
        )  # fmt: skip
        return StageResult([teacher], teacher_summary(teacher))  # params None when unknown (onnx, soft labels)


class DistillStage(BaseStage):
    name = "distill"
    needs = ("data", "teacher")
    resumable = True

    def config(self, recipe: Recipe) -> dict[str, Any]:
        return {
            "student": recipe.student.model_dump(mode="json"),
            "distill": recipe.distill.model_dump(mode="json"),
            "labeled_fraction": recipe.data.labeled_fraction,
            "seed": recipe.run.seed,
        }

    def tools(self, ctx: KeyContext) -> tuple[str, ...]:
        return training_tools(ctx.recipe)

    def run(self, ctx: StageContext) -> StageResult:
        from edgekd.distill.api import distill

        teacher: Artifact = ctx.inputs["teacher"][0]
        outcome = distill(
            teacher, ctx.recipe.student, ctx.recipe.distill, load_split_data(ctx), seed=ctx.recipe.run.seed,
            out_dir=ctx.workdir, labeled_fraction=ctx.recipe.data.labeled_fraction, progress=ctx.progress,
            resume=ctx.resume, on_epoch=ctx.on_epoch,
        )  # fmt: skip
        return StageResult(list(outcome.artifacts), dict(outcome.metrics))
