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
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from edgekd.artifacts import Artifact
from edgekd.bench.energy_accounting import IdleBaseline, estimate_per_inference, measure_idle
from edgekd.bench.environment import result_environment
from edgekd.bench.noise import GovernorControl, run_order, wait_for_thermal
from edgekd.bench.result import BenchResult
from edgekd.bench.target_settings import TargetSettings, apply_target_settings
from edgekd.config.bench import BenchConfig
from edgekd.device import Completed, DeviceInfo, Target
from edgekd.energy import EnergyMeter, EnergyWindow
from edgekd.errors import BenchError, EdgekdError, TargetError
from edgekd.measure import Stats, compute_stats, window_stats

log = logging.getLogger(__name__)

RUN_SCHEMA = "edgekd.run/1"
#: Called as progress(done, total, status) after each runner invocation.
ProgressCallback = Callable[[int, int, str], None]
BENCHMARKABLE = {"onnx": "ort", "tflite": None, "torch": "torch"}  # format -> runtime (None: config's choice)
TORCH_RUNNER = "edgekd.bench.torch_runner"  # host-only: devices have no torch


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


def runtime_for(artifact: Artifact, config: BenchConfig) -> str:
    if artifact.format not in BENCHMARKABLE:
        raise BenchError(
            f"cannot benchmark {artifact.path.name}: format '{artifact.format}' has no runtime",
            hint="benchmark a .onnx, .tflite or torch (.pt with its sidecar) file",
        )
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
) -> list[str]:
    """The runner command line. `model=None` is the empty-model baseline; `runs=0` the energy reference;
    `inputs` the remote path of the pushed inputs file."""
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
    return argv


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
        raise TargetError(
            f"the runner on {target_name} exited with status {completed.returncode} without a result"
            + (f":\n{tail}" if tail else ""),
            hint=hint or "run `edgekd doctor` for this target",
        )
    if "error" in document:
        error = document["error"]
        kind = error.get("kind", "unknown")
        cls = TargetError if kind in ("runtime_missing", "numpy_missing", "out_of_memory") else BenchError
        raise cls(f"{target_name}: {error.get('message', kind)}", hint=error.get("hint"))
    return document


@dataclass
class _Runs:
    """What the repeats of one artifact collected."""

    latencies: list[int] = field(default_factory=list)
    summaries: list[dict[str, Any]] = field(default_factory=list)  # tool modes: printed summaries, no samples
    repeat_medians_ms: list[float] = field(default_factory=list)
    documents: list[dict[str, Any]] = field(default_factory=list)
    peak_rss_kb: list[int] = field(default_factory=list)
    windows: list[dict[str, Any]] = field(default_factory=list)
    energy_windows: list[EnergyWindow] = field(default_factory=list)
    completed: Completed | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def inferences(self) -> int:
        """Timed inferences over all repeats (from the samples, or the tools' counts)."""
        return len(self.latencies) or sum(int(s.get("count") or 0) for s in self.summaries)

    def stats(self) -> Stats:
        if self.latencies:
            return compute_stats(self.latencies)
        return Stats.from_summaries(self.summaries, str(self.documents[0].get("runtime") or "the tool"))


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


def _peak_rss(document: dict[str, Any], completed: Completed) -> int | None:
    """The runner's VmHWM where the device has procfs, else the transport's wait4 figure, else ru_maxrss.

    wait4's ru_maxrss is not used first: Linux carries the parent's high-water mark across fork/exec
    into the child's maxrss, so a runner started from a large process (edgekd with torch loaded)
    would report the parent's memory."""
    if document.get("vmhwm_kb") is not None:
        return int(document["vmhwm_kb"])
    return completed.peak_rss_kb if completed.peak_rss_kb is not None else document.get("peak_rss_kb")


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
    target: Target, artifacts: Sequence[Artifact], config: BenchConfig, *, progress: Any = None
) -> list[BenchResult]:
    """Benchmark the artifacts on `target`; one BenchResult per benchmarked artifact, in the given order.

    Torch artifacts run only on a local target (devices have no torch); elsewhere they are skipped with a
    logged warning. `progress` is None, a callable(done, total, status) or a rich Progress."""
    progress = progress_reporter(progress)
    artifacts = _runnable_here(target, artifacts)
    runtimes = [runtime_for(artifact, config) for artifact in artifacts]
    governor: GovernorControl | None = getattr(target, "governor_control", lambda: None)()
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
        baselines = {
            runtime: _baseline_rss(target, runner, runtime, config) for runtime in dict.fromkeys(runtimes)
        }
        meter, energy_reason = _energy_meter(target, config)
        idle = measure_idle(meter, config.energy_idle_s) if meter else None
        collected = [_Runs() for _ in artifacts]
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
            argv = runner_argv(target, runner, remotes[artifact.sha256], runtimes[index], config, inputs=inputs)
            try:
                document, completed, window = _invoke(target, argv, config.timeout_s + 60, meter)
            except BenchError as exc:  # name the file: several may be benchmarked together
                raise BenchError(f"{artifact.path.name}: {exc.message}", hint=exc.hint) from None
            _collect(collected[index], repeat, document, completed, window, artifact)
            if progress:
                progress(step + 1, total, f"{artifact.name} run {repeat + 1}/{config.repeats}")
        results = []
        for index, artifact in enumerate(artifacts):
            energy = None
            if meter is not None and idle is not None:
                argv = runner_argv(target, runner, remotes[artifact.sha256], runtimes[index], config, runs=0,
                                   inputs=inputs)
                energy = _energy(target, argv, config, meter, idle, collected[index])
                if progress:
                    progress(len(order) + index + 1, total, f"{artifact.name} energy reference")
            results.append(
                _result(target, info, artifact, collected[index], baselines[runtimes[index]], settings, energy,
                        energy_reason, governor_note)
            )
        return results
    finally:
        if governor is not None:
            governor.restore()
        close_meter = getattr(meter, "close", None)
        if close_meter is not None:
            close_meter()
        _cleanup(target, failing=sys.exc_info()[0] is not None)


def _runnable_here(target: Target, artifacts: Sequence[Artifact]) -> list[Artifact]:
    if not artifacts:
        raise BenchError("nothing to benchmark", hint="give at least one .onnx, .tflite or torch artifact")
    for artifact in artifacts:
        runtime_for(artifact, BenchConfig())  # refuse unknown formats before touching the device
    on_host = getattr(target, "kind", None) == "local"
    runnable = [a for a in artifacts if on_host or a.format != "torch"]
    skipped = [a.name for a in artifacts if a not in runnable]
    if skipped:
        log.warning("%s: torch artifacts run on the local target only; skipped %s", target.name, ", ".join(skipped))
    if not runnable:
        raise BenchError(f"nothing to benchmark on {target.name}: torch artifacts run on the local target only",
                         hint="benchmark the exported .onnx / .tflite files on devices")
    return runnable


def _cleanup(target: Target, *, failing: bool) -> None:
    try:
        target.cleanup()
    except EdgekdError as exc:
        if not failing:
            raise
        log.warning("cleanup of %s failed after an earlier error: %s", target.name, exc)


def _baseline_rss(target: Target, runner: str, runtime: str, config: BenchConfig) -> int | None:
    document, completed, _ = _invoke(target, runner_argv(target, runner, None, runtime, config), config.timeout_s, None)
    return _peak_rss(document, completed)


def _collect(
    runs: _Runs, repeat: int, document: dict[str, Any], completed: Completed, window: EnergyWindow | None,
    artifact: Artifact,
) -> None:
    sha = document.get("model_sha256")
    if sha and sha != artifact.sha256:
        raise BenchError(
            f"the device ran a different file than {artifact.path.name} "
            f"(sha256 {sha[:12]}… ≠ {artifact.sha256[:12]}…)",
            hint="the copy on the device is stale or corrupt; rerun (the target pushes it again)",
        )
    latencies = [int(x) for x in document.get("latencies_ns") or []]
    summary = document.get("summary")
    if latencies:
        runs.latencies.extend(latencies)
        runs.repeat_medians_ms.append(compute_stats(latencies).center_ns / 1e6)
    elif summary and summary.get("mean_ms") is not None:  # adb tool modes: the tools print summaries only
        runs.summaries.append(dict(summary))
        runs.repeat_medians_ms.append(summary.get("p50_ms") or summary["mean_ms"])
    else:
        raise BenchError(f"the runner timed no inference of {artifact.name}", hint="raise --runs or --duration")
    runs.documents.append(document)
    rss = _peak_rss(document, completed)
    if rss is not None:
        runs.peak_rss_kb.append(int(rss))
    for row in window_stats(latencies, document.get("windows") or []):
        runs.windows.append({"repeat": repeat, **row})
    if window is not None:
        runs.energy_windows.append(window)
    runs.completed = completed


def _energy(
    target: Target, reference_argv: list[str], config: BenchConfig, meter: EnergyMeter, idle: IdleBaseline,
    runs: _Runs,
) -> dict[str, Any] | None:
    """Differential estimate: the runs' windows minus a same-model, zero-run reference window."""
    _, _, reference = _invoke(target, reference_argv, config.timeout_s, meter)
    if reference is None or not runs.energy_windows:
        return None
    if not runs.inferences:
        return None
    return estimate_per_inference(runs.energy_windows, reference, runs.inferences, idle).to_dict()


def _power_warnings(env: dict[str, Any], energy: dict[str, Any] | None) -> list[str]:
    """A phone measured on USB/AC power: its battery current is net of the charger (flagged in env too)."""
    if not env.get("charging"):
        return []
    if energy is not None:
        return ["measured while charging (--allow-charging): the energy figure is the battery's net current, "
                "not the phone's consumption; latencies may differ from battery operation too"]
    return ["measured while charging: the phone was on USB/AC power (latencies may differ from battery operation)"]


def _inputs_file(config: BenchConfig) -> Path:
    path = Path(config.inputs or "")
    if not path.is_file():
        raise BenchError(f"inputs file {path} does not exist",
                         hint="give an .npz with one array per model input, named after the input")
    return path


def _result(
    target: Target, info: DeviceInfo, artifact: Artifact, runs: _Runs, baseline_rss: int | None,
    settings: TargetSettings, energy: dict[str, Any] | None, energy_reason: str | None, governor_note: str,
) -> BenchResult:
    config = settings.config
    first = runs.documents[0]
    stats = runs.stats()
    completed = runs.completed or Completed([], 0, "", "", 0.0)
    env = result_environment(info, runs.documents[-1], artifact, completed)
    env["init_ms_all"] = [d.get("init_ms") for d in runs.documents]
    env["rss_sources_kb"] = {"vmhwm": first.get("vmhwm_kb"), "ru_maxrss": first.get("ru_maxrss_kb"),
                             "wait4": completed.peak_rss_kb}
    env["governor_control"] = governor_note
    env["settings"] = settings.env()
    env["stats_source"] = stats.source
    if stats.source != "samples":
        env["tool_summaries"] = runs.summaries
        env["tool_memory"] = [d.get("memory") for d in runs.documents if d.get("memory")]
    warnings = [*stats.warnings, *dict.fromkeys(runs.warnings), *settings.notes, *_power_warnings(env, energy)]
    if len(runs.repeat_medians_ms) > 1:
        spread = max(runs.repeat_medians_ms) / min(runs.repeat_medians_ms) - 1
        if spread > 0.05:
            warnings.append(f"medians of the repeats differ by {spread:.0%}: the device is not steady")
    try:
        size: int | None = artifact.size_bytes
    except OSError:
        size = None
    return BenchResult(
        artifact=artifact.name,
        artifact_sha256=artifact.sha256,
        format=artifact.format,
        precision=artifact.precision,
        target=target.name,
        runtime=first.get("runtime", ""),
        versions=dict(first.get("versions", {})),
        latencies_ns=runs.latencies,
        stats=stats,
        init_ms=first.get("init_ms"),
        first_ms=first.get("first_ms"),
        peak_rss_kb=max(runs.peak_rss_kb) if runs.peak_rss_kb else None,
        baseline_rss_kb=baseline_rss,
        size_bytes=size,
        energy=energy,
        energy_unavailable=None if energy else (energy_reason or "no energy window was recorded"),
        warnings=warnings,
        env=env,
        windows=runs.windows or None,
        repeat_medians_ms=runs.repeat_medians_ms,
        config=config.model_dump(),
    )
