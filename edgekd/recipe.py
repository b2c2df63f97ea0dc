"""The recipe: one TOML file that says what to distil, export, verify, benchmark and hand off.

Validation is strict (unknown keys are errors). Every mistake becomes one RecipeError that names the
file, the key, what is wrong and, for a misspelt key or value, the closest valid one.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import tomllib
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from edgekd.config.base import StrictModel
from edgekd.config.bench import BenchConfig
from edgekd.config.data import DataConfig
from edgekd.config.distill import DistillConfig, StudentConfig, TeacherConfig
from edgekd.config.export import CalibrationConfig, ExportConfig, QuantizeConfig, TfliteConfig, VerifyConfig
from edgekd.config.handoff import HandoffConfig
from edgekd.config.report import ReportConfig
from edgekd.errors import RecipeError


class RunConfig(StrictModel):
    """The run as a whole: its name, directory and seed."""

    name: str = Field(
        "run",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="the run's name: letters, digits, _ . - (names the default run directory)",
    )
    out: Path | None = Field(
        None, description="run directory, relative to the recipe; unset: runs/<name>; `edgekd run --out` overrides it"
    )
    seed: int = Field(0, description="seed of the data split, training and the calibration draw")


class Recipe(StrictModel):
    """A whole recipe: one table per stage concern. Every table and key is optional."""

    run: RunConfig = Field(RunConfig(), description="name, run directory and seed")
    data: DataConfig = Field(
        DataConfig(), description="where the samples come from, how they are split and preprocessed"
    )
    teacher: TeacherConfig = Field(TeacherConfig(), description="the teacher: trained here, or imported")
    student: StudentConfig = Field(StudentConfig(), description="the student's architecture")
    distill: DistillConfig = Field(
        DistillConfig(), description="losses and training of the student; the scratch baseline"
    )
    export: ExportConfig = Field(ExportConfig(), description="torch -> ONNX")
    calibration: CalibrationConfig = Field(
        CalibrationConfig(), description="the calibration set every int8 quantizer uses"
    )
    quantize: QuantizeConfig = Field(QuantizeConfig(), description="ONNX Runtime int8")
    tflite: TfliteConfig = Field(TfliteConfig(), description="TFLite files and their converter")
    verify: VerifyConfig = Field(VerifyConfig(), description="parity gates per precision")
    bench: BenchConfig = Field(BenchConfig(), description="benchmark targets and method")
    handoff: HandoffConfig = Field(HandoffConfig(), description="the firmware bundle")
    report: ReportConfig = Field(ReportConfig(), description="report files, history and strict verdicts")

    def section_hash(self, *sections: str) -> str:
        """A stable hash of some sections, for cache keys."""
        payload = {name: getattr(self, name).model_dump(mode="json") for name in sections}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def recipe_hash(self) -> str:
        return self.section_hash(*type(self).model_fields)


def load_recipe(path: str | Path) -> tuple[Recipe, Path]:
    """Parse and validate a recipe. Returns the recipe and the directory relative paths are taken from."""
    file = Path(path)
    if not file.exists():
        raise RecipeError(
            f"recipe {file} does not exist", hint="give the path of a .toml recipe, e.g. examples/digits.toml"
        )
    if file.is_dir():
        raise RecipeError(f"recipe {file} is a directory", hint="give the path of a .toml recipe file")
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise RecipeError(f"{file}: not a text file", hint="a recipe is a UTF-8 TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{file}: TOML syntax error: {exc}", hint="see https://toml.io for the syntax") from None
    recipe = parse_recipe(raw, source=str(file))
    return recipe, file.parent.resolve()


def parse_recipe(raw: dict[str, Any], source: str = "<recipe>") -> Recipe:
    try:
        return Recipe.model_validate(raw)
    except ValidationError as exc:
        raise _recipe_error(exc, source) from None


def _recipe_error(exc: ValidationError, source: str) -> RecipeError:
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = tuple(first["loc"])
    key = ".".join(str(part) for part in loc) or "(top level)"
    kind = first["type"]
    hint: str | None = None
    if kind == "extra_forbidden":
        valid = _valid_keys(Recipe, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
        what = f"unknown key '{loc[-1]}'"
        hint = f"did you mean '{close[0]}'?" if close else None
        hint = (hint + " " if hint else "") + f"valid keys here: {', '.join(sorted(valid))}"
    elif kind in ("literal_error", "enum"):
        expected = first.get("ctx", {}).get("expected", "")
        options = [part.strip(" '") for part in expected.replace(" or ", ",").split(",") if part.strip(" '")]
        close = difflib.get_close_matches(str(first.get("input")), options, n=1, cutoff=0.4)
        what = f"{first.get('input')!r} is not one of {expected}"
        hint = f"did you mean '{close[0]}'?" if close else None
    elif kind == "missing":
        what = "is required but missing"
    else:
        what = first["msg"].removeprefix("Value error, ")
        # a whole section's validator (input is the section's dict) names its keys itself: no "(got {...})"
        if "input" in first and kind not in ("model_type", "dict_type") and not isinstance(first["input"], dict):
            what += f" (got {first['input']!r})"
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return RecipeError(f"{source}: {key}: {what}{more}", hint=hint)


def _valid_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names of the model found by following `loc` from `model`."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue  # list index: stay on the item type
        field = current.model_fields.get(part) if isinstance(current, type) and issubclass(current, BaseModel) else None
        if field is None:
            return []
        current = _model_type(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _model_type(annotation: Any) -> Any:
    """The BaseModel inside list[...] / X | None annotations, else the annotation itself."""
    for arg in typing.get_args(annotation) or ():
        found = _model_type(arg)
        if isinstance(found, type) and issubclass(found, BaseModel):
            return found
    return annotation


def resolve_path(base: Path, value: Path | None) -> Path | None:
    if value is None:
        return None
    return value if value.is_absolute() else (base / value)
