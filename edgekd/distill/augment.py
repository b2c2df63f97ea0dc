"""Seeded, per-sample augmentation: the same (seed, epoch, sample) always gives the same view.

Determinism per sample is what lets the teacher-output cache store augmented views (keyed by the
augmentation seed) and lets a resumed run replay exactly the epochs it missed.
"""

from __future__ import annotations

import numpy as np

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
