"""The device inventory `targets.toml`: named targets, each with a `kind` (local | ssh | adb).

```toml
[targets.pi5]
kind = "ssh"
host = "pi5.local"
user = "pi"
profile = "rpi5"
```

Looked up in: the path given (--inventory), $EDGEKD_TARGETS, ./targets.toml, ~/.config/edgekd/targets.toml.
The target `local` (this machine) always exists. Each kind validates its own keys (`from_entry`).
`make_target` is the one factory: a run's settings (`TargetOptions`) go in at construction, and the
target's `identity()` (no connection needed) says where its runs would happen.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from edgekd import registry
from edgekd.errors import RecipeError, TargetError
from edgekd.target_protocol import Target, TargetOptions

BUILTIN = {"local": {"kind": "local"}}


def inventory_path(explicit: Path | None = None) -> Path | None:
    if explicit is not None and not explicit.is_file():  # never fall back to another file the user did not name
        raise TargetError(f"inventory {explicit} does not exist", hint="create it; see README 'Targets'")
    candidates = [explicit] if explicit else []
    if os.environ.get("EDGEKD_TARGETS"):
        candidates.append(Path(os.environ["EDGEKD_TARGETS"]))
    candidates += [Path("targets.toml"), Path.home() / ".config" / "edgekd" / "targets.toml"]
    for path in candidates:
        if path is not None and path.is_file():
            return path
    return None


def load_inventory(explicit: Path | None = None) -> tuple[dict[str, dict[str, Any]], Path | None]:
    """All known targets (name -> entry) and the inventory file they came from."""
    path = inventory_path(explicit)
    entries: dict[str, dict[str, Any]] = {name: dict(entry) for name, entry in BUILTIN.items()}
    if path is None:
        return entries, None
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RecipeError(f"{path}: not valid TOML: {exc}") from None
    unknown = set(raw) - {"targets"}
    if unknown:
        raise RecipeError(
            f"{path}: unknown top-level key(s) {', '.join(sorted(unknown))}", hint="put targets under [targets.NAME]"
        )
    for name, entry in raw.get("targets", {}).items():
        if not isinstance(entry, dict) or "kind" not in entry:
            raise RecipeError(f"{path}: targets.{name} needs a kind", hint=f"one of {', '.join(registry.TARGET_KINDS)}")
        if entry["kind"] not in registry.TARGET_KINDS:
            raise registry.unknown_name("target kind", str(entry["kind"]), registry.TARGET_KINDS, RecipeError)
        entries[name] = dict(entry)
    return entries, path


def make_target(name: str, explicit: Path | None = None, *, options: TargetOptions | None = None) -> Target:
    """Build the named target from the inventory (not yet connected), with a run's `options`."""
    entries, path = load_inventory(explicit)
    if name not in entries:
        raise registry.unknown_name("target", name, entries, TargetError)
    entry = dict(entries[name])
    kind = entry.pop("kind")
    cls: type[Target] = registry.load(registry.TARGET_KINDS, kind, "target kind")
    base = path.parent if path else Path.cwd()
    return cls.from_entry(name, entry, base, options)
