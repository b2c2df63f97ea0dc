"""Before distillation: is the teacher any good on this data, with the inputs it was declared to take?

The teacher is evaluated on the validation split (its own preprocessing) and compared with
- chance: the majority-class share of that split, plus the binomial 95 % band for its size;
- a quick baseline: logistic regression (scikit-learn) fitted on the training split, scored on the same
  validation samples; the teacher is "below" it when it is worse by more than 2 pt AND a paired McNemar
  test at 95 % says the difference is not noise.
An imported teacher is also scored with the other obvious preprocessing (the student's standardised
inputs / the raw inputs) on up to 2000 validation + training samples (more samples than the validation
split alone: a 3-pt loss is visible); one that beats the declared preprocessing by > 2 pt beyond noise
is a mismatch, and the message says what to declare. `[teacher] check = false` records the outcome
and goes on.

A builtin teacher (trained here, on the student's own data and inputs) stops the run only when it is
near chance; trailing the baseline is recorded as a warning (`warnings` in the record): the usual
cause is a short or small training budget, which the distill summary and report show.

Without a validation split the training split is used and only the chance test applies (the baseline
would be scored on its own training samples).
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekd.distill.teacher_inputs import describe, raw_preprocessing, recipe_value, student_preprocessing
from edgekd.errors import ModelError

if TYPE_CHECKING:
    from edgekd.data.datasets import Dataset
    from edgekd.distill.teachers import Teacher

BASELINE_MARGIN = 0.02  # the teacher may trail logistic regression by this much before it counts as below it
BASELINE_MAX_SAMPLES = 5000  # training samples the baseline is fitted on (seeded subsample above this)
BASELINE_MAX_SIDE = 16  # images are block-averaged to at most 16x16 for the baseline
PREPROCESSING_SAMPLES = 2000  # validation + training samples the declared and the other preprocessings are compared on


def check_teacher(teacher: Teacher, mapping: list[list[int]], data: Dataset, *, enforce: bool, builtin: bool = False,
                  seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """Evaluate the teacher and return the record for its sidecar; raise ModelError if it fails and `enforce`.

    `builtin`: a teacher edgekd trained (on its declared inputs by construction): trailing the baseline
    is then a warning, and the other preprocessings are not tried.
    """
    split, x, y, ids = _split(data, teacher)
    if split is None:
        return {
            "passed": None,
            "reason": "not checked: the soft-label file covers neither the validation nor the training split",
        }
    student = student_preprocessing(data)
    declared = teacher.preprocessing or student
    correct = _correct(teacher, mapping, x, y, ids)
    accuracy = float(correct.mean())
    chance = float(np.bincount(y).max() / len(y))
    chance_band = chance + 1.96 * math.sqrt(chance * (1 - chance) / len(y))
    record: dict[str, Any] = {"split": split, "samples": len(y), "accuracy": accuracy, "chance": chance,
                              "preprocessing": describe(declared, student), "baseline": None}  # fmt: skip
    baseline_correct = None
    if split == "val":
        baseline_correct, record["baseline"] = _baseline(data, seed)
    near_chance = accuracy <= chance_band and (baseline_correct is None or float(baseline_correct.mean()) > chance_band)
    below = baseline_correct is not None and _worse(correct, baseline_correct)
    mismatch = None
    if not builtin and teacher.kind != "npz":
        alternatives, mismatch = _compare_preprocessing(teacher, mapping, data, declared, student, seed)
        record["alternatives"] = alternatives
    if builtin and below and not near_chance:
        below = False
        record["warnings"] = [(f"the teacher trained here scores {accuracy:.1%} on the {split} split, below logistic regression's "
                               f"{record['baseline']['accuracy']:.1%}: train it longer or larger ([teacher] train)")]  # fmt: skip
    record["passed"] = not (near_chance or below or mismatch)
    if record["passed"]:
        return record
    record["reason"] = _message(record, near_chance, mismatch, declared, student)
    if enforce:
        hint = "or set [teacher] check = false to distil from this teacher anyway"
        if mismatch is None:
            hint = ("check its inputs ([teacher] preprocessing), classes and label_names, train it longer or larger, "
                    "or set [teacher] check = false to distil from it anyway")  # fmt: skip
        raise ModelError(record["reason"], hint=hint)
    return record


def _correct(teacher: Teacher, mapping: list[list[int]], x: np.ndarray, y: np.ndarray, ids: np.ndarray) -> np.ndarray:
    from edgekd.distill.teachers import map_logits

    return map_logits(teacher.logits(x, ids), mapping).argmax(axis=1) == y


def _worse(correct: np.ndarray, other: np.ndarray) -> bool:
    """`correct` trails `other` (per-sample correctness on the same samples) by > BASELINE_MARGIN beyond noise (McNemar 95 %)."""
    b = int(np.sum(correct & ~other))
    c = int(np.sum(~correct & other))
    return float(other.mean() - correct.mean()) > BASELINE_MARGIN and c - b > 1.96 * math.sqrt(b + c)


def _split(data: Dataset, teacher: Teacher) -> tuple[str | None, np.ndarray, np.ndarray, np.ndarray]:
    """The validation split, or the training split when there is none (or a soft-label file lacks it)."""
    choices = [("val", data.x_val, data.y_val, data.ids_val), ("train", data.x_train, data.y_train, data.ids_train)]
    for name, x, y, ids in choices:
        ids = ids if ids is not None else np.arange(len(x))
        if len(y) == 0:
            continue
        if teacher.kind == "npz" and any(int(i) not in teacher.table for i in ids):
            continue
        return name, x, y, ids
    return None, data.x_val, data.y_val, np.zeros(0, np.int64)


def _compare_preprocessing(teacher: Teacher, mapping: list[list[int]], data: Dataset, declared: Any, student: Any,
                           seed: int) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:  # fmt: skip
    """The teacher on up to PREPROCESSING_SAMPLES validation + training samples with the declared, the student's and
    the raw inputs. Returns (a row per other preprocessing, the mismatch: the best one that beats the declared one
    by > BASELINE_MARGIN beyond noise, or None). Labelled samples it may have been trained on are fine here: only
    the difference between two inputs of the same samples counts."""
    x = np.concatenate([data.x_val, data.x_train])
    y = np.concatenate([data.y_val, data.y_train])
    ids = np.concatenate([_ids(data.ids_val, len(data.x_val)), _ids(data.ids_train, len(data.x_train))])
    if len(y) > PREPROCESSING_SAMPLES:
        chosen = np.sort(np.random.default_rng([seed, 0x9E]).choice(len(y), PREPROCESSING_SAMPLES, replace=False))
        x, y, ids = x[chosen], y[chosen], ids[chosen]
    declared_correct = _correct(teacher, mapping, x, y, ids)
    rows, mismatch = [], None
    for prep in (student, raw_preprocessing(student)):
        if prep == declared or any(row["recipe"] == recipe_value(prep, student) for row in rows):
            continue
        other = _correct(replace(teacher, preprocessing=prep, student_preprocessing=student), mapping, x, y, ids)
        row = {"preprocessing": describe(prep, student), "recipe": recipe_value(prep, student), "accuracy": float(other.mean()),
               "declared_accuracy": float(declared_correct.mean()), "samples": len(y)}  # fmt: skip
        rows.append(row)
        if _worse(declared_correct, other) and (mismatch is None or row["accuracy"] > mismatch["accuracy"]):
            mismatch = row
    return rows, mismatch


def _ids(ids: np.ndarray | None, n: int) -> np.ndarray:
    return ids if ids is not None else np.arange(n)


def _message(
    record: dict[str, Any], near_chance: bool, mismatch: dict[str, Any] | None, declared: Any, student: Any
) -> str:
    split = "validation" if record["split"] == "val" else "training"
    compared = f"chance {record['chance']:.1%}"
    if record["baseline"] is not None:
        compared += f", logistic regression {record['baseline']['accuracy']:.1%}"
    if mismatch is not None:
        return (f"this teacher scores {mismatch['accuracy']:.1%} on {mismatch['preprocessing']} and {mismatch['declared_accuracy']:.1%} "
                f"on {describe(declared, student)} ({mismatch['samples']} training and validation samples; "
                f"{record['accuracy']:.1%} on the {split} split, {compared}): set [teacher] preprocessing = {mismatch['recipe']}")  # fmt: skip
    return (f"the teacher scores {record['accuracy']:.1%} on the {record['samples']}-sample {split} split with "
            f"{describe(declared, student)} ({'near chance' if near_chance else 'below a quick baseline'}: {compared})")  # fmt: skip


def _baseline(data: Dataset, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Logistic regression on the student's inputs: fitted on train, per-sample correctness on val."""
    from sklearn.linear_model import LogisticRegression

    started = time.perf_counter()
    rng = np.random.default_rng([seed, 0xBA5E])
    chosen = np.arange(len(data.x_train))
    if len(chosen) > BASELINE_MAX_SAMPLES:
        chosen = np.sort(rng.choice(chosen, BASELINE_MAX_SAMPLES, replace=False))
    y_train = data.y_train[chosen]
    if len(np.unique(y_train)) < 2:
        correct = data.y_val == y_train[0]
    else:
        model = LogisticRegression(max_iter=300)
        model.fit(_features(data.x_train[chosen]), y_train)
        correct = model.predict(_features(data.x_val)) == data.y_val
    record = {"method": f"logistic regression (scikit-learn) on the student's inputs, {len(chosen)} training samples",
              "accuracy": float(correct.mean()), "seconds": round(time.perf_counter() - started, 3)}  # fmt: skip
    return correct, record


def _features(x: np.ndarray) -> np.ndarray:
    """(N, F) features: images block-averaged to at most BASELINE_MAX_SIDE per side, then flattened."""
    if x.ndim == 4:
        h, w = x.shape[-2:]
        fy, fx = math.ceil(h / BASELINE_MAX_SIDE), math.ceil(w / BASELINE_MAX_SIDE)
        if fy > 1 or fx > 1:
            h2, w2 = h // fy * fy, w // fx * fx
            x = x[..., :h2, :w2].reshape(*x.shape[:2], h2 // fy, fy, w2 // fx, fx).mean(axis=(3, 5))
    return x.reshape(len(x), -1).astype(np.float64)
