"""Benchmark orchestration, written once against the Target protocol (local, SSH, adb).

For a list of artifacts on one target: push the runner and each model (sha256 verified by the target),
measure the runtime's empty-model memory baseline, hold the governor where permitted, measure idle power,
then run the runner in A B A B order (thermal gate and cooldown before each run), parse its
edgekd.run/1 JSON, and compute statistics on the host. The target is always cleaned up, also when the
run fails or is interrupted.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from edgekd.artifacts import Artifact
from edgekd.bench.collect import Runs, build_result, collect, peak_rss
from edgekd.bench.energy_accounting import IdleBaseline, estimate_per_inference, measure_idle
from edgekd.bench.noise import run_order, wait_for_thermal
from edgekd.bench.result import BenchResult
from edgekd.bench.runner_cli import (
    MAX_RUNS,
    RUN_SCHEMA,
    Shapes,
    check_format,
    check_work_bounds,
    parse_runner_output,
    recorded_shapes,
    runner_argv,
    runner_path,
    runtime_for,
)
from edgekd.bench.target_settings import apply_target_settings, check_target_options
from edgekd.config.bench import BenchConfig
from edgekd.energy_protocol import EnergyMeter, EnergyWindow
from edgekd.errors import BenchError, EdgekdError, TargetError
from edgekd.target_protocol import Completed, DeviceInfo, GovernorControl, OpProfiler, Target

log = logging.getLogger(__name__)
#: What other modules import from here (the runner's command line lives in edgekd.bench.runner_cli).
__all__ = [
    "MAX_RUNS",
    "RUN_SCHEMA",
    "Shapes",
    "TargetLost",
    "bench_artifacts",
    "check_work_bounds",
    "parse_runner_output",
    "progress_reporter",
    "runner_argv",
    "runner_path",
    "runtime_for",
]

#: Called as progress(done, total, status) after each runner invocation.
ProgressCallback = Callable[[int, int, str], None]


class TargetLost(TargetError):
    """The target failed part-way (connection dropped, phone unplugged): `results` holds a BenchResult for
    every artifact with at least one finished repeat, so the caller can keep and record them."""

    def __init__(self, cause: TargetError, results: list[BenchResult]) -> None:
        super().__init__(cause.message, hint=cause.hint)
        self.cause = cause
        self.results = results


def progress_reporter(progress: Any) -> ProgressCallback | None:
    """Accept a callable(done, total, status) or a rich Progress (a task is added and advanced)."""
    if progress is None or not hasattr(progress, "add_task"):  # a rich Progress has add_task; a callback not
        callback: ProgressCallback | None = progress
        return callback
    task = progress.add_task("bench", total=None, status="")

    def report(done: int, total: int, status: str) -> None:
        progress.update(task, completed=done, total=total, status=status)

    return report


def _invoke(
    target: Target, argv: list[str], timeout: float, meter: EnergyMeter | None
) -> tuple[dict[str, Any], Completed, EnergyWindow | None]:
    if meter is None:
        completed = target.run(argv, timeout)
        return parse_runner_output(completed, target.name), completed, None
    meter.start()
    try:
        completed = target.run(argv, timeout)
    except BaseException:
        with contextlib.suppress(Exception):  # the run's own error (or Ctrl-C) is the one to report
            meter.stop()
        raise
    try:
        window = meter.stop()
    except (OSError, RuntimeError, ValueError) as exc:
        raise BenchError(
            f"energy meter {meter.name} failed: {exc}", hint="rerun with energy = false in [bench]"
        ) from None
    return parse_runner_output(completed, target.name), completed, window


def _energy_meter(target: Target, config: BenchConfig) -> tuple[EnergyMeter | None, str | None]:
    """A usable meter, or None and the reason energy is unavailable."""
    if not config.energy:
        return None, "disabled in the bench config (energy = false)"
    meter = target.energy()
    if meter is None:
        return None, f"target '{target.name}' offers no energy meter"
    reason = meter.available()
    return (None, reason) if reason else (meter, None)


def bench_artifacts(
    target: Target,
    artifacts: Sequence[Artifact],
    config: BenchConfig,
    *,
    progress: Any = None,
    shapes: Shapes | None = None,
) -> list[BenchResult]:
    """Benchmark the artifacts on `target`; one BenchResult per benchmarked artifact, in the given order.

    Torch artifacts run only on a local target (devices have no torch); elsewhere they are skipped with a
    logged warning. `progress` is None, a callable(done, total, status) or a rich Progress. `shapes`
    (`--shape`) sizes symbolic input dimensions; without it the sidecar's shapes or --inputs do."""
    check_work_bounds(config)
    check_target_options(target, config)
    progress = progress_reporter(progress)
    artifacts = _runnable_here(target, artifacts)
    runtimes = [runtime_for(artifact, config) for artifact in artifacts]
    governor: GovernorControl | None = target.governor_control()
    profiler = target.op_profiler() if config.profile else None
    meter: EnergyMeter | None = None
    try:
        target.connect()
        info = target.info()
        settings = apply_target_settings(target, info, config)
        config = settings.config
        runner = target.push(runner_path())
        inputs = target.push(_inputs_file(config)) if config.inputs else None
        remotes: dict[str, str] = {}
        for artifact in artifacts:
            if artifact.sha256 not in remotes:  # torch runs on this host from its own file and sidecar
                local = artifact.format == "torch"
                remotes[artifact.sha256] = str(artifact.path.resolve()) if local else target.push(artifact.path)
        governor_note = "left as is (governor = none in the bench config)"
        if governor is None:
            governor_note = "not controllable on this target; read only"
        elif config.governor:
            governor_note = governor.hold(config.governor) or f"held at {config.governor} and restored afterwards"
        baselines = {runtime: _baseline_rss(target, runner, runtime, config) for runtime in dict.fromkeys(runtimes)}
        meter, energy_reason = _energy_meter(target, config)
        idle = measure_idle(meter, config.energy_idle_s) if meter else None
        collected = [Runs() for _ in artifacts]

        def argv_for(index: int, **options: Any) -> list[str]:
            """The runner's command line for artifact `index` (`options`: runs=0 for energy, profile=...)."""
            artifact = artifacts[index]
            return runner_argv(target, runner, remotes[artifact.sha256], runtimes[index], config, inputs=inputs,
                               shapes=shapes, recorded=recorded_shapes(artifact), **options)  # fmt: skip

        order = list(run_order(range(len(artifacts)), config.repeats, config.interleave))
        total = len(order) + (len(artifacts) if meter else 0)
        for step, (repeat, index) in enumerate(order):
            if step and config.cooldown_s:
                time.sleep(config.cooldown_s)
            if config.thermal_limit_c is not None:
                gate = wait_for_thermal(
                    lambda: target.info().temperatures_c, config.thermal_limit_c, config.thermal_timeout_s
                )
                if gate:
                    collected[index].warnings.append(gate)
            artifact = artifacts[index]
            profiling = config.profile and repeat == 0  # one profile per artifact and target
            by_tool = _tool_profiler(profiler, artifact) if profiling else None
            argv = argv_for(index, profile=profiling and not by_tool)
            try:
                document, completed, window = _invoke(target, argv, config.timeout_s + 60, meter)
                if by_tool is not None:  # after the timed run, as the runner's own profiler would be
                    document.update(by_tool.profile(remotes[artifact.sha256], argv, config.timeout_s + 60))
            except BenchError as exc:  # name the file: several may be benchmarked together
                raise BenchError(f"{artifact.path.name}: {exc.message}", hint=exc.hint) from None
            except TargetError as exc:  # keep what finished before the target went away
                finished = [
                    _partial_result(
                        target,
                        info,
                        artifacts[i],
                        collected[i],
                        baselines[runtimes[i]],
                        settings,
                        governor_note,
                        config.repeats,
                    )
                    for i in range(len(artifacts))
                    if collected[i].documents
                ]
                if finished:
                    raise TargetLost(exc, finished) from None
                raise
            collect(collected[index], repeat, document, completed, window, artifact, target=target.name)
            if progress:
                progress(step + 1, total, f"{artifact.name} run {repeat + 1}/{config.repeats}")
        after = _info_after(target)
        results = []
        for index, artifact in enumerate(artifacts):
            energy = None
            if meter is not None and idle is not None:
                energy = _energy(target, argv_for(index, runs=0), config, meter, idle, collected[index])
                if progress:
                    progress(len(order) + index + 1, total, f"{artifact.name} energy reference")
            results.append(
                build_result(
                    target,
                    (info, after),
                    artifact,
                    collected[index],
                    baselines[runtimes[index]],
                    settings,
                    energy,
                    energy_reason,
                    governor_note,
                )
            )
        return results
    finally:
        if governor is not None:
            governor.restore()
        if meter is not None:
            meter.close()
        _cleanup(target, failing=sys.exc_info()[0] is not None)


def _tool_profiler(profiler: OpProfiler | None, artifact: Artifact) -> OpProfiler | None:
    """The target's own profiler when it profiles this artifact's format (benchmark_model for TFLite)."""
    return profiler if profiler is not None and profiler.handles(artifact.format) else None


def _partial_result(
    target: Target,
    info: DeviceInfo,
    artifact: Artifact,
    runs: Runs,
    baseline: int | None,
    settings: Any,
    governor_note: str,
    repeats: int,
) -> BenchResult:
    """The result of the repeats that finished before the target was lost, flagged as incomplete."""
    result = build_result(
        target,
        (info, None),
        artifact,
        runs,
        baseline,
        settings,
        None,
        "the target was lost before energy could be measured",
        governor_note,
    )
    result.warnings.append(f"incomplete: {target.name} was lost after {len(runs.documents)} of {repeats} repeat(s)")
    return result


def _runnable_here(target: Target, artifacts: Sequence[Artifact]) -> list[Artifact]:
    if not artifacts:
        raise BenchError("nothing to benchmark", hint="give at least one .onnx, .tflite or torch artifact")
    for artifact in artifacts:
        check_format(artifact)  # refuse unknown formats before touching the device
    on_host = target.kind == "local"
    runnable = [a for a in artifacts if on_host or a.format != "torch"]
    skipped = [a.name for a in artifacts if a not in runnable]
    if skipped:
        log.warning("%s: torch artifacts run on the local target only; skipped %s", target.name, ", ".join(skipped))
    if not runnable:
        raise BenchError(
            f"nothing to benchmark on {target.name}: torch artifacts run on the local target only",
            hint="benchmark the exported .onnx / .tflite files on devices",
        )
    return runnable


def _info_after(target: Target) -> DeviceInfo | None:
    """The device's state once the timed runs are done (thermal status, Pi throttling flags); never fatal."""
    try:
        return target.info()
    except EdgekdError as exc:
        log.warning("%s: could not read the device state after the runs: %s", target.name, exc)
        return None


def _cleanup(target: Target, *, failing: bool) -> None:
    try:
        target.cleanup()
    except EdgekdError as exc:
        if not failing:
            raise
        log.warning("cleanup of %s failed after an earlier error: %s", target.name, exc)


def _baseline_rss(target: Target, runner: str, runtime: str, config: BenchConfig) -> int | None:
    document, completed, _ = _invoke(target, runner_argv(target, runner, None, runtime, config), config.timeout_s, None)
    return peak_rss(document, completed)


def _energy(
    target: Target,
    reference_argv: list[str],
    config: BenchConfig,
    meter: EnergyMeter,
    idle: IdleBaseline,
    runs: Runs,
) -> dict[str, Any] | None:
    """Differential estimate: the runs' windows minus a same-model, zero-run reference window."""
    _, _, reference = _invoke(target, reference_argv, config.timeout_s, meter)
    if reference is None or not runs.energy_windows:
        return None
    if not runs.inferences:
        return None
    return estimate_per_inference(runs.energy_windows, reference, runs.inferences, idle).to_dict()


def _inputs_file(config: BenchConfig) -> Path:
    path = Path(config.inputs or "")
    if not path.is_file():
        raise BenchError(
            f"inputs file {path} does not exist",
            hint="give an .npz with one array per model input, named after the input",
        )
    return path
