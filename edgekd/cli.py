"""The `edgekd` command line. Heavy modules are imported inside commands so `edgekd --help` stays fast.

Every EdgekdError becomes one message on stderr and its exit code (2 for recipe and usage mistakes);
Ctrl-C exits 130 with completed stages kept. Only a bug in edgekd itself prints a traceback, and then
to a log file, with one line on the terminal saying where.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer

from edgekd import __version__, console
from edgekd.commands.bench import bench_app
from edgekd.commands.distill import distill_cmd
from edgekd.commands.export import export_cmd, quantize_cmd, verify_cmd
from edgekd.commands.handoff import handoff_cmd
from edgekd.commands.qat import qat_cmd
from edgekd.commands.recipe import recipe_app
from edgekd.commands.report import report_cmd
from edgekd.commands.sweep import sweep_cmd
from edgekd.commands.targets import targets_app
from edgekd.errors import EdgekdError, UsageError

app = typer.Typer(
    name="edgekd",
    help="Distil a small student from a teacher, quantize, export to ONNX/TFLite, verify every file, benchmark "
    "on x86 / Raspberry Pi / Android, and hand a verified bundle to firmware.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgekd {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    json_output: Annotated[bool, typer.Option("--json", help="print one JSON document instead of tables")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="print only errors")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="show the version")
    ] = False,
) -> None:
    console.set_mode(quiet=quiet, json_output=json_output)


@app.command("run")
def run_cmd(
    recipe: Annotated[Path, typer.Argument(help="the recipe (.toml)")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="run directory (default: runs/<name>)")] = None,
    force: Annotated[bool, typer.Option("--force", help="ignore the cache and redo every stage")] = False,
    only: Annotated[list[str] | None, typer.Option("--only", help="run only these stages (repeatable)")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print report.json at the end")] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="exit 3 when a warning verdict fires (after the report is written)")
    ] = False,
    strict_verdict: Annotated[
        list[str] | None, typer.Option("--strict-verdict", help="exit 3 when this verdict code fires (repeatable)")
    ] = None,
) -> None:
    """Run the whole pipeline of a recipe; completed stages are cached and a killed run resumes.

    Exit codes: 0 done; 1 a stage failed; 2 a recipe or usage mistake (found before training where it can be);
    3 a verdict fired under --strict / --strict-verdict / \\[report] strict; 130 interrupted."""
    from edgekd.commands.run import run_recipe

    if json_output:
        console.set_mode(quiet=console.is_quiet(), json_output=True)
    chosen: bool | list[str] | None = True if strict else (list(strict_verdict) if strict_verdict else None)
    run_recipe(recipe, out=out, force=force, only=set(only) if only else None, strict=chosen)


app.command("distill")(distill_cmd)
app.command("export")(export_cmd)
app.command("quantize")(quantize_cmd)
app.command("qat")(qat_cmd)
app.command("verify")(verify_cmd)
app.add_typer(bench_app, name="bench")
app.command("handoff")(handoff_cmd)
app.command("report")(report_cmd)
app.add_typer(targets_app, name="targets")
app.add_typer(recipe_app, name="recipe")
app.command("sweep")(sweep_cmd)


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM unwinds like Ctrl-C: finally blocks clean devices and temp files


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGTERM, _terminate)
    try:
        # without standalone mode, click returns (not raises) the code of a `typer.Exit(n)`
        result = app(args=args, prog_name="edgekd", standalone_mode=False)
        code = result if isinstance(result, int) else 0
        if code == INTERRUPTED:  # typer turns KeyboardInterrupt (Ctrl-C, and SIGTERM here) into exit code 130
            _print_interrupted()
            _exit_interrupted()
        return code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        console.err_console.print("[red]aborted[/]")
        return 130
    except typer.TyperException as exc:  # typer's public base of its command-line errors (unknown option, command)
        _show_cli_error(exc)
        return exc.exit_code
    except EdgekdError as exc:
        _print_error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        _print_interrupted()
        _exit_interrupted()
        return INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - a bug in edgekd: the traceback is recorded in a file, exit 70
        log = _write_crash_log()
        console.err_console.print(
            f"[red]internal error[/]: {type(exc).__name__}: {exc}\n  the traceback is in {log}; please report it"
        )
        return 70


INTERRUPTED = 130


def _print_interrupted() -> None:
    sys.stderr.write("interrupted: completed stages and results are kept; run the same command again to resume\n")


def _exit_interrupted() -> None:
    """Exit 130 for certain. All cleanup has run by now (finally blocks unwound on the way out).

    A Ctrl-C that lands while a C extension runs Python code through PyRun_String (pybind11 does, e.g.
    while torch imports) sets CPython's "unhandled KeyboardInterrupt" flag even though edgekd handled
    the interrupt; the interpreter would then exit by re-raising SIGINT (status -2) instead of 130.
    """
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(INTERRUPTED)


def _show_cli_error(exc: typer.TyperException) -> None:
    """Click's own rendering of a command-line error (the usage line, "Try 'edgekd run --help'", the message).

    typer re-exports its vendored click exceptions only through their public base, TyperException, which
    declares `format_message` but not `show`; every one typer raises has `show`."""
    show = getattr(exc, "show", None)  # not a capability probe on edgekd's own objects: typer's exception API
    if callable(show):
        show()
    else:
        sys.stderr.write(f"Error: {exc.format_message()}\n")


def _print_error(exc: EdgekdError) -> None:
    kind = "usage error" if isinstance(exc, UsageError) else "error"
    sys.stderr.write(f"{kind}: {exc.message}\n")
    if exc.hint:
        sys.stderr.write(f"  hint: {exc.hint}\n")
    sys.stderr.flush()


def _write_crash_log() -> Path:
    """The traceback of an internal error, in a new private file (never a fixed name in a shared /tmp)."""
    import tempfile

    fd, name = tempfile.mkstemp(prefix="edgekd-crash-", suffix=".log")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(traceback.format_exc())
    return Path(name)


if __name__ == "__main__":
    raise SystemExit(main())
