"""report.json, report.md and report.html carry what the stages noted and how closely the students follow the teacher."""

from __future__ import annotations

import json
from pathlib import Path

from edgekd.report.build import build_report
from edgekd.report.markdown import render_markdown


def _run_with_notes(tmp_path: Path) -> Path:
    stages = tmp_path / ".edgekd" / "stages"
    stages.mkdir(parents=True)
    distill = {"teacher_accuracy": 0.99, "student_accuracy": 0.98, "scratch_accuracy": 0.90, "teacher_params": 1000,
               "student_params": 100, "student_teacher_agreement": 0.985, "student_teacher_kl": 0.0412,
               "scratch_teacher_agreement": 0.905, "scratch_teacher_kl": 0.3170, "agreement_split": "val"}  # fmt: skip
    calibrate = {"size": 105, "warnings": ["calibration uses all 105 training samples (fewer than the default 200)"]}
    for name, summary in (("distill", distill), ("calibrate", calibrate)):
        (stages / f"{name}.json").write_text(json.dumps({"schema": "edgekd.stage/1", "stage": name, "key": name,
                                                          "artifacts": [], "summary": summary, "seconds": 0.1}))  # fmt: skip
    return tmp_path


def test_stage_notes_become_report_warnings(tmp_path: Path) -> None:
    report = build_report(_run_with_notes(tmp_path))
    noted = [w for w in report["warnings"] if w["source"] == "calibrate"]
    assert [w["message"] for w in noted] == ["calibration uses all 105 training samples (fewer than the default 200)"]


def test_agreement_with_the_teacher_is_in_the_markdown(tmp_path: Path) -> None:
    report = build_report(_run_with_notes(tmp_path))
    text = render_markdown(report)
    assert (
        "Top-1 agreement with the teacher: KD student 98.50% (KL 0.041), scratch student 90.50% (KL 0.317) on the val split."
        in text
    )
