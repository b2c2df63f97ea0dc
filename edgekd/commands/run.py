"""`edgekd run`: load a recipe, run the pipeline with progress, and say where everything landed."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.markup import escape

from edgekd import console, preflight
from edgekd.errors import EdgekdError, UsageError
from edgekd.fileio import read_json
from edgekd.pipeline import Pipeline, StageOutcome
from edgekd.recipe import Recipe, load_recipe, resolve_path
from edgekd.registry import unknown_name
from edgekd.stages import STAGE_NAMES, default_stages


def run_directory(recipe: Recipe, base_dir: Path, out: Path | None) -> Path:
    if out is not None:
        return out
    return resolve_path(base_dir, recipe.run.out) or Path("runs") / recipe.run.name


class StrictVerdictError(EdgekdError):
    """`--strict` (or `[report] strict`): a verdict the user made fatal fired. Exit 3, after the report is written."""

    exit_code = 3


def run_recipe(
    recipe_path: Path,
    *,
    out: Path | None = None,
    force: bool = False,
    only: set[str] | None = None,
    strict: bool | list[str] | None = None,
    adjust: Callable[[Recipe], Recipe] | None = None,
) -> Path:
    """Run a recipe. `strict`: None takes `[report] strict`; True fails on every warning verdict, a list on
    the verdicts of those codes (edgekd.verdicts.select_failing). `adjust` changes the loaded recipe before
    anything runs (a command's own settings, e.g. `edgekd qat`'s)."""
    recipe, base_dir = load_recipe(recipe_path)
    if adjust is not None:
        recipe = adjust(recipe)
    for name in only or ():
        if name not in STAGE_NAMES:
            raise unknown_name("stage", name, STAGE_NAMES, UsageError)
    run_dir = run_directory(recipe, base_dir, out)
    preflight.check_recipe(recipe, only, base_dir, run_dir)
    preflight.check_verdict_codes(strict)
    chosen = recipe.report.strict  # true, or the verdict codes that fail the run
    strict_codes: bool | list[str] = (
        strict if strict is not None else chosen if isinstance(chosen, bool) else list(chosen)
    )
    pipeline = Pipeline(default_stages(), recipe, base_dir, run_dir)
    started = time.perf_counter()
    console.say(f"[bold]edgekd run[/] {recipe_path} → {run_dir}")

    def after_data(outcome: StageOutcome) -> None:
        """Preflight with the data's shape, before any model is trained."""
        for note in preflight.check_with_data(recipe, outcome.summary, only):
            console.say(f"[yellow]note[/]: {escape(note)}")

    failure: Exception | None = None
    with console.progress(transient=True) as bar:
        status: dict[str, Any] = {"task": None}

        def on_event(event: StageOutcome | str) -> None:
            if isinstance(event, str):
                status["task"] = bar.add_task(f"{event}", total=None, status="")
                return
            if status["task"] is not None:
                bar.remove_task(status["task"])
                status["task"] = None
            _print_outcome(event)

        try:
            pipeline.execute(force=force, only=only, on_event=on_event, progress=bar, after={"data": after_data})
        except Exception as exc:  # noqa: BLE001 - the summary and report paths are shown, then it propagates
            failure = exc
        finally:
            console.say(f"run directory: {run_dir}  ({time.perf_counter() - started:.1f} s)")
    report_path = run_dir / "report.json"
    ran_report = only is None or "report" in only  # else report.json, if any, is an earlier run's
    report = read_json(report_path) if ran_report and report_path.exists() and _report_is_current(run_dir) else None
    if report is not None:
        if console.is_json():
            console.emit_json(report)
        else:
            _print_summary(report, run_dir)
    if failure is not None:
        raise failure
    if report is not None:
        check_strict(report, strict_codes)
    return run_dir


def _report_is_current(run_dir: Path) -> bool:
    """report.json was written by this run's report stage (not left over from an earlier run)."""
    from edgekd.pipeline import RunDirectory

    manifest = RunDirectory(run_dir).read_manifest("report")
    return manifest is not None and manifest.get("status") != "failed"


def check_strict(report: dict[str, Any], strict: bool | list[str]) -> None:
    """Fail (exit 3) when a verdict chosen by --strict / --strict-verdict / [report] strict fired."""
    from edgekd.verdicts import select_failing

    fatal = select_failing(_verdicts(report), strict)
    if fatal:
        listed = "; ".join(f"{v.get('code')}: {v.get('message')}" for v in fatal)
        raise StrictVerdictError(
            f"{len(fatal)} verdict(s) fired under --strict: {listed}",
            hint="see the verdicts in report.html; fix the cause, or list only the verdicts that must fail in "
            '[report] strict = ["code", ...] (or --strict-verdict CODE)',
        )


def _verdicts(report: dict[str, Any]) -> list[dict[str, Any]]:
    found = report.get("verdicts") or []
    return [v for v in found if isinstance(v, dict)] if isinstance(found, list) else []


def _print_outcome(outcome: StageOutcome) -> None:
    mark = {"ran": "[green]✓[/]", "cached": "[cyan]≡[/]", "skipped": "[dim]-[/]", "failed": "[red]✗[/]",
            "not_run": "[dim]·[/]"}.get(outcome.status, "?")  # fmt: skip
    detail = {"ran": f"{outcome.seconds:.1f} s", "not_run": "not run (an earlier stage failed)"}.get(
        outcome.status, outcome.status
    )
    if outcome.status == "failed" and outcome.error:
        detail = f"failed: {outcome.error.get('type')}"
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
    if report.get("artifacts"):
        console.say(table)
    distill = report.get("distill") or {}
    if distill:
        console.say(distill_line(distill))
    for verdict in _verdicts(report):
        console.say(f"  [yellow]verdict[/] {escape(str(verdict.get('code')))}: {escape(str(verdict.get('message')))}")
    for name in ("report.html", "report.md", "report.json"):
        if (run_dir / name).exists():
            console.say(f"  {run_dir / name}")
    if (run_dir / "handoff").exists():
        console.say(f"  {run_dir / 'handoff'}/  (firmware bundle)")


def distill_line(distill: dict[str, Any]) -> str:
    """teacher · KD student · scratch in one line; what is not known (an ONNX teacher's parameter count, the
    scratch baseline when [distill] baseline = false) is said so, never printed as 0."""
    scratch = distill.get("scratch_accuracy")
    return (
        f"teacher {_fmt(distill.get('teacher_accuracy'), '{:.4f}', 'unknown')} "
        f"({_fmt(distill.get('teacher_params'), '{:,}', 'unknown')} params) · "
        f"KD student {_fmt(distill.get('student_accuracy'), '{:.4f}', 'unknown')} "
        f"({_fmt(distill.get('student_params'), '{:,}', 'unknown')}) · "
        + (f"scratch {scratch:.4f}" if isinstance(scratch, (int, float)) else "no scratch baseline")
    )


def _fmt(value: Any, pattern: str, missing: str = "") -> str:
    if value is None:
        return missing
    try:
        return pattern.format(value)
    except (TypeError, ValueError):  # a hand-edited or older report: show the value as it is
        return str(value)
