"""Seeded, stratified train / val / test split of sample indices, refusing what cannot be stratified.

Every class keeps its (rounded) share in every split. A stratified cut needs at least two samples of a
class and a held-out part at least as large as the number of classes, so a single class, a class with
fewer samples than parts, or a part smaller than the class count is refused with the numbers and
what to change, instead of scikit-learn's generic message (or an ill-posed one-class "classifier").
"""

from __future__ import annotations

import math

import numpy as np

from edgekd.errors import DataError


def split_ids(
    y: np.ndarray, names: list[str], val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train ids, val ids, test ids) into `y`; val ids are empty when `val_fraction` is 0."""
    from sklearn.model_selection import train_test_split

    check_splittable(y, names, val_fraction, test_fraction)
    ids = np.arange(len(y))
    try:
        ids_rest, ids_test = train_test_split(ids, test_size=test_fraction, random_state=seed, stratify=y)
        if val_fraction > 0:
            val_share = val_fraction / (1.0 - test_fraction)
            ids_train, ids_val = train_test_split(
                ids_rest, test_size=val_share, random_state=seed, stratify=y[ids_rest]
            )
        else:
            ids_train, ids_val = ids_rest, ids_rest[:0]
    except ValueError as exc:  # a rare allocation the counts above did not foresee
        raise DataError(f"cannot split the data set into stratified train/val/test parts: {exc}",
                        hint="add samples of the smallest classes, or lower val_fraction / test_fraction") from None  # fmt: skip
    return ids_train, ids_val, ids_test


def check_splittable(y: np.ndarray, names: list[str], val_fraction: float, test_fraction: float) -> None:
    """Refuse a single class, classes too small to appear in every split, and splits smaller than the classes."""
    present, counts = np.unique(y, return_counts=True)
    if len(present) < 2:
        only = names[int(present[0])] if len(present) else "none"
        raise DataError(f"the data set has only one class ({only!r}): a classifier needs at least two",
                        hint="add samples of other classes; with [data] classes = [...] keep two or more, or set other_class = true")  # fmt: skip
    parts = ["train", "test"] + (["val"] if val_fraction > 0 else [])
    small = [(names[int(c)], int(n)) for c, n in zip(present, counts, strict=True) if n < len(parts)]
    if small:
        listed = ", ".join(f"{name!r} has {n}" for name, n in small[:5]) + (
            f" (and {len(small) - 5} more)" if len(small) > 5 else ""
        )
        fix = "add samples of those classes, or drop them with [data] classes = [...]"
        if val_fraction > 0 and all(n >= 2 for _, n in small):
            fix += ", or set val_fraction = 0"
        raise DataError(f"too few samples to stratify: {listed}; each class needs at least {len(parts)} "
                        f"to be split {('two', 'three')[len(parts) - 2]} ways ({'/'.join(parts)})", hint=fix)  # fmt: skip
    total, classes = len(y), len(present)
    n_test = math.ceil(test_fraction * total)
    n_val = math.ceil(val_fraction / (1.0 - test_fraction) * (total - n_test)) if val_fraction > 0 else classes
    for part, size, key, fraction in (
        ("test", n_test, "test_fraction", test_fraction),
        ("val", n_val, "val_fraction", val_fraction),
    ):
        if size < classes:
            need = math.ceil(classes / total * 1000) / 1000
            raise DataError(f"{key} = {fraction:g} of {total} samples gives {size} {part} samples, fewer than the "
                            f"{classes} classes: a stratified split needs one of each",
                            hint=f"set {key} to at least {need:g}, or add samples")  # fmt: skip
