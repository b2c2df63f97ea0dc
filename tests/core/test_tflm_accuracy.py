"""Firmware-path accuracy: int8 .tflite files made by TensorFlow (not edgekd) run in TFLite Micro over a test split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgekd.artifacts import describe_file
from edgekd.config.export import Threshold
from edgekd.errors import ModelError
from edgekd.verify.backends import predict
from edgekd.verify.tflm_accuracy import predict_tflm, tflm_parity_row

pytest.importorskip("tflite_micro", reason="the firmware-path accuracy needs tflite-micro")

REPO = Path(__file__).resolve().parents[2]
from tests.support.tflite_models import build_tflite_models

INT8_GATE = Threshold(agreement=0.95, max_accuracy_drop=0.02)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_tflite_models(tmp_path_factory.mktemp("tflite_models"))


def samples(n: int = 48) -> np.ndarray:
    return np.random.default_rng(0).uniform(-1, 1, size=(n, 1, 8, 8)).astype(np.float32)  # NCHW, as a data split


def test_tflm_matches_litert_and_makes_a_gated_row(models: dict[str, Path]) -> None:
    artifact = describe_file(models["cnn_int8"])
    x = samples()
    litert = predict(artifact, x)  # the host runtime's int8 kernels, same quantized inputs
    tflm = predict_tflm(artifact, x)
    assert tflm.shape == litert.shape == (48, 10)
    assert np.abs(tflm - litert).max() <= 1 / 256 + 1e-6  # at most one quantum of the softmax output (scale 1/256)
    labels = litert.argmax(axis=1)
    row = tflm_parity_row(litert, artifact, x, labels, INT8_GATE)
    assert row["artifact"] == "tflm_int8" and row["runtime"] == "tflite-micro" and row["passed"], row
    assert row["top1_agreement"] >= 0.95 and row["accuracy"] == pytest.approx(row["top1_agreement"])
    assert row["arena_source"].startswith("10x the file size") and row["arena_bytes"] >= 64 * 1024


def test_a_disagreeing_reference_fails_the_gate_with_the_numbers(models: dict[str, Path]) -> None:
    artifact = describe_file(models["cnn_int8"])
    x = samples(20)
    reference = np.roll(predict(artifact, x), 1, axis=1)  # a "student" whose argmax differs everywhere
    row = tflm_parity_row(reference, artifact, x, reference.argmax(axis=1), INT8_GATE, arena_bytes=32 * 1024)
    assert not row["passed"] and row["arena_source"] == "the handoff's measurement"
    assert any(f.startswith("top1_agreement 0.0000 < 0.95") for f in row["failures"]), row["failures"]


def test_tflm_refusals_are_one_model_error(models: dict[str, Path]) -> None:
    artifact = describe_file(models["cnn_int8"])
    with pytest.raises(ModelError, match=r"cannot run cnn_int8\.tflite with a 512-byte arena: Failed to resize buffer"):
        predict_tflm(artifact, samples(2), arena_bytes=512)
    with pytest.raises(ModelError, match=r"expects samples of shape \(8, 8, 1\), the data has \(4, 4, 1\)"):
        predict_tflm(artifact, np.zeros((2, 1, 4, 4), np.float32))
    with pytest.raises(ModelError, match=r"cannot run gelu_fp32\.tflite .*: Didn't find op for builtin opcode 'GELU'"):
        predict_tflm(describe_file(models["gelu_fp32"]), np.zeros((2, 16), np.float32))
    with pytest.raises(ModelError, match="has 2 inputs and 2 outputs"):
        predict_tflm(describe_file(models["multi_io_int8"]), np.zeros((2, 6), np.float32))
