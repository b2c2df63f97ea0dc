"""A user's factory, weights or ONNX file that do not fit: one line naming cause and fix, exit 1 or 2, never 70."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from edgekd.config.distill import ModelSpec, TeacherConfig
from edgekd.distill.api import prepare_teacher
from edgekd.distill.models import build_model, check_factory
from edgekd.errors import ModelError
from tests.support.distill_fixtures import digits

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = "tests.support.distill_fixtures"


@pytest.fixture(scope="module")
def data():
    return digits()


def _spec(name: str) -> ModelSpec:
    return ModelSpec(arch="custom", factory=f"{FIXTURES}:{name}")


@pytest.mark.parametrize("name", ["factory_num_classes_only", "factory_in_channels", "make_plain_mlp"])
def test_factory_is_called_the_way_its_signature_allows(name) -> None:
    model = build_model(_spec(name).model_dump(), (1, 8, 8), 10)
    assert tuple(model(torch.zeros(3, 1, 8, 8)).shape) == (3, 10)


def test_factory_with_a_parameter_edgekd_cannot_fill() -> None:
    with pytest.raises(ModelError) as info:
        check_factory(_spec("factory_needs_depth"), (1, 8, 8), 10)
    assert "has the signature (input_shape, num_classes, depth)" in info.value.message
    assert "required parameter(s) depth cannot be filled" in info.value.message
    assert "def factory(input_shape: tuple[int, ...], num_classes: int) -> torch.nn.Module" in info.value.hint


def test_factory_returning_something_that_is_not_a_module() -> None:
    with pytest.raises(ModelError, match=r"factory_returns_a_class' returned a class, not a torch.nn.Module") as info:
        check_factory(_spec("factory_returns_a_class"), (1, 8, 8), 10)
    assert "return the model instance" in info.value.hint


def test_model_with_the_wrong_number_of_input_channels() -> None:
    with pytest.raises(ModelError) as info:
        check_factory(_spec("factory_rgb"), (1, 8, 8), 10)
    message = info.value.message
    assert message.startswith(
        f"the model built by {FIXTURES}:factory_rgb fails on the data's input [2, 1, 8, 8] (float32): "
    )
    assert (
        "\n" not in message and "expected input[2, 1, 8, 8] to have 3 channels, but got 1 channels instead" in message
    )
    assert info.value.hint.startswith("the model's first layer takes 3 channels but the data has 1")


def test_model_with_the_wrong_number_of_outputs() -> None:
    """make_plain_mlp honours num_classes; factory_num_classes_only is called with it too. A model that ignores it:"""
    from edgekd.distill.models import dry_run

    with pytest.raises(ModelError, match=r"returns \(2, 10\) for a batch of 2; expected logits of shape \(2, 3\)"):
        dry_run(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)), (1, 8, 8), 3, "the model")


def test_state_dict_that_does_not_fit_names_keys_and_shapes(data, tmp_path) -> None:
    wrong = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10), torch.nn.Linear(10, 10)
    )
    torch.save(wrong.state_dict(), tmp_path / "weights.pt")
    config = TeacherConfig(kind="module", path=tmp_path / "weights.pt", model=_spec("make_plain_mlp"))
    with pytest.raises(ModelError) as info:
        prepare_teacher(config, data, seed=0, out_dir=tmp_path / "t", base_dir=tmp_path)
    message = info.value.message
    assert "the weights do not fit the model built by" in message and "\n" not in message
    assert "unexpected keys (2): 4.weight, 4.bias" in message
    assert "shape mismatches (3): 1.weight file (32, 64) vs model (64, 64)" in message
    assert "Error(s) in loading state_dict" not in message


def test_onnx_teacher_with_another_input_shape(tmp_path, data) -> None:
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 10)
    )
    torch.onnx.export(model, (torch.zeros(1, 3, 32, 32),), str(tmp_path / "rgb.onnx"), input_names=["image"],
                      dynamic_axes={"image": {0: "n"}}, dynamo=False)  # fmt: skip
    config = TeacherConfig(kind="onnx", path=tmp_path / "rgb.onnx")
    with pytest.raises(ModelError) as info:
        prepare_teacher(config, data, seed=0, out_dir=tmp_path / "t", base_dir=tmp_path)
    assert info.value.message.endswith(
        "the ONNX teacher's input 'image' has shape ['n', 3, 32, 32], the data gives ['batch', 1, 8, 8]"
    )
    assert "image_size" in info.value.hint


def test_cli_exit_codes_for_a_bad_factory(tmp_path) -> None:
    """Through `edgekd distill`: exit 1 with the one-line message, no traceback, no exit 70."""
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[student]\nmodel = {{ arch = "custom", factory = "{FIXTURES}:factory_rgb" }}\n'
                      '[teacher]\nmodel = { arch = "mlp", width = 16, depth = 1 }\ntrain = { epochs = 1 }\n')  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "edgekd.cli", "distill", str(recipe), "--out", str(tmp_path / "run")],
                          check=False, capture_output=True, text=True, cwd=ROOT, timeout=600)  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "fails on the data's input [2, 1, 8, 8]" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "run" / "teacher").exists()  # refused before the teacher was trained
