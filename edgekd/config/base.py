"""What every recipe section and targets.toml entry shares: strict validation, and messages naming the mistake."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from edgekd.errors import RecipeError


class StrictModel(BaseModel):
    """Base of every recipe section: unknown keys are errors, values are not coerced silently."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


Entry = TypeVar("Entry", bound=StrictModel)


def did_you_mean(value: object, choices: Iterable[str]) -> str:
    """ " (did you mean 'x'?)" for the choice closest to a mistyped value, or "" when none is close."""
    close = difflib.get_close_matches(str(value), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def parse_target_entry(
    model: type[Entry], kind: str, name: str, fields: dict[str, Any], base: Path, paths: Iterable[str]
) -> Entry:
    """A `kind` entry `name` of targets.toml validated by `model`: RecipeError naming every problem (the hint lists
    the keys the model takes), and the path fields `paths` made absolute from `base` (the inventory's folder)."""
    try:
        parsed = model.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'entry'}: {err['msg']}" for err in exc.errors())
        raise RecipeError(
            f"targets.{name}: {problems}", hint=f"an {kind} target takes {', '.join(model.model_fields)}"
        ) from None
    updates = {}
    for field in paths:
        value = getattr(parsed, field)
        if value is not None:
            value = Path(value).expanduser()
            updates[field] = value if value.is_absolute() else base / value
    return parsed.model_copy(update=updates)
