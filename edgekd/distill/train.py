"""The training loop shared by teacher, KD student and scratch baseline.

What is optimised is an `Objective` (it runs the model and returns the loss); this module owns
everything around it: seeded batch order, optional augmentation, AdamW/SGD with a cosine or step
schedule, validation each epoch (accuracy and loss), the checkpoint policy (`select`: best validation
accuracy from `min_epochs` on, ties to the lower validation loss; or the last epoch) with early stopping,
a checkpoint each epoch (resumable, loaded with weights_only=True), NaN/Inf detection naming the batch,
progress, and DistributedDataParallel when torch.distributed is initialised (rank 0 writes).
The selection policy and the checkpoint file live in checkpoint.py, the scoring in evaluation.py.

History rows are JSON-clean: a value that does not exist (validation accuracy without a validation
split) is None, never NaN.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from edgekd.config.distill import TrainConfig
from edgekd.distill.augment import views
from edgekd.distill.checkpoint import advance, fresh_state, load_checkpoint, save_checkpoint
from edgekd.distill.device import Precision, resolve_device, to_device
from edgekd.distill.evaluation import accuracy, evaluate, predict, validate
from edgekd.errors import ModelError, RecipeError

__all__ = [  # accuracy, evaluate, predict: re-exported from evaluation.py for callers that import them from here
    "EpochCallback", "FitResult", "Objective", "TrainData", "accuracy", "check_train_config", "distributed", "epoch_order",
    "evaluate", "fit", "learning_rate", "make_optimizer", "predict", "run_fingerprint", "torch_threads", "validate",
]  # fmt: skip

if TYPE_CHECKING:
    import torch
    from torch import nn

PROGRESS_EVERY = 16  # steps between progress-bar updates (Python work per step stays constant and small)
log = logging.getLogger(__name__)


@dataclass
class TrainData:
    """Training arrays. `y` holds -1 where the label is hidden; `ids` are stable sample ids.

    `val_teacher`: the teacher's logits on `x_val` (mapped to the student's classes); with it, every
    epoch also records the student's top-1 agreement with the teacher and KL(teacher ‖ student).
    """

    x: np.ndarray
    y: np.ndarray
    ids: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    val_teacher: np.ndarray | None = None


class Objective(Protocol):
    """Computes the loss of one batch. `positions` index the training arrays; `x` may be augmented."""

    def parameters(self) -> list[torch.nn.Parameter]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> Any: ...

    def loss(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, positions: np.ndarray, epoch: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (scalar loss, student logits)."""
        ...


@dataclass
class FitResult:
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    resumed_from: int = 0  # epochs already done when the run was resumed
    selected: str = "last"  # how the kept weights were chosen: "best_val" or "last"
    warnings: list[str] = field(default_factory=list)  # e.g. "best_val" falling back to "last" without validation data


EpochCallback = Callable[[str, dict[str, Any]], None]  # (fit label, the epoch's history row)


def check_train_config(config: TrainConfig, has_val: bool, section: str) -> list[str]:
    """Refuse what cannot take effect without a validation split; return the warnings to record.

    `section` names the recipe table in messages (e.g. "[distill] train").
    """
    if has_val:
        return []
    if config.patience is not None:
        raise RecipeError(f"{section}: patience = {config.patience} needs a validation split, but it is empty (val_fraction = 0)",
                          hint="set [data] val_fraction > 0, or remove patience")  # fmt: skip
    if config.select == "best_val":
        return [(f'{section}: no validation split (val_fraction = 0), so select = "best_val" fell back to "last": '
                 "the final epoch's weights are kept")]  # fmt: skip
    return []


def distributed() -> tuple[int, int]:
    """(rank, world size); (0, 1) when torch.distributed is not initialised."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def epoch_order(
    pool: np.ndarray, seed: int, epoch: int, rank: int, world: int, batch_size: int, steps: int | None
) -> list[np.ndarray]:
    """This rank's batches for one epoch: a seeded permutation of `pool`, sharded across ranks.

    With `steps`, permutations are repeated until every rank has that many batches (same optimiser
    budget for a smaller labelled pool).
    """
    rng = np.random.default_rng([seed, epoch, 0x5EED])
    per_rank = math.ceil(len(pool) / world)
    n_steps = steps if steps is not None else math.ceil(per_rank / batch_size)
    needed = n_steps * batch_size * world if steps is not None else per_rank * world
    chunks = [rng.permutation(pool)]
    while sum(len(c) for c in chunks) < needed:
        chunks.append(rng.permutation(pool))
    order = np.concatenate(chunks)[:needed]
    shard = order[rank::world]  # like DistributedSampler: interleaved, equal length on every rank
    return [shard[i : i + batch_size] for i in range(0, len(shard), batch_size)][:n_steps]


def learning_rate(config: TrainConfig, step: int, total_steps: int) -> float:
    """Per-step schedule: cosine to 0 (also the "patient" preset), or ×0.1 at 50% and 75% of training, or constant."""
    progress = step / max(1, total_steps)
    if config.schedule in ("cosine", "patient"):
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    if config.schedule == "step":
        return config.lr * (0.1 ** (int(progress >= 0.5) + int(progress >= 0.75)))
    return config.lr


def make_optimizer(config: TrainConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """AdamW or SGD, fused (one kernel for all parameters) where torch supports it: measured 0.50 -> 0.23 ms per
    step for the demo's student on one CPU thread, ~8 % of its whole step."""
    import torch

    def build(fused: bool | None = None) -> torch.optim.Optimizer:
        if config.optimizer == "sgd":
            return torch.optim.SGD(
                params, lr=config.lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay, fused=fused
            )
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused)

    try:
        return build(fused=True)
    except (RuntimeError, TypeError, ValueError):  # an older torch, or a device without fused kernels
        return build()


def run_fingerprint(config: TrainConfig, seed: int, data: TrainData, label: str, extra: dict[str, Any]) -> str:
    """What a checkpoint must match to be resumed: config, seed, data and objective description."""
    payload = {"config": config.model_dump(mode="json"), "seed": seed, "label": label, "extra": extra,
               "n": len(data.x), "labelled": int((data.y >= 0).sum()), "shape": list(data.x.shape)}  # fmt: skip
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def fit(
    model: nn.Module,
    data: TrainData,
    config: TrainConfig,
    objective: Objective,
    *,
    seed: int,
    label: str,
    pool: np.ndarray | None = None,
    steps_per_epoch: int | None = None,
    checkpoint: Path | None = None,
    resume: bool = False,
    fingerprint_extra: dict[str, Any] | None = None,
    progress: Any = None,
    on_epoch: EpochCallback | None = None,
) -> FitResult:
    """Train `model` in place; on return it holds the best-validation weights (or the last ones).

    `on_epoch(label, row)` is called on rank 0 after each epoch's validation with that epoch's history row;
    an exception it raises ends training there (a sweep prunes a hopeless trial this way)."""
    with torch_threads(config.threads):
        return _fit(model, data, config, objective, seed=seed, label=label, pool=pool, steps_per_epoch=steps_per_epoch,
                    checkpoint=checkpoint, resume=resume, fingerprint_extra=fingerprint_extra, progress=progress,
                    on_epoch=on_epoch)  # fmt: skip


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with `threads` intra-op threads (0: leave torch's setting), then restore it."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _fit(model: nn.Module, data: TrainData, config: TrainConfig, objective: Objective, *, seed: int, label: str,
         pool: np.ndarray | None, steps_per_epoch: int | None, checkpoint: Path | None, resume: bool,
         fingerprint_extra: dict[str, Any] | None, progress: Any, on_epoch: EpochCallback | None) -> FitResult:  # fmt: skip
    import torch

    rank, world = distributed()
    pool = np.arange(len(data.x)) if pool is None else pool
    if len(pool) == 0:
        raise ModelError(f"{label}: no training samples", hint="the data set or the labelled share is empty")
    device = resolve_device(config.device)
    precision = Precision(config.amp, device)
    model.to(device)
    if hasattr(objective, "to"):
        objective.to(device)
    if device.type == "cuda" and len(data.x.shape) == 4:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # NHWC convolutions on GPUs (torch's stub lacks it)
    augmenting = config.augmentation
    trainable = list(model.parameters()) + list(objective.parameters())
    optimizer = make_optimizer(config, trainable)
    runner: nn.Module = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        runner = DistributedDataParallel(model)
    fingerprint = run_fingerprint(config, seed, data, label, fingerprint_extra or {})
    result = FitResult()
    state = fresh_state()
    if resume and checkpoint is not None and checkpoint.exists():
        state = load_checkpoint(checkpoint, fingerprint, model, objective, optimizer, label)
        result.resumed_from = state["epoch"]
    result.history = state["history"]
    batch_size = config.batch_for(
        len(data.x)
    )  # of the whole training split: a smaller labelled pool keeps the KD run's batches
    steps = len(epoch_order(pool, seed, 0, rank, world, batch_size, steps_per_epoch))
    total_steps = steps * config.epochs
    task = (
        progress.add_task(label, total=total_steps, completed=state["epoch"] * steps, status="")
        if progress is not None
        else None
    )
    has_val = len(data.y_val) > 0
    result.warnings = check_train_config(config, has_val, label)
    for warning in result.warnings:
        log.warning("%s", warning)
    selecting = has_val and config.select == "best_val"
    for epoch in range(state["epoch"], config.epochs):
        started, cpu_started = time.perf_counter(), time.process_time()
        model.train()
        batches = epoch_order(pool, seed, epoch, rank, world, batch_size, steps_per_epoch)
        step_losses: list[torch.Tensor] = []  # stay on the device: no per-step host sync
        correct = torch.zeros((), dtype=torch.int64, device=device)
        seen = 0
        for step, batch in enumerate(batches):
            lr = learning_rate(config, epoch * steps + step, total_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x = views(data.x, batch, seed, epoch, augmenting) if augmenting is not None else data.x[batch]
            y_host = data.y[batch]
            y = to_device(torch.from_numpy(y_host), device)
            with precision.autocast():
                loss, logits = objective.loss(runner, to_device(torch.from_numpy(x), device), y, batch, epoch)
            optimizer.zero_grad(set_to_none=True)
            precision.backward(loss)
            if world > 1:
                precision.unscale(optimizer)
                _all_reduce_grads(list(objective.parameters()), world)  # DDP syncs the model; adapters by hand
            precision.step(optimizer)
            step_losses.append(loss.detach())
            correct += logits.detach().argmax(-1).eq(y).sum()  # a hidden label (-1) never matches
            seen += int((y_host >= 0).sum())  # host labels: no device sync
            if task is not None and (step % PROGRESS_EVERY == 0 or step == len(batches) - 1):
                progress.update(task, completed=epoch * steps + step + 1)
        epoch_losses = torch.stack(step_losses).float().cpu().numpy()  # the epoch's one host sync
        if not np.all(np.isfinite(epoch_losses)):
            bad = int(np.flatnonzero(~np.isfinite(epoch_losses))[0])
            bad_x = (
                views(data.x, batches[bad], seed, epoch, augmenting) if augmenting is not None else data.x[batches[bad]]
            )
            raise _non_finite(label, float(epoch_losses[bad]), epoch, bad, data.ids[batches[bad]], bad_x)
        train_seconds = time.perf_counter() - started  # the optimiser steps alone, without validation and checkpoint
        train_cpu_seconds = time.process_time() - cpu_started  # CPU time of this process: robust to a busy host
        if world > 1:
            _broadcast_buffers(
                model
            )  # identical BatchNorm statistics → identical validation → same early-stop decision
        scores = validate(model, data.x_val, data.y_val, data.val_teacher, device=device, autocast=precision.autocast)
        val_acc = scores["val_accuracy"]
        row = {"epoch": epoch + 1, "loss": _mean_across_ranks(float(np.mean(epoch_losses)), world),
               "train_accuracy": int(correct) / seen if seen else None, **scores,
               "lr": lr, "steps": len(batches), "batch_size": batch_size, "world_size": world, "train_seconds": train_seconds,
               "train_cpu_seconds": train_cpu_seconds, "device": str(device), "amp": precision.name,
               "seconds": time.perf_counter() - started}  # fmt: skip
        result.history.append(row)
        state = advance(state, row, model, config.first_selectable_epoch if selecting else None)
        if task is not None:
            shown = "" if val_acc is None else f" val {val_acc:.3f}"
            progress.update(task, status=f"loss {row['loss']:.3f}{shown}")
        if checkpoint is not None and rank == 0:
            save_checkpoint(checkpoint, fingerprint, state, model, objective, optimizer)
        if on_epoch is not None and rank == 0:
            on_epoch(label, row)
        if config.patience is not None and selecting and state["bad_epochs"] >= config.patience:
            result.stopped_early = True
            break
    if task is not None:
        progress.update(task, completed=total_steps)
    if selecting and state["best_state"] is not None:
        model.load_state_dict(state["best_state"])
    model.to("cpu", memory_format=torch.contiguous_format)  # type: ignore[call-overload]  # callers export, predict and save on the CPU
    result.selected = "best_val" if selecting else "last"
    result.best_epoch = state["best_epoch"] if selecting and state["best_epoch"] else len(result.history)
    model.eval()
    return result


def _non_finite(label: str, value: float, epoch: int, step: int, ids: np.ndarray, x: np.ndarray) -> ModelError:
    shown = ", ".join(str(int(i)) for i in ids[:8]) + (" …" if len(ids) > 8 else "")
    cause = (
        "the batch itself contains NaN/Inf"
        if not np.all(np.isfinite(x))
        else "the inputs are finite, so training diverged"
    )
    return ModelError(
        f"{label}: loss became {value} at epoch {epoch + 1}, batch {step} (sample ids {shown}); {cause}",
        hint="lower the learning rate or the temperature, or check those samples and the teacher's outputs for them",
    )


def _all_reduce_grads(params: list[torch.nn.Parameter], world: int) -> None:
    import torch.distributed as dist

    for param in params:
        if param.grad is not None:
            dist.all_reduce(param.grad)
            param.grad /= world


def _broadcast_buffers(model: nn.Module) -> None:
    import torch.distributed as dist

    for buffer in model.buffers():
        dist.broadcast(buffer, src=0)


def _mean_across_ranks(value: float, world: int) -> float:
    if world == 1:
        return value
    import torch
    import torch.distributed as dist

    tensor = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(tensor)
    return float(tensor.item() / world)
