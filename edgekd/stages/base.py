from __future__ import annotations

from typing import Any

from edgekd.errors import EdgekdError
from edgekd.recipe import Recipe


class BaseStage:
    """Defaults for the Stage protocol: always enabled, no gate."""

    name = ""
    needs: tuple[str, ...] = ()
    runs_after_failure = False
    resumable = False  # True: a killed attempt's workdir (checkpoints) is kept for the next attempt

    def enabled(self, recipe: Recipe) -> bool:
        return True

    def gate(self, recipe: Recipe, summary: dict[str, Any]) -> EdgekdError | None:
        return None
