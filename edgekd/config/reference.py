"""The recipe reference, generated from the config models (never retyped): docs/RECIPE.md and a JSON Schema.

Every section and key is listed with its type, default (as it applies in that place: `[teacher] train.epochs`
defaults to 15, `[distill] train.epochs` to 30), allowed values and its `Field(description=...)`. The prose
around the tables (factory contract, soft-label format, preprocessing, checkpoint rule, a worked example) is
`recipe_guide.md` beside this module; `{{SECTIONS}}` in it is replaced by the tables.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo

REGENERATE = ".venv/bin/edgekd recipe reference > docs/RECIPE.md"


@dataclass(frozen=True)
class KeyDoc:
    """One key of one table: `table` is the dotted TOML path of the table ("teacher.train")."""

    table: str
    key: str
    field: FieldInfo
    default: Any  # the value in place (from the parent's default), or the field's own default for list items


def recipe_model() -> type[BaseModel]:
    from edgekd.recipe import Recipe

    return Recipe


def model_of(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """(the BaseModel inside `annotation`, whether it is a list of them)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    origin = typing.get_origin(annotation)
    for arg in typing.get_args(annotation):
        found, _ = model_of(arg)
        if found is not None:
            return found, origin is list
    return None, False


def walk(
    model: type[BaseModel] | None = None, table: str = "", instance: Any = None
) -> Iterator[tuple[str, type[BaseModel], list[KeyDoc]]]:
    """Every table reachable from the Recipe, depth first: (dotted table path, its model, its keys)."""
    model = model or recipe_model()
    instance = instance if instance is not None else _default_instance(model)
    keys = [KeyDoc(table, name, info, getattr(instance, name, None) if instance is not None else info.default)
            for name, info in model.model_fields.items()]  # fmt: skip
    if table:
        yield table, model, keys
    for key in keys:
        nested, is_list = model_of(key.field.annotation)
        if nested is None:
            continue
        path = f"{table}.{key.key}" if table else key.key
        inner = key.default if isinstance(key.default, BaseModel) else None
        yield from walk(nested, f"{path}[]" if is_list else path, inner)


def _default_instance(model: type[BaseModel]) -> Any:
    try:
        return model()
    except Exception:  # noqa: BLE001 - a model with required fields: fall back to field defaults
        return None


def every_field() -> list[KeyDoc]:
    """Each key of each table (nested tables included), for the description and reach tests."""
    return [key for _, _, keys in walk() for key in keys]


# --- rendering --------------------------------------------------------------------------------------------------


def type_text(annotation: Any) -> str:
    """A reader's name of a type: "integer", "list of string", "float or unset", "table"."""
    if annotation is type(None):
        return "unset"
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return "table"
        return {bool: "boolean", int: "integer", float: "float", str: "string"}.get(annotation) or (
            "path" if issubclass(annotation, Path) else annotation.__name__
        )
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Literal:
        return "string" if all(isinstance(a, str) for a in args) else "value"
    if origin is list:
        inner = type_text(args[0]) if args else "value"
        return "list of tables" if inner == "table" else f"list of {inner}"
    if origin in (typing.Union, types.UnionType):
        parts = [type_text(a) for a in args if a is not type(None)]
        text = " or ".join(dict.fromkeys(parts))
        return f"{text} or unset" if type(None) in args else text
    if origin is typing.Annotated:
        return type_text(args[0])
    return str(annotation).replace("typing.", "")


def allowed_text(info: FieldInfo) -> str:
    """Allowed values: the choices of a Literal (also inside list / unset) and numeric or length bounds."""
    parts: list[str] = []
    choices = _literals(info.annotation)
    if choices:
        parts.append(", ".join(f"`{_toml(c)}`" for c in choices))
    symbols = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<", "min_length": "length ≥", "max_length": "length ≤"}
    for item in info.metadata:
        for attr, symbol in symbols.items():
            value = getattr(item, attr, None)
            if value is not None:
                parts.append(f"{symbol} {value}")
        pattern = getattr(item, "pattern", None)
        if pattern:
            parts.append(f"matches `{pattern}`")
    return "; ".join(parts)


def _literals(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) is Literal:
        return list(typing.get_args(annotation))
    found: list[Any] = []
    for arg in typing.get_args(annotation):
        found += [value for value in _literals(arg) if value not in found]
    return found


def _toml(value: Any) -> str:
    """A value as it is written in a recipe."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, Path):
        return json.dumps(str(value))
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return (
            "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items() if v is not None) + " }" if value else "{}"
        )
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def section_markdown(table: str, model: type[BaseModel], keys: list[KeyDoc]) -> str:
    heading = f"[[{table[:-2]}]]" if table.endswith("[]") else f"[{table.replace('[].', '.')}]"
    lines = [f"### `{heading}`", ""]
    doc = (model.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
    if doc:
        lines += [doc, ""]
    lines += ["| key | type | default | allowed | description |", "|---|---|---|---|---|"]
    for key in keys:
        nested, is_list = model_of(key.field.annotation)
        kind = type_text(key.field.annotation)
        if nested is not None:
            sub = f"{table}.{key.key}"
            kind += f" (see `{'[[' + sub + ']]' if is_list else '[' + sub + ']'}`)"
        default = "required" if key.field.is_required() else f"`{_cell(_toml(key.default))}`"
        lines.append(f"| `{key.key}` | {_cell(kind)} | {default} | {_cell(allowed_text(key.field))} "
                     f"| {_cell(key.field.description or '')} |")  # fmt: skip
    return "\n".join(lines)


def sections_markdown() -> str:
    return "\n\n".join(section_markdown(table, model, keys) for table, model, keys in walk())


def reference_markdown() -> str:
    """docs/RECIPE.md: the guide with every table of every section filled in."""
    guide = resources.files("edgekd.config").joinpath("recipe_guide.md").read_text(encoding="utf-8")
    banner = f"<!-- generated from the config models by `{REGENERATE}`; do not edit by hand -->\n\n"
    return banner + guide.replace("{{SECTIONS}}", sections_markdown()).rstrip("\n") + "\n"


def json_schema() -> dict[str, Any]:
    """The Recipe as a JSON Schema (draft 2020-12), for TOML editors and validators."""
    schema = recipe_model().model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "edgekd recipe"
    return schema
