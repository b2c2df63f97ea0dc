"""Op audit: counts, transposes, TFLite Micro gaps, ORT nodes left in float."""

from __future__ import annotations

import pytest

from edgekd.verify.ops import TFLM_BUILTIN_OPS, audit


def test_onnx_audit_counts_ops(onnx_models):
    result = audit(onnx_models["cnn"])
    assert result["ops"]["Conv"] == 2 and result["total"] == sum(result["ops"].values())
    assert result["transpose_count"] == 0
    assert audit(onnx_models["transformer"])["transpose_count"] >= 2  # attention heads split/merge
    assert "float_nodes" not in result


def test_ort_int8_audit_lists_nodes_left_in_float(ort_int8):
    cnn = audit(ort_int8["cnn"])
    assert cnn["ops"]["DequantizeLinear"] > 0 and cnn["float_node_count"] == 0
    transformer = audit(ort_int8["transformer"])
    assert transformer["float_node_count"] == len(transformer["float_nodes"]) >= 1
    assert all({"name", "op"} <= set(node) for node in transformer["float_nodes"])


@pytest.mark.slow
def test_tflite_audit_flags_tflm_gaps(tflite_models):
    int8 = audit(tflite_models["mobilenet"]["int8"])
    assert int8["runtime"] == "litert" and int8["ops"]["DEPTHWISE_CONV_2D"] >= 1
    assert int8["tflm_unsupported"] == [] and int8["tflm_compatible"] is True
    fp16 = audit(tflite_models["mobilenet"]["fp16"])
    assert fp16["tflm_compatible"] is False and "does not run fp16" in fp16["notes"][0]


def test_tflm_op_table_matches_the_installed_tflite_micro():
    """The table is read from tflite-micro's kernel registrations; recheck it against the pinned build."""
    from pathlib import Path

    tflite_micro = pytest.importorskip("tflite_micro")
    libraries = list(Path(tflite_micro.__file__).parent.rglob("*.so"))
    assert libraries
    symbols = b"".join(path.read_bytes() for path in libraries)
    for op in ("CONV_2D", "DEPTHWISE_CONV_2D", "HARD_SWISH", "FULLY_CONNECTED", "SOFTMAX"):
        assert op in TFLM_BUILTIN_OPS and f"Register_{op}".encode() in symbols
    assert "GELU" not in TFLM_BUILTIN_OPS and b"Register_GELU" not in symbols
