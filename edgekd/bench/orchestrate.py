"""Benchmark orchestration, written once against the Target protocol (local, SSH, adb).

For a list of artifacts on one target: push the runner and each model (sha256 verified by the target),
measure the runtime's empty-model memory baseline, hold the governor where permitted, measure idle power,
then run the runner in A B A B order (thermal gate and cooldown before each run), parse its
edgekd.run/1 JSON, and compute statistics on the host. The target is always cleaned up, also when the
run fails or is interrupted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from edgekd.artifacts import Artifact
from edgekd.bench.collect import Runs, build_result, collect, peak_rss
from edgekd.bench.energy_accounting import IdleBaseline, estimate_per_inference, measure_idle
from edgekd.bench.noise import run_order, wait_for_thermal
from edgekd.bench.result import BenchResult
from edgekd.bench.target_settings import apply_target_settings, check_target_options
from edgekd.config.bench import BenchConfig
from edgekd.energy_protocol import EnergyMeter, EnergyWindow
from edgekd.errors import BenchError, EdgekdError, RecipeError, TargetError
from edgekd.target_protocol import Completed, DeviceInfo, GovernorControl, OpProfiler, Target

log = logging.getLogger(__name__)

RUN_SCHEMA = "edgekd.run/1"
#: Called as progress(done, total, status) after each runner invocation.
ProgressCallback = Callable[[int, int, str], None]
BENCHMARKABLE = {"onnx": "ort", "tflite": None, "torch": "torch"}  # format -> runtime (None: config's choice)
TORCH_RUNNER = "edgekd.bench.torch_runner"  # host-only: devices have no torch
MAX_RUNS = 1_000_000  # timed (or warm-up) runs per runner process; the runner refuses more too
#: Input name ("" for the only input) -> its shape, given with `edgekd bench --shape`.
Shapes = dict[str, list[int]]


class TargetLost(TargetError):
    """The target failed part-way (connection dropped, phone unplugged): `results` holds a BenchResult for
    every artifact with at least one finished repeat, so the caller can keep and record them."""

    def __init__(self, cause: TargetError, results: list[BenchResult]) -> None:
        super().__init__(cause.message, hint=cause.hint)
        self.cause = cause
        self.results = results


def progress_reporter(progress: Any) -> ProgressCallback | None:
    """Accept a callable(done, total, status) or a rich Progress (a task is added and advanced)."""
    if progress is None or not hasattr(progress, "add_task"):
        return progress
    task = progress.add_task("bench", total=None, status="")

    def report(done: int, total: int, status: str) -> None:
        progress.update(task, completed=done, total=total, status=status)

    return report


def runner_path() -> Path:
    """The one runner file that is copied to devices."""
    return Path(str(resources.files("edgekd.targets.runner").joinpath("edgekd_runner.py")))


def check_format(artifact: Artifact) -> None:
    """Refuse a file no runtime here benchmarks."""
    if artifact.format not in BENCHMARKABLE:
        raise BenchError(
            f"cannot benchmark {artifact.path.name}: format '{artifact.format}' has no runtime",
            hint="benchmark a .onnx, .tflite or torch (.pt with its sidecar) file",
        )


def runtime_for(artifact: Artifact, config: BenchConfig) -> str:
    """The runner's --runtime for the artifact (a TFLite file runs on the config's tflite_runtime)."""
    check_format(artifact)
    return BENCHMARKABLE[artifact.format] or config.tflite_runtime


def runner_argv(
    target: Target,
    runner: str,
    model: str | None,
    runtime: str,
    config: BenchConfig,
    *,
    runs: int | None = None,
    inputs: str | None = None,
    shapes: Shapes | None = None,
    recorded: Shapes | None = None,
    profile: bool = False,
) -> list[str]:
    """The runner command line. `model=None` is the empty-model baseline; `runs=0` the energy reference;
    `inputs` the remote path of the pushed inputs file; `shapes` the user's --shape, `recorded` the
    shapes the model's sidecar holds (the runner uses them only for symbolic dimensions they fit);
    `profile` adds the per-op profile after the timed runs."""
    if runtime == "torch":  # the host's torch runner takes the device runner's options
        argv = [*target.python_argv(), "-m", TORCH_RUNNER, "--threads", str(config.threads)]
    else:
        argv = [*target.python_argv(), runner, "--runtime", runtime, "--threads", str(config.threads)]
    if model is None:
        return [*argv, "--baseline"]
    argv += ["--model", model, "--warmup", str(config.warmup), "--seed", str(config.seed)]
    if runs is not None:
        argv += ["--runs", str(runs)]
    elif config.duration_s is not None:
        argv += ["--duration", repr(config.duration_s)]
        if config.min_runs:
            argv += ["--min-runs", str(config.min_runs)]
    else:
        argv += ["--runs", str(config.runs)]
    if config.sustained_windows and runs is None:
        argv += ["--windows", str(config.sustained_windows)]
    if config.pin_cores:
        argv += ["--pin", ",".join(str(core) for core in config.pin_cores)]
    if not config.xnnpack:
        argv.append("--no-xnnpack")
    if inputs is not None:
        argv += ["--inputs", inputs]
    for option, given in (("--shape", shapes), ("--sidecar-shape", recorded)):
        for name, shape in (given or {}).items():
            argv += [option, (f"{name}=" if name else "") + ",".join(str(d) for d in shape)]
    if profile and runs is None:
        argv.append("--profile")
    return argv


def recorded_shapes(artifact: Artifact) -> Shapes:
    """The input shapes the artifact's sidecar records where they are concrete past the batch dimension
    (a symbolic batch becomes 1): what the model was exported for, when the file itself says "height"."""
    shapes: Shapes = {}
    for spec in artifact.inputs or ():
        dims = list(spec.shape)
        concrete = [d for d in dims[1:] if isinstance(d, int) and d > 0]
        if dims and len(concrete) == len(dims) - 1:
            shapes[spec.name] = [dims[0] if isinstance(dims[0], int) and dims[0] > 0 else 1, *concrete]
    return shapes


def check_work_bounds(config: BenchConfig) -> None:
    """Refuse a run count no benchmark needs (the runner keeps every sample; JSON carries them home)."""
    for field in ("runs", "warmup", "min_runs"):
        value = getattr(config, field)
        if value is not None and value > MAX_RUNS:
            raise RecipeError(
                f"[bench] {field} = {value} is more than {MAX_RUNS:,} runs per runner process",
                hint="use duration_s for long runs, or repeats for more processes",
            )


def parse_runner_output(completed: Completed, target_name: str) -> dict[str, Any]:
    """The runner's JSON document; its error document becomes TargetError (device lacks something)
    or BenchError (model/inputs problem); no document at all is a TargetError with stderr's tail."""
    document = None
    for line in reversed(completed.stdout.splitlines()):
        if line.startswith("{"):
            try:
                candidate = json.loads(line)
            except ValueError:
                continue
            if isinstance(candidate, dict) and candidate.get("schema") == RUN_SCHEMA:
                document = candidate
                break
    if document is None:
        tail = "\n".join(completed.stderr.strip().splitlines()[-8:])
        hint = "is Python 3.9+ with numpy installed on the device?" if completed.returncode in (126, 127) else None
        how = (
            f"was killed by signal {-completed.returncode} ({_signal_name(-completed.returncode)})"
            if completed.returncode < 0
            else f"exited with status {completed.returncode}"
        )
        killed = completed.returncode in (-9, 137)  # SIGKILL, directly or as a shell reports it
        raise TargetError(
            f"the runner on {target_name} {how} without a result" + (f":\n{tail}" if tail else ""),
            hint=hint
            or f"run `edgekd targets doctor {target_name}`"
            + ("; a SIGKILL often means the device ran out of memory" if killed else ""),
        )
    if "error" in document:
        error = document["error"]
        if not isinstance(error, dict):  # a runner of another version, or garbled output
            raise BenchError(
                f"{target_name}: the runner reported an error it did not describe: {str(error)[:200]}",
                hint="is the runner on the device from this edgekd version? rerun to push it again",
            )
        kind = error.get("kind", "unknown")
        cls = (
            TargetError
            if kind in ("runtime_missing", "runtime_broken", "numpy_missing", "out_of_memory")
            else BenchError
        )
        raise cls(f"{target_name}: {error.get('message', kind)}", hint=error.get("hint"))
    return document


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
            argv = runner_argv(
                target,
                runner,
                remotes[artifact.sha256],
                runtimes[index],
                config,
                inputs=inputs,
                shapes=shapes,
                recorded=recorded_shapes(artifact),
                profile=profiling and not by_tool,
            )
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
                argv = runner_argv(
                    target,
                    runner,
                    remotes[artifact.sha256],
                    runtimes[index],
                    config,
                    runs=0,
                    inputs=inputs,
                    shapes=shapes,
                    recorded=recorded_shapes(artifact),
                )
                energy = _energy(target, argv, config, meter, idle, collected[index])
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


def _signal_name(number: int) -> str:
    import signal

    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown signal"
