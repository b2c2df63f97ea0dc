from __future__ import annotations

from pathlib import Path

import pytest

from edgekd.errors import RecipeError
from edgekd.recipe import Recipe, load_recipe, parse_recipe

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_every_example_recipe_validates() -> None:
    recipes = sorted(EXAMPLES.glob("*.toml"))
    assert recipes, "no example recipes found"
    for path in recipes:
        recipe, base = load_recipe(path)
        assert isinstance(recipe, Recipe)
        assert base == path.parent.resolve()


def test_unknown_key_names_file_key_and_closest_valid_key(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text("[distill]\nlosses = [{ kind = 'hinton', temprature = 3.0 }]\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    error = info.value
    assert error.exit_code == 2
    assert str(path) in error.message
    assert "distill.losses.0.temprature" in error.message
    assert "unknown key" in error.message
    assert error.hint is not None and "'temperature'" in error.hint


def test_unknown_section_suggests_section() -> None:
    with pytest.raises(RecipeError) as info:
        parse_recipe({"quantise": {"mode": "static"}}, source="x.toml")
    assert "'quantize'" in (info.value.hint or "")


def test_wrong_literal_suggests_closest_value() -> None:
    with pytest.raises(RecipeError) as info:
        parse_recipe({"quantize": {"method": "minmx"}})
    assert "quantize.method" in info.value.message
    assert "'minmax'" in (info.value.hint or "")


def test_negative_epochs_and_wrong_type_are_explained() -> None:
    with pytest.raises(RecipeError) as info:
        parse_recipe({"distill": {"train": {"epochs": -3}}})
    assert "distill.train.epochs" in info.value.message and "-3" in info.value.message
    with pytest.raises(RecipeError) as info:
        parse_recipe({"bench": {"runs": "many"}})
    assert "bench.runs" in info.value.message


def test_toml_syntax_error_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[run\nname = 1\n")
    with pytest.raises(RecipeError, match="TOML syntax error"):
        load_recipe(bad)
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe(tmp_path / "missing.toml")


def test_recipe_hash_changes_with_content() -> None:
    a = parse_recipe({})
    b = parse_recipe({"bench": {"runs": 10}})
    assert a.recipe_hash() != b.recipe_hash()
    assert a.recipe_hash() == parse_recipe({}).recipe_hash()
