"""The `[handoff]` recipe section: the firmware bundle for one TFLite artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from edgekd.config.base import StrictModel


class HandoffConfig(StrictModel):
    """A firmware bundle (C array, op resolver, golden vectors, manifest) for one verified TFLite file."""

    enabled: bool = Field(True, description="run the handoff stage")
    artifact: str = Field(
        "tflite_int8",
        description="the artifact to hand over: tflite_<precision> (or "
        "litert_torch_<precision> with [tflite] also_litert_torch); checked before training",
    )
    platform: Literal[
        "micro",
        "linux",
        "android",
        "ethos-u55-32",
        "ethos-u55-64",
        "ethos-u55-128",
        "ethos-u55-256",
        "ethos-u65-256",
        "ethos-u65-512",
        "ethos-u85-128",
        "ethos-u85-256",
        "ethos-u85-512",
        "ethos-u85-1024",
        "ethos-u85-2048",
    ] = Field(
        "micro",
        description="micro: TensorFlow Lite Micro (ops and tensor types checked against TFLM, arena "
        "measured); linux / android: a full TFLite runtime; ethos-u55-128 and Vela's other accelerator configurations: "
        "everything micro does, plus the model compiled by Arm's Vela (pip install ethos-u-vela) in the bundle and "
        "Vela's SRAM, flash, NPU/CPU operator split, cycles and inferences per second, labelled as Vela estimates",
    )
    model_name: str = Field("model", description="C identifiers derive from it: g_model, g_model_len")
    arena_margin: float = Field(
        0.2,
        ge=0,
        le=10,
        description="fraction added to the measured TFLM arena (0.2 = 20 %; at most 10, an arena 11x the measured one)",
    )
    zip: bool = Field(True, description="also write the bundle as a .zip beside the folder")
    compiler: str = Field("g++", description="host C++ compiler for the bundle's compile check")
    require_compiler: bool = Field(
        False, description='fail (instead of recording "skipped") when the compiler is missing; checked before training'
    )
    tflm_include: list[Path] = Field(
        [],
        description="a TFLM source tree and its flatbuffers/gemmlowp include "
        "folders, relative to the recipe: self_test.cc and op_resolver.h are then "
        "compiled against them (otherwise op_resolver.h is checked structurally)",
    )
    max_arena_kb: float | None = Field(
        None,
        gt=0,
        description="budget: fail the handoff when the tensor arena to "
        "allocate (measured in TFLite Micro, plus arena_margin) exceeds this many KiB "
        '(1024 bytes); platform "micro" and Ethos-U only (their TFLM CPU path); default no limit',
    )
    max_flash_kb: float | None = Field(
        None,
        gt=0,
        description="budget: fail the handoff when the flash estimate (model "
        "bytes + an estimate of the TFLM interpreter and kernel code for the model's "
        "operators, see the bundle's memory.flash.basis) exceeds this many KiB; platform "
        '"micro" and Ethos-U only; default no limit',
    )

    @field_validator("model_name")
    @classmethod
    def _model_name_makes_c_symbols(cls, value: str) -> str:
        # the same rule the handoff applies, but at recipe load: a bad name is found before training
        from edgekd.errors import HandoffError
        from edgekd.handoff.identifiers import bundle_symbols

        try:
            bundle_symbols(value)
        except HandoffError as exc:
            raise ValueError(exc.message) from None
        return value

    @property
    def runs_tflm(self) -> bool:
        """The firmware runs the model in TensorFlow Lite Micro: platform micro, or an Ethos-U (TFLM on its CPU)."""
        return self.platform == "micro" or self.platform.startswith("ethos-u")

    @model_validator(mode="after")
    def _budgets_need_micro(self) -> HandoffConfig:
        if not self.runs_tflm and (self.max_arena_kb is not None or self.max_flash_kb is not None):
            raise ValueError(
                f"max_arena_kb / max_flash_kb apply to platform = 'micro' (TFLite Micro) and the Ethos-U "
                f"platforms, not {self.platform!r}"
            )
        return self
