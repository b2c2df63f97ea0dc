"""The recipe reference is generated from the config models, complete, current, and a standard JSON Schema.

Also: no recipe key is accepted and ignored — every field of every section, set to a value other than its
default, changes what the pipeline's stages are keyed on (their config dicts, hence their cache keys) or,
for the few keys `edgekd run` reads itself, what it does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
import typing
from pathlib import Path
from typing import Any, Literal

import pytest

from edgekd.config.data import AudioConfig
from edgekd.config.reference import REGENERATE, KeyDoc, every_field, json_schema, reference_markdown
from edgekd.config.starter import SOURCES, starter_recipe
from edgekd.recipe import Recipe, parse_recipe

ROOT = Path(__file__).resolve().parents[2]


def test_docs_recipe_md_is_current() -> None:
    current = (ROOT / "docs" / "RECIPE.md").read_text(encoding="utf-8")
    assert current == reference_markdown(), f"docs/RECIPE.md is stale: regenerate it with `{REGENERATE}`"


def test_every_config_field_has_a_description() -> None:
    missing = [f"[{key.table}] {key.key}" for key in every_field() if not (key.field.description or "").strip()]
    assert not missing, f"fields without Field(description=...): {', '.join(missing)}"


def test_every_key_of_every_section_is_in_the_reference() -> None:
    text = reference_markdown()
    for key in every_field():
        heading = f"[[{key.table[:-2]}]]" if key.table.endswith("[]") else f"[{key.table}]"
        section = text.split(f"### `{heading}`", 1)[1].split("\n### ", 1)[0]
        assert f"| `{key.key}` |" in section, (key.table, key.key)


def test_examples_validate_against_the_json_schema_and_a_typo_does_not() -> None:
    import jsonschema

    result = subprocess.run([sys.executable, "-m", "edgekd.cli", "recipe", "schema"], capture_output=True, text=True,
                            cwd=ROOT, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert schema == json.loads(json.dumps(json_schema()))
    validator = jsonschema.Draft202012Validator(schema)
    jsonschema.Draft202012Validator.check_schema(schema)
    examples = sorted((ROOT / "examples").glob("*.toml"))
    assert examples
    for path in examples:
        errors = [e.message for e in validator.iter_errors(tomllib.loads(path.read_text(encoding="utf-8")))]
        assert not errors, (path.name, errors)
    typo = tomllib.loads('[bench]\nwarmpu = 5\n[tflite]\nprecisions = ["int4"]\n')
    messages = " ".join(e.message for e in validator.iter_errors(typo))
    assert "warmpu" in messages and "int4" in messages


@pytest.mark.parametrize("source", SOURCES)
def test_recipe_init_writes_a_valid_commented_starter(tmp_path: Path, source: str) -> None:
    import jsonschema

    out = tmp_path / "recipe.toml"
    result = subprocess.run([sys.executable, "-m", "edgekd.cli", "recipe", "init", "--source", source, "--out", str(out)],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    text = out.read_text(encoding="utf-8")
    assert text == starter_recipe(source)
    data = tomllib.loads(text)
    parse_recipe(data)
    jsonschema.validate(data, json_schema())
    assert data["data"]["source"] == source and text.count("\n# ") > 10  # every key carries its description
    again = subprocess.run([sys.executable, "-m", "edgekd.cli", "recipe", "init", "--source", source, "--out", str(out)],
                           capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False)  # fmt: skip
    assert again.returncode == 2 and "already exists" in again.stderr
    assert out.read_text(encoding="utf-8") == text  # the user's file is untouched


def test_recipe_init_refuses_an_unknown_source() -> None:
    result = subprocess.run([sys.executable, "-m", "edgekd.cli", "recipe", "init", "--source", "cvs"], capture_output=True,
                            text=True, cwd=ROOT, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 2 and "did you mean 'csv'" in result.stderr


# --- no key accepted and ignored ------------------------------------------------------------------------------

#: Keys that need other keys to be valid (a cross-field rule), given as extra recipe tables.
CONTEXT: dict[tuple[str, str], dict[str, Any]] = {
    ("data", "source"): {"data": {"source": "npz", "path": "x.csv"}},
    ("bench", "min_runs"): {"bench": {"duration_s": 1.0}},
    ("teacher.model", "alpha"): {"teacher": {"model": {"arch": "mobilenet_v1"}}},
    ("student.model", "alpha"): {"student": {"model": {"arch": "mobilenet_v1"}}},
    ("data", "path"): {"data": {"source": "csv", "path": "a.csv"}},
    ("data.normalize", "mean"): {"data": {"normalize": {"mean": [0.1], "std": [0.2]}}},
    ("data.normalize", "std"): {"data": {"normalize": {"mean": [0.1], "std": [0.2]}}},
    ("teacher", "kind"): {"teacher": {"kind": "torchscript", "path": "t.onnx"}},
    ("data", "label_column"): {"data": {"source": "csv", "path": "x.csv"}},
    ("data", "other_class"): {"data": {"classes": ["0", "1"]}},
    ("data", "label_set"): {"data": {"source": "idx", "path": "fashion", "label_set": "fashion_mnist"}},
    ("teacher", "path"): {"teacher": {"kind": "onnx", "path": "a.onnx"}},
    ("teacher", "outputs"): {"teacher": {"kind": "onnx", "path": "t.onnx"}},
    ("teacher", "label_names"): {"teacher": {"kind": "onnx", "path": "t.onnx"}},
    ("teacher.model", "factory"): {"teacher": {"model": {"arch": "custom"}}},
    ("student.model", "factory"): {"student": {"model": {"arch": "custom"}}},
    ("distill.losses[]", "hint_layers"): {"distill": {"losses": [{"kind": "fitnets"}]}},
    ("data", "audio"): {"data": {"source": "wav", "path": "clips"}},
    ("quantize", "qat"): {"quantize": {"max_accuracy_drop": 0.01}},
    ("quantize", "raise_to"): {"quantize": {"max_accuracy_drop": 0.01}},
    **{("data.audio", key): {"data": {"source": "wav", "path": "clips"}} for key in AudioConfig.model_fields},
}
#: Keys whose value is given explicitly (a generic "other value" would not validate).
VALUES: dict[tuple[str, str], Any] = {
    ("data", "audio"): {"sample_rate": 8000},
    ("data", "source"): "csv",
    ("data", "path"): "x.csv",
    ("data", "classes"): ["0", "1"],
    ("data", "image_size"): [16, 16],
    ("teacher", "kind"): "onnx",
    ("teacher.model", "arch"): "mlp",
    ("teacher.model", "factory"): "pkg.mod:fn",
    ("student.model", "factory"): "pkg.mod:fn",
    ("distill.losses[]", "hint_layers"): ["features.0=features.0"],
    ("report", "strict"): ["kd_below_scratch"],
    ("teacher.train", "min_epochs"): 3,
    ("distill.train", "min_epochs"): 3,
}
#: Keys `edgekd run` reads itself (not a stage): what it does with them is tested where named.
READ_BY_RUN = {
    ("run", "name"): "the default run directory: test_run_name_and_out_choose_the_run_directory",
    ("run", "out"): "the run directory: test_run_name_and_out_choose_the_run_directory",
}


def stage_view(recipe: Recipe) -> dict[str, Any]:
    """What the pipeline keys each stage on: whether it runs, and its config dict (part of its cache key)."""
    from edgekd.stages import default_stages

    return {
        s.name: (s.enabled(recipe), json.dumps(s.config(recipe), sort_keys=True, default=str)) for s in default_stages()
    }


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = (
            _merge(out.get(key, {}), value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def _place(table: str, key: str, value: Any) -> dict[str, Any]:
    """{"teacher": {"train": {"epochs": 3}}} for ("teacher.train", "epochs", 3); list tables get one item."""
    node: Any = {key: value}
    for part in reversed(table.split(".")):
        node = {part[:-2]: [node]} if part.endswith("[]") else {part: node}
    return node


def other_value(key: KeyDoc) -> Any:
    """A valid value other than the key's default."""
    if (key.table, key.key) in VALUES:
        return VALUES[(key.table, key.key)]
    default = key.default.model_dump(mode="json") if hasattr(key.default, "model_dump") else key.default
    return _other(key.field.annotation, default, key.field.metadata)


def _bound(metadata: list[Any], name: str) -> Any:
    return next((getattr(m, name) for m in metadata if getattr(m, name, None) is not None), None)


def _other(annotation: Any, default: Any, metadata: list[Any]) -> Any:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return next(a for a in args if a != default)
    if origin in (typing.Union, __import__("types").UnionType):
        for arg in args:
            if arg is type(None):
                continue
            if (
                typing.get_origin(arg) is Literal
                or arg in (bool, int, float, str)
                or typing.get_origin(arg) is list
                or arg is Path
            ):
                value = _other(arg, default if default is not None else None, metadata)
                if value != default:
                    return value
    if annotation is bool:
        return not default
    if annotation is int:
        low, high = _bound(metadata, "ge") or _bound(metadata, "gt") or 0, _bound(metadata, "le")
        value = (default if isinstance(default, int) else low) + 1
        return value if high is None or value <= high else value - 2
    if annotation is float:
        high = _bound(metadata, "le") or _bound(metadata, "lt")
        value = (default or 0.0) + 0.25
        return value if high is None or value < high else (default or high) / 2
    if annotation is str:
        return "other_value"
    if annotation is Path:
        return "somewhere"
    if origin is list:
        inner = args[0]
        if typing.get_origin(inner) is Literal:
            choices = list(typing.get_args(inner))
            return [c for c in choices if c not in (default or [])][:1] or choices[:1]
        return {int: [0], str: ["other"], float: [0.5], Path: ["include"]}.get(inner, [])
    raise AssertionError(f"no other value known for {annotation}")


def leaf_fields() -> list[KeyDoc]:
    from edgekd.config.reference import model_of

    return [key for key in every_field() if model_of(key.field.annotation)[0] is None or (key.table, key.key) in VALUES
            or typing.get_origin(key.field.annotation) in (typing.Union, __import__("types").UnionType)]  # fmt: skip


@pytest.mark.parametrize("key", leaf_fields(), ids=lambda k: f"{k.table}.{k.key}")
def test_no_key_is_accepted_and_ignored(key: KeyDoc) -> None:
    if (key.table, key.key) in READ_BY_RUN:
        pytest.skip(READ_BY_RUN[(key.table, key.key)])
    context = CONTEXT.get((key.table, key.key), {})
    base = parse_recipe(context)
    changed = parse_recipe(_merge(context, _place(key.table, key.key, other_value(key))))
    assert stage_view(changed) != stage_view(base), f"[{key.table}] {key.key} reaches no stage's config"


def test_run_name_and_out_choose_the_run_directory(tmp_path: Path) -> None:
    from edgekd.commands.run import run_directory

    assert run_directory(parse_recipe({"run": {"name": "abc"}}), tmp_path, None) == Path("runs") / "abc"
    assert run_directory(parse_recipe({"run": {"out": "elsewhere"}}), tmp_path, None) == tmp_path / "elsewhere"
    assert run_directory(parse_recipe({"run": {"out": "elsewhere"}}), tmp_path, tmp_path / "cli") == tmp_path / "cli"


#: Fields read through a property of their config model rather than by name.
READ_THROUGH = {"min_epochs": "TrainConfig.first_selectable_epoch"}


def test_every_field_is_read_by_code_outside_the_config_models() -> None:
    """The weaker, complementary check: a stage config dumps whole sections, so a new field would reach the
    cache key even if nothing used it. Here every field name must be read somewhere outside edgekd/config."""
    import re

    source = "\n".join(
        path.read_text(encoding="utf-8")
        for path in (ROOT / "edgekd").rglob("*.py")
        if "config" not in path.relative_to(ROOT).parts[:2]
    )
    unread = [f"[{key.table}] {key.key}" for key in every_field() if key.key not in READ_THROUGH
              and not re.search(rf"\.{key.key}\b|[\"']{key.key}[\"']|\b{key.key}=", source)]  # fmt: skip
    assert not unread, f"fields no code reads: {', '.join(unread)}"


def test_the_worked_example_in_the_reference_is_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The guide's TOML blocks parse as recipes, and its student factory builds and fits the digits it names."""
    import re

    from edgekd.preflight import DataFacts, build_student

    text = reference_markdown()
    tomls = re.findall(r"```toml\n(.*?)```", text, flags=re.DOTALL)
    assert tomls
    recipes = [parse_recipe(tomllib.loads(block)) for block in tomls]
    factory = next(
        block for block in re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL) if "def tiny_student" in block
    )
    (tmp_path / "my_models.py").write_text(factory)
    monkeypatch.syspath_prepend(str(tmp_path))
    student = next(r for r in recipes if r.student.model.factory == "my_models:tiny_student")
    build_student(student, DataFacts((1, 8, 8), 10, 1257))  # dry-run inside: signature, channels, outputs
