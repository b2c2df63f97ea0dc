"""BenchResult: one artifact benchmarked on one target, raw samples kept beside the statistics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgekd.measure import Stats, compute_stats

RESULT_SCHEMA = "edgekd.bench/1"


@dataclass
class BenchResult:
    artifact: str  # artifact name ("onnx_int8", or the file stem for a file given on the command line)
    artifact_sha256: str
    format: str
    precision: str | None
    target: str
    runtime: str
    versions: dict[str, str]
    latencies_ns: list[int]
    stats: Stats
    init_ms: float | None
    first_ms: float | None
    peak_rss_kb: int | None
    baseline_rss_kb: int | None  # the runner with the runtime loaded and no model
    size_bytes: int | None = None
    energy: dict[str, Any] | None = None  # EnergyEstimate.to_dict()
    energy_unavailable: str | None = None
    warnings: list[str] = field(default_factory=list)
    env: dict[str, Any] = field(default_factory=dict)
    windows: list[dict[str, Any]] | None = None
    repeat_medians_ms: list[float] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] | None = None  # per-op profile (edgekd.profile/1, OpProfile.to_dict()) when asked for

    @property
    def model_rss_kb(self) -> int | None:
        """Peak RSS attributable to the model: peak minus the empty-model baseline, where both are known."""
        if self.peak_rss_kb is None or self.baseline_rss_kb is None:
            return None
        return max(0, self.peak_rss_kb - self.baseline_rss_kb)

    def _identity(self) -> dict[str, Any]:
        """What was run where: the first fields of both summary() and to_dict()."""
        return {
            "artifact": self.artifact,
            "artifact_sha256": self.artifact_sha256,
            "format": self.format,
            "precision": self.precision,
            "target": self.target,
            "runtime": self.runtime,
        }

    def summary(self) -> dict[str, Any]:
        """The flat figures reports and tables use (latencies in ms, memory in KiB, energy in J)."""
        return {
            **self._identity(),
            "runtime_version": self.versions.get("runtime"),
            **self.stats.ms(),
            "peak_rss_kb": self.peak_rss_kb,
            "baseline_rss_kb": self.baseline_rss_kb,
            "model_rss_kb": self.model_rss_kb,
            "size_bytes": self.size_bytes,
            "init_ms": self.init_ms,
            "first_ms": self.first_ms,
            "energy_j_per_inference": self.energy["j_per_inference"] if self.energy else None,
            "energy_uncertainty_j": self.energy["uncertainty_j"] if self.energy else None,
            "energy_method": self.energy["method"] if self.energy else None,
            "energy_unavailable": self.energy_unavailable,
            "warnings": list(self.warnings),
            "env": self.env,
            "windows": self.windows,
            "repeat_medians_ms": list(self.repeat_medians_ms),
            "profile": self.profile,
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything, raw latencies included; versioned so readers can tell old results apart."""
        return {
            "schema": RESULT_SCHEMA,
            **self._identity(),
            "versions": self.versions,
            "latencies_ns": list(self.latencies_ns),
            "stats": self.stats.to_dict(),
            "init_ms": self.init_ms,
            "first_ms": self.first_ms,
            "peak_rss_kb": self.peak_rss_kb,
            "baseline_rss_kb": self.baseline_rss_kb,
            "size_bytes": self.size_bytes,
            "energy": self.energy,
            "energy_unavailable": self.energy_unavailable,
            "warnings": list(self.warnings),
            "env": self.env,
            "windows": self.windows,
            "repeat_medians_ms": list(self.repeat_medians_ms),
            "config": self.config,
            "profile": self.profile,
            "summary": self.summary(),
        }

    @staticmethod
    def from_dict(data: dict[str, Any]) -> BenchResult:
        latencies = [int(x) for x in data.get("latencies_ns", [])]
        stats = Stats.from_dict(data["stats"]) if "stats" in data else compute_stats(latencies)
        return BenchResult(
            artifact=data["artifact"],
            artifact_sha256=data.get("artifact_sha256", ""),
            format=data.get("format", ""),
            precision=data.get("precision"),
            target=data.get("target", ""),
            runtime=data.get("runtime", ""),
            versions=dict(data.get("versions", {})),
            latencies_ns=latencies,
            stats=stats,
            init_ms=data.get("init_ms"),
            first_ms=data.get("first_ms"),
            peak_rss_kb=data.get("peak_rss_kb"),
            baseline_rss_kb=data.get("baseline_rss_kb"),
            size_bytes=data.get("size_bytes"),
            energy=data.get("energy"),
            energy_unavailable=data.get("energy_unavailable"),
            warnings=list(data.get("warnings", [])),
            env=dict(data.get("env", {})),
            windows=data.get("windows"),
            repeat_medians_ms=list(data.get("repeat_medians_ms", [])),
            config=dict(data.get("config", {})),
            profile=data.get("profile"),
        )
