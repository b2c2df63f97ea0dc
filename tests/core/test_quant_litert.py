"""LiteRT/TFLM rungs 2-3 of the quantization ladder (issue 14), through ai-edge-quantizer on the fp32 .tflite.

The case is test_quant_ladder's hard case, built there outside edgekd: a raw, unnormalised sensor channel
(0..2000) that the stem conv ignores. onnx2tf's full-int8 TFLite quantizes the model *input* per tensor, so the
informative channels round away and LiteRT PTQ loses tens of points. Keeping the stem float (and with it the
input it alone reads) holds a 1-point budget in LiteRT and in TensorFlow Lite Micro.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgekd.quantize import litert_rungs
from edgekd.quantize.ladder import run_ladder
from tests.core.test_quant_ladder import FRAGILE, _make_case

RUNS = 10  # latency runs per model: a measurement only
RUNTIMES = ("ort", "litert", "tflm")


@pytest.fixture(scope="module")
def hard_case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _make_case(tmp_path_factory.mktemp("hard_litert"), "input")


@pytest.fixture(scope="module")
def climbed(hard_case: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One ladder over the three runtimes (onnx2tf conversion, AEQ rungs, TFLM rows): shared by the tests."""
    out = tmp_path_factory.mktemp("ladder")
    result = run_ladder(hard_case["model"], hard_case["data"], hard_case["calibration"], out, runs=RUNS,
                        runtimes=RUNTIMES)  # fmt: skip
    return {"out": out, "result": result, "ladder": json.loads((out / "ladder.json").read_text())}


def _reader_of_input(out: Path, x_calib: np.ndarray) -> set[str]:
    """The TFLite op(s) that read the model input, found in the fp32 .tflite (not from the ladder's rows)."""
    return litert_rungs.Selective(out / litert_rungs.FP32_FILE, x_calib).input_readers


@pytest.mark.slow
def test_litert_ptq_misses_the_budget_and_rung_3_holds_it(climbed: dict[str, Any]) -> None:
    ladder, out = climbed["ladder"], climbed["out"]
    rows = {row["rung"]: row for row in ladder["rows"]}
    assert sorted(rows) == [1, 2, 3]
    assert rows[1]["runtimes"]["litert"]["drop"] > 0.02  # onnx2tf full int8: the raw channel sets the input scale
    assert rows[2]["runtimes"]["litert"]["drop"] > 0.02  # AEQ all-int8 too: the input is int8 there as well
    mixed = rows[3]["runtimes"]
    assert mixed["litert"]["drop"] <= 0.01 and mixed["litert"]["model"] == "mixed.int8.tflite"
    assert mixed["tflm"]["drop"] <= 0.01 and mixed["tflm"]["accuracy"] is not None  # float conv: TFLM has it
    assert mixed["litert"]["p50_ms"] > 0 and mixed["ort"]["drop"] <= 0.01  # ORT's own rung 3 row is kept
    curve = mixed["litert"]["curve"]
    assert curve[-1]["drop"] <= 0.01 and all({"accuracy", "agreement", "p50_ms", "excluded"} <= s.keys() for s in curve)
    assert ladder["recommended"]["litert"]["rung"] == 3 and ladder["recommended"]["tflm"]["rung"] == 3
    assert "not_met" not in ladder
    # the kept model: the raised op is float, everything else int8, and the input float (its one reader is float)
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(str(out / "mixed.int8.tflite"))
    assert interpreter.get_input_details()[0]["dtype"] == np.float32
    details = interpreter.get_tensor_details()
    dtypes = {details[op["outputs"][0]]["name"]: details[op["outputs"][0]]["dtype"]
              for op in interpreter._get_ops_details()}  # fmt: skip
    raised = mixed["litert"]["excluded"]
    assert raised and all(dtypes[name] == np.float32 for name in raised)
    assert sum(1 for d in dtypes.values() if d == np.int8) >= 2  # the rest stays int8 (mix conv, mean, ...)
    # greedy in rank order, one more op per step, stopping at the first step that holds
    ranking = climbed["ladder"]["rows"][1]["litert_ranking"]
    assert [s["excluded"] for s in curve] == [ranking[:k] for k in range(1, len(curve) + 1)]
    assert all(s["drop"] > 0.01 for s in curve[:-1])
    from edgekd.artifacts import load_artifact

    assert load_artifact(out / "mixed.int8.tflite").config["float_ops"] == raised  # sidecar written, hash checked


@pytest.mark.slow
def test_the_fragile_op_ranks_first_in_the_litert_sensitivity(
    climbed: dict[str, Any], hard_case: dict[str, Path]
) -> None:
    out = climbed["out"]
    report = json.loads((out / "sensitivity.json").read_text())
    assert report["ops"][0]["node"] == FRAGILE and "runtime" not in report["ops"][0]  # ORT's schema unchanged
    litert = report["litert"]
    assert litert["runtime"] == "litert" and litert["quantizer"].startswith("ai-edge-quantizer ")
    ops = litert["ops"]
    # every computing op (stem, mix, the pooling mean, head); the transpose/reshape before the head follow the mean
    assert [op["rank"] for op in ops] == list(range(1, len(ops) + 1))
    assert sorted(op["op_type"] for op in ops) == ["CONV_2D", "CONV_2D", "FULLY_CONNECTED", "MEAN"]
    stem = _reader_of_input(out, np.load(hard_case["calibration"])["x"])
    assert {ops[0]["node"]} == stem and ops[0]["op_type"] == "CONV_2D"
    assert ops[0]["accuracy_gain"] > 0.2 and all(op["accuracy_gain"] < 0.02 for op in ops[1:])
    assert all(op["sqnr_db"] is None or np.isfinite(op["sqnr_db"]) for op in ops)
    row = climbed["ladder"]["rows"][1]
    assert row["litert_ranking"][0] == ops[0]["node"] and row["most_sensitive"] == FRAGILE


@pytest.mark.slow
def test_a_ladder_killed_in_litert_rung_3_resumes_after_rung_2(
    climbed: dict[str, Any], hard_case: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "ladder"
    shutil.copytree(climbed["out"], out)
    first = json.loads((out / "ladder.json").read_text())["rows"]
    made: list[str] = []
    real = litert_rungs.Selective.make

    def interrupted(self: litert_rungs.Selective, dest: Path, *args: Any, **kwargs: Any) -> Path:
        made.append(dest.name)
        if dest.name.startswith("mixed."):
            raise KeyboardInterrupt  # Ctrl-C inside LiteRT's rung 3
        return real(self, dest, *args, **kwargs)

    ladder = json.loads((out / "ladder.json").read_text())
    ladder["rows"] = ladder["rows"][:2]  # as if rung 3 had never finished
    (out / "ladder.json").write_text(json.dumps(ladder))
    monkeypatch.setattr(litert_rungs.Selective, "make", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_ladder(hard_case["model"], hard_case["data"], hard_case["calibration"], out, runs=RUNS, runtimes=RUNTIMES)
    assert made == ["mixed.1.tflite"]  # rungs 1-2 reused: no conversion, no AEQ sensitivity variant
    assert [r["rung"] for r in json.loads((out / "ladder.json").read_text())["rows"]] == [1, 2]
    assert not list(out.glob(".ladder-work-*"))

    monkeypatch.setattr(litert_rungs.Selective, "make", real)
    resumed = run_ladder(hard_case["model"], hard_case["data"], hard_case["calibration"], out, runs=RUNS,
                         runtimes=RUNTIMES)  # fmt: skip
    assert resumed.reused == [1, 2] and resumed.recommended["litert"]["rung"] == 3
    rows = json.loads((out / "ladder.json").read_text())["rows"]
    assert [r["finished_at"] for r in rows[:2]] == [r["finished_at"] for r in first[:2]]
    assert rows[2]["runtimes"]["litert"]["excluded"] == first[2]["runtimes"]["litert"]["excluded"]


def test_hardsigmoid_becomes_relu6_and_runs_in_tflm(tmp_path: Path) -> None:
    """A conv + HardSigmoid gate written here with onnx.helper (torch's alpha 1/6): onnx2tf would emit RELU_0_TO_1,
    which TFLM lacks; edgekd's onnx2tf converter rewrites it first (for the pipeline's [tflite] stage and the ladder
    alike), the function unchanged."""
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter
    from onnx import TensorProto, helper, numpy_helper, save

    from edgekd.artifacts import load_artifact
    from edgekd.onnx_rewrite import hardsigmoid_as_relu6
    from edgekd.quantize import litert_backend

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(0, 0.5, (4, 1, 3, 3)).astype(np.float32), "w")
    wf = numpy_helper.from_array(rng.normal(0, 0.5, (3, 4)).astype(np.float32), "wf")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("HardSigmoid", ["c"], ["g"], alpha=1 / 6, beta=0.5),
        helper.make_node("Mul", ["c", "g"], ["m"]),
        helper.make_node("GlobalAveragePool", ["m"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "wf"], ["y"], transB=1),
    ]
    graph = helper.make_graph(nodes, "gate", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], [w, wf])  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    save(model, tmp_path / "gate.onnx")

    assert hardsigmoid_as_relu6(tmp_path / "gate.onnx", tmp_path / "relu6.onnx") == ["HardSigmoid_1"]
    x = rng.uniform(-3, 3, (64, 1, 8, 8)).astype(np.float32)
    before, after = (ort.InferenceSession(str(tmp_path / f)) for f in ("gate.onnx", "relu6.onnx"))
    for sample in x[:8]:
        a, b = before.run(None, {"x": sample[None]})[0], after.run(None, {"x": sample[None]})[0]
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert hardsigmoid_as_relu6(tmp_path / "relu6.onnx", tmp_path / "same.onnx") == []
    assert (tmp_path / "same.onnx").read_bytes() == (tmp_path / "relu6.onnx").read_bytes()

    work = tmp_path / "work"
    made = litert_backend.to_tflite(tmp_path / "gate.onnx", x, work, "gate", ("int8",))
    ops = {op["op_name"] for op in Interpreter(str(made["int8"]))._get_ops_details()}
    assert "RELU_0_TO_1" not in ops
    assert load_artifact(made["int8"]).config["hardsigmoid_as_relu6"] == ["HardSigmoid_1"]  # the sidecar says so
    y = np.asarray(before.run(None, {"x": x[:1]})[0]).argmax()  # any labels: the point is that TFLM runs it
    figures = litert_backend.measure(made["int8"], x[:4], np.full(4, y), np.full(4, y), 1.0, 2, ("tflm",))["tflm"]
    assert figures["accuracy"] is not None and "error" not in figures


@pytest.mark.slow
def test_onnx2tf_softmax_layout_error_is_named_and_the_fp32_file_is_right(tmp_path: Path) -> None:
    """One pre-norm transformer block (8 tokens: an 8x8 attention matrix), seeded and untrained, exported with a
    fixed batch of 1 by torch's dynamo exporter. Given several calibration samples, onnx2tf takes the softmax over
    the query axis; converted without them it does not. The rung-1 rows say so; the kept fp32 file is right."""
    import torch

    from edgekd.quantize import ort_backend
    from edgekd.quantize.ladder_state import RungContext, tflite_rows
    from tests.core import quant_cases as qc

    torch.manual_seed(0)
    model = qc.TransformerStudent().eval()
    with torch.no_grad():
        model.qkv.weight *= 4.0  # sharper attention than at initialisation: a transposed softmax then matters
    onnx_path = qc.export_onnx(model, tmp_path / "block.onnx")
    data = qc.digits()
    x_val, x_calib = data["x_val"][:200], data["x_calib"][:64]
    fp32_pred = ort_backend.predict(onnx_path, x_val)  # labels: the float model's classes (accuracy 1.0)
    out, work = tmp_path / "out", tmp_path / "work"
    out.mkdir()
    ctx = RungContext(out, work, onnx_path, onnx_path, x_val, fp32_pred, x_calib, fp32_pred, 1.0, 5, ("ort", "litert"))
    with ort_backend.temp_dir_inside(work):
        rows, files = tflite_rows(ctx, onnx_path, "ptq", parent="0" * 64)
    litert = rows["litert"]
    assert "onnx2tf built a different graph when given the calibration samples" in litert["conversion_error"]
    assert litert["agreement"] < 0.98  # the int8 file inherits the wrong graph (an untrained head: a few flips)
    assert set(files) == {"ptq.int8.tflite", "ptq.fp32.tflite"}
    from edgekd.quantize import litert_backend

    assert (litert_backend.predict(out / "ptq.fp32.tflite", x_val) == fp32_pred).mean() == 1.0


@pytest.mark.slow
def test_raise_to_int16_keeps_the_fragile_op_integer_at_16x8(hard_case: dict[str, Path], tmp_path: Path) -> None:
    """raise_to="int16": the stem (and the input it alone reads) gets 16-bit activations with int8 weights
    (TFLite's 16x8), which TFLM also runs; the rest stays int8 and nothing is float."""
    run_ladder(hard_case["model"], hard_case["data"], hard_case["calibration"], tmp_path, runs=RUNS, runtimes=RUNTIMES,
               raise_to="int16")  # fmt: skip
    ladder = json.loads((tmp_path / "ladder.json").read_text())
    mixed = ladder["rows"][2]["runtimes"]
    stem = _reader_of_input(tmp_path, np.load(hard_case["calibration"])["x"])
    assert mixed["litert"]["int16"] == sorted(stem) and mixed["litert"]["excluded"] == []
    assert mixed["litert"]["drop"] <= 0.01 and mixed["tflm"]["drop"] <= 0.01
    assert ladder["recommended"]["tflm"]["model"] == "mixed.int8.tflite"
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(str(tmp_path / "mixed.int8.tflite"))
    assert interpreter.get_input_details()[0]["dtype"] == np.int16
    details = interpreter.get_tensor_details()
    kinds = {details[op["outputs"][0]]["dtype"] for op in interpreter._get_ops_details()}
    assert np.float32 not in kinds and {np.int16, np.int8} <= kinds
    from edgekd.artifacts import load_artifact

    spec = load_artifact(tmp_path / "mixed.int8.tflite").inputs[0]  # the sidecar describes this file's input
    assert spec.dtype == "int16" and spec.quant is not None and spec.layout == "NHWC"


@pytest.mark.slow
def test_a_model_ai_edge_quantizer_refuses_keeps_ort_and_names_why(
    climbed: dict[str, Any], hard_case: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AEQ refusing the model (here: every recipe) does not fail ORT's rungs; the not-met message says why."""
    from edgekd.errors import ConversionError
    from edgekd.quantize.ladder import BudgetNotMetError

    out = tmp_path / "ladder"
    shutil.copytree(climbed["out"], out)
    ladder = json.loads((out / "ladder.json").read_text())
    ladder["rows"] = ladder["rows"][:1]  # rung 1 reused; rungs 2-3 run again
    (out / "ladder.json").write_text(json.dumps(ladder))

    def refused(self: litert_rungs.Selective, dest: Path, *args: Any, **kwargs: Any) -> Path:
        raise ConversionError("ai-edge-quantizer could not quantize ptq.fp32.tflite: unsupported op", hint="-")

    monkeypatch.setattr(litert_rungs.Selective, "make", refused)
    with pytest.raises(BudgetNotMetError) as caught:
        run_ladder(hard_case["model"], hard_case["data"], hard_case["calibration"], out, runs=RUNS, runtimes=RUNTIMES)
    message = " ".join(str(caught.value).split())
    assert "int8 in litert cannot hold the accuracy budget (max drop 0.0100): best rung 1 (ptq) drops" in message
    assert "rung 2: ai-edge-quantizer made no int8 model LiteRT runs (minmax: ai-edge-quantizer could not" in message
    rows = json.loads((out / "ladder.json").read_text())["rows"]
    assert [r["rung"] for r in rows] == [1, 2, 3] and rows[2]["runtimes"]["ort"]["drop"] <= 0.01
    assert set(json.loads((out / "ladder.json").read_text())["recommended"]) == {"ort"}
