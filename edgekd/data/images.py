"""Images: an image folder read at its own bit depth, and the one resize every image source uses.

An image folder keeps what its files hold: 8-bit grey stays 1 channel of 0..255, 16-bit grey PNGs (PIL
modes "I;16*"/"I") stay 1 channel of 0..65535, float TIFFs stay floats. Colour is RGB (alpha dropped).
The raw values are returned as stored; the integer->float step (`scale`) is recorded, not applied here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgekd.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".pgm", ".ppm", ".tif", ".tiff", ".webp")
RESIZE_FILTER = "bilinear"  # PIL's bilinear, antialiased when shrinking; recorded in the preprocessing

# PIL mode -> (bit depth, mode the pixels are read in). Grey modes stay grey (1 channel), the rest is RGB.
_DEPTHS = {"1": "8-bit", "L": "8-bit", "LA": "8-bit", "La": "8-bit", "I;16": "16-bit", "I;16L": "16-bit",
           "I;16B": "16-bit", "I;16N": "16-bit", "I": "16-bit", "F": "float"}  # fmt: skip
_GREY_8 = ("1", "L", "LA", "La")
DEPTH_DTYPE = {"8-bit": ("uint8", 1.0 / 255.0), "16-bit": ("uint16", 1.0 / 65535.0), "float": ("float32", 1.0)}


def depth_of(mode: str) -> str:
    """'8-bit' | '16-bit' | 'float' for a PIL image mode (palette and colour modes are 8-bit)."""
    return _DEPTHS.get(mode, "8-bit")


def resize_images(x: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """(N, C, H, W) raw values -> (N, C, size[0], size[1]) float32, each channel resized on its own.

    Works on the raw values as float32 (no rounding back to integer levels), so resizing commutes with
    the later `x * scale` step exactly as it would on a device that resizes before scaling.
    """
    from PIL import Image

    height, width = int(size[0]), int(size[1])
    if x.shape[2:] == (height, width):
        return x
    out = np.empty((x.shape[0], x.shape[1], height, width), np.float32)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            plane = Image.fromarray(np.ascontiguousarray(x[n, c], dtype=np.float32))
            out[n, c] = np.asarray(plane.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)
    return out


def read_image_folder(
    path: Path, image_size: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray, list[str], str]:
    """One subfolder per class (sorted names). Returns (raw NCHW, labels, class names, bit depth).

    All images must share one bit depth, and one size unless `image_size` (H, W) is given.
    """
    _require_dir(path)
    classes = sorted(d.name for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError(
            f"{path} has no class subfolders", hint="put each class's images in its own subfolder: root/cat/1.png"
        )
    files: list[tuple[Path, int]] = []
    for index, name in enumerate(classes):
        found = [(f, index) for f in sorted((path / name).iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
        if not found:  # a class without samples would be an output the model never learns
            raise DataError(f"class folder {path / name} holds no images ({', '.join(IMAGE_SUFFIXES)})",
                            hint="add the class's images, or remove the folder (every subfolder is a class)")  # fmt: skip
        files += found
    planes = [_read(file) for file, _ in files]  # (H, W) or (H, W, 3) arrays as stored
    depth = _one_depth(path, [file for file, _ in files], [d for _, d in planes])
    arrays = [a for a, _ in planes]
    if any(a.ndim == 3 for a in arrays):  # one colour image makes the set RGB (grey repeated on 3 channels)
        arrays = [np.repeat(a[:, :, None], 3, axis=2) if a.ndim == 2 else a for a in arrays]
    arrays = [a[None] if a.ndim == 2 else a.transpose(2, 0, 1) for a in arrays]  # (H, W[, C]) -> (C, H, W)
    sizes = {a.shape[1:] for a in arrays}
    if image_size is None and len(sizes) > 1:
        examples = ", ".join(f"{h}x{w}" for h, w in sorted(sizes)[:3])
        raise DataError(f"{path}: images have {len(sizes)} different sizes, e.g. {examples} (H x W)",
                        hint="set [data] image_size = [H, W] to resize them all")  # fmt: skip
    if image_size is not None:
        arrays = [resize_images(a[None], image_size)[0] for a in arrays]
    x = np.ascontiguousarray(np.stack(arrays))
    y = np.array([label for _, label in files], dtype=np.int64)
    return x, y, classes, depth


def _require_dir(path: Path) -> None:
    if not path.exists():
        raise DataError(f"image folder {path} does not exist", hint="[data] path is taken relative to the recipe file")
    if not path.is_dir():
        raise DataError(
            f"image folder {path} is not a directory",
            hint="point [data] path at the folder holding one subfolder per class",
        )


def _read(file: Path) -> tuple[np.ndarray, str]:
    """One image's pixels at its own depth: uint8 grey/RGB, uint16 grey, or float32 grey."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as image:
            image.load()
            mode, depth = image.mode, depth_of(image.mode)
            if depth == "16-bit":
                pixels = np.asarray(image)
                if pixels.size and (pixels.min() < 0 or pixels.max() > 65535):
                    raise DataError(f"image {file} (mode {mode}) has values outside 0..65535",
                                    hint="edgekd reads 8-bit, 16-bit and float images; save it as a 16-bit grey PNG")  # fmt: skip
                return pixels.astype(np.uint16), depth
            if depth == "float":
                return np.asarray(image, dtype=np.float32), depth
            target = "L" if mode in _GREY_8 else "RGB"
            return np.asarray(image.convert(target) if mode != target else image, dtype=np.uint8), depth
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"cannot read image {file}: {exc}", hint="remove or replace the file") from None


def _one_depth(root: Path, files: list[Path], depths: list[str]) -> str:
    """The folder's single bit depth; mixed depths are refused (their levels cannot share one scale)."""
    found = sorted(set(depths))
    if len(found) == 1:
        return found[0]
    parts = []
    for depth in found:
        chosen = [f for f, d in zip(files, depths, strict=True) if d == depth]
        parts.append(f"{len(chosen)} {depth} (e.g. {chosen[0].relative_to(root)})")
    raise DataError(f"{root}: images mix bit depths: {', '.join(parts)}",
                    hint="convert them all to one depth (8-bit, or 16-bit grey PNG) so one scale fits every pixel")  # fmt: skip
