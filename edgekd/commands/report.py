"""`edgekd report RUN_DIR` and `edgekd report --compare RUN_A RUN_B`.

A plain typer-annotated function; cli.py registers it. matplotlib is imported only when the HTML is drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from edgekd import console
from edgekd.errors import UsageError


def report_cmd(
    run_dir: Annotated[Path | None, typer.Argument(help="run directory written by `edgekd run`")] = None,
    compare: Annotated[
        tuple[Path, Path] | None,
        typer.Option(
            "--compare",
            metavar="RUN_A RUN_B",
            help="compare two runs (directories, report.json files or history run ids): what got slower, bigger, "
            "less accurate",
        ),
    ] = None,
    fail_on_regression: Annotated[
        bool, typer.Option("--fail-on-regression", help="with --compare: exit 1 when anything regressed (for CI)")
    ] = False,
    plot_format: Annotated[str, typer.Option("--plots", help="embed plots as svg or png")] = "svg",
    markdown_out: Annotated[
        Path | None,
        typer.Option(
            "--markdown", help="with --compare: also write the comparison as Markdown (a pull-request comment)"
        ),
    ] = None,
) -> None:
    """Write report.json, report.md and report.html for a run, or compare two runs."""
    if compare is not None:
        if run_dir is not None:
            raise UsageError(
                "give either RUN_DIR or --compare RUN_A RUN_B, not both",
                hint="edgekd report runs/a   or   edgekd report --compare runs/a runs/b",
            )
        _compare(compare[0], compare[1], fail_on_regression=fail_on_regression, markdown_out=markdown_out)
        return
    if markdown_out is not None:
        raise UsageError("--markdown goes with --compare", hint="report.md is always written beside report.html")
    if run_dir is None:
        raise UsageError("no run directory given", hint="edgekd report runs/<name>   (or --compare RUN_A RUN_B)")
    if plot_format not in ("svg", "png"):
        raise UsageError(
            f"--plots must be svg or png, not {plot_format!r}", hint="--plots svg (default) or --plots png"
        )
    _write(run_dir, plot_format)


def _write(run_dir: Path, plot_format: str) -> None:
    from rich.markup import escape

    from edgekd.config.report import ReportConfig
    from edgekd.report import write_reports
    from edgekd.report.build import build_report

    with console.progress() as bar:
        task = bar.add_task("reading stage manifests", total=2, status="")
        report = build_report(run_dir)
        bar.update(task, advance=1, description="drawing plots and writing reports")
        paths = write_reports(run_dir, report, ReportConfig(plot_format=plot_format))
        bar.update(task, advance=1)
    failed = [row["artifact"] for row in report["parity"] if row.get("passed") is False]
    if console.is_json():
        console.emit_json(
            {
                "paths": [str(p) for p in paths],
                "passed": report["passed"],
                "failed": failed,
                "failure": report.get("failure"),
                "verdicts": report.get("verdicts", []),
                "warnings": report["warnings"],
            }
        )
        return
    console.say(headline(report))
    for verdict in report.get("verdicts") or []:
        style = "yellow" if verdict["severity"] == "warning" else "dim"
        console.say(f"  [{style}]{verdict['severity']}[/] {verdict['code']}: {escape(verdict['message'])}")
    for path in paths:
        console.say(f"  wrote {path}")


def headline(report: dict[str, Any]) -> str:
    """The terminal's first line: a failed stage first, then parity, then the count of warnings."""
    from rich.markup import escape

    failed = [row["artifact"] for row in report.get("parity") or [] if row.get("passed") is False]
    parity = (
        "[yellow]parity not verified[/]"
        if not report.get("parity")
        else f"[red]{len(failed)} artifact(s) fail parity: {escape(', '.join(failed))}[/]"
        if failed
        else "[green]all artifacts pass parity[/]"
    )
    line = f"{parity}; {len(report.get('warnings') or [])} warning(s)"
    failure = report.get("failure")
    if failure:
        line = (
            f"[red]run failed at stage {escape(str(failure.get('stage')))} ({escape(str(failure.get('type')))}): "
            f"{escape(str(failure.get('message')))}[/]\n{line}"
        )
    return line


def _compare(run_a: Path, run_b: Path, *, fail_on_regression: bool, markdown_out: Path | None) -> None:
    from edgekd.fileio import atomic_write_text
    from edgekd.report.compare import compare_runs
    from edgekd.report.markdown import render_comparison_markdown

    result = compare_runs(run_a, run_b)
    if markdown_out is not None:
        atomic_write_text(markdown_out, render_comparison_markdown(result))
    if console.is_json():
        console.emit_json(result)
    else:
        _print_comparison(result)
    if fail_on_regression and result["regressions"]:
        raise typer.Exit(1)


def _print_comparison(result: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    for warning in result.get("warnings") or []:
        console.say(f"[yellow]warning: {escape(warning)}[/]")
    for title, rows, style in (
        ("Regressions", result["regressions"], "red"),
        ("Improvements", result["improvements"], "green"),
    ):
        if not rows:
            console.say(f"[{style}]{title}: none[/]")
            continue
        table = Table(title=title, title_style=style, title_justify="left")
        for column in ("kind", "artifact", "target", "change"):
            table.add_column(column)
        for row in rows:
            table.add_row(row["kind"], str(row["artifact"] or ""), str(row["target"] or ""), row["message"])
        console.say(table)
    for side in ("only_in_a", "only_in_b"):
        if result[side]:
            console.say(f"{side.replace('_', ' ')}: {', '.join(result[side])}")
