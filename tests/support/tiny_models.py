"""Small seeded models beyond the built-in CNN, used as `custom` model factories by the converter tests.

Imported as `tests.support.tiny_models:<factory>` (the repo root is on pytest's pythonpath) so torch artifacts of these
models reload through edgekd's normal `load_torch_model` path.
"""

from __future__ import annotations

import torch
from torch import nn


class MobileNetSilu(nn.Module):
    """Depthwise-separable blocks with residual adds, SiLU inside the blocks and hardswish after the add."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.Hardswish()
        )
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(width, width, 3, padding=1, groups=width, bias=False),  # depthwise
                nn.BatchNorm2d(width),
                nn.SiLU(),
                nn.Conv2d(width, width, 1, bias=False),  # pointwise
                nn.BatchNorm2d(width),
            )
            for _ in range(2)
        )
        self.act = nn.Hardswish()
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, classes)
        x = self.stem(x)
        for block in self.blocks:
            x = self.act(x + block(x))  # residual add
        return self.head(x.mean(dim=(2, 3)))


class TinyTransformer(nn.Module):
    """One pre-norm transformer block over the image rows as tokens: LayerNorm, attention, GELU MLP."""

    def __init__(self, rows: int, features: int, num_classes: int, dim: int = 32, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.embed = nn.Linear(features, dim)
        self.position = nn.Parameter(torch.zeros(1, rows, dim))
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, T, F) -> (B, classes)
        tokens = self.embed(x.flatten(1, 2)) + self.position  # (B, T, D)
        batch, length, dim = tokens.shape
        q, k, v = self.qkv(self.norm1(tokens)).chunk(3, dim=-1)

        def split(t: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, H, T, D/H)
            return t.reshape(batch, length, self.heads, dim // self.heads).transpose(1, 2)

        attention = torch.softmax(split(q) @ split(k).transpose(-1, -2) / (dim // self.heads) ** 0.5, dim=-1)
        mixed = (attention @ split(v)).transpose(1, 2).reshape(batch, length, dim)
        tokens = tokens + self.proj(mixed)
        tokens = tokens + self.mlp(self.norm2(tokens))
        return self.head(tokens.mean(dim=1))


def mobilenet_silu(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return MobileNetSilu(input_shape[0], num_classes)


def tiny_transformer(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return TinyTransformer(input_shape[1], input_shape[2], num_classes)


class SignNet(nn.Module):
    """A conv whose output goes through |y| = y * sign(y): torch.sign is TFLite's SIGN, which TensorFlow Lite Micro has
    no kernel for (a model every other runtime runs, and the firmware's interpreter cannot)."""

    def __init__(self, in_channels: int, pixels: int, num_classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 4, 3, padding=1)
        self.fc = nn.Linear(4 * pixels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.fc((y * torch.sign(y)).flatten(1))


def sign_net(*, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return SignNet(input_shape[0], input_shape[1] * input_shape[2], num_classes)
