"""`edgekd recipe init`: a commented starter recipe for one data source.

The values are chosen per source (tables get MLPs, images CNNs); each key's comment is its field description
from the config models, so the starter says what the reference says.
"""

from __future__ import annotations

import textwrap
from typing import Any

from edgekd.config.reference import _toml, every_field

SOURCES = ("digits", "npz", "csv", "image_folder", "idx", "wav")

#: (table, key, value) per source; None = leave the key out.
_DATA = {
    "digits": [("data", "source", "digits")],
    "npz": [("data", "source", "npz"), ("data", "path", "data.npz")],
    "csv": [("data", "source", "csv"), ("data", "path", "data.csv"), ("data", "label_column", "label")],
    "image_folder": [("data", "source", "image_folder"), ("data", "path", "images"), ("data", "image_size", [32, 32])],
    "idx": [("data", "source", "idx"), ("data", "path", "fashion-mnist"), ("data", "label_set", "fashion_mnist")],
    "wav": [("data", "source", "wav"), ("data", "path", "speech_commands")],
}
#: Sources whose samples are (C, H, W) arrays: CNNs. Tables get MLPs; WAV clips become (1, frames, MFCCs) images.
_IMAGES = {"digits": True, "npz": True, "csv": False, "image_folder": True, "idx": True, "wav": True}


def _models(images: bool) -> list[tuple[str, str, Any]]:
    teacher = {"arch": "cnn", "width": 32, "depth": 3} if images else {"arch": "mlp", "width": 64, "depth": 2}
    student = {"arch": "cnn", "width": 8, "depth": 3} if images else {"arch": "mlp", "width": 16, "depth": 1}
    return [
        ("teacher", "kind", "builtin"),
        ("teacher", "model", teacher),
        ("teacher", "train", {"epochs": 15}),
        ("student", "model", student),
        # DIST: the only loss whose gain over the from-scratch student excluded zero (3 seeds, 10 % labels):
        # Fashion-MNIST +7.5 pt (+3.8..+11.2), digits +8.2 pt (+6.8..+9.7); at 100 % labels no loss helped
        # beyond noise and DKD hurt on Fashion-MNIST (bench/results/distill_fashion.json, distill_methods.json)
        ("distill", "losses", [{"kind": "dist"}]),
        ("distill", "train", {"epochs": 30}),
        ("distill", "baseline", True),
    ]


_REST = [
    ("quantize", "enabled", True),
    ("tflite", "precisions", ["fp32", "int8"]),
    ("bench", "targets", ["local"]),
    ("handoff", "artifact", "tflite_int8"),
    ("handoff", "platform", "micro"),
    ("report", "strict", False),
]


def starter_recipe(source: str, name: str | None = None) -> str:
    """The text of a starter recipe for `source` (one of SOURCES); it parses as a valid recipe."""
    descriptions = {(key.table, key.key): key.field.description or "" for key in every_field()}
    rows = [("run", "name", name or f"my-{source.replace('_', '-')}"), ("run", "seed", 0), *_DATA[source],
            *(() if source == "digits" else [("data", "val_fraction", 0.1), ("data", "test_fraction", 0.2)]),
            ("data", "normalize", "standard"), *_models(_IMAGES[source]), *_REST]  # fmt: skip
    lines = [
        f'# A starter recipe for `source = "{source}"`, written by `edgekd recipe init`.',
        "# Every key is optional; the full list with types and defaults is in docs/RECIPE.md",
        "# (`edgekd recipe reference`), and `edgekd recipe schema` gives a JSON Schema for editors.",
    ]
    if source != "digits":
        lines.append(f"# Set [data] path to your {source.replace('_', ' ')} (relative to this file).")
    table = None
    for section, key, value in rows:
        if section != table:
            lines += ["", f"[{section}]"]
            table = section
        for comment in textwrap.wrap(descriptions.get((section, key), ""), width=110):
            lines.append(f"# {comment}")
        lines.append(f"{key} = {_toml(value)}")
    return "\n".join(lines) + "\n"
