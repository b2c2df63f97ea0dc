"""[tflite] options only onnx2tf reads are refused with converter = "litert_torch" (never accepted and ignored)."""

from __future__ import annotations

import pytest

from edgekd.errors import RecipeError
from edgekd.recipe import parse_recipe


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"keep_nchw": True}, "keep_nchw is an onnx2tf option"),
        ({"per_channel": False}, "per_channel is an onnx2tf option"),
        ({"int8_io": "float", "pseudo_ops": ["Erf"]}, "int8_io, pseudo_ops are onnx2tf options"),
    ],
)
def test_onnx2tf_options_with_litert_torch_are_refused(options: dict[str, object], named: str) -> None:
    with pytest.raises(RecipeError, match=named):
        parse_recipe({"tflite": {"converter": "litert_torch", **options}})


def test_the_same_options_with_onnx2tf_and_litert_torch_alone_are_accepted() -> None:
    assert parse_recipe({"tflite": {"keep_nchw": True, "int8_io": "float"}}).tflite.keep_nchw
    assert parse_recipe({"tflite": {"converter": "litert_torch"}}).tflite.converter == "litert_torch"
