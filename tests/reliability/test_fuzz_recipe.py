"""Fuzzing the recipe parser: any dict, any TOML text, any edit of a valid recipe ends in a Recipe or a
RecipeError whose message names where the problem is — never another exception."""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgekd.errors import EdgekdError, RecipeError
from edgekd.recipe import Recipe, load_recipe, parse_recipe

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.toml"))
VALID = [tomllib.loads(path.read_text(encoding="utf-8")) for path in EXAMPLES]
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

section_names = st.sampled_from(["run", "data", "teacher", "student", "distill", "export", "calibration", "quantize",
                                 "tflite", "bench", "handoff", "report", "verify"]) | st.text(max_size=8)  # fmt: skip
toml_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12),
    st.sampled_from(["cnn", "mlp", "local", "onnx2tf", "int8", "fp32", "static", "digits", "npz", "../x", "~/y"]),
    st.datetimes(), st.dates().map(dt.date.isoformat),
)  # fmt: skip
toml_values = st.recursive(
    toml_leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=12,
)


def parses_or_recipe_error(raw: dict[str, Any]) -> Recipe | None:
    try:
        return parse_recipe(raw, source="fuzz.toml")
    except RecipeError as exc:
        assert exc.message.startswith("fuzz.toml"), exc.message  # says which file
        return None


@SETTINGS
@given(raw=st.dictionaries(section_names, toml_values, max_size=5))
def test_arbitrary_dicts(raw: dict[str, Any]) -> None:
    parses_or_recipe_error(raw)


@st.composite
def edited_recipes(draw: st.DrawFn) -> dict[str, Any]:
    """A valid example recipe with one value replaced, removed or added somewhere in its tree."""
    raw: dict[str, Any] = draw(st.sampled_from(VALID))
    raw = _copy(raw)
    node: Any = raw
    while True:  # walk down to a random table
        tables = [key for key, value in node.items() if isinstance(value, dict)]
        if not tables or draw(st.booleans()):
            break
        node = node[draw(st.sampled_from(sorted(tables)))]
    action = draw(st.sampled_from(["replace", "remove", "add"]))
    if action == "add" or not node:
        node[draw(st.text(min_size=1, max_size=10))] = draw(toml_values)
    else:
        key = draw(st.sampled_from(sorted(node)))
        if action == "remove":
            del node[key]
        else:
            node[key] = draw(toml_values)
    return raw


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


@SETTINGS
@given(raw=edited_recipes())
def test_one_edit_of_a_valid_recipe(raw: dict[str, Any]) -> None:
    parses_or_recipe_error(raw)


@SETTINGS
@given(text=st.one_of(
    st.text(max_size=200),
    st.sampled_from([path.read_text(encoding="utf-8") for path in EXAMPLES]).flatmap(
        lambda text: st.tuples(st.integers(0, len(text)), st.text(max_size=20)).map(
            lambda cut: text[: cut[0]] + cut[1] + text[cut[0]:])),
))  # fmt: skip
def test_toml_text(text: str, tmp_path: Path) -> None:
    recipe = tmp_path / "fuzz.toml"
    recipe.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_recipe(recipe)
    except EdgekdError:
        pass


def test_examples_are_valid() -> None:
    assert len(VALID) >= 3
    for raw in VALID:
        assert isinstance(parse_recipe(raw), Recipe)
