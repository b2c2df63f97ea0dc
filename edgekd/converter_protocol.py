"""The Converter contract: what every format backend (edgekd/converters/*) offers the stages.

A converter is one class in one module plus one `ConverterEntry` line in `edgekd.registry.CONVERTERS`.
The entry declares what the converter takes and makes (input formats, output formats, precisions), the
PyPI distributions it runs on (they enter the cache key) and whether it is an optional extra. The class
declares its options model and does the work. Importing this module pulls no backend (no torch, onnx,
TensorFlow): the registry and the stages read it at import time.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel

from edgekd.artifacts import Artifact


@runtime_checkable
class Converter(Protocol):
    """One format backend. Dispatch (`edgekd.registry.run_converter`) checks availability and the input
    format against the registry entry before `convert` runs, so `convert` does neither."""

    name: str
    #: The converter's own options model (pydantic, every field with a description).
    Options: ClassVar[type[BaseModel]]

    def available(self) -> str | None:
        """None when every package it needs is importable; else why not and how to install it."""
        ...

    def convert(self, src: Artifact, options: Any, out_dir: Path) -> list[Artifact]:
        """Convert `src` into files under `out_dir`; one Artifact per file written."""
        ...


@dataclass(frozen=True)
class ConverterEntry:
    """A converter's registry line: where it lives and what it declares (read without importing it)."""

    target: str  # "module:attr" of the class
    inputs: tuple[str, ...]  # artifact formats it converts ("torch", "onnx", ...)
    outputs: tuple[str, ...]  # formats it writes
    precisions: tuple[str, ...]  # precisions it can write
    packages: tuple[str, ...]  # PyPI distributions whose versions shape its output (cache keys)
    extra: str | None = None  # None: installed with edgekd; else how it is installed (an optional extra)
    ci_job: str | None = None  # for an extra: the CI command whose environment installs it and runs its tests


def missing_modules(modules: Mapping[str, str], install: str) -> str | None:
    """The one availability rule converters use: `modules` maps an import name to its PyPI distribution;
    the first one not importable gives "missing <distribution>: <install>". Nothing is imported."""
    for module, distribution in modules.items():
        if importlib.util.find_spec(module) is None:
            return f"missing {distribution}: {install}"
    return None


def options_for(converter: Converter, values: Mapping[str, Any] | BaseModel) -> BaseModel:
    """The converter's options model filled from `values` (a recipe section plus run inputs such as the
    calibration set): each converter takes the fields it declares, so a stage needs to know none of them.
    An instance of the converter's own Options is used as it is."""
    if isinstance(values, converter.Options):
        return values
    if isinstance(values, BaseModel):
        values = dict(values)
    fields = converter.Options.model_fields
    return converter.Options.model_validate({key: value for key, value in values.items() if key in fields})
