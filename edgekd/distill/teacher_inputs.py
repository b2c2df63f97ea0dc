"""Which inputs a teacher takes: its own `Preprocessing`, independent of the student's.

The data stage hands out the student's inputs, x = (raw * scale - mean) / std. A teacher trained
elsewhere usually saw something else (most often the raw values scaled to floats: images in 0..1).
`[teacher] preprocessing` declares it; "auto" resolves to

- builtin teachers (trained here): the student's inputs;
- ONNX files edgekd wrote: the preprocessing their `metadata_props` record;
- every other imported teacher: the raw inputs as loaded (scaled, not normalised).

Wherever the teacher runs, `Teacher.inputs` turns the student's inputs into the teacher's with
`edgekd.preprocessing.reprocess` (same samples, the teacher's view).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from edgekd.preprocessing import Preprocessing

if TYPE_CHECKING:
    from edgekd.config.distill import TeacherConfig
    from edgekd.data.datasets import Dataset


def student_preprocessing(data: Dataset) -> Preprocessing:
    """The student's inputs as the data stage recorded them."""
    return Preprocessing.from_dict(data.preprocessing)


def raw_preprocessing(student: Preprocessing) -> Preprocessing:
    """The raw values as loaded: the data's integer->float scale, no normalisation."""
    return replace(student, mean=(), std=(), extra={})


def resolve(config: TeacherConfig, data: Dataset, session: Any = None) -> tuple[Preprocessing, str]:
    """(the teacher's preprocessing, where it came from) for `config`; `session` is an opened ONNX teacher."""
    from edgekd.config.distill import TeacherPreprocessing

    student = student_preprocessing(data)
    declared = config.preprocessing
    if isinstance(declared, TeacherPreprocessing):
        scale = student.scale if declared.scale is None else declared.scale
        return replace(raw_preprocessing(student), scale=scale).with_normalisation(
            declared.mean, declared.std
        ), "declared in [teacher] preprocessing"
    if declared == "student":
        return student, 'declared: [teacher] preprocessing = "student"'
    if declared == "raw":
        return raw_preprocessing(student), 'declared: [teacher] preprocessing = "raw"'
    if config.kind in ("builtin", "soft_labels"):
        return student, "default for a teacher trained by edgekd: the student's inputs"
    recorded = onnx_recorded_preprocessing(session) if session is not None else None
    if recorded is not None:
        if "scale" not in recorded:  # written before `scale` existed: its mean/std were of the loaded floats
            recorded = {**recorded, "scale": student.scale}
        return Preprocessing.from_dict(recorded), "recorded in the ONNX file's edgekd metadata"
    return raw_preprocessing(student), "default for an imported teacher: the raw inputs as loaded (not normalised)"


def onnx_recorded_preprocessing(session: Any) -> dict[str, Any] | None:
    """The preprocessing an edgekd-written ONNX file records in its metadata_props, else None."""
    try:
        meta = session.get_modelmeta()
        props = dict(meta.custom_metadata_map)
    except Exception:  # noqa: BLE001 - a session without metadata support: nothing recorded
        return None
    if meta.producer_name != "edgekd" or "preprocessing" not in props:
        return None
    try:
        value = json.loads(props["preprocessing"])
    except ValueError:
        return None
    return value if isinstance(value, dict) and value else None


def describe(prep: Preprocessing, student: Preprocessing) -> str:
    """Words for a preprocessing, relative to the student's: used in the teacher-check message."""
    if prep == student:
        return "the student's inputs" + (" (standardised)" if student.normalises else "")
    if prep == raw_preprocessing(student):
        return "the raw inputs" + (
            f" (scaled by {_number(prep.scale)}, not normalised)" if prep.scale != 1 else " (not normalised)"
        )
    return f"inputs with scale {_number(prep.scale)}, mean {_values(prep.mean) or 0}, std {_values(prep.std) or 1}"


def recipe_value(prep: Preprocessing, student: Preprocessing) -> str:
    """The `[teacher] preprocessing = ...` value that declares `prep`."""
    if prep == student:
        return '"student"'
    if prep == raw_preprocessing(student):
        return '"raw"'
    return f"{{ scale = {_number(prep.scale)}, mean = [{_values(prep.mean)}], std = [{_values(prep.std)}] }}"


def _number(value: float) -> str:
    return f"{value:.6g}"


def _values(values: tuple[float, ...]) -> str:
    return ", ".join(_number(v) for v in values)
