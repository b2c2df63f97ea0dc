"""The op-by-op profiler's warm-up is capped per operator: a slow operator warms up within a time budget (at
least a few runs), not the requested count times its own time. A fake clock counts the calls; no timing."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from tests.support.bench_models import RUNNER


def _runner_module() -> Any:
    spec = importlib.util.spec_from_file_location("edgekd_runner_warmup", RUNNER)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


class FakeOp:
    """An operator taking `ns` per invoke on a clock that only moves when it runs."""

    def __init__(self, ns: int) -> None:
        self.ns, self.now, self.calls = ns, 0, 0

    def clock(self) -> int:
        return self.now

    def invoke(self) -> None:
        self.calls += 1
        self.now += self.ns


@pytest.mark.parametrize(
    ("op_ms", "warmup", "expected_warmup"),
    [
        (0.01, 50, 50),  # fast: every requested warm-up run (0.5 ms in all)
        (10, 50, 10),  # 10 ms: the 100 ms budget holds 10 runs, not 50 (0.5 s)
        (400, 50, 2),  # slower than the budget: the minimum of 2, not 50 (20 s)
        (400, 1, 1),  # never more than asked
        (400, 0, 0),
    ],
)
def test_warm_up_stops_at_the_budget_after_the_minimum(op_ms: float, warmup: int, expected_warmup: int) -> None:
    runner = _runner_module()
    op = FakeOp(int(op_ms * 1e6))
    median, timed = runner._median_invoke_ns(op.invoke, warmup, 20, clock=op.clock)
    assert median == op.ns
    # after the warm-up: one run to size the timed runs, then the timed runs themselves (runs are capped by
    # OP_BUDGET_NS, at least 5)
    assert timed == max(5, min(20, runner.OP_BUDGET_NS // op.ns))
    assert op.calls - 1 - timed == expected_warmup
    assert runner.OP_WARMUP_BUDGET_NS == 100_000_000 and runner.OP_MIN_WARMUP == 2
