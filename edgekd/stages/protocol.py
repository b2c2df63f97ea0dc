"""The Stage protocol and what a stage gets and returns: KeyContext (what its cache key may depend on),
StageContext (what it gets when it runs), StageResult (what it hands back). The pipeline (edgekd.pipeline)
runs stages against it; edgekd.stages.base.BaseStage gives the defaults."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from edgekd.artifacts import Artifact
from edgekd.errors import CacheError, EdgekdError
from edgekd.recipe import Recipe

__all__ = ["KeyContext", "Stage", "StageContext", "StageResult"]


@dataclass
class StageResult:
    artifacts: list[Artifact]
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class KeyContext:
    """What a stage's key depends on besides its config: the recipe and the upstream artifacts and summaries."""

    recipe: Recipe
    base_dir: Path  # relative paths in the recipe are taken from here
    inputs: dict[str, list[Artifact]]
    summaries: dict[str, dict[str, Any]]

    def artifact(self, name: str) -> Artifact:
        for artifacts in self.inputs.values():
            for artifact in artifacts:
                if artifact.name == name:
                    return artifact
        known = sorted(a.name for arts in self.inputs.values() for a in arts)
        raise CacheError(f"no upstream artifact named {name!r}", hint=f"available: {', '.join(known) or 'none'}")

    def find(self, name: str) -> Artifact | None:
        try:
            return self.artifact(name)
        except CacheError:
            return None

    def all_inputs(self) -> list[Artifact]:
        return [a for arts in self.inputs.values() for a in arts]


@dataclass
class StageContext(KeyContext):
    """What a stage gets when it runs: a KeyContext plus the run directory and a private directory to write in."""

    run_dir: Path
    workdir: Path  # private; everything written here is moved into run_dir when the stage succeeds
    progress: Any = None  # a rich Progress, or None
    resume: bool = False  # the workdir holds a killed attempt's checkpoints (same cache key)
    on_epoch: Callable[[str, dict[str, Any]], None] | None = None  # training stages call it after each epoch


class Stage(Protocol):
    """One step of a run (edgekd.stages.base.BaseStage gives the defaults). `name` and `needs` are read-only
    here, so a class attribute `needs = ("data",)` satisfies the protocol."""

    @property
    def name(self) -> str: ...

    @property
    def needs(self) -> tuple[str, ...]:
        """Upstream stage names whose artifacts this stage reads."""
        ...

    @property
    def runs_after_failure(self) -> bool:
        """True: runs even after an earlier stage failed or a gate stopped the run (the report)."""
        ...

    @property
    def resumable(self) -> bool:
        """True: a killed attempt's workdir (checkpoints) is kept for the next attempt with the same key."""
        ...

    def enabled(self, recipe: Recipe) -> bool: ...

    def config(self, recipe: Recipe) -> dict[str, Any]:
        """The part of the recipe this stage depends on (it keys the cache)."""
        ...

    def tools(self, ctx: KeyContext) -> tuple[str, ...]:
        """PyPI distribution names of the tools the stage runs (their versions key the cache)."""
        ...

    def key_facts(self, ctx: KeyContext) -> dict[str, Any]:
        """Facts outside the recipe that decide the result (they key the cache), JSON-able."""
        ...

    def run(self, ctx: StageContext) -> StageResult: ...

    def gate(self, recipe: Recipe, summary: dict[str, Any]) -> EdgekdError | None:
        """An error that fails the run after this stage (e.g. parity), or None. Checked on cache hits too."""
        ...
