"""The `[sweep]` recipe table: search space, objectives, constraints, sampler, pruning, storage timing.

A sweep recipe is an ordinary recipe plus a `[sweep]` table. `load_sweep_recipe` splits the two: the rest is
validated as a Recipe exactly as `edgekd run` does, `[sweep]` by `SweepConfig` (unknown keys refused).

    [sweep]
    n_trials = 16
    objectives = [{ metric = "accuracy", artifact = "onnx_int8" },
                  { metric = "p50_ms", artifact = "onnx_int8", target = "local" }]
    constraints = [{ metric = "size_bytes", artifact = "onnx_int8", max = 8192 }]
    [sweep.space]
    "student.model.width" = { choices = [4, 8, 16] }
    "distill.losses.0.temperature" = { low = 1.0, high = 8.0, log = true }
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from edgekd.config.base import StrictModel
from edgekd.errors import RecipeError
from edgekd.recipe import Recipe, parse_recipe

#: Figures a trial can be judged on. accuracy is maximised, every other one minimised.
Metric = Literal["accuracy", "accuracy_drop", "p50_ms", "size_bytes", "arena_bytes", "flash_bytes"]
MAXIMISED = frozenset({"accuracy"})
#: Metrics measured on a target (they need `target`); arena/flash come from the handoff bundle.
TARGET_METRICS = frozenset({"p50_ms"})
HANDOFF_METRICS = frozenset({"arena_bytes", "flash_bytes"})


class Dimension(StrictModel):
    """One axis of the search space: a list of choices, or a numeric range."""

    choices: list[Any] | None = Field(
        None,
        min_length=1,
        description="the values to choose from (any TOML "
        "values: numbers, strings, booleans, lists such as TFLite precisions)",
    )
    low: float | None = Field(None, description="lower end of a numeric range (inclusive)")
    high: float | None = Field(None, description="upper end of a numeric range (inclusive)")
    step: float | None = Field(
        None, gt=0, description="spacing of a range's values; integers when low, high and step are whole numbers"
    )
    log: bool = Field(False, description="sample the range on a log scale (needs low > 0, no step)")
    integer: bool = Field(
        False, description="the range's values are integers (also implied by whole-number low, high and step)"
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Dimension:
        is_range = self.low is not None or self.high is not None
        if (self.choices is None) == (not is_range):
            raise ValueError("give either choices = [...] or low and high")
        if is_range:
            if self.low is None or self.high is None:
                raise ValueError("a range needs both low and high")
            if self.low > self.high:
                raise ValueError(f"low ({self.low:g}) is above high ({self.high:g})")
            if self.log and (self.low <= 0 or self.step is not None):
                raise ValueError("log = true needs low > 0 and no step")
        return self

    @property
    def is_int(self) -> bool:
        whole = all(v is None or float(v).is_integer() for v in (self.low, self.high, self.step))
        return self.choices is None and (self.integer or (whole and self.step is not None))

    def corners(self) -> list[Any]:
        """The values that bound this axis (every choice; a range's ends): checked before the first trial."""
        if self.choices is not None:
            return list(self.choices)
        low, high = float(self.low or 0.0), float(self.high or 0.0)  # both set: checked by _one_kind
        return [int(low), int(high)] if self.is_int else [low, high]


class Objective(StrictModel):
    """A figure to optimise: accuracy is maximised, every other metric minimised."""

    metric: Metric = Field(
        description="accuracy (of `artifact`, test split), accuracy_drop (teacher accuracy "
        "minus the artifact's), p50_ms (median latency of `artifact` on `target`), "
        "size_bytes (the artifact's file), arena_bytes / flash_bytes (the handoff bundle's "
        "measured TFLM arena / model bytes)"
    )
    artifact: str = Field(
        "onnx_fp32", description="the artifact judged: student_torch, onnx_fp32, onnx_int8, tflite_<precision>"
    )
    target: str | None = Field(None, description="p50_ms: the bench target (a name in [bench] targets)")

    @property
    def direction(self) -> str:
        return "maximize" if self.metric in MAXIMISED else "minimize"

    @property
    def label(self) -> str:
        where = f"@{self.target}" if self.target else ""
        return f"{self.metric}({self.artifact}{where})"


class Constraint(Objective):
    """A bound a recommended trial must honour, e.g. p50_ms <= 5 on target pi5."""

    max: float | None = Field(None, description="the figure must be at most this")
    min: float | None = Field(None, description="the figure must be at least this")

    @model_validator(mode="after")
    def _one_bound(self) -> Constraint:
        if (self.max is None) == (self.min is None):
            raise ValueError("give exactly one of max or min")
        return self

    def violation(self, value: float) -> float:
        """Optuna's convention: <= 0 is feasible, the amount above 0 is by how much the bound is missed."""
        return value - self.max if self.max is not None else float(self.min) - value  # type: ignore[arg-type]


class Pruning(StrictModel):
    """Stopping hopeless trials during training, and again before they are converted and benchmarked."""

    kind: Literal["percentile", "none"] = Field(
        "percentile",
        description="percentile: prune a trial whose best "
        "validation accuracy so far is below this percentile of the finished "
        "trials' at the same epoch (checked after every epoch of the KD "
        "student, in-process training), and once more after training; "
        "none: never prune",
    )
    percentile: float = Field(25.0, gt=0, lt=100, description="the percentile (25 = prune the worst quarter)")
    startup_trials: int = Field(4, ge=1, description="finished trials needed before any trial is pruned")
    min_val_accuracy: float | None = Field(
        None,
        ge=0,
        le=1,
        description="also prune any trial whose best validation accuracy is below this (unset: no floor)",
    )


class SweepConfig(StrictModel):
    """A multi-objective search over recipe values (Optuna), each trial a pipeline run of its own."""

    space: dict[str, Dimension] = Field(
        description='dotted recipe keys -> axis, e.g. "student.model.width", '
        '"distill.losses.0.temperature", "quantize.per_channel"'
    )
    objectives: list[Objective] = Field(min_length=1, description="figures optimised together (a Pareto front)")
    constraints: list[Constraint] = Field([], description="bounds the recommended trial must honour")
    n_trials: int = Field(16, ge=1, description="trials to finish (completed or pruned) in the study")
    sampler: Literal["tpe", "nsga2", "random"] = Field("tpe", description="Optuna sampler")
    seed: int | None = Field(0, description="sampler seed (unset: random); each worker offsets it by its pid")
    pruning: Pruning = Field(Pruning(), description="pruning of hopeless trials")
    out: Path | None = Field(None, description="sweep directory, relative to the recipe; unset: runs/<name>-sweep")
    study: str | None = Field(None, description="study name in the storage; unset: the recipe's run name")
    heartbeat_s: int = Field(10, ge=1, description="a running trial's heartbeat interval, in seconds")
    grace_s: int = Field(
        60,
        ge=2,
        description="a trial whose heartbeat stopped this long ago (its worker died) is marked failed and retried once",
    )
    bench_retries: int = Field(
        1, ge=0, le=5, description="times a trial's bench step is retried after a target error (a device that dropped)"
    )

    @model_validator(mode="after")
    def _grace_after_heartbeat(self) -> SweepConfig:
        if self.grace_s <= self.heartbeat_s:
            raise ValueError(f"grace_s ({self.grace_s}) must exceed heartbeat_s ({self.heartbeat_s})")
        if not self.space:
            raise ValueError("space is empty: name at least one recipe key to search")
        return self


def load_sweep_recipe(path: str | Path) -> tuple[Recipe, SweepConfig, dict[str, Any], Path]:
    """The recipe, its `[sweep]` table, the raw recipe table (without [sweep]) and the recipe's directory."""
    file = Path(path)
    if not file.is_file():
        raise RecipeError(f"recipe {file} does not exist or is not a file", hint="give the path of a .toml recipe")
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RecipeError(f"{file}: not a valid TOML file: {exc}", hint="see https://toml.io for the syntax") from None
    table = raw.pop("sweep", None)
    if not isinstance(table, dict):
        raise RecipeError(
            f"{file}: no [sweep] table",
            hint="add [sweep] with space, objectives and constraints (see edgekd/sweep/config.py)",
        )
    recipe = parse_recipe(raw, source=str(file))
    try:
        sweep = SweepConfig.model_validate(table)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        key = ".".join(str(p) for p in first["loc"])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise RecipeError(
            f"{file}: sweep.{key}: {first['msg'].removeprefix('Value error, ')}{more}",
            hint="see the [sweep] fields in edgekd/sweep/config.py",
        ) from None
    return recipe, sweep, raw, file.parent.resolve()
