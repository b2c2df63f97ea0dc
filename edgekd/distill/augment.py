"""Seeded, per-sample augmentation: the same (seed, epoch, sample) always gives the same view.

Determinism per sample is what lets the teacher-output cache store augmented views (keyed by the
augmentation seed) and lets a resumed run replay exactly the epochs it missed. Mixup follows the same
rule: each sample's partner and weight come from (seed, epoch), so a mixed view is a per-sample view.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from edgekd.config.distill import AugmentConfig

MAX_SHIFT = 1  # pixels; digits are 8x8, a larger shift moves strokes out of the frame
NOISE_STD = 0.05  # in normalised units, for tabular (N, F) data


def augmentation_seed(seed: int, epoch: int) -> int:
    """One integer naming an epoch's views; part of the teacher-cache key under augmentation."""
    return int(np.random.default_rng([seed, epoch, 0xA46]).integers(0, 2**31 - 1))


def augment(x: np.ndarray, positions: np.ndarray, num_samples: int, seed: int, epoch: int) -> np.ndarray:
    """Augment the batch `x` holding training samples `positions` (of `num_samples`).

    Images (B, C, H, W): shift by up to MAX_SHIFT pixels in each direction, filling with the
    sample's minimum (the background after normalisation). Tables (B, F): add Gaussian jitter.
    """
    rng = np.random.default_rng(augmentation_seed(seed, epoch))
    if x.ndim == 4:
        shifts = rng.integers(-MAX_SHIFT, MAX_SHIFT + 1, size=(num_samples, 2))[positions]  # (B, 2): dy, dx
        out = np.empty_like(x)
        for dy, dx in np.unique(shifts, axis=0):  # one vectorised shift per distinct offset (at most 9)
            chosen = np.flatnonzero((shifts[:, 0] == dy) & (shifts[:, 1] == dx))
            out[chosen] = _shift(x[chosen], int(dy), int(dx))
        return out
    noise = rng.standard_normal((num_samples, *x.shape[1:]), dtype=np.float32)[positions]
    return (x + NOISE_STD * noise).astype(np.float32)


def _shift(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """(B, C, H, W) shifted by (dy, dx), the uncovered border filled with each image's minimum."""
    out = np.broadcast_to(images.min(axis=(1, 2, 3), keepdims=True), images.shape).copy()
    h, w = images.shape[-2:]
    src_y = slice(max(0, -dy), h - max(0, dy))
    src_x = slice(max(0, -dx), w - max(0, dx))
    dst_y = slice(max(0, dy), h - max(0, -dy))
    dst_x = slice(max(0, dx), w - max(0, -dx))
    out[..., dst_y, dst_x] = images[..., src_y, src_x]
    return out


def view_name(seed: int, epoch: int, settings: AugmentConfig) -> str:
    """The name of an epoch's augmented views in the teacher-cache key: the augmentation seed plus what it does."""
    name = f"aug:{augmentation_seed(seed, epoch)}"
    if not settings.shift:
        name += ":noshift"
    if settings.mixup > 0:
        name += f":mixup={settings.mixup!r}"
    return name


def mixup_plan(num_samples: int, seed: int, epoch: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """(partner, λ') per training sample for one epoch: a seeded partner and λ' = max(λ, 1 - λ), λ ~ Beta(α, α)."""
    rng = np.random.default_rng([seed, epoch, 0x313])
    partner = rng.permutation(num_samples)
    lam = rng.beta(alpha, alpha, size=num_samples)
    return partner, np.maximum(lam, 1.0 - lam).astype(np.float32)


def views(data_x: np.ndarray, positions: np.ndarray, seed: int, epoch: int, settings: AugmentConfig) -> np.ndarray:
    """The augmented views of training samples `positions` of `data_x` (the whole training array).

    Shift (or jitter) per sample, then mixup with the sample's seeded partner (itself shifted by its own
    offset). Each view depends only on (seed, epoch, sample), never on the batch it lands in.
    """
    n = len(data_x)

    def shifted(rows: np.ndarray) -> np.ndarray:
        return augment(data_x[rows], rows, n, seed, epoch) if settings.shift else data_x[rows]

    x = shifted(positions)
    if settings.mixup <= 0:
        return x
    partner, lam = mixup_plan(n, seed, epoch, settings.mixup)
    weight = lam[positions].reshape((-1,) + (1,) * (x.ndim - 1))
    return (weight * x + (1.0 - weight) * shifted(partner[positions])).astype(np.float32)
