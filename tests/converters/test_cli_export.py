"""The export/quantize/verify commands through the real `edgekd` entry point."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def _edgekd(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgekd.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=600, check=False
    )


@pytest.fixture(scope="module", autouse=True)
def _cli_importable():
    done = subprocess.run([sys.executable, "-c", "import edgekd.cli"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"edgekd.cli does not import: {done.stderr.strip().splitlines()[-1]}")


def test_verify_corrupt_file_exits_nonzero_with_one_message(onnx_models, tmp_path):
    broken = tmp_path / "student.onnx"
    broken.write_bytes(onnx_models["cnn"].path.read_bytes()[:2000])
    done = _edgekd("verify", str(broken))
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("error:") and "student.onnx" in lines[0] and "corrupt" in done.stderr


@pytest.mark.slow
def test_export_quantize_verify_round_trip(torch_models, calibration, tmp_path):
    assert _edgekd("--quiet", "export", str(torch_models["cnn"].path), "--out", str(tmp_path)).returncode == 0
    onnx_file = tmp_path / "student.onnx"
    assert onnx_file.exists() and (tmp_path / "student.onnx.json").exists()
    refused = _edgekd(
        "quantize", str(onnx_file), "--calibration", str(calibration.path), "--out", str(tmp_path), "--mode", "dynamic"
    )
    assert refused.returncode != 0 and "dynamic int8 refused" in refused.stderr
    assert not (tmp_path / "student.int8.onnx").exists()
    assert (
        _edgekd(
            "--quiet", "quantize", str(onnx_file), "--calibration", str(calibration.path), "--out", str(tmp_path)
        ).returncode
        == 0
    )
    done = _edgekd(
        "--json", "verify", str(tmp_path / "student.int8.onnx"), "--reference", str(torch_models["cnn"].path)
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    row = report["rows"][0]
    assert row["artifact"] == "onnx_int8" and row["top1_agreement"] >= 0.95 and row["ops"]["runtime"] == "onnxruntime"
