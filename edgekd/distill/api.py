"""The distillation API the pipeline calls: `prepare_teacher` then `distill`.

prepare_teacher trains the builtin teacher, or checks and copies an external one (see
edgekd.distill.teachers for the artifact each kind yields). distill trains the student with the
recipe's losses and, with `baseline`, the same student from scratch on the same optimiser budget, and
reports what distillation bought (accuracy on the held-out TEST split, params, FLOPs, noise test).

Label-scarce mode (`labeled_fraction` < 1): a seeded, stratified share of the training labels stays
visible; the KD student learns from the teacher on every training sample plus those labels, the
scratch student only from the labelled samples (repeated to the same number of optimiser steps).
The builtin teacher is trained on all training labels: it stands for a model someone already has.
With a class subset ([data] classes) it learns the source classes of the samples the data keeps
(all of them with other_class, only the kept ones without), so it predicts in the source's classes
and distill maps them to the student's by name.
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekd.artifacts import Artifact, TensorSpec, create_artifact
from edgekd.config.distill import DistillConfig, StudentConfig, TeacherConfig
from edgekd.data.datasets import Dataset
from edgekd.distill.device import check_device
from edgekd.distill.reporting import labelled_mask, model_size, noise_test, teacher_accuracy
from edgekd.distill.train import EpochCallback, FitResult, TrainData, check_train_config, distributed, fit
from edgekd.errors import DataError

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from torch import nn

    from edgekd.distill.teachers import Teacher


@dataclass
class DistillOutcome:
    artifacts: list[Artifact] = field(default_factory=list)  # student_torch, then scratch_torch (with baseline)
    metrics: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def _progress_bar(progress: Any) -> Iterator[Any]:
    if progress is not None:
        yield progress
        return
    from edgekd.console import progress as console_progress

    with console_progress() as bar:
        yield bar


def prepare_teacher(config: TeacherConfig, data: Dataset, *, seed: int, out_dir: Path, base_dir: Path,
                    progress: Any = None, resume: bool = False) -> Artifact:  # fmt: skip
    """Train the builtin teacher or import an external one, then check it; returns its artifact (see module doc).

    The artifact's config records the teacher's own `preprocessing` (and where it came from) and the
    outcome of the teacher check (`check`); a failing check raises ModelError unless `config.check` is false.
    """
    from edgekd.distill import teacher_import

    out_dir = Path(out_dir)
    _check_training_data(data)
    if config.kind == "builtin":
        warnings = check_train_config(config.train, len(data.y_val) > 0, "[teacher] train")
        check_device(config.train)
        with _progress_bar(progress) as bar:
            artifact = _train_builtin_teacher(
                config, data, seed=seed, out_dir=out_dir, progress=bar, resume=resume, warnings=warnings
            )
    else:
        artifact = teacher_import.import_teacher(config, data, out_dir=out_dir, base_dir=Path(base_dir))
    return _checked(artifact, config, data, seed)


def _checked(artifact: Artifact, config: TeacherConfig, data: Dataset, seed: int) -> Artifact:
    """Run the teacher check and record its outcome in the sidecar (rank 0 writes)."""
    from dataclasses import replace

    from edgekd.distill.teacher_check import check_teacher
    from edgekd.distill.teachers import class_mapping, load_teacher

    teacher = load_teacher(artifact, data.preprocessing)
    mapping = class_mapping(_teacher_names(teacher, data), teacher.num_classes, data.label_names, data.other_label)
    record = check_teacher(teacher, mapping, data, enforce=config.check, builtin=config.kind == "builtin", seed=seed)
    warnings = list(artifact.config.get("warnings", [])) + record.get("warnings", [])
    if record.get("passed") is False:
        warnings.append(f"{record['reason']} (going on: [teacher] check = false)")
    for warning in warnings[len(artifact.config.get("warnings", [])) :]:
        log.warning("%s", warning)
    updated = replace(artifact, config={**artifact.config, "check": record, "warnings": warnings})
    return updated.write_sidecar() if distributed()[0] == 0 else updated


def teacher_summary(artifact: Artifact) -> dict[str, Any]:
    """What the teacher stage reports: kind, params (None when unknown), its preprocessing and check."""
    config = artifact.config
    return {"kind": config.get("kind"), "format": artifact.format, "params": config.get("params"), "flops": config.get("flops"),
            "preprocessing": config.get("preprocessing"), "preprocessing_source": config.get("preprocessing_source"),
            "check": config.get("check"), "warnings": list(config.get("warnings", []))}  # fmt: skip


def _train_builtin_teacher(config: TeacherConfig, data: Dataset, *, seed: int, out_dir: Path, progress: Any, resume: bool,
                           warnings: list[str]) -> Artifact:  # fmt: skip
    import torch

    from edgekd.distill import teacher_inputs
    from edgekd.distill.models import build_model
    from edgekd.distill.objectives import SupervisedObjective
    from edgekd.distill.train import accuracy
    from edgekd.preprocessing import reprocess

    names, y_train, y_val, y_test = data.teacher_view()  # the full class list when the data is a class subset
    prep, source = teacher_inputs.resolve(config, data)
    student = teacher_inputs.student_preprocessing(data)

    def view(x: np.ndarray) -> np.ndarray:  # the teacher's own inputs for these samples
        return reprocess(x, student, prep)

    torch.manual_seed(seed)
    model = build_model(config.model.model_dump(), data.input_shape, len(names))
    train = TrainData(view(data.x_train), y_train, _ids(data), view(data.x_val), y_val)
    result = fit(model, train, config.train, SupervisedObjective(), seed=seed, label="teacher",
                 checkpoint=out_dir / "checkpoints" / "teacher.ckpt", resume=resume, progress=progress)  # fmt: skip
    params, flops = model_size(model, data.input_shape)
    extra = {"kind": "builtin", "test_accuracy": accuracy(model, view(data.x_test), y_test), "params": params, "flops": flops,
             "best_epoch": result.best_epoch, "selected": result.selected, "history": result.history,
             "warnings": warnings, "preprocessing_source": source}  # fmt: skip
    artifact = _save_torch_model(model, out_dir / "teacher.pt", "teacher_torch", config.model.model_dump(), data, names, extra,
                                 preprocessing=prep.to_dict() if prep != student else data.preprocessing)  # fmt: skip
    if distributed()[0] == 0:
        shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)  # finished: nothing left to resume
    return artifact


def distill(teacher: Artifact, student: StudentConfig, config: DistillConfig, data: Dataset, *, seed: int, out_dir: Path,
            labeled_fraction: float = 1.0, progress: Any = None, resume: bool = False,
            cache_dir: Path | None = None, on_epoch: EpochCallback | None = None) -> DistillOutcome:  # fmt: skip
    """Distil `teacher` into the configured student (and train the scratch baseline); see module doc.

    `cache_dir` holds the teacher-output cache (default: <out_dir>/teacher_cache); share it between
    runs to reuse teacher outputs. With `resume`, training continues from the last epoch checkpoint.
    `on_epoch` sees the KD student's epochs (see `train.fit`); it may stop training by raising.
    """
    from edgekd.distill.teachers import class_mapping, load_teacher

    out_dir = Path(out_dir)
    _check_training_data(data)
    if not 0.0 < labeled_fraction <= 1.0:
        raise DataError(
            f"labeled_fraction must lie in (0, 1], got {labeled_fraction}",
            hint="0.1 means the student sees 10% of the labels",
        )
    warnings = check_train_config(config.train, len(data.y_val) > 0, "[distill] train")
    check_device(config.train)  # before the teacher is loaded or any student trained
    started = time.perf_counter()
    model_teacher = load_teacher(teacher, data.preprocessing)
    mapping = class_mapping(
        _teacher_names(model_teacher, data), model_teacher.num_classes, data.label_names, data.other_label
    )
    mask = labelled_mask(data.y_train, labeled_fraction, seed)
    train = TrainData(data.x_train, np.where(mask, data.y_train, -1), _ids(data), data.x_val, data.y_val,
                      val_teacher=_val_teacher(model_teacher, mapping, data))  # fmt: skip
    with _progress_bar(progress) as bar:
        kd_model, kd_result, signal = _train_student(model_teacher, mapping, student, config, data, train, seed=seed,
                                                     out_dir=out_dir, progress=bar, resume=resume, cache_dir=cache_dir,
                                                     labeled_fraction=labeled_fraction, on_epoch=on_epoch)  # fmt: skip
        scratch = None
        if config.baseline:
            steps = _steps_per_epoch(len(train.x), config.train.batch_for(len(train.x)))
            scratch = _train_scratch(student, config, data, train, mask, seed=seed, out_dir=out_dir, progress=bar,
                                     resume=resume, steps=steps)  # fmt: skip
    rank, _ = distributed()
    outcome = DistillOutcome()
    metrics = _metrics(
        model_teacher, mapping, data, kd_model, kd_result, scratch, teacher, mask, labeled_fraction, signal
    )
    cross = fitnets_cross_family(teacher, student, config, data.input_shape)
    if cross is not None:
        log.warning("%s", cross["message"])
        warnings.append(cross["message"])
        metrics["fitnets_cross_family"] = cross
    metrics["warnings"] = warnings
    if rank == 0:
        names = data.label_names
        spec = student.model.model_dump()
        extra = {"role": "student", "test_accuracy": metrics["student_accuracy"], "params": metrics["student_params"],
                 "flops": metrics["student_flops"], "labeled_fraction": labeled_fraction}  # fmt: skip
        outcome.artifacts.append(
            _save_torch_model(kd_model, out_dir / "student.pt", "student_torch", spec, data, names, extra, teacher)
        )
        if scratch is not None:
            extra = {"role": "scratch", "test_accuracy": metrics["scratch_accuracy"], "params": metrics["scratch_params"],
                     "flops": metrics["scratch_flops"], "labeled_fraction": labeled_fraction}  # fmt: skip
            outcome.artifacts.append(
                _save_torch_model(scratch[0], out_dir / "scratch.pt", "scratch_torch", spec, data, names, extra)
            )
        _write_history(out_dir / "history.json", metrics["history"])
        shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)  # finished: nothing left to resume
    metrics["seconds"] = time.perf_counter() - started
    outcome.metrics = metrics
    return outcome


def fitnets_cross_family(teacher: Artifact, student: StudentConfig, config: DistillConfig,
                         input_shape: tuple[int, ...]) -> dict[str, Any] | None:  # fmt: skip
    """A FitNets loss between models of different families (from the sidecar's resolved arch), or None.

    Hints across architectures do worse than training from scratch in the literature (Tian et al., CRD,
    ICLR 2020: ResNet50 -> MobileNetV2 FitNets 63.16 % vs 64.60 % scratch), so the run records a warning.
    """
    from edgekd.distill.models import resolve_spec

    if not any(c.kind == "fitnets" for c in config.losses):
        return None
    teacher_family = (teacher.config.get("model") or {}).get("arch")
    student_family = resolve_spec(student.model.model_dump(), input_shape).get("arch")
    if not teacher_family or teacher_family == student_family:
        return None
    message = (f"fitnets_cross_family: FitNets hints between a {teacher_family!r} teacher and a {student_family!r} student; "
               "hints across families often do worse than scratch (CRD, ICLR 2020): prefer a logit loss (dist, dkd)")  # fmt: skip
    return {
        "code": "fitnets_cross_family",
        "teacher_family": teacher_family,
        "student_family": student_family,
        "message": message,
    }


def _train_student(teacher: Teacher, mapping: list[list[int]], student: StudentConfig, config: DistillConfig, data: Dataset,
                   train: TrainData, *, seed: int, out_dir: Path, progress: Any, resume: bool, cache_dir: Path | None,
                   labeled_fraction: float, on_epoch: EpochCallback | None) -> tuple[nn.Module, FitResult, Any]:  # fmt: skip
    import torch

    from edgekd.distill.cache import TeacherOutputCache, data_fingerprint
    from edgekd.distill.device import resolve_device
    from edgekd.distill.models import build_model
    from edgekd.distill.objectives import DistillObjective, TeacherSignal, hint_pairs

    teacher.place(
        resolve_device(config.train.device)
    )  # a torch teacher runs beside the student (GPU when training there)
    cache = (
        TeacherOutputCache(cache_dir or out_dir / "teacher_cache", topk=config.cache_topk)
        if config.teacher_cache
        else None
    )
    signal = TeacherSignal(teacher, mapping, train, seed=seed, augmentation=config.train.augmentation, consistent=config.consistent_views,
                           cache=cache, data_sha256=data_fingerprint(train.x, train.ids, data.preprocessing),
                           hint_paths=[t for _, _, t in hint_pairs(config.losses)])  # fmt: skip
    torch.manual_seed(seed)
    model = build_model(student.model.model_dump(), data.input_shape, data.num_classes)
    objective = DistillObjective(model, signal, config.losses, data.input_shape)
    extra = {"teacher": teacher.fingerprint, "teacher_inputs": teacher.inputs_key, "losses": [c.model_dump() for c in config.losses], "model": student.model.model_dump(),
             "consistent_teaching": config.consistent_views, "labeled_fraction": labeled_fraction}  # fmt: skip
    result = fit(model, train, config.train, objective, seed=seed, label="student (KD)", checkpoint=out_dir / "checkpoints" / "student.ckpt",
                 resume=resume, fingerprint_extra=extra, progress=progress, on_epoch=on_epoch)  # fmt: skip
    return model, result, signal


def _train_scratch(student: StudentConfig, config: DistillConfig, data: Dataset, train: TrainData, mask: np.ndarray, *, seed: int,
                   out_dir: Path, progress: Any, resume: bool, steps: int) -> tuple[nn.Module, FitResult]:  # fmt: skip
    """The same student, same initial weights and optimiser budget, from the visible labels only."""
    import torch

    from edgekd.distill.models import build_model
    from edgekd.distill.objectives import SupervisedObjective

    torch.manual_seed(seed)
    model = build_model(student.model.model_dump(), data.input_shape, data.num_classes)
    pool = np.flatnonzero(mask)
    extra = {"model": student.model.model_dump(), "labelled": int(mask.sum())}
    result = fit(model, train, config.train, SupervisedObjective(), seed=seed, label="student (scratch)", pool=pool,
                 steps_per_epoch=steps, checkpoint=out_dir / "checkpoints" / "scratch.ckpt", resume=resume,
                 fingerprint_extra=extra, progress=progress)  # fmt: skip
    return model, result


def _steps_per_epoch(samples: int, batch_size: int) -> int:
    _, world = distributed()
    return math.ceil(math.ceil(samples / world) / batch_size)


def _metrics(teacher: Teacher, mapping: list[list[int]], data: Dataset, kd_model: nn.Module, kd: FitResult,
             scratch: tuple[nn.Module, FitResult] | None, artifact: Artifact, mask: np.ndarray, labeled_fraction: float,
             signal: Any) -> dict[str, Any]:  # fmt: skip
    from edgekd.distill.train import predict

    kd_pred = predict(kd_model, data.x_test)
    t_params, t_flops = _teacher_size(teacher, artifact, data)
    s_params, s_flops = model_size(kd_model, data.input_shape)
    metrics: dict[str, Any] = {
        "teacher_accuracy": teacher_accuracy(teacher, mapping, data),
        "student_accuracy": float(np.mean(kd_pred == data.y_test)),
        "teacher_params": t_params, "teacher_flops": t_flops, "student_params": s_params, "student_flops": s_flops,
        "labeled_fraction": labeled_fraction, "labelled_samples": int(mask.sum()), "train_samples": len(mask),
        "test_samples": len(data.y_test), "student_best_epoch": kd.best_epoch, "student_stopped_early": kd.stopped_early,
        "history": {"student": kd.history}, "student_selected": kd.selected,
        "teacher_kind": artifact.config.get("kind"), "teacher_preprocessing": artifact.config.get("preprocessing", data.preprocessing),
        "teacher_preprocessing_source": artifact.config.get("preprocessing_source"), "teacher_check": artifact.config.get("check"),
    }  # fmt: skip
    kd_agreement = _agreement(kd)
    metrics.update(student_teacher_agreement=kd_agreement["agreement"], student_teacher_kl=kd_agreement["kl"], agreement_split="val",
                   scratch_teacher_agreement=None, scratch_teacher_kl=None)  # fmt: skip
    if signal.cache is not None:
        metrics["teacher_cache"] = {"hits": signal.cache.hits, "misses": signal.cache.misses, "topk": signal.cache.topk}
    if t_params:
        metrics["params_ratio"] = s_params / t_params
    if metrics["teacher_accuracy"] is not None:
        metrics["accuracy_retained"] = metrics["student_accuracy"] / max(metrics["teacher_accuracy"], 1e-12)
    if scratch is None:
        metrics.update(scratch_accuracy=None, scratch_params=None, scratch_flops=None, kd_minus_scratch=None,
                       within_noise=None, noise_test={"method": "none: baseline disabled"})  # fmt: skip
        return metrics
    scratch_pred = predict(scratch[0], data.x_test)
    noise = noise_test(kd_pred == data.y_test, scratch_pred == data.y_test)
    metrics.update(scratch_accuracy=float(np.mean(scratch_pred == data.y_test)), scratch_params=s_params, scratch_flops=s_flops,
                   within_noise=noise["within_noise"], noise_test=noise, scratch_best_epoch=scratch[1].best_epoch)  # fmt: skip
    metrics["kd_minus_scratch"] = metrics["student_accuracy"] - metrics["scratch_accuracy"]
    metrics["history"]["scratch"] = scratch[1].history
    scratch_agreement = _agreement(scratch[1])
    metrics.update(scratch_teacher_agreement=scratch_agreement["agreement"], scratch_teacher_kl=scratch_agreement["kl"])
    return metrics


def _val_teacher(teacher: Teacher, mapping: list[list[int]], data: Dataset) -> np.ndarray | None:
    """The teacher's logits on the validation split (for the agreement metrics); None when it cannot score them."""
    from edgekd.distill.teachers import map_logits

    if len(data.x_val) == 0:
        return None
    ids = data.ids_val if data.ids_val is not None else np.arange(len(data.x_val))
    try:
        return np.asarray(map_logits(teacher.logits(data.x_val, ids), mapping), dtype=np.float32)
    except DataError:  # a soft-label file that covers only the training samples
        return None


def _agreement(result: FitResult) -> dict[str, Any]:
    """Top-1 agreement with the teacher and KL(teacher ‖ student) on the validation split, at the kept epoch."""
    rows = [r for r in result.history if r.get("epoch") == result.best_epoch] or result.history[-1:]
    row = rows[0] if rows else {}
    return {"agreement": row.get("val_teacher_agreement"), "kl": row.get("val_teacher_kl")}


def _teacher_size(teacher: Teacher, artifact: Artifact, data: Dataset) -> tuple[int | None, int | None]:
    if artifact.config.get("params") is not None:
        return artifact.config.get("params"), artifact.config.get("flops")
    if teacher.module is not None:
        with contextlib.suppress(Exception):  # a scripted/exported program may not trace with our hooks
            return model_size(teacher.module, data.input_shape)
    return None, None


def _teacher_names(teacher: Teacher, data: Dataset) -> list[str] | None:
    if teacher.label_names is not None:
        return teacher.label_names
    source = data.source_label_names
    return list(source) if source and len(source) == teacher.num_classes else None


def _ids(data: Dataset) -> np.ndarray:
    return data.ids_train if data.ids_train is not None else np.arange(len(data.x_train))


def _check_training_data(data: Dataset) -> None:
    if len(data.x_train) == 0:
        raise DataError("the training split is empty", hint="use more samples or smaller val/test fractions")
    if len(data.y_train) and (data.y_train.min() < 0 or data.y_train.max() >= data.num_classes):
        raise DataError(f"training labels must lie in 0..{data.num_classes - 1}, found {int(data.y_train.min())}..{int(data.y_train.max())}",
                        hint="check the label column, or the class list")  # fmt: skip


def _save_torch_model(model: nn.Module, path: Path, name: str, spec: dict[str, Any], data: Dataset, names: list[str],
                      extra: dict[str, Any], parent: Artifact | None = None, preprocessing: dict[str, Any] | None = None) -> Artifact:  # fmt: skip
    """Write a state dict and its sidecar: everything needed to rebuild the module (a torch artifact).

    `preprocessing` is the model's own (default: the student's, from the data).
    """
    from edgekd.distill.models import resolve_spec, save_state_dict

    save_state_dict(model, path)
    layout = data.preprocessing.get("layout", "NCHW" if len(data.input_shape) == 3 else "NC")
    inputs = [TensorSpec("input", ("batch", *data.input_shape), "float32", layout)]
    outputs = [TensorSpec("logits", ("batch", len(names)), "float32", "NC")]
    config = {"model": resolve_spec(spec, data.input_shape), "input_shape": list(data.input_shape), "num_classes": len(names), "label_names": list(names),
              "preprocessing": data.preprocessing if preprocessing is None else preprocessing, **extra}  # fmt: skip
    return create_artifact(path, name=name, format="torch", precision="fp32", inputs=inputs, outputs=outputs, parent=parent,
                           producer="distill", config=config)  # fmt: skip


def _write_history(path: Path, history: dict[str, Any]) -> None:
    from edgekd.fileio import atomic_write_json

    atomic_write_json(path, {"schema": "edgekd.distill-history/1", **history})
    create_artifact(path, name="distill_history", format="json", producer="distill")
