"""One console for everything the user sees, so --json and --quiet work on every command.

- normal: rich output and progress bars on stderr-free stdout.
- quiet: only errors.
- json: human output is suppressed; the command prints exactly one JSON document via emit_json().
Logging goes through `logging` (to stderr) and is not affected.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

_state: dict[str, Any] = {"quiet": False, "json": False}
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def set_mode(*, quiet: bool = False, json_output: bool = False) -> None:
    _state["quiet"] = quiet
    _state["json"] = json_output
    console.quiet = quiet or json_output


def is_json() -> bool:
    return bool(_state["json"])


def is_quiet() -> bool:
    return bool(_state["quiet"] or _state["json"])


def say(*objects: Any, **kwargs: Any) -> None:
    """Human output; silent under --quiet and --json."""
    console.print(*objects, **kwargs)


def emit_json(obj: Any) -> None:
    """The one JSON document of a --json command, on stdout."""
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


@contextmanager
def progress(transient: bool = True) -> Iterator[Progress]:
    """A rich progress display (disabled under --quiet/--json). Use .add_task / .advance as usual."""
    bar = Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
        transient=transient,
        disable=is_quiet(),
    )
    with bar:
        yield bar
