"""Rung 4 of the quantization ladder: quantization-aware distillation (torchao pt2e) on a MobileNet-style
student where plain int8 PTQ loses points, exported to ORT QDQ and to LiteRT int8 (and run in TFLM).

The case (tests/core/quant_cases.py): a hard-swish / squeeze-excite student on digits, trained outside
edgekd with KD from a wider CNN, whose ReLU depthwise output has one channel 100x wider than the others
(function-preserving rescale). Plain per-tensor-activation PTQ (ORT: minmax, ORT's default op scope, no bias
correction; LiteRT: onnx2tf's full int8) loses points in both runtimes; QAT against the same teacher must win back
at least half of that loss in each. (The ladder's own rung 1 in ORT, with bias correction and its other
candidates, loses far less on this case: the test runs rung 4 regardless, as `edgekd qat` does.)
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest

from edgekd.quantize import qat as qat_module
from edgekd.quantize.ladder import BudgetNotMetError, run_ladder
from edgekd.quantize.qat import QatInputs
from tests.core import quant_cases

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3000)]  # QAT + three onnx2tf conversions: minutes on 2 cores
RUNS = 20  # latency runs per model: a measurement only, kept short for the test
RUNTIMES = ("ort", "litert", "tflm")


@pytest.fixture(scope="module")
def mobile_case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return quant_cases.mobile_hard_case(tmp_path_factory.mktemp("mobile"), epochs=30)


def _qat(case: dict[str, Any]) -> QatInputs:
    return QatInputs(case["student"], case["teacher"], case["train"], epochs=3, freeze_after=2, lr=5e-4)


def _run(case: dict[str, Any], out: Path, max_drop: float = 0.01) -> dict[str, Any]:
    """The ladder with QAT on every runtime; ladder.json whether or not the budget held."""
    try:
        run_ladder(case["onnx"], case["data"], case["calibration"], out, max_drop=max_drop, runs=RUNS,
                   runtimes=RUNTIMES, qat=_qat(case), qat_always=True)  # fmt: skip
    except BudgetNotMetError:
        pass
    return json.loads((out / "ladder.json").read_text())


def test_qat_recovers_half_of_the_ptq_loss_in_ort_and_litert(
    mobile_case: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))  # where ORT/onnx2tf/TFLM would put scratch files
    out = tmp_path / "out"
    ladder = _run(mobile_case, out)
    rows = {row["rung"]: row for row in ladder["rows"]}
    assert 1 in rows and 4 in rows
    qat = rows[4]["runtimes"]
    plain = {
        "ort": next(c for c in rows[1]["candidates"] if (c["method"], c["scope"], c["bias_correction"]) == ("minmax", "all", False)),
        "litert": rows[1]["runtimes"]["litert"],  # onnx2tf's full int8, min/max calibrated
    }  # fmt: skip
    for runtime in ("ort", "litert"):
        loss = plain[runtime]["drop"]
        assert loss > 0.02, (runtime, loss)  # plain PTQ int8 loses points in this runtime
        assert qat[runtime]["drop"] <= loss / 2, (runtime, loss, qat[runtime]["drop"])  # QAT wins back half
        assert qat[runtime]["agreement"] > plain[runtime]["agreement"]
    # TFLM runs the same int8 file (the SE gate's hard-sigmoid is written as ReLU6, which TFLM has)
    assert qat["tflm"]["model"] == qat["litert"]["model"] == "qat.int8.tflite"
    assert qat["tflm"]["accuracy"] is not None and "error" not in qat["tflm"]
    assert {"ort", "litert"} <= set(ladder["recommended"])
    history = rows[4]["qat"]["history"]
    assert len(history) == 3 and sum(e["kept"] for e in history) == 1 and history[-1]["frozen"]
    # nothing outside the out directory; every file there has the ladder's sidecar
    assert list(system_tmp.iterdir()) == []
    files = {p.name for p in out.iterdir()}
    assert {"ptq.int8.tflite", "qat.fp32.onnx", "qat.int8.onnx", "qat.int8.tflite"} <= files
    for name in (
        "ladder.json",
        "ptq.int8.onnx",
        "ptq.int8.tflite",
        "qat.fp32.onnx",
        "qat.int8.onnx",
        "qat.int8.tflite",
    ):
        assert f"{name}.json" in files, name
    assert not [name for name in files if name.startswith(".ladder-work-")]

    # a second run reuses rung 4 (no training), and a killed rung 4 is redone alone
    def no_training(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("QAT trained again")

    monkeypatch.setattr(qat_module, "train_qat", no_training)
    again = _run(mobile_case, out)
    assert [r["finished_at"] for r in again["rows"]] == [r["finished_at"] for r in ladder["rows"]]
    ladder_file = out / "ladder.json"
    cut = json.loads(ladder_file.read_text())
    cut["rows"] = [r for r in cut["rows"] if r["rung"] != 4]
    ladder_file.write_text(json.dumps(cut))
    with pytest.raises(AssertionError, match="QAT trained again"):
        _run(mobile_case, out)  # every earlier rung reused; only rung 4 starts again


def test_a_student_that_is_not_the_onnx_model_is_refused(mobile_case: dict[str, Any], tmp_path: Path) -> None:
    from edgekd.errors import ModelError

    other = quant_cases.MobileStudent().eval()  # untrained: a different model than student.onnx
    qat = QatInputs(other, mobile_case["teacher"], mobile_case["train"], epochs=1, freeze_after=1)
    with pytest.raises(ModelError, match="agrees with student.onnx on only"):
        run_ladder(mobile_case["onnx"], mobile_case["data"], mobile_case["calibration"], tmp_path, runs=RUNS, qat=qat)
