"""The ORT quantization ladder (issue 14 rungs 1-3) on a model built here where plain int8 PTQ fails.

The hard case: a 4-channel input whose channel 3 is a raw, unnormalised sensor reading (uniform 0..2000)
that the model ignores (its stem weights on it are zero); the task depends on channels 0-2 (~N(0, 1.4)).
ORT's activations are quantized per tensor, so the stem's input scale is set by the outlier channel
(~8 per quantum asymmetric, ~16 symmetric) and the informative channels round to zero: plain per-channel-weight PTQ loses tens of
points, whatever the calibration method and activation scheme. Keeping only the stem in float fixes it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from edgekd.quantize import ort_backend
from edgekd.quantize.ladder import BudgetNotMetError, run_ladder

FRAGILE = "stem"
RUNS = 20  # latency runs per model: a measurement only, kept short for the test


def _hard_model(bias: np.ndarray, outlier: str = "input"):
    """stem conv -> relu -> mix conv -> relu -> pool -> head gemm; the outlier is ignored by the weights.

    outlier="input": input channel 3 is the raw sensor (the stem's weights on it are 0).
    outlier="internal": the stem's output channel 7 is a constant 2000 (the mix's weights on it are 0).
    outlier="none": the same network without the outlier (PTQ handles it).
    """
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w0 = rng.normal(0, 0.4, (8, 4, 3, 3))
    w1 = rng.normal(0, 0.4, (8, 8, 3, 3))
    wf = rng.normal(0, 1.0, (4, 8))
    b0 = np.zeros(8)
    if outlier == "input":
        w0[:, 3] = 0.0
    elif outlier == "internal":
        w0[7], b0[7], w1[:, 7] = 0.0, 2000.0, 0.0

    def init(name: str, value: np.ndarray):
        return numpy_helper.from_array(np.asarray(value, np.float32), name)

    nodes = [
        helper.make_node("Conv", ["x", "w0", "b0"], ["c0"], name=FRAGILE, pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c0"], ["r0"], name="relu0"),
        helper.make_node("Conv", ["r0", "w1", "b1"], ["c1"], name="mix", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("GlobalAveragePool", ["r1"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], name="head", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "outlier_input",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 4])],
        [init("w0", w0), init("b0", b0), init("w1", w1), init("b1", np.zeros(8)), init("wf", wf), init("bf", bias)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


def _make_case(root: Path, outlier: str) -> dict[str, Path]:
    """The model (class-balanced by its bias), a 600-sample validation set and 200 calibration samples."""
    import onnx
    import onnxruntime as ort

    rng = np.random.default_rng(1)
    n = 1200
    x = (rng.normal(0, 1, (n, 4, 8, 8)) + rng.normal(0, 1, (n, 4, 1, 1))).astype(np.float32)
    if outlier == "input":
        x[:, 3] = rng.uniform(0, 2000, (n, 8, 8))
    onnx.save(_hard_model(np.zeros(4), outlier), root / "raw.onnx")
    logits = ort.InferenceSession(str(root / "raw.onnx")).run(None, {"x": x})[0]
    model = root / "model.onnx"
    onnx.save(_hard_model(-logits.mean(axis=0), outlier), model)  # centred logits: every class occurs
    centred = logits - logits.mean(axis=0)
    top2 = np.sort(centred, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    keep = margin > np.quantile(margin, 0.3)  # a task with clear margins, labelled by the float model
    x, y = x[keep], centred[keep].argmax(axis=1)
    np.savez(root / "calib.npz", x=x[:200])
    np.savez(root / "val.npz", x=x[200:800], y=y[200:800])
    return {"model": model, "data": root / "val.npz", "calibration": root / "calib.npz"}


@pytest.fixture(scope="module")
def hard_case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _make_case(tmp_path_factory.mktemp("hard"), "input")


def _ladder(hard_case: dict[str, Path], out: Path, max_drop: float = 0.01):
    return run_ladder(
        hard_case["model"], hard_case["data"], hard_case["calibration"], out, max_drop=max_drop, runs=RUNS
    )


def test_hard_case_plain_ptq_fails_and_the_ladder_holds_one_point(
    hard_case: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))  # where ORT would put its scratch files
    out = tmp_path / "out"
    result = _ladder(hard_case, out)

    ladder = json.loads((out / "ladder.json").read_text())
    rows = ladder["rows"]
    assert [r["rung"] for r in rows] == [1, 2, 3]
    plain = next(c for c in rows[0]["candidates"] if c["method"] == "minmax")
    assert plain["drop"] > 0.02  # plain per-channel PTQ int8 loses more than 2 points
    assert rows[0]["drop"] > 0.02  # ... and so does the best calibration method
    assert result.chosen["rung"] == 3 and result.chosen["drop"] <= 0.01
    assert result.chosen["excluded"] == [FRAGILE]
    for row in rows:
        assert {"rung", "accuracy", "drop", "agreement", "p50_ms", "excluded"} <= row.keys()
        assert row["p50_ms"] > 0
    for step in rows[2]["curve"]:
        assert {"accuracy", "agreement", "p50_ms", "excluded"} <= step.keys()
    assert ladder["chosen"] == {"rung": 3, "model": "mixed.int8.onnx"}
    # nothing outside the out directory; every file there has its sidecar; no scratch left behind
    assert list(system_tmp.iterdir()) == []
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [
            "ladder.json",
            "ladder.json.json",
            "ptq.int8.onnx",
            "ptq.int8.onnx.json",
            "sensitivity.json",
            "sensitivity.json.json",
            "mixed.int8.onnx",
            "mixed.int8.onnx.json",
        ]
    )
    chosen_pred = ort_backend.predict(result.model, np.load(hard_case["data"])["x"])
    assert (chosen_pred == np.load(hard_case["data"])["y"]).mean() >= ladder["fp32"]["accuracy"] - 0.01


def test_rung_1_keeps_its_most_accurate_candidate_when_none_holds(hard_case: dict[str, Path], tmp_path: Path) -> None:
    """Every calibration method x scope x bias correction loses > 2 points here: rung 1 then keeps the most
    accurate candidate (not the fastest), and rungs 2-3 build on its configuration."""
    _ladder(hard_case, tmp_path)
    ptq, sens, mixed = json.loads((tmp_path / "ladder.json").read_text())["rows"]
    assert all(c["drop"] > 0.01 for c in ptq["candidates"])
    assert ptq["accuracy"] == max(c["accuracy"] for c in ptq["candidates"])
    assert {c["scope"] for c in ptq["candidates"]} == {"all", "int8_kernels", "int8_kernels_float_out"}
    assert any(c["bias_correction"] for c in ptq["candidates"])
    for row in (sens, mixed):
        assert (row["method"], row["scope"], row["bias_correction"]) == (
            ptq["method"],
            ptq["scope"],
            ptq["bias_correction"],
        )


def test_sensitivity_ranks_the_fragile_op_first(hard_case: dict[str, Path], tmp_path: Path) -> None:
    from edgekd.artifacts import load_artifact

    _ladder(hard_case, tmp_path)
    artifact = load_artifact(tmp_path / "sensitivity.json")  # sidecar present and hash checked
    ops = json.loads(artifact.path.read_text())["ops"]
    assert next(o["node"] for o in ops) == FRAGILE
    assert {o["node"] for o in ops} == {"stem", "mix", "head"}
    top = ops[0]
    assert top["rank"] == 1 and top["accuracy_gain"] > 0.02
    # quantized on its own, the stem's output is noise (SQNR near 0 dB); the other ops' are not
    assert top["alone"]["sqnr_db"] < 3 and top["alone"]["cosine"] < 0.5
    assert all(o["alone"]["sqnr_db"] > 15 for o in ops[1:])
    assert top["in_ptq"]["sqnr_db"] is not None
    assert top["weight_sqnr_db"] > 20  # the weights quantize fine: the activations are the problem


def test_a_budget_that_cannot_be_met_names_the_best_rung(hard_case: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(BudgetNotMetError) as caught:
        _ladder(hard_case, tmp_path, max_drop=-1.0)
    message = str(caught.value)
    assert "best rung 3 (mixed_precision" in message and "max drop -1.0000" in message
    assert f"drops {caught.value.best['drop']:.4f}" in message
    assert caught.value.exit_code == 1
    rows = json.loads((tmp_path / "ladder.json").read_text())["rows"]
    assert [r["rung"] for r in rows] == [1, 2, 3]
    assert len(rows[2]["curve"]) == 3  # every weighted op tried in float before giving up


def test_a_killed_ladder_resumes_after_its_last_finished_rung(
    hard_case: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ladder(hard_case, tmp_path)
    first = json.loads((tmp_path / "ladder.json").read_text())["rows"]
    calls: list[tuple[str, ...]] = []
    real = ort_backend.quantize_qdq

    def counting(*args, **kwargs):
        calls.append(tuple(args[4]) if len(args) > 4 else ())
        return real(*args, **kwargs)

    monkeypatch.setattr(ort_backend, "quantize_qdq", counting)
    again = _ladder(hard_case, tmp_path)
    assert calls == [] and again.reused == [1, 2, 3]
    assert json.loads((tmp_path / "ladder.json").read_text())["rows"] == first

    # killed after rung 2: its row is the last one written
    ladder = json.loads((tmp_path / "ladder.json").read_text())
    ladder["rows"] = ladder["rows"][:2]
    (tmp_path / "ladder.json").write_text(json.dumps(ladder))
    resumed = _ladder(hard_case, tmp_path)
    assert resumed.reused == [1, 2]
    assert calls == [(FRAGILE,)]  # only rung 3's single step was quantized again
    rows = json.loads((tmp_path / "ladder.json").read_text())["rows"]
    assert [r["finished_at"] for r in rows[:2]] == [r["finished_at"] for r in first[:2]]
    assert rows[2]["finished_at"] > first[2]["finished_at"]

    # a changed calibration set is a different input: every rung is redone
    np.savez(tmp_path / "calib2.npz", x=np.load(hard_case["calibration"])["x"][:150])
    redone = run_ladder(hard_case["model"], hard_case["data"], tmp_path / "calib2.npz", tmp_path, runs=RUNS)
    assert redone.reused == []


def test_a_users_file_in_the_out_directory_is_never_overwritten(hard_case: dict[str, Path], tmp_path: Path) -> None:
    from edgekd.errors import UsageError

    mine = tmp_path / "ladder.json"
    mine.write_text("my own notes\n")
    with pytest.raises(UsageError, match="ladder.json exists and was not written by the quantization ladder"):
        _ladder(hard_case, tmp_path)
    assert mine.read_text() == "my own notes\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ladder.json"]


def test_bad_inputs_are_refused_with_typed_errors(hard_case: dict[str, Path], tmp_path: Path) -> None:
    from edgekd.errors import DataError, ModelError, UsageError

    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, x=np.zeros((4, 3, 8, 8), np.float32), y=np.zeros(4, np.int64))
    with pytest.raises(DataError, match=r"wrong.npz have shape \(3, 8, 8\) per sample.*takes \(4, 8, 8\)"):
        run_ladder(hard_case["model"], wrong, hard_case["calibration"], tmp_path / "a")
    onehot = tmp_path / "onehot.npz"
    np.savez(onehot, x=np.zeros((4, 4, 8, 8), np.float32), y=np.eye(4))
    with pytest.raises(DataError, match="'y' must be one integer label per sample"):
        run_ladder(hard_case["model"], onehot, hard_case["calibration"], tmp_path / "b")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model")
    with pytest.raises(ModelError, match="broken.onnx"):
        run_ladder(broken, hard_case["data"], hard_case["calibration"], tmp_path / "c")
    with pytest.raises(UsageError, match="--max-drop must be a finite number"):
        run_ladder(
            hard_case["model"], hard_case["data"], hard_case["calibration"], tmp_path / "d", max_drop=float("nan")
        )
    assert not any((tmp_path / d).exists() for d in "abcd")  # refused before anything was written


def test_the_command_prints_every_rung(hard_case: dict[str, Path], tmp_path: Path) -> None:
    import subprocess
    import sys

    argv = [sys.executable, "-m", "edgekd.cli", "quantize", str(hard_case["model"]), "-c", str(hard_case["calibration"]),
            "--out", str(tmp_path)]  # fmt: skip
    result = subprocess.run([*argv, "--max-drop", "0.01", "--data", str(hard_case["data"])], capture_output=True,
                            text=True, timeout=600, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    said = result.stdout.replace("\n  ", " ")
    assert [line.split()[1] for line in said.splitlines() if line.startswith("rung ")] == ["1", "2", "3"]
    assert "within the budget at rung 3" in " ".join(result.stdout.split())
    # options the ladder chooses itself and a budget without data are refused, not ignored
    for extra, message in ((["--max-drop", "0.01"], "--max-drop and --data go together"),
                           (["--max-drop", "0.01", "--data", str(hard_case["data"]), "--method", "entropy"], "drop --method"),
                           (["--max-drop", "0.01", "--data", str(hard_case["data"]), "--to", "tflite", "--int8-io", "float"],
                            "drop --int8-io")):  # fmt: skip
        refused = subprocess.run([*argv, *extra], capture_output=True, text=True, timeout=300, check=False)
        assert refused.returncode == 2 and message in " ".join(refused.stderr.split()), refused.stderr


def test_interrupted_in_rung_3_resumes_there_and_leaves_no_scratch(
    hard_case: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = ort_backend.quantize_qdq
    calls: list[str] = []

    def interrupted(*args, **kwargs):
        calls.append(Path(args[1]).name)
        if Path(args[1]).name.startswith("mixed."):
            raise KeyboardInterrupt  # Ctrl-C in the middle of rung 3
        return real(*args, **kwargs)

    monkeypatch.setattr(ort_backend, "quantize_qdq", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _ladder(hard_case, tmp_path)
    rows = json.loads((tmp_path / "ladder.json").read_text())["rows"]
    assert [r["rung"] for r in rows] == [1, 2]
    assert not list(tmp_path.glob(".ladder-work-*"))  # the scratch directory went with the interrupt

    monkeypatch.setattr(ort_backend, "quantize_qdq", real)
    resumed = _ladder(hard_case, tmp_path)
    assert resumed.reused == [1, 2] and resumed.chosen["rung"] == 3


def test_a_fixed_batch_model_with_unnamed_nodes(tmp_path: Path) -> None:
    """An exporter's graph: batch fixed at 1, no node names. Exclusions need names: the ladder gives them."""
    import onnx

    rng = np.random.default_rng(2)
    model = _hard_model(np.zeros(4))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_value = 1
    for node in model.graph.node:
        node.name = ""
    onnx.save(model, tmp_path / "fixed.onnx")
    x = (rng.normal(0, 1, (90, 4, 8, 8)) + rng.normal(0, 1, (90, 4, 1, 1))).astype(np.float32)
    x[:, 3] = rng.uniform(0, 2000, (90, 8, 8))
    y = ort_backend.predict(tmp_path / "fixed.onnx", x)
    np.savez(tmp_path / "val.npz", x=x[30:], y=y[30:])
    np.savez(tmp_path / "calib.npz", x=x[:30])
    result = run_ladder(
        tmp_path / "fixed.onnx",
        tmp_path / "val.npz",
        tmp_path / "calib.npz",
        tmp_path / "out",
        max_drop=0.05,
        runs=RUNS,
    )
    assert result.chosen["drop"] <= 0.05
    assert result.chosen["excluded"] and result.chosen["excluded"][0].startswith("Conv")


def test_an_outlier_between_two_convs_needs_both_in_float(tmp_path: Path) -> None:
    """No single op kept float recovers accuracy here (ORT still quantizes the tensor between them), and the
    whole-tensor SQNR of the stem looks fine because the outlier channel dominates it: the worst-channel
    SQNR ranks stem and mix above the head, and rung 3 keeps exactly those two in float."""
    case = _make_case(tmp_path, "internal")
    result = _ladder(case, tmp_path / "out")
    ptq, _, mixed = result.rows
    assert ptq["drop"] > 0.02
    ops = {o["node"]: o for o in json.loads((tmp_path / "out" / "sensitivity.json").read_text())["ops"]}
    assert all(o["accuracy_gain"] < 0.01 for o in ops.values())  # none recovers (bias-corrected PTQ is the base)
    assert ops["stem"]["alone"]["sqnr_db"] > 30 and ops["stem"]["alone"]["cosine"] > 0.99  # looks harmless
    assert ops["stem"]["alone"]["worst_channel_sqnr_db"] < 3  # is not
    assert {ops["stem"]["rank"], ops["mix"]["rank"]} == {1, 2}
    assert sorted(mixed["excluded"]) == ["mix", "stem"] and mixed["drop"] <= 0.01


def test_a_model_ptq_handles_stops_at_rung_1(tmp_path: Path) -> None:
    case = _make_case(tmp_path, "none")
    result = _ladder(case, tmp_path / "out")
    assert [r["rung"] for r in result.rows] == [1] and result.chosen["drop"] <= 0.01
    assert result.model == tmp_path / "out" / "ptq.int8.onnx"
    assert not (tmp_path / "out" / "sensitivity.json").exists()  # no sensitivity work when PTQ holds


def test_a_new_budget_redoes_the_rungs_that_depend_on_it(hard_case: dict[str, Path], tmp_path: Path) -> None:
    """Rung 1 picks the fastest candidate within the budget, so a new budget redoes it and the rungs after it; the
    same budget again reuses everything."""
    first = _ladder(hard_case, tmp_path, max_drop=0.01)
    second = _ladder(hard_case, tmp_path, max_drop=0.02)
    assert second.reused == []
    assert [r["finished_at"] for r in second.rows] != [r["finished_at"] for r in first.rows]
    assert second.rows[-1]["drop"] <= 0.02
    again = _ladder(hard_case, tmp_path, max_drop=0.02)
    assert again.reused == [row["rung"] for row in second.rows]


def test_a_torch_dynamo_export_with_the_raw_channel(tmp_path: Path) -> None:
    """ONNX from torch's exporter (its node names, fixed batch 1, Gemm head), labelled by the float model."""
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(4, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 4),
    ).eval()
    rng = np.random.default_rng(0)
    x = (rng.normal(0, 1, (900, 4, 8, 8)) + rng.normal(0, 1, (900, 4, 1, 1))).astype(np.float32)
    x[:, 3] = rng.uniform(0, 2000, (900, 8, 8))  # the raw sensor channel the first conv ignores
    with torch.no_grad():
        net[0].weight[:, 3] = 0
        net[-1].bias -= net(torch.from_numpy(x)).mean(dim=0)  # every class occurs
    model = tmp_path / "student.onnx"
    torch.onnx.export(net, (torch.zeros(1, 4, 8, 8),), str(model), dynamo=True, external_data=False, opset_version=18)
    y = ort_backend.predict(model, x)
    np.savez(tmp_path / "calib.npz", x=x[:200])
    np.savez(tmp_path / "val.npz", x=x[300:], y=y[300:])
    result = run_ladder(model, tmp_path / "val.npz", tmp_path / "calib.npz", tmp_path / "out", max_drop=0.02, runs=RUNS)
    assert result.rows[0]["drop"] > 0.2
    first_conv = next(o["node"] for o in json.loads((tmp_path / "out" / "sensitivity.json").read_text())["ops"])
    assert result.chosen["excluded"] == [first_conv] and result.chosen["drop"] <= 0.02


def test_rung_3_can_raise_to_int16_activations(hard_case: dict[str, Path], tmp_path: Path) -> None:
    """ORT int16 QDQ: the stem's input at 16 bits keeps the small channels (2000/32767 per quantum)."""
    import onnx

    result = run_ladder(
        hard_case["model"], hard_case["data"], hard_case["calibration"], tmp_path, runs=RUNS, raise_to="int16"
    )
    assert result.chosen["rung"] == 3 and result.chosen["drop"] <= 0.01
    assert result.chosen["int16"] == [FRAGILE] and result.chosen["excluded"] == []
    graph = onnx.load(str(result.model)).graph
    q_types = {init.data_type for init in graph.initializer if init.name.endswith("zero_point")}
    assert onnx.TensorProto.INT16 in q_types and onnx.TensorProto.INT8 in q_types  # mixed int16/int8


@pytest.mark.slow
def test_litert_and_tflm_rows_and_rungs_2_3_hold_the_budget_there_too(
    hard_case: dict[str, Path], tmp_path: Path
) -> None:
    """The raw sensor channel also sets LiteRT's int8 *input* scale (per tensor), so onnx2tf's full-int8 model misses
    the budget at rung 1 in LiteRT and TFLM; rungs 2-3 through ai-edge-quantizer (the ops reading the input kept
    float) hold it there too, and every runtime's row and pick are recorded."""
    result = run_ladder(hard_case["model"], hard_case["data"], hard_case["calibration"], tmp_path, runs=RUNS,
                        runtimes=("ort", "litert", "tflm"))  # fmt: skip
    ladder = json.loads((tmp_path / "ladder.json").read_text())
    assert [r["rung"] for r in ladder["rows"]] == [1, 2, 3]
    ptq = ladder["rows"][0]["runtimes"]
    assert set(ptq) == {"ort", "litert", "tflm"}
    for runtime in ("ort", "litert", "tflm"):
        assert {"accuracy", "drop", "agreement", "p50_ms", "model"} <= ptq[runtime].keys()
    for runtime in ("litert", "tflm"):
        assert ptq[runtime]["drop"] > 0.02  # plain full int8 loses points there
    assert ptq["litert"]["p50_ms"] > 0 and ptq["litert"]["fp32_p50_ms"] > 0 and ptq["tflm"]["p50_ms"] is None
    assert ptq["litert"]["model"] == ptq["tflm"]["model"] == "ptq.int8.tflite"
    assert set(result.recommended) == {"ort", "litert", "tflm"} and "not_met" not in ladder
    for runtime in ("litert", "tflm"):
        pick = result.recommended[runtime]
        assert pick["rung"] in (2, 3) and pick["drop"] <= 0.01 and (tmp_path / pick["model"]).is_file()
    from edgekd.artifacts import load_artifact

    assert load_artifact(tmp_path / "ptq.int8.tflite").precision == "int8"  # sidecar written and hash checked
    assert load_artifact(tmp_path / result.recommended["litert"]["model"]).format == "tflite"


@pytest.mark.slow
def test_the_cli_ladder_to_tflite_measures_litert_and_tflm(hard_case: dict[str, Path], tmp_path: Path) -> None:
    """`edgekd quantize --to tflite --max-drop` runs the ladder with the full-int8 TFLite rows in LiteRT and in
    TensorFlow Lite Micro (it was refused as "not built yet")."""
    argv = [sys.executable, "-m", "edgekd.cli", "quantize", str(hard_case["model"]), "-c", str(hard_case["calibration"]),
            "--out", str(tmp_path), "--to", "tflite", "--max-drop", "0.01", "--data", str(hard_case["data"])]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode in (0, 1), result.stdout + result.stderr  # 1: a runtime missed the budget, named
    assert "Traceback" not in result.stdout + result.stderr
    ladder = json.loads((tmp_path / "ladder.json").read_text())
    assert ladder["runtimes"] == ["ort", "litert", "tflm"]
    ptq = ladder["rows"][0]["runtimes"]
    assert set(ptq) == {"ort", "litert", "tflm"} and ptq["litert"]["model"].endswith(".int8.tflite")
    # every runtime either holds the budget (its pick recorded) or is named as not holding it
    assert set(ladder["recommended"]) | set(ladder.get("not_met", {})) == {"ort", "litert", "tflm"}
    if result.returncode == 1:
        assert "cannot hold the accuracy budget" in " ".join(result.stderr.split())
