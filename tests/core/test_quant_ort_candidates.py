"""Rung 1's ORT candidates (edgekd.quantize.ort_candidates): the choice rule, the int8-kernels scope derived
from ORT's optimized graph, bias correction, the averaged calibration range, one latency per graph.

Models are built here with onnx.helper: a stem Conv feeding HardSwish (ORT 1.32 does not fuse that Conv into
QLinearConv: quantized, it runs in float after dequantizing its weights on every inference) and Convs
feeding Relu (fused).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgekd.quantize import ort_backend, ort_candidates, rungs
from edgekd.quantize.ladder import run_ladder

RUNS = 20  # latency runs per graph: a measurement only


def _model(weights: dict[str, np.ndarray], nodes: list[Any], name: str) -> Any:
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 4])],
        [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


def _hswish_model(head_bias: np.ndarray | None = None) -> Any:
    """stem conv -> HardSwish -> mix conv -> Relu -> pool -> head gemm (MobileNetV3's pattern, in small)."""
    from onnx import helper

    rng = np.random.default_rng(0)
    weights = {
        "w0": rng.normal(0, 0.4, (8, 3, 3, 3)), "b0": rng.normal(0, 0.1, 8),
        "w1": rng.normal(0, 0.3, (8, 8, 3, 3)), "b1": rng.normal(0, 0.1, 8),
        "wf": rng.normal(0, 1.0, (4, 8)), "bf": np.zeros(4) if head_bias is None else head_bias,
    }  # fmt: skip
    nodes = [
        helper.make_node("Conv", ["x", "w0", "b0"], ["c0"], name="stem", pads=[1, 1, 1, 1]),
        helper.make_node("HardSwish", ["c0"], ["h0"], name="act"),
        helper.make_node("Conv", ["h0", "w1", "b1"], ["c1"], name="mix", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r1"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], name="head", transB=1),
    ]
    return _model(weights, nodes, "hswish")


@pytest.fixture(scope="module")
def hswish_case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The model (classes balanced by the head's bias), 400 validation samples labelled by it, 128 calibration."""
    import onnx

    root = tmp_path_factory.mktemp("hswish")
    x = np.random.default_rng(1).normal(0, 1, (528, 3, 8, 8)).astype(np.float32)
    onnx.save(_hswish_model(), root / "raw.onnx")
    logits = ort_backend.session(root / "raw.onnx").run(None, {"x": x})[0]
    onnx.save(_hswish_model(-logits.mean(axis=0)), root / "model.onnx")
    y = ort_backend.predict(root / "model.onnx", x)
    np.savez(root / "val.npz", x=x[128:], y=y[128:])
    np.savez(root / "calib.npz", x=x[:128])
    return {"model": root / "model.onnx", "data": root / "val.npz", "calibration": root / "calib.npz"}


def _candidate(accuracy: float, p50_ms: float, drop: float, agreement: float = 1.0) -> dict[str, Any]:
    return {"accuracy": accuracy, "p50_ms": p50_ms, "drop": drop, "agreement": agreement}


def test_choose_takes_the_most_accurate_of_the_fast_tier_within_the_budget() -> None:
    fast = _candidate(0.960, 0.0300, 0.010)
    fast_and_better = _candidate(0.965, 0.0310, 0.005)  # 3.3 % slower than the fastest: same tier
    slow_and_best = _candidate(0.975, 0.0400, -0.005)  # most accurate, but 33 % slower
    out_of_budget_fastest = _candidate(0.900, 0.0100, 0.070)
    chosen = ort_candidates.choose([fast, fast_and_better, slow_and_best, out_of_budget_fastest], max_drop=0.01)
    assert chosen is fast_and_better
    assert ort_candidates.choose([fast, slow_and_best], max_drop=0.01) is fast  # the tier is +5 %, not more


def test_choose_takes_the_most_accurate_when_none_holds_the_budget() -> None:
    fastest = _candidate(0.80, 0.010, 0.15)
    best = _candidate(0.85, 0.030, 0.10, agreement=0.9)
    tie_less_agreeing = _candidate(0.85, 0.020, 0.10, agreement=0.8)
    assert ort_candidates.choose([fastest, tie_less_agreeing, best], max_drop=0.01) is best


def test_the_int8_kernels_scope_keeps_a_conv_ort_cannot_fuse_float(
    hswish_case: dict[str, Path], tmp_path: Path
) -> None:
    import onnx

    prepared = ort_backend.prepare(hswish_case["model"], tmp_path / "prepared.onnx")
    x_calib = np.load(hswish_case["calibration"])["x"]
    scope = ort_candidates.SCOPES["int8_kernels"]
    qdq = ort_backend.quantize_qdq(prepared, tmp_path / "q.onnx", x_calib, "minmax", op_types=scope.op_types)
    # the stem feeds HardSwish: ORT keeps it a float Conv with DequantizeLinear weights; mix and head fuse
    assert ort_candidates.unfused_nodes(qdq, tmp_path) == ["stem"]
    kept = ort_backend.quantize_qdq(prepared, tmp_path / "k.onnx", x_calib, "minmax", ["stem"], op_types=scope.op_types)
    assert ort_candidates.unfused_nodes(kept, tmp_path) == []
    # with float MatMul/Gemm outputs the head's int8 inputs feed a float result: no Q/DQ pair after it
    float_out = ort_candidates.SCOPES["int8_kernels_float_out"]
    path = ort_backend.quantize_qdq(prepared, tmp_path / "f.onnx", x_calib, "minmax", ["stem"],
                                    op_types=float_out.op_types, float_outputs=float_out.float_outputs)  # fmt: skip
    graph = onnx.load(str(path)).graph
    assert [n.output[0] for n in graph.node if n.name == "head"] == ["logits"]
    assert ort_candidates.unfused_nodes(path, tmp_path) == []  # still an int8 kernel


def test_rung_1_takes_the_int8_kernels_candidate_when_it_is_faster_within_the_budget(
    hswish_case: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Latency stands in for a measurement here: a model's "p50" is its count of Q/DQ nodes plus weight
    dequantizations run per inference (what ORT cannot fuse), so the figures are deterministic."""
    import onnx

    def qdq_cost(paths: list[Path], sample: np.ndarray, runs: int, rounds: int = 10) -> list[float]:
        costs = []
        for path in paths:
            nodes = onnx.load(str(path)).graph.node
            cost = sum(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in nodes)
            costs.append(cost + 3.0 * len(ort_candidates.unfused_nodes(path, tmp_path)))
        return costs

    monkeypatch.setattr(ort_candidates, "p50_ms_interleaved", qdq_cost)
    monkeypatch.setattr(rungs, "DEFAULT_RUNG1_DROP", 0.05)  # until the ladder passes its budget to rung 1
    run_ladder(hswish_case["model"], hswish_case["data"], hswish_case["calibration"], tmp_path / "out",
               max_drop=0.05, runs=RUNS)  # fmt: skip
    ptq = json.loads((tmp_path / "out" / "ladder.json").read_text())["rows"][0]
    by_scope = {c["scope"]: c for c in ptq["candidates"]}
    assert by_scope["int8_kernels"]["p50_ms"] < by_scope["all"]["p50_ms"]  # fewer Q/DQ, no float Conv
    assert by_scope["int8_kernels_float_out"]["p50_ms"] < by_scope["int8_kernels"]["p50_ms"]  # no Q/DQ after head
    assert ptq["scope"] == "int8_kernels_float_out" and ptq["excluded"] == ptq["scope_float"] == ["stem"]
    assert ptq["op_types"] == list(ort_candidates.SCOPES[ptq["scope"]].op_types or ())
    within = [c for c in ptq["candidates"] if c["drop"] <= 0.05]
    fastest = min(c["p50_ms"] for c in within)
    tier = [c for c in within if c["p50_ms"] <= fastest * 1.05]
    assert ptq["accuracy"] == max(c["accuracy"] for c in tier)
    config = json.loads((tmp_path / "out" / "ptq.int8.onnx.json").read_text())["config"]
    assert config["nodes_to_exclude"] == ["stem"] and config["scope"] == "int8_kernels_float_out"
    assert config["float_outputs"] == ["MatMul", "Gemm"]


def test_candidates_that_differ_only_in_scales_share_one_latency(hswish_case: dict[str, Path], tmp_path: Path) -> None:
    prepared = ort_backend.prepare(hswish_case["model"], tmp_path / "prepared.onnx")
    x_calib = np.load(hswish_case["calibration"])["x"]
    sym = [ort_backend.quantize_qdq(prepared, tmp_path / f"{m}.onnx", x_calib, m) for m in ("minmax", "entropy")]
    asym = ort_backend.quantize_qdq(prepared, tmp_path / "asym.onnx", x_calib, "minmax+asym")  # Relu folded
    p50, graphs = ort_candidates.p50_ms_by_graph([*sym, asym], x_calib[0], RUNS)
    assert graphs[0] == graphs[1] != graphs[2]
    assert p50[0] == p50[1] and all(v > 0 for v in p50)


def test_bias_correction_removes_the_mean_shift_of_rounded_weights(tmp_path: Path) -> None:
    """One Conv whose small weights all round down to 0 in int8 (per-channel scale set by one large weight):
    its outputs shift by -sum(small weights) * mean input; bias correction puts that back."""
    import onnx
    from onnx import helper

    w = np.full((4, 3, 3, 3), 0.0035)  # 0.0035 / (1 / 127) = 0.44 quanta: rounds to 0
    w[:, 0, 1, 1] = 1.0
    weights = {"w": w, "b": np.zeros(4), "wf": np.eye(4), "bf": np.zeros(4)}
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["c"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], name="head", transB=1),
    ]
    model = _model(weights, nodes, "rounding")
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 3
    onnx.save(model, tmp_path / "m.onnx")
    x = np.random.default_rng(0).uniform(0.5, 1.5, (64, 3, 8, 8)).astype(np.float32)  # mean input 1
    prepared = ort_backend.prepare(tmp_path / "m.onnx", tmp_path / "prepared.onnx")
    qdq = ort_backend.quantize_qdq(prepared, tmp_path / "q.onnx", x, "minmax+asym")
    fixed, nodes_fixed = ort_candidates.correct_bias(prepared, qdq, tmp_path / "bc.onnx", x)
    assert "conv" in nodes_fixed

    def shift(path: Path) -> float:
        ref = ort_backend.session(prepared).run(None, {"x": x})[0]
        got = ort_backend.session(path).run(None, {"x": x})[0]
        return float(np.abs((got - ref).mean(axis=0)).max())

    assert shift(qdq) > 0.05  # about 26 weights x 0.0035 x 1 (minus the border padding)
    assert shift(fixed) < 0.2 * shift(qdq)


def test_avgminmax_clips_a_rare_extreme_that_minmax_keeps(tmp_path: Path) -> None:
    """The input's range is the mean of per-sample min/max: one sample at 50 no longer sets the scale."""
    import onnx
    from onnx import numpy_helper

    onnx.save(_hswish_model(), tmp_path / "m.onnx")
    prepared = ort_backend.prepare(tmp_path / "m.onnx", tmp_path / "prepared.onnx")
    x = np.random.default_rng(0).normal(0, 1, (64, 3, 8, 8)).astype(np.float32)
    x[0, 0, 0, 0] = 50.0

    def input_scale(method: str) -> float:
        path = ort_backend.quantize_qdq(prepared, tmp_path / f"{method}.onnx", x, method)
        inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}
        return float(inits["x_scale"])

    assert input_scale("minmax") == pytest.approx(50 / 127, rel=1e-3)
    assert input_scale("avgminmax") < 0.05  # about (max|x| of a typical sample ~ 3.5, plus 50 / 64) / 127
