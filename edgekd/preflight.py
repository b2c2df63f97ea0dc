"""Preflight: everything about a recipe that can be known before a model is trained, checked before it is.

Two passes, called by `edgekd run` (edgekd/commands/run.py):
- `check_recipe` before any stage: bench target names, converter availability, the `[handoff] artifact`
  name and whether the handoff platform can run that precision, files and the compiler the last stages use.
- `check_with_data` right after the data stage (loading data is cheap; training is not), with the data's
  shape, class count and training split size: calibration size, the student built once (a custom factory
  dry-run on the data's shape: signature, input channels, output size), and the operators the chosen
  converter is known to emit for the student's layers against TensorFlow Lite Micro's operator table.

One function per check. Each raises a typed error (RecipeError / TargetError exit 2, ModelError exit 1) with
one message and a hint, or returns notes (non-fatal adjustments) that the run command prints and the run records.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekd.errors import RecipeError, TargetError
from edgekd.recipe import Recipe, resolve_path
from edgekd.registry import suggest, unknown_name

if TYPE_CHECKING:
    from torch import nn

DEFAULT_CALIBRATION_SIZE = 200  # [calibration] size when unset, capped at the training split's size

#: TFLite precisions TensorFlow Lite Micro cannot run (measured: fp16 and dynamic-range models fail to allocate).
MICRO_UNSUPPORTED_PRECISIONS = ("fp16", "dynamic_range")


@dataclass(frozen=True)
class DataFacts:
    """What preflight needs from the data stage: shape of one sample (no batch), classes, split sizes."""

    input_shape: tuple[int, ...]
    num_classes: int
    train_size: int

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> DataFacts:
        sizes = summary.get("sizes") or {}
        return cls(tuple(int(d) for d in summary.get("input_shape") or ()), int(summary.get("num_classes") or 0),
                   int(sizes.get("train") or 0))  # fmt: skip


def selected(recipe: Recipe, stage: str, only: set[str] | None) -> bool:
    """Whether `stage` will run: enabled by the recipe and chosen by --only (if given)."""
    from edgekd.stages import default_stages

    if only is not None and stage not in only:
        return False
    return any(s.name == stage and s.enabled(recipe) for s in default_stages())


# --- before any stage ---------------------------------------------------------------------------------------


def check_recipe(
    recipe: Recipe, only: set[str] | None = None, base_dir: Path | None = None, run_dir: Path | None = None
) -> None:
    """Every check that needs only the recipe and this machine (files too, when `base_dir` is given: the
    folder relative paths in the recipe start from; the run directory's own entries when `run_dir` is given)."""
    check_bench_targets(recipe, only)
    check_converters(recipe, only)
    check_handoff_artifact(recipe, only)
    check_quantization_budget(recipe, only)
    if base_dir is not None:
        check_late_files(recipe, only, base_dir)
    if run_dir is not None:
        check_run_directory(recipe, only, run_dir)


def stage_outputs(recipe: Recipe, only: set[str] | None) -> list[tuple[str, str, str]]:
    """(stage, name pattern, kind) of what the stages that will run put at the top of the run directory (kinds:
    edgekd.run_directory.ARTIFACT / FOLDER / BUNDLE; an artifact's or the bundle's sidecar `<name>.json` goes
    with it). tests/core/test_run_directory_preflight.py checks it against the entries of a real run."""
    from edgekd.run_directory import ARTIFACT, BUNDLE, FOLDER

    teacher = recipe.teacher
    teacher_file = {"onnx": "teacher.onnx", "soft_labels": "teacher_soft_labels.npz"}.get(teacher.kind, "teacher.pt")
    if teacher.kind == "torchscript" and teacher.path is not None:
        teacher_file = f"teacher{teacher.path.suffix or '.pt'}"
    report = recipe.report
    outputs = {
        "data": [("data.npz", ARTIFACT)],
        "teacher": [(teacher_file, ARTIFACT)],
        "distill": [("student.pt", ARTIFACT), ("history.json", ARTIFACT), ("teacher_cache", FOLDER)]
        + ([("scratch.pt", ARTIFACT)] if recipe.distill.baseline else []),
        "export": [("student.onnx", ARTIFACT)],
        "calibrate": [("calibration.npz", ARTIFACT)],
        "quantize": [("student.int8.onnx", ARTIFACT), ("quant_ladder", FOLDER)],
        "tflite": [("student.*.tflite", ARTIFACT)],
        "handoff": [("handoff", BUNDLE)] + ([("handoff.zip", ARTIFACT)] if recipe.handoff.zip else []),
        "report": [("report.json", ARTIFACT)]
        + ([("report.md", ARTIFACT)] if report.markdown else [])
        + ([("report.html", ARTIFACT)] if report.html else []),
    }
    return [(stage, name, kind) for stage, names in outputs.items() if selected(recipe, stage, only)
            for name, kind in names]  # fmt: skip


def check_run_directory(recipe: Recipe, only: set[str] | None, run_dir: Path) -> None:
    """No entry of the run directory (`--out` may name a folder of the user's) is one a stage that will run
    would have to replace without edgekd having written it: the rule the commit of each stage applies
    (edgekd.run_directory.check_destination), applied before any stage instead of after the earlier ones ran."""
    from fnmatch import fnmatchcase

    from edgekd.run_directory import ARTIFACT, BUNDLE, SIDECAR, check_destination

    if not run_dir.is_dir():
        return
    outputs = stage_outputs(recipe, only)
    zip_name = "handoff.zip" if any(name == "handoff.zip" for _, name, _ in outputs) else None
    for entry in sorted(run_dir.iterdir()):
        name = entry.name
        for stage, pattern, kind in outputs:
            if kind in (ARTIFACT, BUNDLE) and fnmatchcase(name, f"{pattern}.json"):
                check_destination(run_dir, name, SIDECAR, writer=stage)
                break
            if fnmatchcase(name, pattern):
                check_destination(run_dir, name, kind, zip_name=zip_name if kind == BUNDLE else None, writer=stage)
                break


def check_late_files(recipe: Recipe, only: set[str] | None, base_dir: Path) -> None:
    """Files and programs that only the last stages use exist now: `[bench] inputs`, `[handoff] tflm_include`,
    and the compiler when `[handoff] require_compiler` makes its absence an error."""
    import shutil

    if selected(recipe, "bench", only) and recipe.bench.inputs:
        path = resolve_path(base_dir, Path(recipe.bench.inputs))
        if path is None or not path.is_file():
            raise RecipeError(f"[bench] inputs {path} is not a file",
                              hint="give an .npz with one array per model input, named after the input "
                                   "(relative paths start at the recipe's folder)")  # fmt: skip
    if not selected(recipe, "handoff", only):
        return
    folders = [resolve_path(base_dir, folder) for folder in recipe.handoff.tflm_include]
    missing = [str(folder) for folder in folders if folder is None or not folder.is_dir()]
    if missing:
        raise RecipeError(f"[handoff] tflm_include folder(s) not found: {', '.join(missing)}",
                          hint="give the tflite-micro checkout and its flatbuffers and gemmlowp include folders "
                               "(relative paths start at the recipe's folder)")  # fmt: skip
    if recipe.handoff.require_compiler and shutil.which(recipe.handoff.compiler) is None:
        raise RecipeError(
            f"[handoff] require_compiler = true, but the compiler {recipe.handoff.compiler!r} is not on PATH",
            hint='install it, name another with [handoff] compiler = "...", or set require_compiler = false '
            "(the compile check is then recorded as skipped)",
        )


def check_bench_targets(recipe: Recipe, only: set[str] | None) -> None:
    """Refuse an unknown bench target before any training, not after it (the bench stage runs late)."""
    if not selected(recipe, "bench", only):
        return
    from edgekd.inventory import load_inventory

    known, _ = load_inventory()
    for name in recipe.bench.targets:
        if name not in known:
            raise unknown_name("target", name, known, TargetError)


def required_converters(recipe: Recipe, only: set[str] | None) -> dict[str, str]:
    """converter name -> the recipe key that asks for it, for every conversion stage that will run."""
    wanted: dict[str, str] = {}
    if selected(recipe, "export", only):
        wanted["torch_onnx"] = "[export]"
    if selected(recipe, "quantize", only):
        wanted["ort_quant"] = "[quantize] enabled"
    if selected(recipe, "tflite", only):
        for name, _run in recipe.tflite.converter_runs():
            wanted[name] = "[tflite] converter" if name == recipe.tflite.converter else "[tflite] also_litert_torch"
    return wanted


def check_converters(recipe: Recipe, only: set[str] | None) -> None:
    """Each converter the run will use is installed, and can write the precisions asked of it."""
    from edgekd import registry

    for name, key in required_converters(recipe, only).items():
        reason = registry.converter_unavailable(name)
        if reason:
            off = {"[tflite] also_litert_torch": "set [tflite] also_litert_torch = false",
                   "[tflite] converter": "set [tflite] enabled = false, or choose the other converter",
                   "[quantize] enabled": "set [quantize] enabled = false"}.get(key, "install it")  # fmt: skip
            raise RecipeError(f"{key} needs the {name!r} converter, which is not available: {reason}",
                              hint=f"install it, or {off}")  # fmt: skip
    if selected(recipe, "tflite", only):
        offered = registry.converter_entry(recipe.tflite.converter).precisions
        refused = [p for p in recipe.tflite.precisions if p not in offered]
        if refused:
            raise RecipeError(
                f"[tflite] converter = {recipe.tflite.converter!r} cannot write {', '.join(refused)}",
                hint=f'it writes {", ".join(offered)}; use converter = "onnx2tf" or drop them from [tflite] precisions',
            )


def handoff_candidates(recipe: Recipe) -> list[str]:
    """Names of the TFLite artifacts this recipe's run will produce (what [handoff] artifact may name)."""
    if not recipe.tflite.enabled:
        return []
    from edgekd import registry

    names: list[str] = []
    for name, run in recipe.tflite.converter_runs():
        offered = registry.converter_entry(name).precisions
        names += [f"{run['name_prefix']}_{p}" for p in recipe.tflite.precisions if p in offered]
    return names


def check_handoff_artifact(recipe: Recipe, only: set[str] | None) -> None:
    """`[handoff] artifact` names a TFLite file this run makes, in a precision the platform can run."""
    if not selected(recipe, "handoff", only):
        return
    wanted = recipe.handoff.artifact
    candidates = handoff_candidates(recipe)
    if wanted not in candidates:
        close = suggest(wanted, candidates)
        hint = (f"did you mean '{close}'? " if close else "") + (
            f"this recipe makes: {', '.join(candidates)}" if candidates
            else "this recipe makes no TFLite file: enable [tflite], or set [handoff] enabled = false"
        )  # fmt: skip
        raise RecipeError(f"[handoff] artifact {wanted!r} is not a TFLite file this recipe produces", hint=hint)
    precision = wanted.rsplit("_", 1)[-1] if not wanted.endswith("dynamic_range") else "dynamic_range"
    if recipe.handoff.runs_tflm and precision in MICRO_UNSUPPORTED_PRECISIONS:
        raise RecipeError(
            f"[handoff] artifact {wanted!r} is {precision}, which TensorFlow Lite Micro cannot run "
            f"(platform {recipe.handoff.platform!r})",
            hint='hand off a full int8 (or fp32) file, e.g. artifact = "tflite_int8", or set [handoff] '
            'platform = "linux" / "android"',
        )


def check_quantization_budget(recipe: Recipe, only: set[str] | None) -> None:
    """What an accuracy budget ([quantize] max_accuracy_drop) needs, known before training: a validation split
    to measure the drop on, and for quantization-aware distillation (qat) a teacher that runs and every label."""
    quantize = recipe.quantize
    if quantize.max_accuracy_drop is None or not selected(recipe, "quantize", only):
        return
    if recipe.data.val_fraction == 0:
        raise RecipeError(
            "[quantize] max_accuracy_drop is measured on the validation split, and [data] val_fraction = 0 makes none",
            hint="set [data] val_fraction (e.g. 0.1), or remove max_accuracy_drop",
        )
    if not quantize.qat:
        return
    if recipe.teacher.kind == "soft_labels":
        raise RecipeError(
            "[quantize] qat fine-tunes the quantized student against the teacher, and a soft-label teacher is a "
            "table of outputs for the training samples, not a model it can run",
            hint="set [quantize] qat = false (the ladder stops at mixed precision), or give a teacher model",
        )
    if recipe.data.labeled_fraction < 1:
        raise RecipeError(
            f"[quantize] qat trains on every label of the training split, and [data] labeled_fraction = "
            f"{recipe.data.labeled_fraction} says the student may see only part of them",
            hint="set [quantize] qat = false, or labeled_fraction = 1",
        )


def check_with_data_budget(recipe: Recipe, facts: DataFacts, only: set[str] | None) -> None:
    """The ladder's LiteRT and TFLM rows read image samples (C, H, W); a table input cannot give them."""
    from edgekd.stages.quant_ladder import ladder_runtimes

    if recipe.quantize.max_accuracy_drop is None or not selected(recipe, "quantize", only):
        return
    tflite_rows = [r for r in ladder_runtimes(recipe) if r != "ort"]
    if tflite_rows and len(facts.input_shape) != 3:
        raise RecipeError(
            f"[quantize] max_accuracy_drop measures {' and '.join(tflite_rows)} int8 rows on image samples "
            f"(C, H, W); this data's samples have shape {list(facts.input_shape)}",
            hint="leave int8 out of [tflite] precisions (the budget then holds for ONNX Runtime), or remove "
            "max_accuracy_drop",
        )


def check_verdict_codes(strict: bool | list[str] | None) -> None:
    """`--strict-verdict CODE` names a verdict edgekd computes (the recipe's list is checked by its model)."""
    from edgekd.errors import UsageError
    from edgekd.verdicts import CODES

    for code in strict if isinstance(strict, list) else []:
        if code not in CODES:
            raise unknown_name("verdict code", code, CODES, UsageError)


# --- after the data stage, before training ------------------------------------------------------------------


def check_with_data(recipe: Recipe, data_summary: dict[str, Any], only: set[str] | None = None) -> list[str]:
    """Checks that need the data's shape and size. Returns notes to show and record (never silent)."""
    facts = DataFacts.from_summary(data_summary)
    notes: list[str] = []
    note = check_calibration_size(recipe, facts, only)
    if note:
        notes.append(note)
    check_with_data_budget(recipe, facts, only)
    # The student is built after the teacher is trained: build it (and dry-run a custom factory) now. The
    # teacher needs no preflight: its stage comes first and builds (or loads) it before any training.
    if selected(recipe, "distill", only):
        check_handoff_ops(recipe, build_student(recipe, facts), only)
    return notes


def calibration_size(recipe: Recipe, train_size: int) -> int:
    """The calibration set's size: the recipe's, or the default capped at the training split."""
    if recipe.calibration.size is not None:
        return recipe.calibration.size
    return min(DEFAULT_CALIBRATION_SIZE, train_size)


def check_calibration_size(recipe: Recipe, facts: DataFacts, only: set[str] | None) -> str | None:
    """An explicit size larger than the training split is refused now (not after training); the default
    is capped at the split, with a note."""
    if not selected(recipe, "calibrate", only) or facts.train_size <= 0:
        return None
    size = recipe.calibration.size
    if size is not None and size > facts.train_size:
        raise RecipeError(
            f"[calibration] size = {size} exceeds the {facts.train_size} samples of the training split",
            hint=f"set [calibration] size to at most {facts.train_size}, or remove it (default: up to "
            f"{DEFAULT_CALIBRATION_SIZE}, capped at the training split)",
        )
    if size is None and facts.train_size < DEFAULT_CALIBRATION_SIZE:
        return (f"calibration uses all {facts.train_size} training samples (fewer than the default "
                f"{DEFAULT_CALIBRATION_SIZE}); set [calibration] size to choose")  # fmt: skip
    return None


def build_student(recipe: Recipe, facts: DataFacts) -> nn.Module:
    """The student as distillation will build it. For a custom factory, edgekd.distill.models.build_model
    checks the signature, the returned type and a dry forward pass on the data's shape (ModelError, exit 1)."""
    from edgekd.distill.models import build_model

    return build_model(recipe.student.model.model_dump(), facts.input_shape, facts.num_classes, role="student")


def known_tflite_ops(model: nn.Module, recipe: Recipe) -> dict[str, str]:
    """TFLite operator -> the layer that makes it, for layers whose conversion by the chosen converter is
    known (measured with onnx2tf): exact nn.GELU -> Erf, a Flex op (FlexErf) at opset < 20 unless [tflite]
    pseudo_ops replaces it, builtin GELU at opset >= 20. (nn.Hardsigmoid was RELU_0_TO_1 until the converter wrote
    it as ReLU6, edgekd.onnx_rewrite.) Functional calls in forward are not visible here; the verify stage
    runs the int8 file in TFLM (the tflm_int8 row)."""
    from torch import nn

    if recipe.tflite.converter != "onnx2tf":
        return {}
    ops: dict[str, str] = {}
    for name, layer in model.named_modules():
        label = f"layer '{name}' ({type(layer).__name__})" if name else f"the model ({type(layer).__name__})"
        if isinstance(layer, nn.GELU) and layer.approximate == "none":
            if recipe.export.opset >= 20:
                ops.setdefault("GELU", label)
            elif not {"Erf", "GeLU"} & set(recipe.tflite.pseudo_ops):
                ops.setdefault("CUSTOM:FlexErf", label)
    return ops


def check_handoff_ops(recipe: Recipe, student: nn.Module, only: set[str] | None) -> None:
    """A microcontroller handoff of a student whose known operators TensorFlow Lite Micro lacks is refused now."""
    if not selected(recipe, "handoff", only) or not recipe.handoff.runs_tflm:
        return
    missing = tflm_missing(known_tflite_ops(student, recipe).items())
    if missing:
        listed = "; ".join(f"{layer} -> {op}" for op, layer in missing)
        raise RecipeError(
            f'[handoff] platform = "{recipe.handoff.platform}": the student\'s layers become TFLite operators that TensorFlow Lite '
            f"Micro does not have: {listed}",
            hint='use layers TFLM supports (ReLU, ReLU6, Hardswish, Hardsigmoid; for GELU set [tflite] pseudo_ops = ["Erf"] at '
            'opset 18), or set [handoff] platform = "linux" / "android", or [handoff] enabled = false',
        )


def tflm_missing(ops: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The (operator, layer) pairs whose operator is not in TFLM's op resolver table."""
    from edgekd.handoff.op_resolver import TFLM_BUILTINS, TFLM_CUSTOM

    missing = []
    for op, layer in ops:
        known = TFLM_CUSTOM if op.startswith("CUSTOM:") else TFLM_BUILTINS
        if op.removeprefix("CUSTOM:") not in known:
            missing.append((op, layer))
    return missing
