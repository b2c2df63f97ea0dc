"""Parity metrics and the gate's verdicts, on hand-made outputs (no models needed)."""

from __future__ import annotations

import numpy as np
import pytest

from edgekd.artifacts import Artifact
from edgekd.config.export import Threshold, VerifyConfig
from edgekd.errors import ParityError
from edgekd.verify import parity
from edgekd.verify.debug import rank_growth
from edgekd.verify.parity import ParityReport, check_thresholds, output_metrics


def test_output_metrics():
    reference = np.array([[1.0, 2.0, -4.0], [0.5, 0.0, 0.0]])
    candidate = reference + np.array([[0.0, 0.1, 0.0], [0.0, 0.0, -0.2]])
    metrics = output_metrics(reference, candidate)
    assert metrics["max_abs_error"] == pytest.approx(0.2)
    assert metrics["max_rel_error"] == pytest.approx(0.2 / 4.0)
    cos_second = 0.25 / (0.5 * np.sqrt(0.25 + 0.04))
    assert metrics["min_cosine"] == pytest.approx(cos_second)
    assert output_metrics(reference, reference)["cosine"] == pytest.approx(1.0)


def test_thresholds_name_metric_value_and_limit():
    metrics = {"max_abs_error": 3e-4, "top1_agreement": 0.9, "accuracy_delta": -0.05}
    failures = check_thresholds(metrics, Threshold(max_abs=1e-4, agreement=0.95, max_accuracy_drop=0.02))
    assert failures == [
        "max_abs_error 0.0003 > 0.0001",
        "top1_agreement 0.9000 < 0.95",
        "accuracy drop 5.00 points > 2.00",
    ]
    assert (
        check_thresholds(
            {**metrics, "top1_agreement": 0.97, "accuracy_delta": -0.02},
            Threshold(agreement=0.95, max_accuracy_drop=0.02),
        )
        == []
    )


def _fake(name: str, precision: str) -> Artifact:
    return Artifact(
        path=__import__("pathlib").Path(f"/nowhere/{name}"), name=name, format="onnx", sha256=name, precision=precision
    )


def test_every_artifact_checked_and_all_failures_in_one_error(monkeypatch):
    x = np.zeros((100, 2), dtype=np.float32)
    y = np.array([0] * 50 + [1] * 50)
    truth = np.stack([y == 0, y == 1], axis=1).astype(np.float32) * 4
    outputs = {
        "ref": truth,
        "good_fp32": truth + 1e-6,
        "bad_fp32": truth + 1e-3,  # above max_abs 1e-4, same predictions
        "bad_int8": np.where(np.arange(100)[:, None] < 10, truth[:, ::-1], truth),  # 10 % flipped
    }

    def fake_predict(artifact, data):
        if artifact.name == "broken":
            from edgekd.errors import ModelError

            raise ModelError("broken is truncated")
        return outputs[artifact.name]

    monkeypatch.setattr("edgekd.verify.backends.predict", fake_predict)
    candidates = [
        _fake("good_fp32", "fp32"),
        _fake("bad_fp32", "fp32"),
        _fake("bad_int8", "int8"),
        _fake("broken", "fp16"),
    ]
    report = parity.verify_artifacts(
        _fake("ref", "fp32"), candidates, x, y, VerifyConfig(), diagnose_int8=False, audit_ops=False
    )
    assert [row["passed"] for row in report.rows] == [True, False, False, False]
    int8 = report.rows[2]
    assert int8["top1_agreement"] == pytest.approx(0.9) and int8["accuracy_delta"] == pytest.approx(-0.1)
    assert int8["failures"] == ["top1_agreement 0.9000 < 0.95", "accuracy drop 10.00 points > 2.00"]
    assert report.rows[3]["failures"] == ["could not run: broken is truncated"]
    with pytest.raises(ParityError) as info:
        report.raise_if_failed()
    message = info.value.message
    assert "3 of 4 artifacts failed" in message
    for name in ("bad_fp32", "bad_int8", "broken"):
        assert name in message
    assert "good_fp32" not in message
    assert [f["artifact"] for f in info.value.failures] == ["bad_fp32", "bad_int8", "broken"]


def test_passing_report_does_not_raise():
    ParityReport(reference="r", reference_accuracy=1.0, samples=1).raise_if_failed()


def test_rank_growth_orders_by_increase_over_previous_layer():
    f = np.ones(10)
    pairs = [
        ("a", "Conv", f * 1.01, f),
        ("b", "Relu", f * 1.02, f),
        ("c", "Conv", f * 1.10, f),
        ("d", "Gemm", f * 1.11, f),
    ]
    rows = rank_growth(pairs, top_k=2)
    assert [r["layer"] for r in rows] == ["c", "a"]
    assert rows[0]["relative_error"] == pytest.approx(0.10) and rows[0]["growth"] == pytest.approx(0.08)


def test_the_verify_gate_and_edgekd_verify_raise_the_same_parity_error() -> None:
    """One builder (parity_error): the verify stage's gate and ParityReport.raise_if_failed name the same artifacts,
    metrics, table and hint; only `edgekd verify` adds the reference and sample count it knows."""
    from edgekd.recipe import parse_recipe
    from edgekd.stages.delivery import VerifyStage

    rows = [
        {"artifact": "onnx_fp32", "precision": "fp32", "top1_agreement": 1.0, "passed": True, "failures": []},
        {"artifact": "onnx_int8", "precision": "int8", "top1_agreement": 0.9, "max_abs_error": 0.5, "accuracy": 0.8,
         "accuracy_delta": -0.1, "passed": False, "failures": ["top1_agreement 0.9000 < 0.95"]},
    ]  # fmt: skip
    gate = VerifyStage().gate(parse_recipe({}), {"rows": rows})
    report = ParityReport(reference="student_torch", reference_accuracy=0.9, samples=360, rows=rows)
    with pytest.raises(ParityError) as raised:
        report.raise_if_failed()
    assert isinstance(gate, ParityError)
    head = "1 of 2 artifacts failed the parity gate (onnx_int8)"
    assert gate.message.startswith(head + ":\n") and raised.value.message.startswith(head + " against student_torch")
    assert gate.message.split("\n", 1)[1] == raised.value.message.split("\n", 1)[1]  # the same table
    assert gate.hint == raised.value.hint and gate.failures == raised.value.failures
    assert gate.failures == [
        {"artifact": "onnx_int8", "failures": ["top1_agreement 0.9000 < 0.95"], "worst_layers": []}
    ]
