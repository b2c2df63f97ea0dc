"""Outcome verdicts: each one fires on a constructed case and stays quiet on its near misses.

Cases are report.json dicts built here, plus the real report.json of the digits demo (recorded from
`edgekd run examples/digits.toml` on this machine, latencies left out) and a report built from stage
manifests by `build_report`, which must carry the verdicts into report.json, report.html and report.md.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, get_args

import pytest

from edgekd import verdicts
from edgekd.config.report import ReportConfig, VerdictCode
from edgekd.errors import RecipeError
from edgekd.recipe import parse_recipe
from edgekd.report import write_reports
from edgekd.report.build import build_report
from tests.support.report_run import make_run_dir

GOLDEN_DEMO = Path(__file__).parent / "golden" / "demo_report_verdicts.json"


def _bench(
    artifact: str,
    precision: str,
    runtime: str,
    p50: float,
    *,
    target: str = "local",
    ci: tuple[float, float] | None = None,
    energy: float | None = 1e-6,
    reason: str | None = None,
) -> dict[str, Any]:
    return {
        "artifact": artifact,
        "target": target,
        "runtime": runtime,
        "precision": precision,
        "format": "onnx" if runtime == "ort" else "tflite",
        "p50_ms": p50,
        "ci95_median_ms": list(ci) if ci else None,
        "energy_j_per_inference": energy,
        "energy_unavailable": reason,
    }


def clean_report() -> dict[str, Any]:
    """A healthy run: a strong teacher, KD beyond scratch, int8 faster, agreement far above its gate, energy."""
    return {
        "schema": "edgekd.report/1",
        "distill": {
            "teacher_accuracy": 0.98,
            "student_accuracy": 0.96,
            "scratch_accuracy": 0.94,
            "kd_minus_scratch": 0.02,
            "within_noise": False,
            "noise_test": {"method": "paired McNemar test on 360 test samples at 95%", "noise_band": 0.012},
        },
        "parity": [
            {
                "artifact": "onnx_fp32",
                "precision": "fp32",
                "top1_agreement": 1.0,
                "passed": True,
                "threshold": {"agreement": 0.999},
            },
            {
                "artifact": "onnx_int8",
                "precision": "int8",
                "top1_agreement": 0.99,
                "passed": True,
                "threshold": {"agreement": 0.95},
            },
        ],
        "bench": [
            _bench("onnx_fp32", "fp32", "ort", 0.200, ci=(0.195, 0.205)),
            _bench("onnx_int8", "int8", "ort", 0.100, ci=(0.098, 0.102)),
        ],
        "artifacts": [],
    }


def _codes(report: dict[str, Any]) -> list[str]:
    return [v.code for v in verdicts.compute(report)]


def test_clean_report_fires_nothing() -> None:
    assert verdicts.compute(clean_report()) == []


def _teacher_below_scratch(r: dict[str, Any]) -> None:
    r["distill"].update(teacher_accuracy=0.93)


def _kd_below_scratch(r: dict[str, Any]) -> None:
    r["distill"].update(student_accuracy=0.90, kd_minus_scratch=-0.04, within_noise=False)


def _student_keeps_little(r: dict[str, Any]) -> None:
    r["distill"].update(teacher_accuracy=0.99, student_accuracy=0.80, scratch_accuracy=0.79, kd_minus_scratch=0.01)


def _int8_slower(r: dict[str, Any]) -> None:
    r["bench"][1].update(p50_ms=0.300, ci95_median_ms=[0.29, 0.31])


def _agreement_near_gate(r: dict[str, Any]) -> None:
    r["parity"][1]["top1_agreement"] = 0.955


def _energy_unavailable(r: dict[str, Any]) -> None:
    for row in r["bench"]:
        row.update(energy_j_per_inference=None, energy_unavailable="no RAPL powercap interface")


def _accelerator_fallback(r: dict[str, Any]) -> None:
    from edgekd.profile.schema import OpProfile, OpRow

    r["profiles"] = [
        OpProfile(
            runtime="tflite",
            model="m.tflite",
            source="test",
            requested=["XNNPACK"],
            target="pi5",
            rows=[OpRow("x", "TfLiteXNNPackDelegate", "XNNPACK", 0.02), OpRow("r", "RESIZE_BILINEAR", "CPU", 0.015)],
        ).to_dict()
    ]


def _fitnets_cross_family(r: dict[str, Any]) -> None:
    # the record the distill stage writes (edgekd.distill: a FitNets loss between model families)
    r["distill"]["fitnets_cross_family"] = {
        "code": "fitnets_cross_family", "teacher_family": "cnn", "student_family": "mlp",
        "message": "FitNets hints from a cnn teacher into a mlp student: hints across model families tend to do "
                   "worse than scratch",
    }  # fmt: skip


CASES = {
    "teacher_below_scratch": (_teacher_below_scratch, "The teacher scores 93.00% on the test split, below the 94.00%"),
    "kd_below_scratch": (_kd_below_scratch, "The KD student scores 90.00%, 4.00 pt below the scratch student's 94.00%"),
    "student_keeps_little": (
        _student_keeps_little,
        "keeps 80.8% of the teacher's accuracy (80.00% vs 99.00%), below the 90% floor",
    ),
    "int8_slower_than_fp32": (
        _int8_slower,
        "On local, ONNX Runtime runs onnx_int8 slower than onnx_fp32: p50 0.300 ms vs 0.200 ms (1.50×)",
    ),
    "int8_agreement_near_gate": (
        _agreement_near_gate,
        "onnx_int8 agrees with its reference on 95.50% of test samples, within 1 pt of the 95.00% gate",
    ),
    "energy_unavailable": (_energy_unavailable, "Energy was not measured on local: no RAPL powercap interface."),
    "accelerator_fallback": (
        _accelerator_fallback,
        (
            "m.tflite asked for XNNPACK on pi5, but 1 of 2 nodes (42.9% of "
            "op time, 0.015 ms per inference) ran on the plain CPU: RESIZE_BILINEAR"
        ),
    ),
    "fitnets_cross_family": (_fitnets_cross_family, "FitNets hints go from a cnn teacher into a mlp student"),
}


def test_every_code_has_a_check_and_a_case() -> None:
    assert [check.__name__ for check in verdicts.CHECKS] == list(verdicts.CODES) == list(get_args(VerdictCode))
    assert set(CASES) == set(verdicts.CODES)


@pytest.mark.parametrize("code", list(CASES))
def test_each_verdict_fires_alone_on_its_case(code: str) -> None:
    report = clean_report()
    mutate, expected = CASES[code]
    mutate(report)
    found = verdicts.compute(report)
    assert [v.code for v in found] == [code]
    assert expected in found[0].message
    assert found[0].severity == ("info" if code == "energy_unavailable" else "warning")
    assert found[0].message.count(". ") == 0 and found[0].message.endswith(".")  # one sentence


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(
            lambda r: r["distill"].update(kd_minus_scratch=-0.006, within_noise=True), id="kd-below-within-noise"
        ),
        pytest.param(
            lambda r: r["distill"].update(kd_minus_scratch=-0.006, within_noise=None), id="kd-below-inside-band"
        ),
        pytest.param(lambda r: r["distill"].update(teacher_accuracy=None), id="teacher-unknown (soft labels)"),
        pytest.param(lambda r: r["distill"].update(scratch_accuracy=None, kd_minus_scratch=None), id="no-baseline"),
        pytest.param(lambda r: r["distill"].update(student_accuracy=0.882), id="keeps-exactly-90"),
        pytest.param(lambda r: r["bench"][1].update(p50_ms=0.204, ci95_median_ms=None), id="int8-within-5%"),
        pytest.param(
            lambda r: r["bench"][1].update(p50_ms=0.240, ci95_median_ms=[0.150, 0.300]), id="int8-ci-overlaps"
        ),
        pytest.param(lambda r: r["bench"][1].update(runtime="litert", format="tflite", p50_ms=0.3), id="other-runtime"),
        pytest.param(lambda r: r["parity"][1].update(top1_agreement=0.96), id="agreement-exactly-1pt-above"),
        pytest.param(
            lambda r: r["parity"][1].update(top1_agreement=0.94, passed=False), id="agreement-below-gate-fails-parity"
        ),
        pytest.param(lambda r: r["parity"][0].update(top1_agreement=0.9995), id="fp32-near-its-gate"),
        pytest.param(lambda r: r.update(bench=[], distill=None, parity=[]), id="nothing-ran"),
    ],
)
def test_near_misses_fire_nothing(mutate: Any) -> None:
    report = clean_report()
    mutate(report)
    assert verdicts.compute(report) == []


def test_kd_below_scratch_without_a_test_uses_the_noise_band() -> None:
    report = clean_report()
    report["distill"].update(kd_minus_scratch=-0.02, within_noise=None)
    assert _codes(report) == ["kd_below_scratch"]


def test_int8_slower_names_every_target_and_uses_artifact_precisions() -> None:
    report = clean_report()
    report["bench"] += [
        _bench("tflite_fp32", "", "litert", 0.05, target="pi5"),
        _bench("tflite_int8", "", "litert", 0.09, target="pi5"),
    ]
    report["artifacts"] = [
        {"name": "tflite_fp32", "precision": "fp32", "format": "tflite"},
        {"name": "tflite_int8", "precision": "int8", "format": "tflite"},
    ]
    found = verdicts.compute(report)
    assert [v.message for v in found] == [
        "On pi5, LiteRT runs tflite_int8 slower than tflite_fp32: p50 90.0 µs vs 50.0 µs (1.80×)."
    ]


def test_energy_is_one_verdict_per_target() -> None:
    report = clean_report()
    _energy_unavailable(report)
    report["bench"].append(_bench("onnx_fp32", "fp32", "ort", 0.3, target="pi5", energy=None, reason="no PMIC"))
    assert [v.message for v in verdicts.compute(report)] == [
        "Energy was not measured on local: no RAPL powercap interface.",
        "Energy was not measured on pi5: no PMIC.",
    ]


def test_the_digits_demo_fires_only_int8_slower_and_energy() -> None:
    """The real report.json of `edgekd run examples/digits.toml` on this 2-core VM (no energy meter).

    int8 IS slower than fp32 here (a 6k-parameter model: quantize/dequantize overhead dominates), on ORT
    and on LiteRT, so that verdict fires honestly; the rest stay quiet.
    """
    report = json.loads(GOLDEN_DEMO.read_text(encoding="utf-8"))
    found = verdicts.compute(report)
    assert sorted({v.code for v in found}) == ["energy_unavailable", "int8_slower_than_fp32"]
    assert len([v for v in found if v.code == "int8_slower_than_fp32"]) == 2


def test_report_files_carry_the_verdicts(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path)
    write_reports(run, build_report(run), ReportConfig())
    report = json.loads((run / "report.json").read_text(encoding="utf-8"))
    assert report["verdicts"] and all(set(v) == {"code", "message", "severity"} for v in report["verdicts"])
    html = (run / "report.html").read_text(encoding="utf-8")
    markdown = (run / "report.md").read_text(encoding="utf-8")
    # the verdicts come before the first other section in both files
    assert html.index('id="verdicts"') < html.index('id="pipeline"') < html.index('id="distill"')
    assert markdown.index("## Verdicts") < markdown.index("## Distillation")
    for verdict in report["verdicts"]:
        assert verdict["code"] in html and verdict["code"] in markdown


def test_select_failing_for_strict_runs() -> None:
    report = clean_report()
    _int8_slower(report)
    _energy_unavailable(report)
    rows = [v.to_dict() for v in verdicts.compute(report)]
    assert [r["code"] for r in verdicts.select_failing(rows, True)] == ["int8_slower_than_fp32"]
    assert verdicts.select_failing(rows, False) == []
    assert [r["code"] for r in verdicts.select_failing(rows, ["energy_unavailable"])] == ["energy_unavailable"]
    assert verdicts.select_failing(rows, ["teacher_below_scratch"]) == []


def test_recipe_strict_key() -> None:
    base = {"data": {"source": "digits"}}
    assert parse_recipe({**base, "report": {"strict": ["int8_slower_than_fp32"]}}).report.strict == [
        "int8_slower_than_fp32"
    ]
    assert parse_recipe(base).report.strict is False
    with pytest.raises(RecipeError) as info:
        parse_recipe({**base, "report": {"strict": ["int8_slower_than_fp3"]}}, "r.toml")
    assert info.value.message.startswith(
        "r.toml: report.strict: unknown verdict 'int8_slower_than_fp3' (did you mean 'int8_slower_than_fp32'?)"
    )
    with pytest.raises(RecipeError, match="report.strict: must be true, false or a list of verdict codes"):
        parse_recipe({**base, "report": {"strict": "yes"}}, "r.toml")


def test_every_report_field_is_described() -> None:
    for name, field in ReportConfig.model_fields.items():
        assert field.description, name


def test_compute_does_not_change_the_report() -> None:
    report = clean_report()
    _kd_below_scratch(report)
    before = copy.deepcopy(report)
    verdicts.compute(report)
    assert report == before
