"""Training state across epochs: the checkpoint policy (best validation epoch, early-stopping counter) and
the resumable checkpoint file (torch.save, read back with weights_only=True).

Schema /2: best validation loss and the selection policy in the state.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekd.errors import CacheError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from edgekd.distill.train import Objective

CHECKPOINT_SCHEMA = "edgekd.checkpoint/2"


def fresh_state() -> dict[str, Any]:
    return {
        "epoch": 0,
        "history": [],
        "best_state": None,
        "best_val": -1.0,
        "best_loss": math.inf,
        "best_epoch": 0,
        "bad_epochs": 0,
    }


def advance(state: dict[str, Any], row: dict[str, Any], model: nn.Module, first: int | None) -> dict[str, Any]:
    """Track the kept epoch and the early-stopping counter.

    `first` is the first selectable epoch (None: no selection, the last epoch is kept). From it on, an
    epoch is kept when its validation accuracy is higher, or equal with a lower-or-equal validation loss
    (a tiny validation split saturates at 100 %: the loss still tells later, better-trained epochs apart).
    Only a strict improvement of (accuracy, -loss) resets the patience counter.
    """
    state = dict(state, epoch=int(row["epoch"]))
    if first is None or row["epoch"] < first:
        return state
    acc = row["val_accuracy"]
    loss = row["val_loss"] if row["val_loss"] is not None else math.inf
    improves = acc > state["best_val"] or (acc == state["best_val"] and loss < state["best_loss"])
    keeps = improves or (acc == state["best_val"] and loss <= state["best_loss"])
    if keeps:
        state.update(best_val=acc, best_loss=loss, best_epoch=int(row["epoch"]),
                     best_state={k: v.detach().clone() for k, v in model.state_dict().items()})  # fmt: skip
    state["bad_epochs"] = 0 if improves else state["bad_epochs"] + 1
    return state


def save_checkpoint(
    path: Path,
    fingerprint: str,
    state: dict[str, Any],
    model: nn.Module,
    objective: Objective,
    optimizer: torch.optim.Optimizer,
) -> None:
    import torch

    from edgekd.fileio import atomic_path

    payload = {"schema": CHECKPOINT_SCHEMA, "fingerprint": fingerprint, **state, "model": model.state_dict(),
               "objective": objective.state_dict(), "optimizer": optimizer.state_dict()}  # fmt: skip
    if payload["best_state"] is None:
        payload["best_state"] = {}
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(payload, tmp)


def load_checkpoint(
    path: Path, fingerprint: str, model: nn.Module, objective: Objective, optimizer: torch.optim.Optimizer, label: str
) -> dict[str, Any]:
    import pickle

    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        raise CacheError(f"{label}: checkpoint {path} cannot be read: {str(exc).splitlines()[0]}",
                         hint="delete it to start this training afresh") from None  # fmt: skip
    if payload.get("schema") != CHECKPOINT_SCHEMA or payload.get("fingerprint") != fingerprint:
        raise CacheError(
            f"{label}: checkpoint {path} belongs to a different configuration, seed or data set",
            hint="delete it (or the run directory) to start afresh, or restore the recipe it was made with",
        )
    model.load_state_dict(payload["model"])
    objective.load_state_dict(payload["objective"])
    optimizer.load_state_dict(payload["optimizer"])
    keys = ("epoch", "history", "best_val", "best_loss", "best_epoch", "bad_epochs")
    state = {k: payload[k] for k in keys}
    state["best_state"] = payload["best_state"] or None
    return state
