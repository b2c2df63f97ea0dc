"""Numbers distill reports: labelled share, model size, teacher accuracy, and the KD-vs-scratch noise test."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from torch import nn

    from edgekd.data.datasets import Dataset
    from edgekd.distill.teachers import Teacher


def labelled_mask(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A seeded, stratified choice of round(fraction · n_c) samples per class (at least one) whose labels stay visible."""
    mask = np.zeros(len(y), dtype=bool)
    if fraction >= 1.0:
        mask[:] = True
        return mask
    rng = np.random.default_rng([seed, 0x1AB])
    for cls in np.unique(y):
        members = np.flatnonzero(y == cls)
        keep = max(1, round(fraction * len(members)))
        mask[rng.choice(members, size=keep, replace=False)] = True
    return mask


def model_size(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, int]:
    """(parameters, FLOPs of one forward pass on one sample)."""
    from edgekd.distill.flops import count_flops
    from edgekd.distill.models import count_parameters

    return count_parameters(model), count_flops(model, input_shape)


def teacher_accuracy(teacher: Teacher, mapping: list[list[int]], data: Dataset) -> float | None:
    """The teacher's test accuracy over the student's classes; None if it cannot score the test split."""
    from edgekd.distill.teachers import map_logits
    from edgekd.errors import DataError

    ids = data.ids_test if data.ids_test is not None else np.arange(len(data.x_test))
    try:
        logits = map_logits(teacher.logits(data.x_test, ids), mapping)
    except DataError:  # a soft-label file that covers only the training samples
        return None
    return float(np.mean(logits.argmax(axis=1) == data.y_test))


def noise_test(kd_correct: np.ndarray, scratch_correct: np.ndarray, z: float = 1.96) -> dict[str, Any]:
    """Is the accuracy difference of two models on the same test samples within noise? (McNemar, 95%).

    Only samples where exactly one model is right carry information: b = KD right / scratch wrong,
    c = the reverse. Under "no difference", b - c has standard deviation sqrt(b + c).
    """
    b = int(np.sum(kd_correct & ~scratch_correct))
    c = int(np.sum(~kd_correct & scratch_correct))
    threshold = z * math.sqrt(b + c)
    n = len(kd_correct)
    return {
        "within_noise": bool(abs(b - c) <= threshold),
        "method": f"paired McNemar test on {n} test samples at 95%: |b - c| <= 1.96 * sqrt(b + c)",
        "kd_only_correct": b,
        "scratch_only_correct": c,
        "noise_band": threshold / n if n else None,  # ± as an accuracy fraction
    }
