from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from edgekd.config.base import StrictModel


class HandoffConfig(StrictModel):
    enabled: bool = True
    artifact: str = "tflite_int8"  # the artifact name to hand over
    platform: Literal["micro", "linux", "android"] = "micro"
    model_name: str = "model"  # C identifiers derive from it: g_model, g_model_len
    arena_margin: float = Field(0.2, ge=0)  # added to the measured TFLM arena
    zip: bool = True
    compiler: str = "g++"  # host C++ compiler for the bundle's compile check
    require_compiler: bool = False  # fail (instead of recording "skipped") when the compiler is missing
    # A TFLM source tree and its flatbuffers/gemmlowp include folders: when given, self_test.cc and
    # op_resolver.h are compiled against them (otherwise op_resolver.h is checked structurally).
    tflm_include: list[Path] = []
