"""Every command given every kind of bad input: real `python -m edgekd.cli` subprocesses.

Each case must end with a non-zero exit, exactly one `error:`/`usage error:` line on stderr, which with its hint says what
was wrong (the needle), and no "Traceback" anywhere. The subprocesses of all cases run up front, a few at a time,
so the matrix costs a few interpreter start-ups of wall time rather than one per case.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.bad_inputs import PWNED, write_bad_inputs

ROOT = Path(__file__).resolve().parents[2]
LITERT_TORCH_MISSING = importlib.util.find_spec("litert_torch") is None  # with it installed, that recipe would train

# id -> (argv after `edgekd`, text the error line must contain, expected exit code)
CASES: dict[str, tuple[list[str], str, int]] = {
    # recipes
    "run-toml-syntax": (["run", "syntax.toml"], "syntax.toml: TOML syntax error", 2),
    "run-not-utf8": (["run", "not_utf8.toml"], "not_utf8.toml: not a text file", 2),
    "run-unknown-key": (["run", "unknown_key.toml"], "run.sed: unknown key 'sed'", 2),
    "run-wrong-type": (["run", "wrong_type.toml"], "distill.train.epochs: Input should be a valid integer", 2),
    "run-negative-epochs": (["run", "negative_epochs.toml"], "greater than or equal to 1 (got -3)", 2),
    "run-missing-recipe": (["run", "no-such-recipe.toml"], "recipe no-such-recipe.toml does not exist", 2),
    "run-unknown-converter": (["run", "unknown_converter.toml"], "did you mean 'onnx2tf'?", 2),
    "run-unknown-target": (["run", "unknown_target.toml"], "did you mean 'local'?", 1),
    "run-unknown-runtime": (["run", "unknown_runtime.toml"], "did you mean 'litert'?", 2),
    "run-unknown-loss": (["run", "unknown_loss.toml"], "did you mean 'dist'?", 2),
    "run-unknown-arch": (["run", "unknown_arch.toml"], "did you mean 'cnn'?", 2),
    "run-unknown-stage": (
        ["run", str(ROOT / "examples" / "digits.toml"), "--only", "exprot"],
        "did you mean 'export'",
        2,
    ),
    # preflight: refused before any stage runs
    "run-handoff-artifact-typo": (["run", "handoff_artifact_typo.toml"], "did you mean 'tflite_int8'?", 2),
    "run-unknown-strict-verdict": (
        ["run", str(ROOT / "examples" / "digits.toml"), "--strict-verdict", "kd_below_scrach"],
        "did you mean 'kd_below_scratch'",
        2,
    ),
    "distill-toml-syntax": (["distill", "syntax.toml"], "TOML syntax error", 2),
    "distill-missing-recipe": (["distill", "no-such-recipe.toml"], "does not exist", 2),
    "distill-missing-data": (["distill", "missing_data.toml"], "no-such-data.npz does not exist", 1),
    "export-bad-recipe": (
        ["export", "hostile.pt", "--recipe", "wrong_type.toml"],
        "Input should be a valid integer",
        2,
    ),
    # data
    "data-empty": (["distill", "data_empty.toml"], "the data set is empty", 1),
    "data-nan": (["distill", "data_nan.toml"], "1 samples contain NaN or Inf", 1),
    "data-inf": (["distill", "data_inf.toml"], "NaN or Inf", 1),
    "data-negative-labels": (["distill", "data_negative_labels.toml"], "labels must be >= 0", 1),
    "data-class-count": (["distill", "data_class_count.toml"], "labels must lie in 0..2, found 0..3", 1),
    "data-wrong-shape": (["distill", "data_wrong_shape.toml"], "neither images nor feature vectors", 1),
    "data-length-mismatch": (["distill", "data_length_mismatch.toml"], "samples but 30 labels", 1),
    "data-float-labels": (["distill", "data_float_labels.toml"], "must be integer class indices", 1),
    "data-no-labels": (["distill", "data_no_labels.toml"], "needs arrays 'x' and 'y'", 1),
    "data-object-arrays": (["distill", "data_object.toml"], "without object arrays", 1),
    # models
    "export-missing": (["export", "no-such-model.pt"], "no-such-model.pt does not exist", 1),
    "export-no-sidecar": (["export", "corrupt.tflite"], "has no sidecar", 1),
    "export-corrupt-pt": (["export", "corrupt.pt"], "corrupt.pt is not a readable torch weights file", 1),
    "export-truncated-pt": (["export", "truncated.pt"], "failed finding central directory", 1),
    "export-hostile-pt": (["export", "hostile.pt"], "hostile.pt holds more than tensors and was refused", 1),
    "verify-hostile-pt": (["verify", "hostile.pt"], "unsupported GLOBAL posix.system", 1),
    "verify-corrupt-onnx": (["verify", "corrupt.onnx"], "is not a readable ONNX file", 1),
    "verify-truncated-onnx": (["verify", "truncated.onnx"], "is not a readable ONNX file", 1),
    "verify-corrupt-tflite": (["verify", "corrupt.tflite"], "is not a loadable TFLite model", 1),
    "verify-truncated-tflite": (["verify", "truncated.tflite"], "is not a loadable TFLite model", 1),
    "verify-unsupported-op": (["verify", "unsupported_op.onnx"], "No Op registered for NoSuchOperator", 1),
    "verify-missing": (["verify", "no-such-model.onnx"], "does not exist", 1),
    "quantize-corrupt-onnx": (
        ["quantize", "corrupt.onnx", "-c", "calibration.npz"],
        "corrupt.onnx is not a readable ONNX file",
        1,
    ),
    "quantize-missing-calibration": (
        ["quantize", "truncated.onnx", "-c", "no-such.npz"],
        "calibration set no-such.npz does not exist",
        1,
    ),
    "bench-corrupt-onnx": (["bench", "corrupt.onnx"], "onnxruntime cannot load", 1),
    "bench-truncated-tflite": (["bench", "truncated.tflite"], "the interpreter cannot load", 1),
    "bench-torch-file": (["bench", "hostile.pt"], "holds more than tensors and was refused", 1),
    "bench-missing": (["bench", "no-such-model.onnx"], "does not exist", 1),
    "bench-unknown-target": (["bench", "corrupt.onnx", "--target", "pi55"], "did you mean 'pi5'", 1),
    "handoff-corrupt-tflite": (["handoff", "corrupt.tflite"], "no 'TFL3' identifier", 1),
    "handoff-truncated-tflite": (["handoff", "truncated.tflite"], "truncated.tflite is not a readable TFLite model", 1),
    "handoff-onnx": (["handoff", "truncated.onnx"], "edgekd handoff takes a .tflite model", 2),
    "quantize-missing": (["quantize", "no-such.onnx", "-c", "calibration.npz"], "no-such.onnx does not exist", 1),
    "quantize-truncated-onnx": (
        ["quantize", "truncated.onnx", "-c", "calibration.npz"],
        "is not a readable ONNX file",
        1,
    ),
    "quantize-torch-file": (
        ["quantize", "hostile.pt", "-c", "calibration.npz"],
        "quantize takes an ONNX fp32 model",
        2,
    ),
    "verify-corrupt-pt": (["verify", "corrupt.pt"], "corrupt.pt is not a readable torch weights file", 1),
    "verify-truncated-pt": (["verify", "truncated.pt"], "truncated.pt is not a readable torch weights file", 1),
    "bench-corrupt-tflite": (["bench", "corrupt.tflite"], "the interpreter cannot load", 1),
    "bench-truncated-onnx": (["bench", "truncated.onnx"], "onnxruntime cannot load", 1),
    "handoff-missing": (["handoff", "no-such.tflite"], "no-such.tflite does not exist", 1),
    "report-missing-dir": (["report", "no-such-run"], "run directory no-such-run does not exist", 2),
    "report-not-a-run": (["report", "not_a_run"], "not an edgekd run directory", 2),
    # targets and inventories
    "doctor-unknown-target": (["targets", "doctor", "pi55"], "did you mean 'pi5'", 1),
    "doctor-bad-kind": (["targets", "doctor", "pi5", "--inventory", "bad_kind.toml"], "did you mean 'ssh'?", 2),
    "doctor-bad-inventory": (["targets", "doctor", "pi5", "--inventory", "bad_syntax.toml"], "not valid TOML", 2),
    "doctor-missing-inventory": (
        ["targets", "doctor", "pi5", "--inventory", "none.toml"],
        "none.toml does not exist",
        1,
    ),
}
if LITERT_TORCH_MISSING:
    CASES["run-also-litert-torch-missing"] = (
        ["run", "also_litert_torch.toml"],
        "also_litert_torch needs the 'litert_torch' converter",
        2,
    )


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, subprocess.CompletedProcess[str]]]:
    folder = tmp_path_factory.mktemp("bad-inputs")
    write_bad_inputs(folder)
    env = {**os.environ, "EDGEKD_TARGETS": str(folder / "targets.toml"), "TF_CPP_MIN_LOG_LEVEL": "2"}

    def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "edgekd.cli", *argv]
        return subprocess.run(command, capture_output=True, text=True, cwd=folder, env=env, timeout=300, check=False)

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = dict(zip(CASES, pool.map(run, (argv for argv, _, _ in CASES.values()))))
    return folder, results


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_clear_error(
    case: str, outcomes: tuple[Path, dict[str, subprocess.CompletedProcess[str]]]
) -> None:
    _folder, results = outcomes
    result = results[case]
    _, needle, code = CASES[case]
    both = result.stdout + result.stderr
    assert "Traceback" not in both, both
    assert "internal error" not in both, both
    assert result.returncode == code, both
    errors = [line for line in result.stderr.splitlines() if line.startswith(("error:", "usage error:"))]
    assert len(errors) == 1, result.stderr
    assert needle in result.stderr, result.stderr  # in the message or its hint


def test_hostile_pickle_never_ran(outcomes: tuple[Path, dict[str, subprocess.CompletedProcess[str]]]) -> None:
    folder, _ = outcomes
    assert not (folder / PWNED).exists()
