"""The handoff's preprocessing, from the device's raw values (issue 13 must-show, issue 21 items 2 and 6).

A C++ program compiled against the generated `model_manifest.h` turns raw stored values (digits 0..16 with
scale 1/16; uint8 pixels 0..255 with scale 1/255 and per-channel mean/std; CSV floats) into int8 inputs with
`PrepareInput0`; they must equal, bit for bit, the int8 inputs edgekd's verify stage sets on the LiteRT
interpreter for the same samples (`edgekd.verify.backends.predict`, captured at `set_tensor`), where the
data stage made the float inputs with `Preprocessing.apply`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgekd.artifacts import describe_file
from edgekd.config.handoff import HandoffConfig
from edgekd.errors import HandoffError, UsageError
from edgekd.handoff.bundle import build_handoff
from edgekd.preprocessing import Preprocessing

needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")
CXX_FLAGS = ["-std=c++11", "-Wall", "-Wextra", "-Werror", "-pedantic"]


def int8_model(path: Path, shape: tuple[int, ...], representative: np.ndarray, seed: int = 0) -> Path:
    """A full-int8 TFLite (int8 input and output) whose input quantization comes from `representative`."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    weights = tf.constant(rng.normal(size=(size, 3)).astype(np.float32) * 0.2)

    class Tiny(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, *shape], tf.float32, name="x")])
        def __call__(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": tf.matmul(tf.reshape(x, [1, size]), weights)}

    module = Tiny()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.__call__.get_concrete_function()], module)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([sample[None].astype(np.float32)] for sample in representative)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    path.write_bytes(converter.convert())
    return path


def verify_int8_inputs(model: Path, x_nchw: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> np.ndarray:
    """The int8 arrays the verify stage sets on the interpreter for these (data-stage) float inputs."""
    from edgekd.verify import model_io
    from edgekd.verify.backends import predict

    seen: list[np.ndarray] = []
    real = model_io.tflite_interpreter

    def recording(path: Path, **kwargs: Any) -> Any:
        interpreter = real(path, **kwargs)
        set_tensor = interpreter.set_tensor

        def record(index: int, value: np.ndarray) -> None:
            seen.append(np.array(value))
            set_tensor(index, value)

        interpreter.set_tensor = record
        return interpreter

    monkeypatch.setattr(model_io, "tflite_interpreter", recording)
    predict(describe_file(model), x_nchw)
    assert len(seen) == len(x_nchw) and all(s.dtype == np.int8 for s in seen)
    return np.concatenate(seen)


def device_int8_inputs(bundle: Path, namespace: str, raw: np.ndarray, raw_ctype: str, tmp: Path) -> np.ndarray:
    """Raw values (model-input order) through `PrepareInput0` of the bundle's model_manifest.h, in C++."""
    source = tmp / "device.cc"
    source.write_text(
        f"""#include <cstdint>
#include <cstdio>
#include <vector>
#include "model_manifest.h"
int main(int argc, char** argv) {{
  if (argc != 3) return 2;
  using namespace {namespace};
  std::FILE* in = std::fopen(argv[1], "rb");
  std::FILE* out = std::fopen(argv[2], "wb");
  if (!in || !out) return 3;
  std::vector<{raw_ctype}> raw(kInput0Elements);
  std::vector<int8_t> input(kInput0Elements);
  while (std::fread(raw.data(), sizeof({raw_ctype}), kInput0Elements, in) == kInput0Elements) {{
    PrepareInput0(raw.data(), input.data());
    std::fwrite(input.data(), 1, kInput0Elements, out);
  }}
  std::fclose(in);
  return std::fclose(out) == 0 ? 0 : 4;
}}
""",
        encoding="utf-8",
    )
    program = tmp / "device"
    build = subprocess.run(
        ["g++", *CXX_FLAGS, f"-I{bundle}", str(source), "-o", str(program)], check=False, capture_output=True, text=True
    )
    assert build.returncode == 0, build.stderr
    (tmp / "raw.bin").write_bytes(np.ascontiguousarray(raw).tobytes())
    subprocess.run([str(program), str(tmp / "raw.bin"), str(tmp / "q.bin")], check=True, timeout=60)
    return np.frombuffer((tmp / "q.bin").read_bytes(), np.int8)


def make_bundle(model: Path, out: Path, prep: Preprocessing, name: str) -> dict[str, Any]:
    result = build_handoff(describe_file(model), out, HandoffConfig(model_name=name, zip=False), labels=[],
                           preprocessing=prep.to_dict(), calibration=None, bench_summary=[], versions={})  # fmt: skip
    return result.manifest


def data_stage_stats(raw: np.ndarray, scale: float, axis: tuple[int, ...] | None) -> tuple[Any, Any]:
    scaled = raw.astype(np.float32) * np.float32(scale)
    mean, std = scaled.mean(axis=axis), scaled.std(axis=axis)
    return (np.atleast_1d(mean).astype(float).tolist(), np.atleast_1d(std).astype(float).tolist())


@needs_gxx
def test_digits_raw_0_to_16_give_verifys_int8_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 17, (64, 1, 8, 8)).astype(np.float64)  # sklearn's digits: float64 holding 0..16
    raw[0] = np.arange(64).reshape(8, 8) % 17  # every value 0..16 appears
    mean, std = data_stage_stats(raw, 1 / 16, None)
    prep = Preprocessing(scale=1 / 16, mean=tuple(mean), std=tuple(std), layout="NCHW", raw_dtype="float64",
                         raw_range=(0.0, 16.0))  # fmt: skip
    x = prep.apply(raw)  # (N, 1, 8, 8) float32: the data stage's inputs
    model = int8_model(tmp_path / "digits.tflite", (8, 8, 1), x.transpose(0, 2, 3, 1))
    manifest = make_bundle(model, tmp_path / "handoff", prep, "digits")
    expected = verify_int8_inputs(model, x, monkeypatch).reshape(-1)
    device = device_int8_inputs(
        tmp_path / "handoff", "digits_manifest", raw.transpose(0, 2, 3, 1).astype(np.float32), "float", tmp_path
    )
    np.testing.assert_array_equal(device, expected)
    assert len(np.unique(expected)) == 17  # 17 raw levels -> 17 distinct int8 inputs: no saturation
    section = manifest["preprocessing"]
    assert section["scale"] == 1 / 16 and section["device_formula"][0] == "raw = the stored value (float64 in 0..16)"
    assert section["device_formula"][1].startswith("x = (raw * 0.0625 - mean[c]) / std[c]")


@needs_gxx
def test_uint8_pixels_with_per_channel_mean_std_give_verifys_int8_inputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(1)
    raw = rng.integers(0, 256, (40, 3, 4, 4), dtype=np.int64).astype(np.uint8)
    raw[:16] = np.arange(256, dtype=np.uint8).reshape(16, 1, 4, 4)  # every pixel value in every channel
    mean, std = data_stage_stats(raw, 1 / 255, (0, 2, 3))
    prep = Preprocessing(scale=1 / 255, mean=tuple(mean), std=tuple(std), layout="NCHW", raw_dtype="uint8",
                         raw_range=(0.0, 255.0))  # fmt: skip
    x = prep.apply(raw)
    model = int8_model(tmp_path / "rgb.tflite", (4, 4, 3), x.transpose(0, 2, 3, 1))
    manifest = make_bundle(model, tmp_path / "handoff", prep, "rgb")
    expected = verify_int8_inputs(model, x, monkeypatch).reshape(-1)
    device = device_int8_inputs(tmp_path / "handoff", "rgb_manifest", raw.transpose(0, 2, 3, 1), "uint8_t", tmp_path)
    np.testing.assert_array_equal(device, expected)
    section = manifest["preprocessing"]
    assert section["channels"] == 3 and section["channel_stride"] == 1
    assert section["per_channel"]["mean"] == [float(np.float32(m)) for m in mean]
    saturated = np.mean(np.isin(expected, (-128, 127)))
    assert saturated < 0.05, saturated  # the old formula (no /255) saturated every non-zero pixel
    # The folded affine differs from the exact order by at most one step.
    multiply = np.asarray(section["per_channel"]["multiply"], np.float32)
    add = np.asarray(section["per_channel"]["add"], np.float32)
    quant = manifest["inputs"][0]["quantization"]
    folded = raw.transpose(0, 2, 3, 1).astype(np.float32) * multiply + add
    q = np.clip(np.round(folded / np.float32(quant["scale"][0])) + quant["zero_point"][0], -128, 127)
    assert np.abs(q.reshape(-1) - expected.astype(np.float32)).max() <= 1


@needs_gxx
def test_csv_features_in_their_units_give_verifys_int8_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    raw = (rng.normal(size=(50, 5)) * [1.0, 10.0, 0.01, 300.0, 2.0] + [0.0, 50.0, 0.0, 1000.0, -3.0]).astype(np.float32)
    mean, std = data_stage_stats(raw, 1.0, (0,))
    prep = Preprocessing(scale=1.0, mean=tuple(mean), std=tuple(std), layout="NC", raw_dtype="float32")
    x = prep.apply(raw)
    model = int8_model(tmp_path / "table.tflite", (5,), x)
    make_bundle(model, tmp_path / "handoff", prep, "table")
    expected = verify_int8_inputs(model, x, monkeypatch).reshape(-1)
    np.testing.assert_array_equal(device_int8_inputs(tmp_path / "handoff", "table_manifest", raw, "float", tmp_path),
                                  expected)  # fmt: skip


@pytest.fixture(scope="module")
def rgb_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("rgb")
    return int8_model(folder / "rgb.tflite", (4, 4, 3), np.random.default_rng(0).normal(size=(8, 4, 4, 3)))


@pytest.mark.parametrize(
    ("prep", "message"),
    [
        ({"mean": [0.1, 0.2], "std": 0.5}, "mean has 2 values but the model input has 3 channels"),
        ({"mean": 0.1, "std": [0.5, 0.5, 0.5, 0.5]}, "std has 4 values but the model input has 3 channels"),
        ({"mean": 0.1, "std": 0.0}, "std must be finite and non-zero"),
        ({"scale": 0.0}, "scale must be a positive number"),
        ({"mean": 1e39, "std": 1.0}, "mean must be finite float32"),
        ({"mean": 0.0, "std": 1e-45, "scale": 1.0}, "overflows float32"),
    ],
)
def test_preprocessing_that_does_not_fit_the_input_is_refused_before_any_work(
    rgb_model: Path, tmp_path: Path, prep: dict[str, Any], message: str
) -> None:
    with pytest.raises(HandoffError, match=message):
        build_handoff(describe_file(rgb_model), tmp_path / "handoff", HandoffConfig(), labels=[], preprocessing=prep,
                      calibration=None, bench_summary=[], versions={})  # fmt: skip
    assert not list(tmp_path.iterdir())


def run_cli(args: list[str]) -> Any:
    import typer
    from typer.testing import CliRunner

    from edgekd.commands.handoff import handoff_cmd

    app = typer.Typer()
    app.command("handoff")(handoff_cmd)
    app.command("unused")(lambda: None)
    return CliRunner().invoke(app, ["handoff", *args])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ["--mean", "0.4,0.5", "--std", "0.2,0.2,0.2"],
            "--scale/--mean/--std do not fit rgb.tflite: mean has 2 values",
        ),
        (["--mean", "0.5", "--std", "0.2,0.2"], "std has 2 values but the model input has 3 channels"),
        (["--scale", "0", "--mean", "0.5", "--std", "0.2"], "scale must be a positive number"),
        (["--scale", "1,2"], "--scale takes one number, got 2"),
        (["--scale", "1/0"], "--scale takes numbers separated by commas, got '1/0'"),
        (["--std", "0,1,1"], "std must be finite and non-zero"),
        (["--arena-margin", "1e12"], "--arena-margin: arena margin 1e+12 is not a fraction between 0 and 10"),
        (["--arena-margin", "inf"], "arena margin inf is not a fraction"),
        (["--model-name", "модель"], "--model-name 'модель' has letters with no ASCII form (модель)"),
        (["--model-name", "!!!"], "--model-name '!!!' has no ASCII letter or digit"),
    ],
)
def test_cli_refuses_bad_options_before_any_work(
    rgb_model: Path, tmp_path: Path, options: list[str], message: str
) -> None:
    done = run_cli([str(rgb_model), "--out", str(tmp_path / "handoff"), *options])
    assert isinstance(done.exception, UsageError), done.output
    assert message in done.exception.message
    assert not list(tmp_path.iterdir())  # refused before the compiler, nothing written


def test_cli_scale_mean_std_reach_the_manifest_and_header(rgb_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "handoff"
    done = run_cli([str(rgb_model), "--out", str(out), "--scale", "1/255", "--mean", "0.5,0.4,0.3",
                    "--std", "0.25", "--no-zip"])  # fmt: skip
    assert done.exit_code == 0, done.output
    section = json.loads((out / "model_manifest.json").read_text())["preprocessing"]
    assert section["scale"] == 1 / 255 and section["per_channel"]["std"] == [0.25, 0.25, 0.25]
    header = (out / "model_manifest.h").read_text()
    assert "constexpr float kRawScale = 0.00392156886f;" in header
    assert "constexpr float kMean[3] = {0.5f, 0.400000006f, 0.300000012f};" in header
    readme = (out / "README.md").read_text()
    assert "x = (raw * 0.00392156863 - mean[c]) / std[c]" in readme and "PrepareInput0(raw, input)" in readme


def test_without_a_record_the_readme_says_so(rgb_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "handoff"
    assert run_cli([str(rgb_model), "--out", str(out), "--no-zip"]).exit_code == 0
    section = json.loads((out / "model_manifest.json").read_text())["preprocessing"]
    assert section["recorded"] is False and section["per_channel"]["mean"] == [0.0, 0.0, 0.0]
    assert "**Not recorded**" in (out / "README.md").read_text()
