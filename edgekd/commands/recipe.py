"""`edgekd recipe`: the recipe reference, its JSON Schema, and a starter recipe, all generated from the config models."""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path
from typing import Annotated

import typer

from edgekd import console
from edgekd.config.starter import SOURCES
from edgekd.errors import UsageError

recipe_app = typer.Typer(help="the recipe: reference, JSON Schema, starter", no_args_is_help=True)


@recipe_app.command("schema")
def schema_cmd() -> None:
    """Print the JSON Schema of a recipe (for TOML editors and validators)."""
    from edgekd.config.reference import json_schema

    sys.stdout.write(json.dumps(json_schema(), indent=2, sort_keys=True) + "\n")


@recipe_app.command("reference")
def reference_cmd() -> None:
    """Print the recipe reference (docs/RECIPE.md): every section and key with type, default, allowed values."""
    from edgekd.config.reference import reference_markdown

    sys.stdout.write(reference_markdown())


@recipe_app.command("init")
def init_cmd(
    source: Annotated[str, typer.Option("--source", help=" | ".join(SOURCES))] = "digits",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="write here (never over an existing file); default: print")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="[run] name (default: my-<source>)")] = None,
) -> None:
    """Write a commented starter recipe for a data source."""
    from edgekd.config.starter import starter_recipe
    from edgekd.recipe import parse_recipe
    from edgekd.registry import unknown_name

    if source not in SOURCES:
        raise unknown_name("source", source, SOURCES, UsageError)
    text = starter_recipe(source, name)
    parse_recipe(tomllib.loads(text), source="<starter>")  # a starter that does not validate is edgekd's bug
    if out is None:
        sys.stdout.write(text)
        return
    if out.exists() or out.is_symlink():
        raise UsageError(f"{out} already exists; edgekd recipe init never overwrites a file",
                         hint="choose another --out, or move the file away")  # fmt: skip
    try:
        with open(out, "x", encoding="utf-8") as handle:  # "x": fails rather than replace a file made meanwhile
            handle.write(text)
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror or exc}", hint="choose a writable --out") from None
    console.say(f"wrote {out}")
