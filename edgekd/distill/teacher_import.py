"""Bring an external teacher into the run directory, checked against the data, as an artifact.

The file is validated (loads safely, takes the data's input shape, scores a few training samples on
its own inputs, class count agrees with the data or its label names) and copied into `out_dir`, so the
run does not depend on the original staying in place and the artifact's sha256 keys the teacher-output
cache. The sidecar records the teacher's own `preprocessing` and where it came from.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.artifacts import Artifact, create_artifact
from edgekd.config.distill import TeacherConfig
from edgekd.data.datasets import Dataset
from edgekd.distill import teacher_inputs
from edgekd.distill.models import one_line
from edgekd.distill.teachers import (
    ARTIFACT_NAMES,
    Teacher,
    class_mapping,
    load_state_dict_file,
    open_onnx,
    open_torch_program,
    read_soft_labels,
    torch_program_format,
)
from edgekd.errors import DataError, ModelError
from edgekd.fileio import atomic_path


def import_teacher(config: TeacherConfig, data: Dataset, *, out_dir: Path, base_dir: Path) -> Artifact:
    """Validate and copy the teacher named by `config` (kind module/torchscript/onnx/soft_labels)."""
    path = config.path if config.path.is_absolute() else base_dir / config.path
    if not path.is_file():
        raise ModelError(
            f"teacher file {path} does not exist", hint="[teacher] path is taken relative to the recipe file"
        )
    names = config.label_names
    base = {"kind": config.kind, "outputs": config.outputs, "input_shape": list(data.input_shape)}
    session = open_onnx(path) if config.kind == "onnx" else None
    if config.kind != "soft_labels":
        prep, source = teacher_inputs.resolve(config, data, session)
        base.update(preprocessing=prep.to_dict(), preprocessing_source=source)
        view = {"preprocessing": prep, "student_preprocessing": teacher_inputs.student_preprocessing(data)}
    if config.kind == "module":
        return _import_module(config, data, path, out_dir, base, view)
    if config.kind == "torchscript":
        fmt = torch_program_format(path)
        module = open_torch_program(path, fmt)
        classes = _probe_classes(Teacher(fmt, 0, "", names, config.outputs, module=module, **view), data)
        return _copy(path, out_dir / f"teacher{path.suffix or '.pt'}", fmt, data, names, classes, base)
    if config.kind == "onnx":
        check_onnx_input(session, data.input_shape, path)
        classes = _probe_classes(Teacher("onnx", 0, "", names, config.outputs, session=session, **view), data)
        return _copy(path, out_dir / "teacher.onnx", "onnx", data, names, classes, base)
    ids, values, file_names = read_soft_labels(path)
    train_ids = data.ids_train if data.ids_train is not None else np.arange(len(data.x_train))
    missing = np.setdiff1d(train_ids, ids)
    if len(missing):
        shown = ", ".join(str(int(i)) for i in missing[:10]) + (" …" if len(missing) > 10 else "")
        raise DataError(f"the soft-label file {path} has no entry for {len(missing)} training sample(s): ids {shown}",
                        hint="score every sample of the data set (ids are indices into the source data)")  # fmt: skip
    base["values"] = "probabilities" if config.outputs == "probabilities" or _is_probability_file(path) else "logits"
    return _copy(path, out_dir / "teacher_soft_labels.npz", "npz", data, names or file_names, values.shape[1], base)


def _import_module(
    config: TeacherConfig, data: Dataset, path: Path, out_dir: Path, base: dict[str, Any], view: dict[str, Any]
) -> Artifact:
    """A user factory plus a state dict: rebuilt, loaded with weights_only=True, saved as a torch artifact."""
    from edgekd.distill.models import build_model, count_parameters, load_weights, save_state_dict

    state = load_state_dict_file(path)
    classes = len(config.label_names or data.source_label_names or data.label_names)
    module = build_model(config.model.model_dump(), data.input_shape, classes, role="teacher")
    load_weights(module, state, f"{path}: the weights do not fit the model built by {config.model.factory}",
                 hint="use the factory and arguments the weights were saved from (or the matching state dict)")  # fmt: skip
    module.eval()
    _probe_classes(
        Teacher("torch", classes, "", config.label_names, "logits", module=module, **view), data, expected=classes
    )
    target = out_dir / "teacher.pt"
    save_state_dict(module, target)
    names = list(config.label_names) if config.label_names else list(data.source_label_names or data.label_names)
    class_mapping(names, classes, data.label_names, data.other_label)  # raises on a class mismatch
    extra = {
        **base,
        "model": config.model.model_dump(),
        "num_classes": classes,
        "params": count_parameters(module),
        "label_names": names,
    }
    return create_artifact(
        target, name=ARTIFACT_NAMES["torch"], format="torch", precision="fp32", producer="teacher", config=extra
    )


def _probe_classes(teacher: Teacher, data: Dataset, expected: int | None = None) -> int:
    """Score four training samples; the output must be (4, C) logits or probabilities."""
    try:
        out = teacher.logits(data.x_train[:4], np.arange(4))
    except (ModelError, DataError):
        raise
    except Exception as exc:  # noqa: BLE001 - the user's model can fail in any way; name it instead of a traceback
        raise ModelError(f"the teacher failed on input of shape {(4, *data.input_shape)}: {one_line(exc)}",
                         hint="the teacher must take the data's (batch, ...) float32 input, in the [teacher] preprocessing declared") from None  # fmt: skip
    if out.ndim != 2 or len(out) != 4:
        raise ModelError(f"the teacher returned shape {out.shape} for 4 samples; expected (4, classes)")
    if expected is not None and out.shape[1] != expected:
        raise ModelError(f"the teacher returns {out.shape[1]} classes, expected {expected}")
    return int(out.shape[1])


def check_onnx_input(session: Any, input_shape: tuple[int, ...], path: Path) -> None:
    """Refuse an ONNX teacher whose single float input cannot take (batch, *input_shape), naming both shapes."""
    inputs = session.get_inputs()
    if len(inputs) != 1:
        listed = ", ".join(f"{i.name} {i.shape}" for i in inputs)
        raise ModelError(f"{path}: the ONNX teacher has {len(inputs)} inputs ({listed}); edgekd feeds it one (batch, *input_shape) tensor",
                         hint="export the teacher with a single input")  # fmt: skip
    declared = inputs[0].shape or []
    expected = ["batch", *input_shape]
    fixed = [d if isinstance(d, int) and d > 0 else None for d in declared]
    mismatch = len(declared) != len(expected) or any(
        f is not None and f != e for f, e in zip(fixed[1:], input_shape, strict=False)
    )
    if mismatch:
        raise ModelError(f"{path}: the ONNX teacher's input {inputs[0].name!r} has shape {list(declared)}, the data gives {expected}",
                         hint="give the data the teacher's input shape ([data] image_size for images, the same feature columns "
                         "for tables), or export the teacher for the data's shape")  # fmt: skip
    if "float" not in inputs[0].type:
        raise ModelError(f"{path}: the ONNX teacher's input {inputs[0].name!r} is {inputs[0].type}; edgekd feeds float32",
                         hint="export the teacher with a float32 input")  # fmt: skip


def _is_probability_file(path: Path) -> bool:
    with np.load(path, allow_pickle=False) as data:
        return "logits" not in data.files


def _copy(
    source: Path, target: Path, fmt: str, data: Dataset, names: list[str] | None, classes: int, base: dict[str, Any]
) -> Artifact:
    """Copy the teacher file into the run directory and describe it; checks classes against the data."""
    data_names = data.source_label_names or data.label_names
    if names is None and classes == len(data_names):
        names = list(data_names)
    class_mapping(names, classes, data.label_names, data.other_label)  # raises on a class mismatch
    with atomic_path(target, suffix=target.suffix) as tmp:
        shutil.copyfile(source, tmp)
    config = {**base, "num_classes": classes, "label_names": names, "source_file": str(source)}
    return create_artifact(target, name=ARTIFACT_NAMES[fmt], format=fmt, producer="teacher", config=config)
