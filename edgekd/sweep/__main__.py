"""`python -m edgekd.sweep RECIPE [options]`: the sweep command on its own (spawned workers run this)."""

from __future__ import annotations

import sys

import typer

from edgekd.commands.sweep import sweep_cmd
from edgekd.errors import EdgekdError


def main(argv: list[str] | None = None) -> int:
    app = typer.Typer(add_completion=False)
    app.command()(sweep_cmd)
    try:
        result = app(args=sys.argv[1:] if argv is None else argv, prog_name="edgekd sweep", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except EdgekdError as exc:
        sys.stderr.write(f"error: {exc.message}\n" + (f"  hint: {exc.hint}\n" if exc.hint else ""))
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
