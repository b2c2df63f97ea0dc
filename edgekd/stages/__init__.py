"""The stages of `edgekd run`, in order. Each is a small class; heavy work lives in the library modules."""

from __future__ import annotations

from edgekd.pipeline import Stage


def default_stages() -> list[Stage]:
    from edgekd.stages.conversion import CalibrateStage, ExportStage, QuantizeStage, TfliteStage
    from edgekd.stages.delivery import BenchStage, HandoffStage, ReportStage, VerifyStage
    from edgekd.stages.training import DataStage, DistillStage, TeacherStage

    return [
        DataStage(), TeacherStage(), DistillStage(),
        ExportStage(), CalibrateStage(), QuantizeStage(), TfliteStage(),
        VerifyStage(), BenchStage(), HandoffStage(), ReportStage(),
    ]  # fmt: skip


STAGE_NAMES = ("data", "teacher", "distill", "export", "calibrate", "quantize", "tflite", "verify", "bench", "handoff", "report")
