"""The stages of `edgekd run`, in order. Each is a small class; heavy work lives in the library modules.

STAGE_NAMES is the one declaration of the stages and their order: the run command's `--only` check, the
report's stage table, the verify/bench model stages and the sweep's steps all derive from it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgekd.stages.protocol import Stage

STAGE_NAMES = (
    "data",
    "teacher",
    "distill",
    "export",
    "calibrate",
    "quantize",
    "tflite",
    "verify",
    "bench",
    "handoff",
    "report",
)


def in_pipeline_order(names: Iterable[str]) -> tuple[str, ...]:
    """`names` (pipeline stages) sorted into pipeline order; a name that is not a stage is a bug in the caller."""
    wanted = set(names)
    unknown = wanted - set(STAGE_NAMES)
    if unknown:
        raise ValueError(f"not pipeline stages: {', '.join(sorted(unknown))}")
    return tuple(name for name in STAGE_NAMES if name in wanted)


def stage_span(first: str, last: str) -> tuple[str, ...]:
    """The stages from `first` to `last`, both included, in pipeline order."""
    return STAGE_NAMES[STAGE_NAMES.index(first) : STAGE_NAMES.index(last) + 1]


def default_stages() -> list[Stage]:
    """One instance of every stage, in STAGE_NAMES order."""
    from edgekd.stages.conversion import CalibrateStage, ExportStage, QuantizeStage, TfliteStage
    from edgekd.stages.delivery import BenchStage, HandoffStage, ReportStage, VerifyStage
    from edgekd.stages.training import DataStage, DistillStage, TeacherStage

    classes: list[type[Stage]] = [DataStage, TeacherStage, DistillStage, ExportStage, CalibrateStage, QuantizeStage]
    classes += [TfliteStage, VerifyStage, BenchStage, HandoffStage, ReportStage]
    by_name = {stage.name: stage for stage in (cls() for cls in classes)}
    if set(by_name) != set(STAGE_NAMES):  # a stage class added or renamed without STAGE_NAMES (a bug)
        raise RuntimeError(f"stage classes {sorted(by_name)} do not match STAGE_NAMES {list(STAGE_NAMES)}")
    return [by_name[name] for name in STAGE_NAMES]
