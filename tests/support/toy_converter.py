"""A toy converter for the registry meta-test: the whole of what a new backend needs is this module and one
`ConverterEntry` line in edgekd.registry.CONVERTERS (tests/core/test_registry_meta.py adds it)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from edgekd.artifacts import Artifact, write_artifact
from edgekd.config.base import StrictModel


class ToyOptions(StrictModel):
    """The toy's own options."""

    precision: Literal["fp32"] = Field("fp32", description="the only precision the toy writes")
    suffix: str = Field(".toy", description="file suffix of the copy")


class ToyConverter:
    """Any artifact -> a byte copy named `toy_<precision>`."""

    name = "toy"
    Options = ToyOptions

    def available(self) -> str | None:
        return None

    def convert(self, src: Artifact, options: ToyOptions, out_dir: Path) -> list[Artifact]:
        out = Path(out_dir) / f"{src.path.stem}{options.suffix}"
        copy = write_artifact(out, src.path.read_bytes(), name=f"toy_{options.precision}", format="toy",
                              precision=options.precision, parent=src, producer=self.name)  # fmt: skip
        return [copy]
