"""Defaults for the Stage protocol (edgekd.pipeline.Stage): every stage class derives from BaseStage."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgekd.errors import EdgekdError
from edgekd.recipe import Recipe

if TYPE_CHECKING:
    from edgekd.stages.protocol import KeyContext


class BaseStage:
    """Defaults for the Stage protocol: always enabled, no tools, nothing else in the key, no gate."""

    name = ""
    needs: tuple[str, ...] = ()
    runs_after_failure = False
    resumable = False  # True: a killed attempt's workdir (checkpoints) is kept for the next attempt

    def enabled(self, recipe: Recipe) -> bool:
        return True

    def tools(self, ctx: KeyContext) -> tuple[str, ...]:
        """PyPI distribution names of the tools this stage runs with this recipe; their installed versions
        go into the stage's cache key (an upgraded onnx2tf reruns the stages it shapes) and its manifest."""
        return ()

    def key_facts(self, ctx: KeyContext) -> dict[str, Any]:
        """Facts outside the recipe that decide this stage's result (bench: each target's inventory entry and
        device identity). JSON-able; they go into the cache key and the manifest."""
        return {}

    def gate(self, recipe: Recipe, summary: dict[str, Any]) -> EdgekdError | None:
        return None
