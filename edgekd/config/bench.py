"""The `[bench]` recipe section: where and how the deployable models are timed."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from edgekd.config.base import StrictModel


class BenchConfig(StrictModel):
    """Benchmark every deployable artifact on each target (raw latencies kept; statistics computed after)."""

    enabled: bool = Field(True, description="run the bench stage")
    targets: list[str] = Field(
        ["local"],
        description="target names: `local` or entries of targets.toml "
        "(see `edgekd targets list`); unknown names are refused before training",
    )
    threads: int = Field(1, ge=1, description="inference threads of the runtime on the target")
    xnnpack: bool = Field(True, description="TFLite: use the XNNPACK delegate (the runtime's default CPU path)")
    warmup: int = Field(20, ge=0, description="untimed runs before measuring")
    runs: int = Field(200, ge=1, description="timed runs per artifact (duration_s, when set, replaces it)")
    duration_s: float | None = Field(
        None, gt=0, description="run for this many seconds instead of a fixed number of runs; unset: use `runs`"
    )
    min_runs: int | None = Field(
        None,
        ge=1,
        description="with duration_s: keep running until at least this many "
        "runs too (MLPerf single-stream: 1024 runs and 60 s, as `edgekd bench --mlperf`); "
        "unset: duration_s alone",
    )
    sustained_windows: int | None = Field(
        None,
        ge=2,
        description="split the timed run into this many windows to see throttling over time; unset: one window",
    )
    cooldown_s: float = Field(0.0, ge=0, description="pause between artifacts, in seconds")
    thermal_limit_c: float | None = Field(
        None,
        description="before each run wait until the hottest zone is below this temperature (°C); unset: do not wait",
    )
    thermal_timeout_s: float = Field(120.0, gt=0, description="longest wait for thermal_limit_c, in seconds")
    pin_cores: list[int] | None = Field(None, description="CPU cores to pin the runner to (taskset); unset: no pinning")
    energy: bool = Field(
        True, description="measure energy where the target has a meter (else recorded as unavailable, with the reason)"
    )
    interleave: bool = Field(
        True, description="time several artifacts in A B A B order (drift hits all alike) instead of one after another"
    )
    repeats: int = Field(1, ge=1, description="repeat the whole measurement this many times (rounds)")
    timeout_s: float = Field(600.0, gt=0, description="give up on one artifact's run after this many seconds")
    tflite_runtime: Literal["auto", "litert", "tflite"] = Field(
        "auto",
        description="TFLite interpreter on the target: ai-edge-litert, tflite-runtime, or auto (litert, "
        "else tflite-runtime)",
    )
    governor: str | None = Field(
        "performance",
        description="hold this cpufreq governor during the run where "
        "permitted (restored after); unset: leave the governor alone",
    )
    energy_idle_s: float = Field(3.0, gt=0, description="idle-power baseline measured before benchmarking, in seconds")
    seed: int = Field(0, description="seed of the generated inputs")
    inputs: str | None = Field(
        None,
        description="an .npz with one sample per model input (by name), relative to "
        "the recipe; unset: inputs generated per dtype",
    )
    allow_charging: bool = Field(
        False, description="Android: measure battery energy on USB/AC power anyway (results flagged)"
    )
    profile: bool = Field(
        False,
        description="also take a per-op profile of each artifact (once per target, after "
        "the first repeat's timed runs, in a second session: the timed figures stay unprofiled): "
        "ONNX Runtime's profiler in the runner, benchmark_model --enable_op_profiling in adb's "
        "benchmark_model mode; runtimes without a profiler record why (profile_unavailable)",
    )

    @model_validator(mode="after")
    def _min_runs_needs_duration(self) -> BenchConfig:
        # found when the recipe is read, not when the bench stage starts after training
        if self.min_runs is not None and self.duration_s is None:
            raise ValueError(
                "min_runs goes with duration_s (run at least this long and this many times); "
                "set duration_s, or use runs alone"
            )
        return self
