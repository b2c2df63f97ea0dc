"""arch = "resnet8" | "dscnn" | "mobilenet_v1" | "fc_autoencoder" from a recipe: dispatch, sizes, refusals."""

from __future__ import annotations

import pytest

from edgekd.config.distill import ModelSpec
from edgekd.distill.models import build_model, count_parameters
from edgekd.errors import ModelError, RecipeError
from edgekd.recipe import parse_recipe


def _built(shape: tuple[int, ...], classes: int = 10, **model) -> object:
    spec = parse_recipe({"student": {"model": model}}).student.model
    return build_model(spec.model_dump(mode="json"), shape, classes)


def test_unset_width_builds_the_reference_and_a_set_width_takes_effect() -> None:
    # trainable counts of tests/core/test_tiny_models.py (checked there against the Keras twins of mlcommons/tiny)
    assert count_parameters(_built((3, 32, 32), arch="resnet8")) == 78_186
    assert (
        count_parameters(_built((1, 49, 10), 12, arch="dscnn")) == 23_756
    )  # 64 filters, not the 16 of the classic families
    assert count_parameters(_built((3, 32, 32), arch="resnet8", width=8)) < 78_186 / 3
    assert count_parameters(_built((3, 96, 96), 2, arch="mobilenet_v1")) == 216_322
    assert count_parameters(_built((3, 96, 96), 2, arch="mobilenet_v1", alpha=0.5)) > 216_322


def test_resnet8_runs_at_28x28_grey() -> None:
    import torch

    model = _built((1, 28, 28), arch="resnet8").eval()
    assert tuple(model(torch.zeros(2, 1, 28, 28)).shape) == (2, 10)


def test_classic_families_keep_their_defaults() -> None:
    assert ModelSpec().width is None  # unset in the dump; built as 16 wide, 2 deep
    assert count_parameters(_built((1, 8, 8), arch="cnn")) == count_parameters(
        _built((1, 8, 8), arch="cnn", width=16, depth=2)
    )


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"arch": "fc_autoencoder"}, "fc_autoencoder is architecture only"),
        ({"arch": "resnet8", "depth": 3}, "depth does not apply to arch = 'resnet8'"),
        ({"arch": "mobilenet_v1", "width": 8}, "width does not apply to arch = 'mobilenet_v1': use alpha"),
        ({"arch": "dscnn", "alpha": 0.5}, "alpha applies to arch = 'mobilenet_v1' only"),
        ({"arch": "custom", "factory": "m:f", "width": 8}, "width does not apply to arch = 'custom'"),
    ],
)
def test_sizes_that_do_not_apply_are_refused(model: dict, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        parse_recipe({"student": {"model": model}})


def test_a_sidecar_naming_fc_autoencoder_is_refused_by_build_model() -> None:
    with pytest.raises(ModelError, match="architecture only"):
        build_model({"arch": "fc_autoencoder"}, (640,), 2)
