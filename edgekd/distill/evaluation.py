"""Scoring a model on a split: accuracy, cross-entropy, agreement with the teacher, predictions.

Used each epoch by the training loop (validation, one host transfer per call) and by callers that score a
finished model (test accuracy, QAT).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekd.distill.device import to_device

if TYPE_CHECKING:
    from torch import nn


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 512) -> float | None:
    """Top-1 accuracy of `model` on (x, y), in [0, 1]; None for an empty split."""
    predictions = predict(model, x, batch_size)
    return float(np.mean(predictions == y)) if len(y) else None


def evaluate(
    model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 512
) -> tuple[float | None, float | None]:
    """(top-1 accuracy, mean cross-entropy) of `model` on (x, y); (None, None) for an empty split.

    The loss is None for models whose logits are not (batch, classes).
    """
    scores = validate(model, x, y, batch_size=batch_size)
    return scores["val_accuracy"], scores["val_loss"]


def validate(model: nn.Module, x: np.ndarray, y: np.ndarray, teacher: np.ndarray | None = None, *, batch_size: int = 512,
             device: Any = None, autocast: Any = None) -> dict[str, float | None]:  # fmt: skip
    """Validation scores: accuracy, cross-entropy and, given the teacher's logits, top-1 agreement with the
    teacher and KL(softmax(teacher) ‖ softmax(student)) per sample (T = 1, as big_vision's distillation evals).

    Sums stay on the device; one host transfer at the end (no per-batch sync).
    """
    import torch
    import torch.nn.functional as F

    empty: dict[str, float | None] = {
        "val_accuracy": None,
        "val_loss": None,
        "val_teacher_agreement": None,
        "val_teacher_kl": None,
    }
    if len(y) == 0:
        return empty
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # correct, CE, agreeing, KL
    has_loss = True
    with torch.no_grad(), autocast() if autocast is not None else contextlib.nullcontext():
        for i in range(0, len(x), batch_size):
            logits = model(to_device(torch.from_numpy(x[i : i + batch_size]), device)).float()
            target = torch.from_numpy(np.asarray(y[i : i + batch_size], dtype=np.int64)).to(logits.device)
            sums[0] += (logits.argmax(-1) == target).sum()
            if logits.dim() != 2:
                has_loss = False
                continue
            sums[1] += F.cross_entropy(logits, target, reduction="sum")
            if teacher is not None:
                t = torch.from_numpy(np.asarray(teacher[i : i + batch_size], dtype=np.float32)).to(logits.device)
                sums[2] += (logits.argmax(-1) == t.argmax(-1)).sum()
                sums[3] += F.kl_div(F.log_softmax(logits, -1), F.log_softmax(t, -1), reduction="sum", log_target=True)
    model.train(was_training)
    correct, ce, agree, kl = (v / len(y) for v in sums.cpu().tolist())
    scores = dict(empty, val_accuracy=correct, val_loss=ce if has_loss else None)
    if teacher is not None and has_loss:
        scores.update(val_teacher_agreement=agree, val_teacher_kl=kl)
    return scores


def predict(model: nn.Module, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Top-1 class for each sample (the last axis of the logits)."""
    import torch

    was_training = model.training
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            out.append(model(torch.from_numpy(x[i : i + batch_size])).argmax(-1).numpy())
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)
