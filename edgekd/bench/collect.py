"""What the repeats of one artifact collect, and the BenchResult made from it.

Runner documents carry raw per-run latencies; the adb tool modes' documents (benchmark_model,
onnxruntime_perf_test) carry only the tool's printed summary, from which the statistics are taken
(Stats.from_summaries) with warnings saying which figures the tool does not give.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgekd.artifacts import Artifact
from edgekd.bench.environment import result_environment
from edgekd.bench.result import BenchResult
from edgekd.bench.target_settings import TargetSettings
from edgekd.energy_protocol import EnergyWindow
from edgekd.errors import BenchError
from edgekd.measure import Stats, compute_stats, window_stats
from edgekd.target_protocol import Completed, DeviceInfo, Target


@dataclass
class Runs:
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
    profile: dict[str, Any] | None = None  # the per-op profile (OpProfile.to_dict()) when one was asked for

    @property
    def inferences(self) -> int:
        """Timed inferences over all repeats (from the samples, or the tools' counts)."""
        return len(self.latencies) or sum(int(s.get("count") or 0) for s in self.summaries)

    def stats(self) -> Stats:
        if self.latencies:
            return compute_stats(self.latencies)
        return Stats.from_summaries(self.summaries, str(self.documents[0].get("runtime") or "the tool"))


def peak_rss(document: dict[str, Any], completed: Completed) -> int | None:
    """The runner's VmHWM where the device has procfs, else the transport's wait4 figure, else ru_maxrss.

    wait4's ru_maxrss is not used first: Linux carries the parent's high-water mark across fork/exec
    into the child's maxrss, so a runner started from a large process (edgekd with torch loaded)
    would report the parent's memory."""
    if document.get("vmhwm_kb") is not None:
        return int(document["vmhwm_kb"])
    return completed.peak_rss_kb if completed.peak_rss_kb is not None else document.get("peak_rss_kb")


def op_profile(document: dict[str, Any], artifact: Artifact, target: str | None) -> dict[str, Any] | None:
    """The per-op profile a runner document carries, as OpProfile.to_dict() with the unprofiled median of the
    same process (the rows' yardstick) and the profiler's overhead; None when no profile was asked for.

    Runner documents carry `op_profile` (ORT trace summary) or `profile_unavailable`; the adb tool modes
    carry `profile`, already an OpProfile dict (parsed from benchmark_model's op-profiling table)."""
    from edgekd.profile.ort_profile import overhead_text
    from edgekd.profile.schema import OpProfile, from_runner_document

    if isinstance(document.get("profile"), dict):
        profile = OpProfile.from_dict(document["profile"])
        profile.model, profile.target = artifact.path.name, target
    elif "op_profile" in document or "profile_unavailable" in document:
        profile = from_runner_document(document, model=artifact.path.name, target=target)
    else:
        return None
    latencies = [int(x) for x in document.get("latencies_ns") or []]
    profiled = [int(x) for x in document.get("profile_latencies_ns") or []]
    summary = document.get("summary") or {}
    if latencies:
        profile.median_ms = compute_stats(latencies).center_ns / 1e6
    elif summary.get("p50_ms") or summary.get("mean_ms"):  # tool modes: the tool's own (profiled) figure
        profile.median_ms = summary.get("p50_ms") or summary.get("mean_ms")
    if profiled:
        profile.profiled_median_ms = compute_stats(profiled).center_ns / 1e6
    if profile.profiled_median_ms and profile.median_ms:
        profile.overhead = overhead_text(profile.profiled_median_ms, profile.median_ms)
    if document.get("profile_note"):
        profile.notes.append(str(document["profile_note"]))
    return profile.to_dict()


def collect(
    runs: Runs,
    repeat: int,
    document: dict[str, Any],
    completed: Completed,
    window: EnergyWindow | None,
    artifact: Artifact,
    *,
    target: str | None = None,
) -> None:
    sha = document.get("model_sha256")
    if sha and sha != artifact.sha256:
        raise BenchError(
            f"the device ran a different file than {artifact.path.name} (sha256 {sha[:12]}… ≠ {artifact.sha256[:12]}…)",
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
    rss = peak_rss(document, completed)
    if rss is not None:
        runs.peak_rss_kb.append(int(rss))
    for row in window_stats(latencies, document.get("windows") or []):
        runs.windows.append({"repeat": repeat, **row})
    if window is not None:
        runs.energy_windows.append(window)
    runs.completed = completed
    profile = op_profile(document, artifact, target)
    if profile is not None and runs.profile is None:
        runs.profile = profile


def _power_warnings(env: dict[str, Any], energy: dict[str, Any] | None) -> list[str]:
    """A phone measured on USB/AC power: its battery current is net of the charger (flagged in env too)."""
    if not env.get("charging"):
        return []
    if energy is not None:
        return [
            (
                "measured while charging (--allow-charging): the energy figure is the battery's net current, "
                "not the phone's consumption; latencies may differ from battery operation too"
            )
        ]
    return ["measured while charging: the phone was on USB/AC power (latencies may differ from battery operation)"]


def build_result(
    target: Target,
    states: tuple[DeviceInfo, DeviceInfo | None],
    artifact: Artifact,
    runs: Runs,
    baseline_rss: int | None,
    settings: TargetSettings,
    energy: dict[str, Any] | None,
    energy_reason: str | None,
    governor_note: str,
) -> BenchResult:
    config = settings.config
    info, after = states
    first = runs.documents[0]
    stats = runs.stats()
    completed = runs.completed or Completed([], 0, "", "", 0.0)
    env = result_environment(info, runs.documents[-1], artifact, completed)
    env["init_ms_all"] = [d.get("init_ms") for d in runs.documents]
    env["rss_after_first_kb"] = first.get("rss_after_first_kb")  # memory once loaded and run once (cold start)
    env["rss_sources_kb"] = {
        "vmhwm": first.get("vmhwm_kb"),
        "ru_maxrss": first.get("ru_maxrss_kb"),
        "wait4": completed.peak_rss_kb,
    }
    env["governor_control"] = governor_note
    env["settings"] = settings.env()
    if after is not None:  # the runner's own env is read on the device too; the target's view adds the rest
        env["thermal_status_after"] = env["thermal_status_after"] or after.extra.get("thermal_status")
        env["throttled_after"] = after.extra.get("throttled")
        env["temps_c_end"] = dict(after.temperatures_c)
    env["stats_source"] = stats.source
    # The shapes every run used (the runner resolves symbolic dimensions from --shape, --inputs or the
    # sidecar); the tool modes report none, then the sidecar's shapes are what is known.
    env["input_shapes"] = (
        first.get("input_shapes") or {spec.name: list(spec.shape) for spec in artifact.inputs or ()} or None
    )
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
        profile=runs.profile,
    )
