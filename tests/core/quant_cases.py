"""Students and data for the quantization tests and the `quant` bench suite (built here, outside edgekd).

The hard case for rung 4 is a MobileNetV3-style student on digits (8x8, one channel): a hard-swish stem, a
ReLU depthwise block (as MobileNetV3's early blocks), a hard-swish inverted-residual block with
squeeze-excite (hard-sigmoid gate), global pooling and a linear head. After training, one channel of the
ReLU depthwise output is rescaled by `OUTLIER_GAIN` (its BN gamma and beta times k, the projection's input
column divided by k). ReLU(k z) = k ReLU(z), so the float model computes exactly the same function; but the
depthwise output is quantized per tensor in every runtime, so its range is now set by that one channel and
the other channels keep only a few int8 levels. Depthwise channel ranges differing by 10-100x are what
Nagel et al. measured on trained MobileNetV2 ("Data-Free Quantization", ICCV 2019): a real failure mode,
made here on purpose and deterministic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

OUTLIER_GAIN = 100.0
OUTLIER_CHANNEL = 0


class SqueezeExcite(nn.Module):
    """x * hardsigmoid(W2 relu(W1 avgpool(x))): MobileNetV3's channel gate."""

    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.act = nn.ReLU()
        self.expand = nn.Conv2d(reduced, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


class MobileStudent(nn.Module):
    """(N, 1, 8, 8) -> (N, classes): stem, ReLU depthwise block, hard-swish block with SE, pool, head."""

    def __init__(self, classes: int = 10, width: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.Hardswish())
        self.dw1 = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, groups=width, bias=False), nn.BatchNorm2d(width),
                                 nn.ReLU())  # fmt: skip
        self.project1 = nn.Sequential(nn.Conv2d(width, 24, 1, bias=False), nn.BatchNorm2d(24))
        self.expand2 = nn.Sequential(nn.Conv2d(24, 48, 1, bias=False), nn.BatchNorm2d(48), nn.Hardswish())
        self.dw2 = nn.Sequential(nn.Conv2d(48, 48, 3, stride=2, padding=1, groups=48, bias=False), nn.BatchNorm2d(48),
                                 nn.Hardswish())  # fmt: skip
        self.se2 = SqueezeExcite(48, 12)
        self.project2 = nn.Sequential(nn.Conv2d(48, 32, 1, bias=False), nn.BatchNorm2d(32), nn.Hardswish())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(32, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.project1(self.dw1(self.stem(x)))
        x = self.project2(self.se2(self.dw2(self.expand2(x))))
        return self.head(torch.flatten(self.pool(x), 1))


class Teacher(nn.Module):
    """A wider plain CNN: (N, 1, 8, 8) -> (N, classes)."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(64, classes),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class CnnStudent(nn.Module):
    """A plain small CNN: (N, 1, 8, 8) -> (N, classes)."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, classes),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class TransformerStudent(nn.Module):
    """One pre-norm transformer block over the 8 rows of a digit as tokens: (N, 1, 8, 8) -> (N, classes).

    Attention written with MatMul/Softmax (no fused op) and a hard-swish MLP: at opset 18 GELU becomes Erf,
    which TFLite has only as a Flex op."""

    def __init__(self, classes: int = 10, dim: int = 32) -> None:
        super().__init__()
        self.embed = nn.Linear(8, dim)
        self.pos = nn.Parameter(torch.zeros(1, 8, dim))
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.Hardswish(), nn.Linear(2 * dim, dim))
        self.head = nn.Linear(dim, classes)
        self.scale = dim**-0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x.reshape(x.shape[0], 8, 8)) + self.pos  # (N, 1, 8, 8) -> (N, 8 rows, dim)
        q, k, v = self.qkv(self.norm1(tokens)).chunk(3, dim=-1)
        attention = torch.softmax(q @ k.transpose(1, 2) * self.scale, dim=-1)  # (N, 8, 8)
        tokens = tokens + self.proj(attention @ v)
        tokens = tokens + self.mlp(self.norm2(tokens))
        return self.head(tokens.mean(dim=1))


def rescale_depthwise_channel(
    student: MobileStudent, channel: int = OUTLIER_CHANNEL, gain: float = OUTLIER_GAIN
) -> None:
    """Function-preserving outlier: dw1's BN output channel times `gain`, project1's input column divided by it."""
    with torch.no_grad():
        bn = student.dw1[1]
        bn.weight[channel] *= gain
        bn.bias[channel] *= gain
        student.project1[0].weight[:, channel] /= gain


def digits() -> dict[str, np.ndarray]:
    """sklearn's bundled digits as (N, 1, 8, 8) float32 in [0, 1]; a fixed train/val split and calibration."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None]
    y = bunch.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    return {"x_train": x[:1300], "y_train": y[:1300], "x_val": x[1300:], "y_val": y[1300:], "x_calib": x[:256]}


def train(model: nn.Module, x: np.ndarray, y: np.ndarray, *, epochs: int, lr: float, seed: int,
          teacher: nn.Module | None = None) -> nn.Module:  # fmt: skip
    """Plain training loop (labels, or Hinton KD against `teacher`): how a user trains outside edgekd."""
    import torch.nn.functional as F

    from edgekd.distill.train import torch_threads

    with torch_threads(1):  # tiny models: one thread is as fast and does not spin on a busy machine
        return _train(model, x, y, epochs=epochs, lr=lr, seed=seed, teacher=teacher, F=F)


def _train(model: nn.Module, x: np.ndarray, y: np.ndarray, *, epochs: int, lr: float, seed: int,
           teacher: nn.Module | None, F: Any) -> nn.Module:  # fmt: skip
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        model.train()
        for idx in np.array_split(rng.permutation(len(x)), max(1, len(x) // 64)):
            xb, yb = torch.from_numpy(x[idx]), torch.from_numpy(y[idx])
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            if teacher is not None:
                with torch.no_grad():
                    soft = F.log_softmax(teacher(xb) / 4.0, dim=1)
                kd = F.kl_div(F.log_softmax(logits / 4.0, dim=1), soft, reduction="batchmean", log_target=True)
                loss = 0.5 * loss + 0.5 * 16.0 * kd
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def export_onnx(model: nn.Module, path: Path) -> Path:
    """torch's dynamo exporter, batch 1 fixed, weights inside the file."""
    model.eval()
    torch.onnx.export(model, (torch.zeros(1, 1, 8, 8),), str(path), dynamo=True, external_data=False, opset_version=18)
    return path


def mobile_hard_case(root: Path, *, seed: int = 0, epochs: int = 30) -> dict[str, Any]:
    """Teacher, outlier-rescaled MobileNet-style student (torch + fp32 ONNX) and the npz files the ladder reads."""
    data = digits()
    torch.manual_seed(seed)
    teacher = train(Teacher(), data["x_train"], data["y_train"], epochs=epochs, lr=3e-3, seed=seed)
    torch.manual_seed(seed)
    student = train(
        MobileStudent(), data["x_train"], data["y_train"], epochs=epochs, lr=3e-3, seed=seed, teacher=teacher
    )
    rescale_depthwise_channel(student)
    root.mkdir(parents=True, exist_ok=True)
    np.savez(root / "val.npz", x=data["x_val"], y=data["y_val"])
    np.savez(root / "calib.npz", x=data["x_calib"])
    np.savez(root / "train.npz", x=data["x_train"], y=data["y_train"])
    return {
        "teacher": teacher.eval(),
        "student": student.eval(),
        "onnx": export_onnx(student, root / "student.onnx"),
        "data": root / "val.npz",
        "calibration": root / "calib.npz",
        "train": root / "train.npz",
    }
