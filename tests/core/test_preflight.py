"""Preflight: what can be known before training is refused before training, with one message and exit 2 (or 1).

The user's factories are written by the test into its own folder (code edgekd did not make); the CLI runs
are real subprocesses and prove that no model was trained when preflight refused the recipe.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edgekd import preflight
from edgekd.errors import ModelError, RecipeError
from edgekd.preflight import DataFacts
from edgekd.recipe import parse_recipe

ROOT = Path(__file__).resolve().parents[2]
DIGITS = DataFacts(input_shape=(1, 8, 8), num_classes=10, train_size=1257)

FACTORIES = textwrap.dedent(
    """
    import torch
    from torch import nn
    import torch.nn.functional as F

    def positional(input_shape, classes):          # not the contract: keywords input_shape=, num_classes=
        return nn.Linear(4, classes)

    def rgb_only(*, input_shape, num_classes):       # ignores input_shape: always 3 channels
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(num_classes))

    def not_a_module(*, input_shape, num_classes):
        return {"weights": [1, 2, 3]}

    def hard_sigmoid(*, input_shape, num_classes):   # MobileNetV3-style gate: written as ReLU6, which TFLM has
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.Hardsigmoid(), nn.Linear(16, num_classes))

    def exact_gelu(*, input_shape, num_classes):
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.GELU(), nn.Linear(16, num_classes))

    def hard_swish(*, input_shape, num_classes):     # HARD_SWISH: TFLM has it
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.Hardswish(), nn.Linear(16, num_classes))
    """
)


@pytest.fixture
def factories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "user_models"
    folder.mkdir()
    (folder / "h5_user_factories.py").write_text(FACTORIES)
    monkeypatch.syspath_prepend(str(folder))
    return folder


def custom(factory: str) -> dict:
    return {"arch": "custom", "factory": f"h5_user_factories:{factory}"}


def run_cli(*args: str, cwd: Path, env_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    import os

    env = dict(os.environ)
    if env_path is not None:
        env["PYTHONPATH"] = f"{env_path}{os.pathsep}{env.get('PYTHONPATH', '')}"
    return subprocess.run([sys.executable, "-m", "edgekd.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600, env=env, check=False)  # fmt: skip


# --- recipe-only checks --------------------------------------------------------------------------------------


def test_also_litert_torch_without_the_package_is_a_recipe_error() -> None:
    recipe = parse_recipe({"tflite": {"also_litert_torch": True}})
    from edgekd import registry

    if registry.converter("litert_torch").available() is None:
        pytest.skip("litert-torch is installed here")
    with pytest.raises(RecipeError, match=r"\[tflite\] also_litert_torch needs the 'litert_torch' converter") as info:
        preflight.check_recipe(recipe)
    assert info.value.exit_code == 2 and "also_litert_torch = false" in (info.value.hint or "")


def test_litert_torch_converter_cannot_write_fp16() -> None:
    recipe = parse_recipe({"tflite": {"converter": "litert_torch", "precisions": ["fp32", "fp16"]}})
    with pytest.raises(RecipeError):  # unavailable here, or (if installed) refuses fp16
        preflight.check_converters(recipe, None)


def test_unknown_handoff_artifact_is_refused_with_a_close_match() -> None:
    recipe = parse_recipe({"handoff": {"artifact": "tflite_in8"}})
    with pytest.raises(RecipeError, match="'tflite_in8' is not a TFLite file this recipe produces") as info:
        preflight.check_handoff_artifact(recipe, None)
    assert "did you mean 'tflite_int8'?" in (info.value.hint or "")
    assert "this recipe makes: tflite_fp32, tflite_int8" in (info.value.hint or "")


def test_handoff_of_a_format_micro_cannot_run_is_refused() -> None:
    recipe = parse_recipe({"tflite": {"precisions": ["fp32", "fp16"]}, "handoff": {"artifact": "tflite_fp16"}})
    with pytest.raises(RecipeError, match="fp16, which TensorFlow Lite Micro cannot run"):
        preflight.check_handoff_artifact(recipe, None)
    linux = parse_recipe(
        {"tflite": {"precisions": ["fp16"]}, "handoff": {"artifact": "tflite_fp16", "platform": "linux"}}
    )
    preflight.check_handoff_artifact(linux, None)  # a full TFLite runtime runs fp16


def test_checks_follow_the_stages_that_will_run() -> None:
    recipe = parse_recipe({"handoff": {"artifact": "nonsense"}})
    preflight.check_handoff_artifact(recipe, {"data", "teacher"})  # --only without handoff: not checked
    off = parse_recipe({"handoff": {"enabled": False, "artifact": "nonsense"}})
    preflight.check_handoff_artifact(off, None)


# --- checks with the data's facts ----------------------------------------------------------------------------


def test_explicit_calibration_larger_than_the_training_split_is_refused() -> None:
    small = DataFacts((4,), 3, train_size=105)
    with pytest.raises(RecipeError, match=r"\[calibration\] size = 200 exceeds the 105 samples") as info:
        preflight.check_calibration_size(parse_recipe({"calibration": {"size": 200}}), small, None)
    assert info.value.exit_code == 2


def test_default_calibration_is_capped_at_the_training_split_with_a_note() -> None:
    recipe = parse_recipe({})
    note = preflight.check_calibration_size(recipe, DataFacts((4,), 3, train_size=105), None)
    assert note is not None and "all 105 training samples" in note
    assert preflight.calibration_size(recipe, 105) == 105
    assert preflight.calibration_size(recipe, 5000) == 200
    assert preflight.check_calibration_size(recipe, DIGITS, None) is None


@pytest.mark.parametrize(
    "factory, needle",
    [
        ("positional", "has the signature (input_shape, classes)"),
        ("rgb_only", "fails on the data's input [2, 1, 8, 8]"),
        ("not_a_module", "not a torch.nn.Module"),
    ],
)
def test_a_student_factory_that_does_not_fit_is_a_model_error_before_training(
    factories: Path, factory: str, needle: str
) -> None:
    recipe = parse_recipe({"student": {"model": custom(factory)}})
    with pytest.raises(ModelError) as info:
        preflight.check_with_data(recipe, summary(DIGITS))
    assert needle in info.value.message and info.value.exit_code == 1


@pytest.mark.parametrize(
    "factory, extra, refused",
    [
        ("hard_sigmoid", {}, None),
        ("exact_gelu", {}, "CUSTOM:FlexErf"),
        ("exact_gelu", {"export": {"opset": 20}}, "GELU"),
        ("exact_gelu", {"tflite": {"pseudo_ops": ["Erf"]}}, None),
        ("hard_swish", {}, None),
        ("hard_sigmoid", {"handoff": {"platform": "linux"}}, None),
    ],
)
def test_micro_handoff_refuses_operators_tflm_lacks(
    factories: Path, factory: str, extra: dict, refused: str | None
) -> None:
    recipe = parse_recipe({"student": {"model": custom(factory)}, **extra})
    if refused is None:
        preflight.check_with_data(recipe, summary(DIGITS))
        return
    with pytest.raises(RecipeError, match="TensorFlow Lite Micro does not have") as info:
        preflight.check_with_data(recipe, summary(DIGITS))
    assert f"-> {refused}" in info.value.message and info.value.exit_code == 2


def summary(facts: DataFacts) -> dict:
    return {
        "input_shape": list(facts.input_shape),
        "num_classes": facts.num_classes,
        "sizes": {"train": facts.train_size},
    }


# --- through the command line: refused before any model is trained ------------------------------------------


def test_run_refuses_an_oversized_calibration_before_training(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(150, 4))
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0).astype(int)
    lines = ["a,b,c,d,label"] + [",".join(f"{v:.4f}" for v in row) + f",{label}" for row, label in zip(x, y)]
    (tmp_path / "small.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "r.toml").write_text(textwrap.dedent(
        """
        [data]
        source = "csv"
        path = "small.csv"
        [teacher]
        model = { arch = "mlp", width = 16, depth = 1 }
        [student]
        model = { arch = "mlp", width = 8, depth = 1 }
        [calibration]
        size = 500
        """
    ))  # fmt: skip
    result = run_cli("run", "r.toml", "--out", "run", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "[calibration] size = 500 exceeds the" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "teacher.pt").exists()
    assert not (tmp_path / "run" / ".edgekd" / "stages" / "teacher.json").exists()


def test_run_refuses_a_micro_handoff_of_an_unsupported_layer_before_training(tmp_path: Path) -> None:
    folder = tmp_path / "user_models"
    folder.mkdir()
    (folder / "h5_user_factories.py").write_text(FACTORIES)
    (tmp_path / "r.toml").write_text(
        '[student]\nmodel = { arch = "custom", factory = "h5_user_factories:exact_gelu" }\n'
    )
    result = run_cli("run", "r.toml", "--out", "run", cwd=tmp_path, env_path=folder)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "nn.GELU" not in result.stderr  # the layer is named as the user wrote it
    assert "(GELU) -> CUSTOM:FlexErf" in result.stderr
    assert not (tmp_path / "run" / ".edgekd" / "stages" / "teacher.json").exists()


def test_files_and_the_compiler_the_last_stages_need_are_checked_before_training(tmp_path: Path) -> None:
    (tmp_path / "inputs.npz").write_bytes(b"")  # exists: relative to the recipe's folder, not the cwd
    (tmp_path / "tflm").mkdir()
    fine = parse_recipe({"bench": {"inputs": "inputs.npz"}, "handoff": {"tflm_include": ["tflm"]}})
    preflight.check_recipe(fine, None, tmp_path)
    with pytest.raises(RecipeError, match=r"\[bench\] inputs .*missing.npz is not a file"):
        preflight.check_recipe(parse_recipe({"bench": {"inputs": "missing.npz"}}), None, tmp_path)
    with pytest.raises(RecipeError, match=r"\[handoff\] tflm_include folder\(s\) not found: .*no-tflm"):
        preflight.check_recipe(parse_recipe({"handoff": {"tflm_include": ["tflm", "no-tflm"]}}), None, tmp_path)
    with pytest.raises(RecipeError, match="require_compiler = true, but the compiler 'no-such-cc' is not on PATH"):
        preflight.check_recipe(
            parse_recipe({"handoff": {"require_compiler": True, "compiler": "no-such-cc"}}), None, tmp_path
        )
    preflight.check_recipe(parse_recipe({"handoff": {"compiler": "no-such-cc"}}), None, tmp_path)  # recorded as skipped
