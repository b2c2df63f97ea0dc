"""`edgekd qat RECIPE`: rung 4 of the quantization ladder, quantization-aware distillation, on a recipe's run.

It runs the recipe's stages up to quantize (cached stages are reused) with `[quantize] qat = "always"`: the ladder
fine-tunes the fake-quantized student against the run's teacher even when a post-training rung already holds the
budget, so the user sees what QAT buys in every runtime; the per-runtime pick stays the fastest model within it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgekd import console


def qat_cmd(
    recipe: Annotated[Path, typer.Argument(help="the recipe (.toml)")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="run directory (default: runs/<name>)")] = None,
    max_drop: Annotated[
        float | None,
        typer.Option(
            "--max-drop",
            help="accuracy budget (absolute, 0.01 = 1 point); default: the recipe's [quantize] max_accuracy_drop",
            min=0.0,
            max=1.0,
        ),
    ] = None,
) -> None:
    """Quantization-aware distillation (ladder rung 4): fine-tune the int8 student against the run's teacher,
    export it to ONNX QDQ and TFLite int8, and measure every runtime against the budget."""
    from edgekd.commands.ladder import print_rows
    from edgekd.commands.run import run_recipe
    from edgekd.pipeline import RunDirectory
    from edgekd.recipe import Recipe
    from edgekd.stages import stage_span

    def always_qat(loaded: Recipe) -> Recipe:
        from pydantic import ValidationError

        from edgekd.errors import RecipeError

        budget = max_drop if max_drop is not None else loaded.quantize.max_accuracy_drop
        if budget is None:
            raise RecipeError(
                "edgekd qat measures the quantized student against an accuracy budget, and the recipe has none",
                hint="give --max-drop 0.01, or set [quantize] max_accuracy_drop in the recipe",
            )
        fields = {**loaded.quantize.model_dump(exclude_unset=True), "max_accuracy_drop": budget, "qat": "always"}
        try:
            quantize = type(loaded.quantize).model_validate(fields)
        except ValidationError as exc:  # e.g. a recipe whose [quantize] sets a method: the ladder picks it
            reason = str(exc.errors(include_url=False)[0]["msg"]).removeprefix("Value error, ")
            raise RecipeError(f"[quantize] cannot take edgekd qat's budget: {reason}", hint="edit the recipe's "
                              "[quantize] section as the message says, then run edgekd qat again") from None  # fmt: skip
        return loaded.model_copy(update={"quantize": quantize})

    run_dir = run_recipe(recipe, out=out, only=set(stage_span("data", "quantize")), adjust=always_qat)
    manifest = RunDirectory(run_dir).read_manifest("quantize") or {}
    summary = manifest.get("summary") or {}
    if console.is_json():
        console.emit_json({"run_dir": str(run_dir), **summary})
        return
    print_rows(summary.get("rows") or [], summary.get("reused") or [])
    for runtime, pick in (summary.get("recommended") or {}).items():
        console.say(f"{runtime}: rung {pick['rung']} ({pick['name']}) within the budget, {pick['model']}")
