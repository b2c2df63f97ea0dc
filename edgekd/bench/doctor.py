"""Preflight checks a target reports through `doctor()`: one Check per thing that must work.

SSH and adb targets import `Check` from here so `edgekd doctor` shows every target the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Check:
    """One preflight result: what was checked, whether it passed, what was seen, and how to fix it."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def all_ok(checks: Sequence[Check]) -> bool:
    return all(check.ok for check in checks)
