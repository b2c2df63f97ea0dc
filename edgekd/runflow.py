"""`edgekd run`: load a recipe, run the pipeline with progress, and say where everything landed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from edgekd import console
from edgekd.errors import TargetError, UsageError
from edgekd.fileio import read_json
from edgekd.pipeline import Pipeline, StageOutcome
from edgekd.recipe import Recipe, load_recipe, resolve_path
from edgekd.registry import unknown_name
from edgekd.stages import STAGE_NAMES, default_stages


def run_directory(recipe: Recipe, base_dir: Path, out: Path | None) -> Path:
    if out is not None:
        return out
    return resolve_path(base_dir, recipe.run.out) or Path("runs") / recipe.run.name


def check_bench_targets(recipe: Recipe, only: set[str] | None) -> None:
    """Refuse an unknown bench target before any training, not after it (the bench stage runs last)."""
    if not recipe.bench.enabled or (only is not None and "bench" not in only):
        return
    from edgekd.inventory import load_inventory

    known, _ = load_inventory()
    for name in recipe.bench.targets:
        if name not in known:
            raise unknown_name("target", name, known, TargetError)


def run_recipe(recipe_path: Path, *, out: Path | None = None, force: bool = False, only: set[str] | None = None) -> Path:
    recipe, base_dir = load_recipe(recipe_path)
    for name in only or ():
        if name not in STAGE_NAMES:
            raise unknown_name("stage", name, STAGE_NAMES, UsageError)
    check_bench_targets(recipe, only)
    run_dir = run_directory(recipe, base_dir, out)
    pipeline = Pipeline(default_stages(), recipe, base_dir, run_dir)
    started = time.perf_counter()
    console.say(f"[bold]edgekd run[/] {recipe_path} → {run_dir}")
    with console.progress(transient=True) as bar:
        status = {"task": None}

        def on_event(event: StageOutcome | str) -> None:
            if isinstance(event, str):
                status["task"] = bar.add_task(f"{event}", total=None, status="")
                return
            if status["task"] is not None:
                bar.remove_task(status["task"])
                status["task"] = None
            _print_outcome(event)

        try:
            pipeline.execute(force=force, only=only, on_event=on_event, progress=bar)
        finally:
            console.say(f"run directory: {run_dir}  ({time.perf_counter() - started:.1f} s)")
    report_path = run_dir / "report.json"
    if report_path.exists():
        report = read_json(report_path)
        if console.is_json():
            console.emit_json(report)
        else:
            _print_summary(report, run_dir)
    return run_dir


def _print_outcome(outcome: StageOutcome) -> None:
    mark = {"ran": "[green]✓[/]", "cached": "[cyan]≡[/]", "skipped": "[dim]-[/]"}.get(outcome.status, "?")
    detail = f"{outcome.seconds:.1f} s" if outcome.status == "ran" else outcome.status
    console.say(f"  {mark} {outcome.stage:<10} {detail}")


def _print_summary(report: dict[str, Any], run_dir: Path) -> None:
    from rich.table import Table

    parity = {row["artifact"]: row for row in report.get("parity", [])}
    bench: dict[str, dict[str, Any]] = {}
    for row in report.get("bench", []):
        bench.setdefault(row["artifact"], row)
    table = Table(title="artifacts")
    table.add_column("artifact", no_wrap=True)
    for column in ("size", "agree", "acc", "parity", "p50 ms", "p99 ms", "RSS"):
        table.add_column(column, justify="left" if column == "parity" else "right", no_wrap=True)
    for artifact in report.get("artifacts", []):
        name = artifact["name"]
        p, b = parity.get(name, {}), bench.get(name, {})
        table.add_row(
            name,
            f"{artifact.get('size_bytes', 0) / 1024:.1f}K",
            _fmt(p.get("top1_agreement"), "{:.4f}"),
            _fmt(p.get("accuracy"), "{:.4f}"),
            "" if not p else ("[green]pass[/]" if p.get("passed") else "[red]FAIL[/]"),
            _fmt(b.get("p50_ms"), "{:.3g}"),
            _fmt(b.get("p99_ms"), "{:.3g}"),
            _fmt(b.get("peak_rss_kb") and b["peak_rss_kb"] / 1024, "{:.0f}M"),
        )
    console.say(table)
    distill = report.get("distill") or {}
    if distill:
        console.say(
            f"teacher {distill.get('teacher_accuracy', 0):.4f} ({distill.get('teacher_params', 0):,} params) · "
            f"KD student {distill.get('student_accuracy', 0):.4f} ({distill.get('student_params', 0):,}) · "
            f"scratch {distill.get('scratch_accuracy') or 0:.4f}"
        )
    for name in ("report.html", "report.md", "report.json"):
        if (run_dir / name).exists():
            console.say(f"  {run_dir / name}")
    if (run_dir / "handoff").exists():
        console.say(f"  {run_dir / 'handoff'}/  (firmware bundle)")


def _fmt(value: Any, pattern: str) -> str:
    return "" if value is None else pattern.format(value)
