from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgekd.config.base import StrictModel


class BenchConfig(StrictModel):
    enabled: bool = True
    targets: list[str] = ["local"]
    threads: int = Field(1, ge=1)
    xnnpack: bool = True
    warmup: int = Field(20, ge=0)
    runs: int = Field(200, ge=1)
    duration_s: float | None = Field(None, gt=0)  # run for this long instead of `runs`
    sustained_windows: int | None = Field(None, ge=2)  # split the run into windows to see throttling
    cooldown_s: float = Field(0.0, ge=0)
    thermal_limit_c: float | None = None  # wait until below this before each run
    thermal_timeout_s: float = Field(120.0, gt=0)
    pin_cores: list[int] | None = None
    energy: bool = True
    interleave: bool = True  # A B A B order when benchmarking several artifacts
    repeats: int = Field(1, ge=1)
    timeout_s: float = Field(600.0, gt=0)
    tflite_runtime: Literal["auto", "litert", "tflite"] = "auto"  # auto: ai_edge_litert, else tflite_runtime
    governor: str | None = "performance"  # hold this cpufreq governor where permitted (restored after); None: leave
    energy_idle_s: float = Field(3.0, gt=0)  # idle-power baseline measured before benchmarking
    seed: int = 0  # seed of generated inputs
    inputs: str | None = None  # .npz with one sample per model input (by name); None: generated per dtype
    allow_charging: bool = False  # Android: measure battery energy on USB/AC power anyway (results flagged)
