"""The search space: dotted recipe keys, a trial's values applied to the recipe, and the check before trial 1.

A trial's recipe is the sweep recipe's table with each searched key set to the trial's value, validated again
as a whole Recipe (so a value the recipe refuses is refused with the recipe's own message). Keys of the stages
every trial shares (data, teacher, calibration) and of the run itself are not searchable: the teacher is
trained once per sweep, which only holds if nothing it depends on varies.
"""

from __future__ import annotations

import copy
from typing import Any

from edgekd import preflight
from edgekd.errors import EdgekdError, RecipeError
from edgekd.recipe import Recipe, parse_recipe
from edgekd.sweep.config import HANDOFF_METRICS, TARGET_METRICS, Dimension, SweepConfig

#: Recipe tables a search may vary. The rest is shared by every trial (or is the sweep's own business).
SEARCHABLE = ("student", "distill", "export", "quantize", "tflite", "verify", "handoff")
SHARED = ("run", "data", "teacher", "calibration", "bench", "report")


def set_dotted(table: dict[str, Any], key: str, value: Any) -> None:
    """Set `a.b.0.c` in a nested dict/list table, creating missing tables (never missing list items)."""
    parts = key.split(".")
    node: Any = table
    for depth, part in enumerate(parts[:-1]):
        nxt = parts[depth + 1]
        if isinstance(node, list):
            index = int(part) if part.isdigit() else -1
            if not 0 <= index < len(node):
                raise RecipeError(
                    f"[sweep] space key {key!r}: the recipe's list {'.'.join(parts[:depth])} has "
                    f"{len(node)} item(s), no item {part}",
                    hint="write the list in the recipe first; a sweep sets values, it does not add list items",
                )
            node = node[index]
            continue
        child = node.get(part)
        if child is None:
            child = node[part] = [] if nxt.isdigit() else {}
        node = child
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise RecipeError(f"[sweep] space key {key!r}: no item {last} in that list", hint="index an existing item")
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise RecipeError(
            f"[sweep] space key {key!r}: {'.'.join(parts[:-1])} is a value, not a table",
            hint="name a key inside a table, e.g. student.model.width",
        )


def trial_recipe(raw: dict[str, Any], values: dict[str, Any], source: str) -> Recipe:
    """The recipe of one trial: the sweep recipe with `values` (dotted key -> value) set, validated whole."""
    table = copy.deepcopy(raw)
    for key, value in values.items():
        if key.startswith("distill.losses.") and "losses" not in table.get("distill", {}):
            table.setdefault("distill", {})["losses"] = [{}]  # the default: one hinton term
        set_dotted(table, key, value)
    return parse_recipe(table, source=source)


def suggest(trial: Any, space: dict[str, Dimension]) -> dict[str, Any]:
    """Draw one value per axis from an Optuna trial (the parameter name is the dotted key)."""
    values: dict[str, Any] = {}
    for key, dim in space.items():
        if dim.choices is not None:
            # Optuna stores choices of scalar types; lists (e.g. TFLite precisions) are chosen by index.
            scalar = all(isinstance(c, (str, int, float, bool)) for c in dim.choices)
            if scalar:
                values[key] = trial.suggest_categorical(key, dim.choices)
            else:
                values[key] = dim.choices[trial.suggest_categorical(key, list(range(len(dim.choices))))]
        elif dim.is_int:
            values[key] = trial.suggest_int(
                key, int(dim.low or 0), int(dim.high or 0), step=int(dim.step or 1), log=dim.log
            )
        else:
            values[key] = trial.suggest_float(
                key, float(dim.low or 0), float(dim.high or 0), step=dim.step, log=dim.log
            )
    return values


def check_space(recipe: Recipe, raw: dict[str, Any], sweep: SweepConfig, source: str) -> None:
    """Refuse a bad search space, objective or constraint before the first trial (one RecipeError)."""
    for key in sweep.space:
        table = key.split(".", 1)[0]
        if table in SHARED:
            raise RecipeError(
                f"[sweep] space key {key!r}: [{table}] is shared by every trial and cannot be searched",
                hint="search student, distill, export, quantize, tflite, verify or handoff keys; run "
                "one sweep per data set or teacher",
            )
        if table not in SEARCHABLE or "." not in key:
            raise RecipeError(
                f"[sweep] space key {key!r} is not a recipe key",
                hint=f"a dotted key inside one of: {', '.join(SEARCHABLE)} (e.g. student.model.width)",
            )
    base = {key: dim.corners()[0] for key, dim in sweep.space.items()}
    for key, dim in sweep.space.items():
        for value in dim.corners():
            try:
                candidate = trial_recipe(raw, {**base, key: value}, source=f"{source} [sweep]")
                preflight.check_recipe(candidate)
            except EdgekdError as exc:
                raise RecipeError(
                    f"[sweep] space {key} = {value!r} gives a recipe edgekd refuses: {exc.message}",
                    hint=exc.hint or "narrow this axis to values the recipe accepts",
                ) from None
            _check_judged(candidate, sweep)


def _check_judged(recipe: Recipe, sweep: SweepConfig) -> None:
    """Every objective and constraint names an artifact every trial makes, and a target it benchmarks on."""
    made = produced_artifacts(recipe)
    for item in [*sweep.objectives, *sweep.constraints]:
        where = f"[sweep] {item.label}"
        if item.artifact not in made:
            raise RecipeError(
                f"{where}: no trial makes artifact {item.artifact!r}",
                hint=f"artifacts this recipe makes: {', '.join(sorted(made))}",
            )
        if item.metric in TARGET_METRICS:
            if item.target is None:
                raise RecipeError(
                    f'{where}: {item.metric} needs target = "..."',
                    hint=f"one of [bench] targets: {', '.join(recipe.bench.targets) or 'none'}",
                )
            if not recipe.bench.enabled or item.target not in recipe.bench.targets:
                raise RecipeError(
                    f"{where}: target {item.target!r} is not benchmarked by the recipe",
                    hint=f"add it to [bench] targets (now: {', '.join(recipe.bench.targets) or 'none'})",
                )
        elif item.target is not None:
            raise RecipeError(f"{where}: target applies to latency only", hint="remove target from this entry")
        if item.metric in HANDOFF_METRICS and (not recipe.handoff.enabled or recipe.handoff.artifact != item.artifact):
            raise RecipeError(
                f"{where}: {item.metric} is measured by the handoff bundle of {recipe.handoff.artifact!r}"
                f"{'' if recipe.handoff.enabled else ' (handoff disabled)'}",
                hint="enable [handoff] with artifact = the artifact named here",
            )


def produced_artifacts(recipe: Recipe) -> set[str]:
    """Names of the model artifacts a run of `recipe` makes (the converters' naming)."""
    made = {"student_torch", "onnx_fp32"}
    if recipe.quantize.enabled:
        made.add("onnx_int8")
    if recipe.tflite.enabled:
        made.update(f"tflite_{p}" for p in recipe.tflite.precisions)
        if recipe.tflite.also_litert_torch:
            made.update(f"litert_torch_{p}" for p in recipe.tflite.precisions if p in ("fp32", "int8"))
    return made
