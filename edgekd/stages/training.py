"""Stages that make the models: data -> teacher -> distill (KD student and from-scratch baseline)."""

from __future__ import annotations

from pathlib import Path
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


def factory_source(factory: str | None) -> str | None:
    """Fingerprint of the source file of a user's model factory ("pkg.mod:fn"), found without running it:
    editing the factory's module reruns the stages that build that model. None when there is no factory."""
    import importlib.util

    from edgekd.fileio import fingerprint

    if not factory or ":" not in factory:
        return None
    try:
        spec = importlib.util.find_spec(factory.split(":", 1)[0])
    except (ImportError, ValueError):  # the stage itself names what is wrong with the factory
        return "unresolved"
    origin = spec.origin if spec is not None else None
    return fingerprint(origin) if origin and origin not in ("built-in", "frozen") else "unresolved"


def user_file(ctx: KeyContext, path: Path | None) -> str | None:
    """Fingerprint of a file or folder the recipe names (relative to the recipe), for a cache key."""
    from edgekd.fileio import fingerprint
    from edgekd.recipe import resolve_path

    resolved = resolve_path(ctx.base_dir, None if path is None else Path(path))
    return None if resolved is None else fingerprint(resolved)


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

    def key_facts(self, ctx: KeyContext) -> dict[str, Any]:
        # the recipe names the data; its contents decide the result (an edited file must not reuse data.npz)
        return {"data_files": user_file(ctx, ctx.recipe.data.path)}

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

    def key_facts(self, ctx: KeyContext) -> dict[str, Any]:
        # a user's teacher file (weights, ONNX, soft labels) and factory code decide the teacher
        teacher = ctx.recipe.teacher
        return {"teacher_file": user_file(ctx, teacher.path), "teacher_factory": factory_source(teacher.model.factory)}

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

    def key_facts(self, ctx: KeyContext) -> dict[str, Any]:
        return {"student_factory": factory_source(ctx.recipe.student.model.factory)}

    def run(self, ctx: StageContext) -> StageResult:
        from edgekd.distill.api import distill

        teacher: Artifact = ctx.inputs["teacher"][0]
        outcome = distill(
            teacher, ctx.recipe.student, ctx.recipe.distill, load_split_data(ctx), seed=ctx.recipe.run.seed,
            out_dir=ctx.workdir, labeled_fraction=ctx.recipe.data.labeled_fraction, progress=ctx.progress,
            resume=ctx.resume, on_epoch=ctx.on_epoch,
        )  # fmt: skip
        return StageResult(list(outcome.artifacts), dict(outcome.metrics))
