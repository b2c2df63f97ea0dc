"""One per-op profile schema for every runtime and target ("edgekd.profile/1").

A profile is a list of rows, one per node the runtime executed, whichever profiler produced it (ONNX
Runtime's own profiler, TFLite `benchmark_model --enable_op_profiling`):

- `op`: the node's name as the runtime reports it (ORT: the node name of the graph it ran, which after
  ORT's optimisations may be a fused node such as `r0_nchwc`; TFLite: the `[Name]` column, usually the
  output tensor name with its `:index`).
- `op_type`: ONNX op type (`Conv`), TFLite builtin (`CONV_2D`), XNNPACK operator (`Convolution (NHWC, QC8)
  IGEMM`) or a delegate kernel (`TfLiteNnapiDelegate`) when the delegate reports no per-op detail.
- `provider`: where it ran: the ORT execution provider (`CPUExecutionProvider`), or for TFLite `CPU`
  (the plain builtin kernels), `XNNPACK`, `NNAPI`, `GPU`, `Hexagon`, or `delegate` when unnamed.
- `ms`: milliseconds this node costs per inference over the profiled runs, all its calls in one inference
  together. The profile's `statistic` says which central value: ORT rows are the node's mean time per run over
  the middle half of the runs ranked by run time ("interquartile mean", so they add up to about the median
  run); TFLite `benchmark_model` prints only a per-call mean, so its rows are that mean × `calls` ("mean").
- `calls`: how many times the node ran per inference (1 for almost every node; XNNPACK folds repeated
  operators of one kind into one row with several calls).

Where a runtime offers no profiler, `rows` is empty and `profile_unavailable` says why.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from edgekd.errors import DataError

SCHEMA = "edgekd.profile/1"
#: The provider name of TFLite's plain builtin kernels (no delegate).
TFLITE_CPU = "CPU"
#: ORT's plain CPU execution provider.
ORT_CPU = "CPUExecutionProvider"
#: Providers that are "the plain CPU" for the placement verdict.
PLAIN_CPU = frozenset({TFLITE_CPU, ORT_CPU})


@dataclass(frozen=True)
class OpRow:
    """One node of a profile (see the module docstring for each field's meaning)."""

    op: str
    op_type: str
    provider: str
    ms: float
    calls: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class OpProfile:
    """The per-op profile of one model on one runtime and target."""

    runtime: str  # "ort" | "litert" | "tflite"
    model: str  # file name of the profiled model
    source: str  # which profiler produced the rows
    rows: list[OpRow] = field(default_factory=list)
    runs: int = 0  # profiled inferences the rows are taken over
    statistic: str = "mean"  # "interquartile mean" | "mean": how `ms` summarises the runs
    requested: list[str] = field(default_factory=list)  # accelerators asked for (ORT EPs, TFLite delegates)
    providers: list[str] = field(default_factory=list)  # what the runtime actually enabled, when it says
    median_ms: float | None = None  # unprofiled end-to-end median latency of the same model and settings
    profiled_median_ms: float | None = None  # end-to-end median while the profiler ran
    overhead: str | None = None  # the profiler's own cost, in words with the figures
    profile_unavailable: str | None = None
    target: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def total_ms(self) -> float:
        """Sum of the rows' per-inference time."""
        return sum(row.ms for row in self.rows)

    @property
    def coverage(self) -> float | None:
        """Sum of per-op time / unprofiled median latency (1.0 = the ops explain all of it)."""
        if not self.rows or not self.median_ms:
            return None
        return self.total_ms / self.median_ms

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["schema"] = SCHEMA
        data["total_ms"] = self.total_ms
        data["coverage"] = self.coverage
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OpProfile:
        """Read a profile written by `to_dict` (refuses another schema version with a clear message)."""
        schema = data.get("schema")
        if schema != SCHEMA:
            raise DataError(
                f"per-op profile has schema {schema!r}, expected {SCHEMA!r}",
                hint="re-run the profile with this edgekd version",
            )
        known = {name for name in cls.__dataclass_fields__}
        values = {key: value for key, value in data.items() if key in known}
        values["rows"] = [
            OpRow(**{k: row[k] for k in OpRow.__dataclass_fields__ if k in row}) for row in data.get("rows") or []
        ]
        return cls(**values)

    @classmethod
    def unavailable(cls, runtime: str, model: str, reason: str, **extra: Any) -> OpProfile:
        """A profile that could not be taken, with the reason."""
        return cls(runtime=runtime, model=model, source="none", profile_unavailable=reason, **extra)


def from_runner_document(document: dict[str, Any], *, model: str, target: str | None = None) -> OpProfile:
    """The OpProfile of a device runner's JSON document (edgekd.run/1 with the proposed profile fields):
    `op_profile` = `ort_trace.summarize_ort_trace(...)`'s dict (or the host torch runner's rows, named by
    `profile_source`), or `profile_unavailable` = the reason."""
    runtime = str(document.get("runtime") or "?")
    summary = document.get("op_profile")
    if not isinstance(summary, dict):
        reason = str(document.get("profile_unavailable") or "the runner returned no per-op profile")
        return OpProfile.unavailable(runtime, model, reason, target=target)
    versions = document.get("versions") or {}
    version = versions.get("onnxruntime") or versions.get("runtime") or ""  # the runner names it "runtime"
    source = str(document.get("profile_source") or f"onnxruntime {version} profiler".replace("  ", " "))
    return OpProfile(
        runtime=runtime,
        model=model,
        source=source,
        rows=[
            OpRow(**{k: row[k] for k in OpRow.__dataclass_fields__ if k in row}) for row in summary.get("rows") or []
        ],
        runs=int(summary.get("runs") or 0),
        statistic=str(summary.get("statistic") or "mean"),
        requested=list(document.get("requested_providers") or []),
        providers=list(document.get("providers") or []),
        target=target,
    )
