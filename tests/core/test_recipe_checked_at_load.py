"""Recipe values that can only fail late are refused when the recipe is loaded, and options reach their stage."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekd.errors import RecipeError
from edgekd.recipe import load_recipe


def _recipe(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[handoff]\nmodel_name = "модель"\n', "no ASCII form"),
        ("[handoff]\narena_margin = 1e12\n", "arena_margin"),
        (
            '[tflite]\nconverter = "litert_torch"\nper_channel = false\n',
            'per_channel is an onnx2tf option: converter = "litert_torch" does not read it',
        ),
        ("[tflite]\nalso_litert_torch = true\nper_channel = false\n", "per_channel = false is an onnx2tf option"),
        ("[bench]\nmin_runs = 1024\n", "min_runs goes with duration_s"),
    ],
)
def test_late_failures_are_recipe_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        load_recipe(_recipe(tmp_path, text))


def test_per_tensor_tflite_reaches_the_tflite_stage_and_its_key(tmp_path: Path) -> None:
    from edgekd.stages.conversion import TfliteStage

    per_channel, _ = load_recipe(_recipe(tmp_path, "[tflite]\nper_channel = true\n"))
    per_tensor, _ = load_recipe(_recipe(tmp_path, "[tflite]\nper_channel = false\n"))
    assert TfliteStage().config(per_tensor)["tflite"]["per_channel"] is False
    assert TfliteStage().config(per_channel) != TfliteStage().config(per_tensor)


def test_the_report_stage_key_holds_the_recipe_identity(tmp_path: Path) -> None:
    from edgekd.stages.delivery import ReportStage

    first, _ = load_recipe(_recipe(tmp_path, '[run]\nname = "a"\n'))
    second, _ = load_recipe(_recipe(tmp_path, '[run]\nname = "b"\n'))
    assert ReportStage().config(first)["recipe"]["name"] == "a"
    assert ReportStage().config(first) != ReportStage().config(second)
