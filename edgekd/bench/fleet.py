"""Benchmark several targets at once (a fleet of Pis), keeping every target's results apart.

Each target runs on its own thread (an SSH target's I/O runs on its own event loop, so the threads only
wait). A target that fails, e.g. a Pi whose connection drops, records its error and stops; the others go
on, and whatever it finished before the failure is kept. With `per_artifact` (the default) each artifact
is a separate bench call, so a failure loses at most the artifact in progress; without it the artifacts
of one target run interleaved (A B A B) in one call, which is fairer to compare but all-or-nothing.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edgekd.errors import TargetError

if TYPE_CHECKING:
    from edgekd.artifacts import Artifact
    from edgekd.bench.result import BenchResult
    from edgekd.config.bench import BenchConfig
    from edgekd.target_protocol import Target

log = logging.getLogger(__name__)
BenchFunction = Callable[["Target", Sequence["Artifact"], "BenchConfig"], list["BenchResult"]]


@dataclass
class FleetOutcome:
    """Results per target name, and the error that stopped a target (absent for targets that finished)."""

    results: dict[str, list[BenchResult]] = field(default_factory=dict)
    errors: dict[str, Exception] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def all_results(self) -> list[BenchResult]:
        return [result for results in self.results.values() for result in results]

    def summary(self) -> dict[str, Any]:
        """Per target: how many results, and the error message if it stopped early."""
        return {
            name: {"results": len(results), "error": str(self.errors[name]) if name in self.errors else None}
            for name, results in self.results.items()
        }


def bench_fleet(
    targets: Sequence[Target],
    artifacts: Sequence[Artifact],
    config: BenchConfig,
    *,
    per_artifact: bool = True,
    on_result: Callable[[str, BenchResult], None] | None = None,
    max_parallel: int | None = None,
    bench: BenchFunction | None = None,
) -> FleetOutcome:
    """Benchmark `artifacts` on every target concurrently. Never raises for one target's failure.

    `on_result(target_name, result)` is called as each result arrives (to save it right away).
    Ctrl-C cleans every target up (their remote work dirs are removed) and is then re-raised.
    """
    from edgekd.bench.orchestrate import TargetLost

    if bench is None:
        from edgekd.bench.orchestrate import bench_artifacts

        bench = bench_artifacts
    names = [target.name for target in targets]
    if len(set(names)) != len(names):
        raise TargetError(f"a fleet needs distinct target names, got {names}")
    outcome = FleetOutcome(results={name: [] for name in names})
    lock = threading.Lock()

    def run_one(target: Target) -> None:
        groups = [[artifact] for artifact in artifacts] if per_artifact else [list(artifacts)]
        for group in groups:
            try:
                produced = bench(target, group, config)
            except Exception as exc:  # noqa: BLE001 - one target's failure must not stop the fleet
                log.warning("fleet: %s stopped: %s", target.name, exc)
                kept = list(exc.results) if isinstance(exc, TargetLost) else []  # repeats finished before
                with lock:
                    outcome.errors[target.name] = exc
                    outcome.results[target.name].extend(kept)
                if on_result is not None:
                    for result in kept:
                        on_result(target.name, result)
                return
            with lock:
                outcome.results[target.name].extend(produced)
            if on_result is not None:
                for result in produced:
                    on_result(target.name, result)

    pool = concurrent.futures.ThreadPoolExecutor(
        max_workers=max_parallel or max(1, len(targets)), thread_name_prefix="edgekd-fleet"
    )
    futures = [pool.submit(run_one, target) for target in targets]
    try:
        for future in futures:
            while True:  # short waits so Ctrl-C reaches this thread
                try:
                    future.result(timeout=0.5)
                    break
                except concurrent.futures.TimeoutError:
                    continue
    except KeyboardInterrupt:
        for target in targets:
            with contextlib.suppress(Exception):
                target.cleanup()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return outcome
