"""The quantize stage with an accuracy budget: `[quantize] max_accuracy_drop` runs the quantization ladder
(edgekd.quantize.ladder.run_ladder) inside `edgekd run` (issue 14).

The ladder gets the stage's fp32 ONNX export, the run's calibration set, the data stage's validation split
(written as validation.npz) and, with `qat`, the distill stage's student and the teacher stage's teacher.
Its recommended ORT model becomes the pipeline's `onnx_int8` (so verify, bench and the report take it); the
other runtimes' recommended models, ladder.json and sensitivity.json are the stage's other artifacts.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekd.artifacts import Artifact, create_artifact, load_artifact
from edgekd.errors import ConversionError, EdgekdError, ModelError, RecipeError
from edgekd.recipe import Recipe

if TYPE_CHECKING:
    from torch import nn

    from edgekd.data.datasets import Dataset
    from edgekd.pipeline import StageContext
    from edgekd.quantize.qat import QatInputs

#: artifact names of the ladder's outputs in the run (ORT's takes the name the pipeline already uses)
ORT_INT8 = "onnx_int8"
LADDER_JSON = "quant_ladder"
SENSITIVITY_JSON = "quant_sensitivity"
LADDER_DIR = "quant_ladder"  # the ladder's folder in the run directory (every rung's models and JSON files)
#: the handoff's runtime for a platform: micro runs TensorFlow Lite Micro, everything else LiteRT
HANDOFF_RUNTIMES = ("tflm", "litert")


def ladder_runtimes(recipe: Recipe) -> tuple[str, ...]:
    """ORT always; LiteRT when the tflite stage makes int8; TFLM when the handoff runs it."""
    tflite_int8 = recipe.tflite.enabled and "int8" in recipe.tflite.precisions
    litert = ("litert",) if tflite_int8 else ()
    tflm = ("tflm",) if recipe.handoff.enabled and recipe.handoff.runs_tflm else ()
    return ("ort", *litert, *tflm)


def ladder_tools(recipe: Recipe) -> tuple[str, ...]:
    """PyPI distributions the ladder runs with this recipe (their versions key the stage's cache)."""
    runtimes = ladder_runtimes(recipe)
    litert = ("onnx2tf", "tensorflow-cpu", "ai-edge-litert") if "litert" in runtimes or "tflm" in runtimes else ()
    tflm = ("tflite-micro",) if "tflm" in runtimes else ()
    qat = ("torch", "torchao") if recipe.quantize.qat else ()
    return ("numpy", "onnx", "onnxruntime", *litert, *tflm, *qat)


class _TeacherModule:
    """The run's teacher as the callable QAT trains against: torch tensor in (the student's inputs), logits out."""

    def __init__(self, artifact: Artifact, preprocessing: dict[str, Any] | None) -> None:
        from edgekd.distill.teachers import load_teacher

        self.teacher = load_teacher(artifact, preprocessing)

    def __call__(self, x: Any) -> Any:
        import torch

        batch = x.detach().cpu().numpy()
        logits = self.teacher.logits(batch, np.arange(len(batch)))
        return torch.from_numpy(logits)


def _teacher_module(artifact: Artifact, data: Dataset) -> nn.Module:
    """Wrap the teacher in an nn.Module (QAT deep-copies and calls it); refuse teachers QAT cannot use."""
    from torch import nn

    if artifact.format == "npz" or artifact.config.get("kind") == "soft_labels":
        raise RecipeError(
            "[quantize] qat = true fine-tunes against the teacher's outputs; a soft-label teacher has them only "
            "for the training ids, not for the quantized student's batches",
            hint="set [quantize] qat = false, or use a torch / ONNX teacher",
        )
    wrapped = _TeacherModule(artifact, data.preprocessing)
    width = wrapped(_as_tensor(data.x_val[:2])).shape[-1]
    if width != data.num_classes:
        raise ModelError(
            f"the teacher gives {width} logits, the student {data.num_classes} classes: QAT cannot distil across "
            "class spaces",
            hint="set [quantize] qat = false",
        )

    class Wrapper(nn.Module):
        def forward(self, x: Any) -> Any:
            return wrapped(x)

    return Wrapper().eval()


def _as_tensor(x: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def _qat_inputs(ctx: StageContext, data: Dataset, work: Path) -> QatInputs:
    from edgekd.distill.models import load_torch_model
    from edgekd.quantize.qat import QatInputs
    from edgekd.stages.conversion import STUDENT

    train = work / "qat_train.npz"
    np.savez(train, x=data.x_train.astype(np.float32), y=data.y_train.astype(np.int64))
    teacher = _teacher_module(ctx.inputs["teacher"][0], data)
    return QatInputs(student=load_torch_model(ctx.artifact(STUDENT)), teacher=teacher, train=train,
                     seed=ctx.recipe.run.seed)  # fmt: skip


def run_quant_ladder(ctx: StageContext, onnx_fp32: Artifact, calibration: Artifact) -> tuple[list[Artifact], dict[str, Any]]:  # fmt: skip
    """Run the ladder in the stage workdir; return the stage's artifacts and summary (rows, recommended)."""
    from edgekd.quantize.ladder import BudgetNotMetError, run_ladder
    from edgekd.stages.training import load_split_data

    options = ctx.recipe.quantize
    assert options.max_accuracy_drop is not None  # the caller runs the ladder only with a budget
    data = load_split_data(ctx)
    if len(data.x_val) == 0:
        raise RecipeError(
            "[quantize] max_accuracy_drop is measured on the validation split, and this run has none "
            "([data] val_fraction = 0)",
            hint="set [data] val_fraction (e.g. 0.1) or remove max_accuracy_drop",
        )
    out = ctx.workdir / LADDER_DIR
    with tempfile.TemporaryDirectory(prefix="edgekd-ladder-inputs-") as tmp:  # not part of the run's outputs
        validation = Path(tmp) / "validation.npz"
        np.savez(validation, x=data.x_val.astype(np.float32), y=data.y_val.astype(np.int64))
        qat = _qat_inputs(ctx, data, Path(tmp)) if options.qat else None
        try:
            result = run_ladder(
                onnx_fp32.path, validation, calibration.path, out, max_drop=options.max_accuracy_drop,
                raise_to=options.raise_to, runtimes=ladder_runtimes(ctx.recipe), qat=qat,
                qat_always=options.qat == "always",
            )  # fmt: skip
        except BudgetNotMetError as exc:
            # the ladder's rows are the user's evidence: kept as the stage's outputs (and in the report), and
            # the stage's gate fails the run with the ladder's one message
            ladder = json.loads((out / "ladder.json").read_text(encoding="utf-8"))
            recommended = ladder.get("recommended") or {}
            summary = _summary(ctx.recipe, ladder["rows"], recommended, [])
            summary["not_met"] = ladder.get("not_met") or {}
            summary["error"] = {"message": exc.message, "hint": _recipe_hint(options.qat)}
            return _name_outputs(out, recommended, onnx_fp32), summary
    artifacts = _name_outputs(out, result.recommended, onnx_fp32)
    summary = _summary(ctx.recipe, result.rows, result.recommended, result.reused)
    summary["artifacts"] = {a.path.name: a.name for a in artifacts}
    return artifacts, summary


def _summary(recipe: Recipe, rows: list[dict[str, Any]], recommended: dict[str, Any], reused: list[int]) -> dict[str, Any]:  # fmt: skip
    """The stage summary the report reads: the budget, the options, every rung's figures, the picks."""
    options = recipe.quantize
    return {
        "ladder": True,
        "max_accuracy_drop": options.max_accuracy_drop,
        "raise_to": options.raise_to,
        "qat": options.qat,
        "runtimes": list(ladder_runtimes(recipe)),
        "rows": [_row(r) for r in rows],
        "recommended": recommended,
        "reused": reused,
    }


def _recipe_hint(qat: bool | str) -> str:
    """The ladder's advice in the recipe's words (its own hint names the command line's options)."""
    qat_part = "" if qat else "set [quantize] qat = true (fine-tunes int8 with the run's teacher), "
    return (
        f"raise [quantize] max_accuracy_drop, {qat_part}give more representative calibration samples "
        "([calibration] size), or deploy the fp32 model; every rung is in quant_ladder/ladder.json and report.html"
    )


def budget_gate(summary: dict[str, Any]) -> EdgekdError | None:
    """The ladder's BudgetNotMetError, replayed from the stage summary (also on a cache hit)."""
    error = summary.get("error")
    if not summary.get("ladder") or not isinstance(error, dict):
        return None
    return ConversionError(str(error.get("message")), hint=error.get("hint"))


def _row(row: dict[str, Any]) -> dict[str, Any]:
    """A ladder.json row without its bulky internals (the full rows stay in ladder.json)."""
    keep = ("rung", "name", "method", "excluded", "int16", "accuracy", "drop", "agreement", "p50_ms", "model",
            "runtimes", "seconds")  # fmt: skip
    return {k: row[k] for k in keep if k in row}


def _name_outputs(out: Path, recommended: dict[str, dict[str, Any]], onnx_fp32: Artifact) -> list[Artifact]:
    """Describe the recommended models under the run's names: ORT's as onnx_int8, the others as
    quant_<runtime>_int8 (one artifact per file: LiteRT and TFLM may share one); ladder.json, sensitivity.json."""
    from edgekd.quantize.ladder_state import PRODUCER

    artifacts: list[Artifact] = []
    by_file: dict[str, list[str]] = {}
    for runtime, pick in recommended.items():
        by_file.setdefault(str(pick["model"]), []).append(runtime)
    for file, runtimes in by_file.items():
        made = load_artifact(out / file)
        name = ORT_INT8 if "ort" in runtimes else f"quant_{'_'.join(runtimes)}_int8"
        config = {**made.config, "ladder_runtimes": runtimes}
        if made.format == "onnx":  # what verify and bench read from the plain quantizer's sidecar
            config.setdefault("input_shape", onnx_fp32.config.get("input_shape"))
            config.setdefault("num_classes", onnx_fp32.config.get("num_classes"))
            config.setdefault("metadata", onnx_fp32.config.get("metadata", {}))
        artifacts.append(
            create_artifact(
                made.path,
                name=name,
                format=made.format,
                precision=made.precision or "int8",
                inputs=made.inputs,
                outputs=made.outputs,
                parent=made.parent or onnx_fp32,
                producer=PRODUCER,
                config=config,
            )
        )
    for file, name in (("ladder.json", LADDER_JSON), ("sensitivity.json", SENSITIVITY_JSON)):
        if (out / file).exists():
            artifacts.append(load_artifact(out / file))
            if artifacts[-1].name != name:
                made = artifacts.pop()
                artifacts.append(create_artifact(made.path, name=name, format="json", parent=made.parent,
                                                 producer=PRODUCER, config=made.config))  # fmt: skip
    return artifacts


def handoff_pick(recipe: Recipe, summary: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(runtime, recommended entry) of the ladder's model for the handoff platform, or None (no ladder ran)."""
    if not summary.get("ladder"):
        return None
    runtime = "tflm" if recipe.handoff.runs_tflm else "litert"
    pick = (summary.get("recommended") or {}).get(runtime)
    return (runtime, pick) if isinstance(pick, dict) else None
