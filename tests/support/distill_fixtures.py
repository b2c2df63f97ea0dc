"""Small, fast building blocks for the distillation tests: digits data, a quickly trained teacher."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekd.artifacts import Artifact
from edgekd.config.data import DataConfig
from edgekd.config.distill import DistillConfig, LossConfig, ModelSpec, StudentConfig, TeacherConfig, TrainConfig
from edgekd.data.datasets import Dataset, load_dataset

# A recipe for command-level tests: tiny teacher and student, two epochs.
SMALL_RECIPE = """
[run]
name = "ddp"
[teacher]
model = { arch = "cnn", width = 8, depth = 2 }
train = { epochs = 2 }
[student]
model = { arch = "cnn", width = 4, depth = 2 }
[distill]
train = { epochs = 2, batch_size = 32, augment = true }
"""

QUICK_TEACHER = TeacherConfig(model=ModelSpec(arch="cnn", width=16, depth=2), train=TrainConfig(epochs=6, lr=5e-3))
TINY_STUDENT = StudentConfig(model=ModelSpec(arch="cnn", width=4, depth=2))


def digits(seed: int = 0, **data: Any) -> Dataset:
    return load_dataset(DataConfig(**data), seed)


def quick_teacher(out_dir: Path, data: Dataset, seed: int = 0) -> Artifact:
    from edgekd.distill.api import prepare_teacher

    return prepare_teacher(QUICK_TEACHER, data, seed=seed, out_dir=out_dir, base_dir=out_dir)


def quick_distill(epochs: int = 3, losses: list[LossConfig] | None = None, **extra: Any) -> DistillConfig:
    train = {"epochs": epochs, "lr": 2e-2, **extra.pop("train", {})}
    return DistillConfig(losses=losses or [LossConfig()], train=TrainConfig(**train), **extra)


def make_mlp(input_shape: tuple[int, ...], num_classes: int) -> Any:
    """A user factory for `[teacher] kind = "module"` tests (imported as tests.support.distill_fixtures:make_mlp)."""
    from edgekd.distill.models import build_model

    return build_model({"arch": "mlp", "width": 32, "depth": 1}, input_shape, num_classes)


def make_plain_mlp(input_shape: tuple[int, ...], num_classes: int) -> Any:
    """A user's own factory in plain torch (no edgekd code): Flatten -> 64 -> ReLU -> classes."""
    from torch import nn

    features = 1
    for dim in input_shape:
        features *= int(dim)
    return nn.Sequential(nn.Flatten(), nn.Linear(features, 64), nn.ReLU(), nn.Linear(64, num_classes))


def raw_digits() -> tuple[Any, Any]:
    """The digits as a user outside edgekd has them: (N, 1, 8, 8) float32 in 0..1 (0..16 / 16), labels."""
    import numpy as np
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return (bunch.images.astype(np.float32) / 16.0)[:, None, :, :], bunch.target.astype(np.int64)


def train_outside_edgekd(x: Any, y: Any, epochs: int = 30, seed: int = 0) -> Any:
    """Train make_plain_mlp on (x, y) with a plain torch loop (Adam, batch 64): a teacher edgekd did not make."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    model = make_plain_mlp(tuple(x.shape[1:]), int(y.max()) + 1)
    optimizer = torch.optim.Adam(model.parameters(), 1e-2)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(epochs):
        order = torch.randperm(len(xt))
        for i in range(0, len(xt), 64):
            batch = order[i : i + 64]
            loss = nn.functional.cross_entropy(model(xt[batch]), yt[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


# Factories with the shapes users write (for the factory-signature tests).
def factory_num_classes_only(num_classes: int) -> Any:
    """Takes only num_classes (a model with a fixed 8x8 grey input)."""
    return make_plain_mlp((1, 8, 8), num_classes)


def factory_in_channels(in_channels: int, num_classes: int = 10) -> Any:
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(in_channels, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes)
    )


def factory_needs_depth(input_shape: tuple[int, ...], num_classes: int, depth: int) -> Any:
    """A required parameter edgekd cannot fill."""
    return make_plain_mlp(input_shape, num_classes)


def factory_returns_a_class(input_shape: tuple[int, ...], num_classes: int) -> Any:
    from torch import nn

    return nn.Linear


def factory_rgb(input_shape: tuple[int, ...], num_classes: int) -> Any:
    """Hard-coded for 3-channel images: the wrong channel count for grey digits."""
    return factory_in_channels(3, num_classes)
