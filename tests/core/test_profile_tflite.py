"""Golden tests: TFLite `benchmark_model --enable_op_profiling=true` outputs parsed into the per-op schema.

The recordings (tests/support/recordings/profile/, sources in its README) are published real outputs; the
figures asserted here are the tool's own printed numbers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekd.errors import DataError
from edgekd.profile import OpProfile, OpRow
from edgekd.profile.placement import accelerator_fallback, placement
from edgekd.profile.tflite_benchmark import parse_benchmark_file, parse_benchmark_output, summary_by_node_type
from edgekd.profile.views import by_op_type, top_ops

RECORDINGS = Path(__file__).resolve().parents[1] / "support" / "recordings" / "profile"


def _text(name: str) -> str:
    return (RECORDINGS / name).read_text()


def test_mobilenet_cpu_run_order_tab_format_with_start_column():
    profile = parse_benchmark_file(RECORDINGS / "mobilenet_v1_cpu_riscv64.txt", model="mobilenet_v1_1.0_224.tflite")
    assert len(profile.rows) == 31 and profile.runs == 50 and profile.statistic == "mean"
    assert profile.rows[0] == OpRow("[MobilenetV1/MobilenetV1/Conv2d_0/Relu6]:0", "CONV_2D", "CPU", 60.957, 1.0)
    assert profile.rows[-1] == OpRow("[MobilenetV1/Predictions/Reshape_1]:30", "SOFTMAX", "CPU", 0.233, 1.0)
    assert {row.provider for row in profile.rows} == {"CPU"}
    assert profile.requested == [] and accelerator_fallback(profile) == []  # no accelerator asked for
    # The rows add up to the tool's own average inference (Timings avg=2.9499e+06 µs).
    assert profile.total_ms == pytest.approx(2949.9, abs=0.1)


def test_by_op_type_agrees_with_the_tools_summary_table():
    text = _text("mobilenet_v1_cpu_riscv64.txt")
    ours = {row["op_type"]: row for row in by_op_type(parse_benchmark_output(text))}
    theirs = summary_by_node_type(text)
    assert set(ours) == set(theirs) == {"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "SOFTMAX", "SQUEEZE"}
    # The tool rounds each printed figure to 0.001 ms and averages the two tables separately (SOFTMAX is
    # 0.233 in Run Order, 0.232 in the summary): allow 0.001 ms per node.
    for op_type, ms in theirs.items():
        assert ours[op_type]["ms"] == pytest.approx(ms, abs=0.001 * (ours[op_type]["nodes"] + 1)), op_type
    assert ours["CONV_2D"]["nodes"] == 15 and ours["DEPTHWISE_CONV_2D"]["nodes"] == 13


def test_top_ops_match_the_tools_top_by_computation_time():
    profile = parse_benchmark_output(_text("mobilenet_v1_cpu_riscv64.txt"))
    assert [row["op"] for row in top_ops(profile, 3)] == [
        "[MobilenetV1/MobilenetV1/Conv2d_5_pointwise/Relu6]:10",
        "[MobilenetV1/MobilenetV1/Conv2d_8_pointwise/Relu6]:16",
        "[MobilenetV1/MobilenetV1/Conv2d_10_pointwise/Relu6]:20",
    ]
    assert top_ops(profile, 1)[0]["share"] == pytest.approx(0.09403, abs=1e-4)  # the tool's 9.403%


def test_xnnpack_per_operator_rows_space_format_and_calls():
    profile = parse_benchmark_file(RECORDINGS / "efficientdet_lite0_int8_xnnpack_x86.txt")
    assert len(profile.rows) == 20 and profile.runs == 64
    assert profile.requested == profile.providers == ["XNNPACK"]  # "Created TensorFlow Lite XNNPACK delegate"
    dwconv = profile.rows[2]
    assert (
        dwconv.op == "Delegate/Convolution (NHWC, QC8) DWConv:1" and dwconv.op_type == "Convolution (NHWC, QC8) DWConv"
    )
    assert dwconv.provider == "XNNPACK" and dwconv.calls == 13 and dwconv.ms == pytest.approx(0.051 * 13)
    assert {row.op_type for row in profile.rows if row.provider == "CPU"} == {"QUANTIZE", "RESIZE_NEAREST_NEIGHBOR"}
    # The initialization section (ModifyGraphWithDelegate, AllocateTensors) is not inference.
    assert not {"ModifyGraphWithDelegate", "AllocateTensors"} & {row.op_type for row in profile.rows}


def test_xnnpack_partial_fallback_is_info_when_small():
    """XNNPACK took everything but QUANTIZE and two resizes: 1.9 % of the op time on the plain CPU."""
    profile = parse_benchmark_file(RECORDINGS / "efficientdet_lite0_int8_xnnpack_x86.txt", model="1.tflite")
    [verdict] = accelerator_fallback(profile)
    assert verdict.code == "accelerator_fallback" and verdict.severity == "info"
    assert verdict.message.startswith("1.tflite asked for XNNPACK, but 3 of 20 nodes")
    assert "QUANTIZE 0.203 ms" in verdict.message


def test_nnapi_partitions_and_cpu_fallback_warning():
    """DeepLabV3 with --use_nnapi=1: three NNAPI partitions; pooling, resizes and ARG_MAX stay on the CPU."""
    profile = parse_benchmark_output(
        _text("deeplabv3_nnapi_partial.txt"), model="deeplabv3.tflite", requested=["NNAPI"]
    )
    assert [row.provider for row in profile.rows] == ["NNAPI", "CPU", "NNAPI", "CPU", "NNAPI", "CPU", "CPU", "CPU"]
    assert profile.rows[0].op_type == "TfLiteNnapiDelegate"
    groups = {g["provider"]: g for g in placement(profile)}
    assert groups["NNAPI"]["nodes"] == 3 and groups["CPU"]["nodes"] == 5
    assert groups["CPU"]["ms"] == pytest.approx(0.080 + 0.731 + 0.095 + 22.369 + 15.326)
    [verdict] = accelerator_fallback(profile)
    assert verdict.severity == "warning"
    assert "asked for NNAPI, but 5 of 8 nodes (74.1% of op time" in verdict.message
    assert "RESIZE_BILINEAR 23.195 ms, ARG_MAX 15.326 ms, AVERAGE_POOL_2D 0.080 ms" in verdict.message


def test_unknown_delegate_kernel_is_not_counted_as_cpu():
    text = _text("deeplabv3_nnapi_partial.txt").replace("TfLiteNnapiDelegate", "TfLiteVxDelegate   ")
    profile = parse_benchmark_output(text, requested=["VX"])
    assert [row.provider for row in profile.rows][:2] == ["TfLiteVxDelegate", "CPU"]


def test_fully_delegated_profile_gives_no_verdict():
    """Built in code (no published fully delegated op profile was found): every row on the delegate."""
    profile = OpProfile(
        "tflite",
        "m.tflite",
        "test",
        requested=["XNNPACK"],
        rows=[
            OpRow("Delegate/Convolution (NHWC, F32) IGEMM:0", "Convolution (NHWC, F32) IGEMM", "XNNPACK", 0.4),
            OpRow("Delegate/Fully Connected (NC, F32) GEMM:1", "Fully Connected (NC, F32) GEMM", "XNNPACK", 0.1),
        ],
    )
    assert accelerator_fallback(profile) == []


def test_output_without_op_profile_is_refused_with_a_hint():
    text = _text("efficientdet_lite0_int8_xnnpack_x86.txt").split("INFO: Operator-wise")[0]
    with pytest.raises(DataError, match="no 'Operator-wise Profiling Info for Regular Benchmark Runs' section") as info:
        parse_benchmark_output(text)
    assert "--enable_op_profiling=true" in info.value.hint


def test_mangled_row_is_refused_naming_the_row():
    text = _text("deeplabv3_nnapi_partial.txt").replace("\t        1\t[ArgMax]:70", " 1 [ArgMax]:70")
    with pytest.raises(DataError, match=r"row has 7 cells, the header names 9: .*ArgMax"):
        parse_benchmark_output(text)


def test_unreadable_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="cannot read benchmark_model output"):
        parse_benchmark_file(tmp_path / "missing.txt")


def test_delegation_log_lines_full_partial_and_unknown_total():
    from edgekd.profile.placement import delegation_fallback
    from edgekd.profile.tflite_benchmark import delegation_in_log

    entries = delegation_in_log(_text("delegation_log_lines.txt"))
    assert [(e["provider"], e["replaced"], e["total"], e["partitions"]) for e in entries] == [
        ("XNNPACK", 2168, 2168, 1),
        ("XNNPACK", 29, 31, 4),
        ("XNNPACK", 162, None, 2),
        ("QNN", 11, 3504, 7),
        ("XNNPACK", 4, 4, 1),
    ]
    assert delegation_fallback([entries[0]], "m.tflite") == []  # fully delegated: no verdict
    assert delegation_fallback([entries[2]], "m.tflite") == []  # no total given: nothing to judge
    [partial] = delegation_fallback([entries[1]], "m.tflite", target="pi5")
    assert partial.severity == "info"  # 2 of 31 nodes (6 %) left on the CPU
    assert partial.message == (
        "m.tflite on pi5: XNNPACK took 29 of 31 nodes, in 4 partitions; 2 ran on the "
        "plain CPU (per the delegate's log)."
    )
    [qnn] = delegation_fallback([entries[3]], "m.tflite")
    assert qnn.severity == "warning" and "took 11 of 3504 nodes" in qnn.message


def test_delegates_named_in_the_log():
    """Log lines as TFLite prints them (INFO: Created TensorFlow Lite delegate for GPU. / ... XNNPACK delegate for CPU.)."""
    from edgekd.profile.tflite_benchmark import delegates_in_log

    log = (
        "INFO: Created TensorFlow Lite delegate for GPU.\nINFO: Initialized OpenCL-based API.\n"
        "INFO: Created 1 GPU delegate kernels.\nINFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
    )
    assert delegates_in_log(log) == ["GPU", "XNNPACK"]
    assert delegates_in_log(_text("mobilenet_v1_cpu_riscv64.txt")) == []
