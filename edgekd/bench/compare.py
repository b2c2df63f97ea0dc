"""Compare two benchmark runs: per (artifact, target), is B's latency different from A's, and does it matter?

The decision is `edgekd.bench.significance.judge_latency`, the same one `report --compare` makes: a
regression is a median slower by more than `threshold` (relative) AND significant (Mann-Whitney U on the
raw samples, else non-overlapping CIs of the medians, else Welch's t-test on tool summaries). Raw samples
are nanoseconds (`latencies_ns`); rows of old pipeline runs in the history (`latencies_ms`) are read too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgekd.bench.history import History
from edgekd.bench.result import BenchResult
from edgekd.bench.significance import FASTER, SLOWER, centre_ms, figures, judge_latency
from edgekd.errors import BenchError
from edgekd.fileio import read_json

EXIT_REGRESSION = 1


@dataclass(frozen=True)
class ResultComparison:
    artifact: str
    target: str | None
    a_p50_ms: float | None
    b_p50_ms: float | None
    change: float | None  # b/a - 1 of the medians
    p_value: float | None
    verdict: str  # regression | improvement | unchanged | only-in-a | only-in-b
    method: str  # mann-whitney-u | ci-overlap | welch-t-from-summary | none
    n_a: int = 0
    n_b: int = 0


@dataclass
class Comparison:
    a: str
    b: str
    threshold: float
    alpha: float
    rows: list[ResultComparison] = field(default_factory=list)

    @property
    def regressions(self) -> list[ResultComparison]:
        return [row for row in self.rows if row.verdict == "regression"]

    @property
    def exit_code(self) -> int:
        """0 when nothing regressed, EXIT_REGRESSION otherwise (for CI)."""
        return EXIT_REGRESSION if self.regressions else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "edgekd.compare/1",
            "a": self.a,
            "b": self.b,
            "threshold": self.threshold,
            "alpha": self.alpha,
            "regressions": len(self.regressions),
            "exit_code": self.exit_code,
            "rows": [asdict(row) for row in self.rows],
        }


Side = str | Path | Sequence[BenchResult] | Sequence[dict[str, Any]]


def load_side(side: Side, history: History | None) -> tuple[str, list[dict[str, Any]]]:
    """(label, result dicts) from a history run reference, a JSON results file, or results in memory."""
    if isinstance(side, (str, Path)):
        path = Path(side)
        if path.suffix == ".json" and path.is_file():
            try:
                data = read_json(path)
            except ValueError as exc:
                raise BenchError(f"{path} is not valid JSON: {exc}") from None
            results = data.get("results", data) if isinstance(data, dict) else data
            if not isinstance(results, list):
                raise BenchError(f"{path} holds no benchmark results", hint="use the output of `edgekd bench --json`")
            return str(path), results
        store = history or History()
        run_id = store.resolve(str(side))
        return run_id, store.results(run_id)
    return "results", [r.to_dict() if isinstance(r, BenchResult) else dict(r) for r in side]


def _figures(result: dict[str, Any]) -> dict[str, Any]:
    return figures(result)


def _key(result: dict[str, Any]) -> tuple[str, str | None]:
    figures = _figures(result)
    return str(figures.get("artifact")), figures.get("target")


def pair_results(
    a: list[dict[str, Any]], b: list[dict[str, Any]]
) -> list[tuple[dict[str, Any] | None, dict[str, Any] | None]]:
    """Match by (artifact, target). Two one-model runs on the same target pair up even if the files'
    names differ (comparing two versions of a model)."""
    by_a = {_key(r): r for r in a}
    by_b = {_key(r): r for r in b}
    if len(a) == 1 and len(b) == 1 and not set(by_a) & set(by_b) and _key(a[0])[1] == _key(b[0])[1]:
        return [(a[0], b[0])]
    keys = list(dict.fromkeys([*by_a, *by_b]))
    return [(by_a.get(key), by_b.get(key)) for key in keys]


def _center_ms(result: dict[str, Any]) -> float:
    value = centre_ms(result)
    if value is None:
        raise BenchError(
            f"result {_figures(result).get('artifact')} has neither a median nor a mean latency",
            hint="is this an edgekd bench result?",
        )
    return value


def compare_pair(
    a: dict[str, Any] | None, b: dict[str, Any] | None, threshold: float, alpha: float
) -> ResultComparison:
    present = a or b
    if present is None:  # pair_results never yields (None, None)
        raise ValueError("compare_pair needs at least one result")
    artifact, target = _key(present)
    if a is None or b is None:
        fig = _figures(present)
        return ResultComparison(
            artifact,
            target,
            fig.get("p50_ms") if a else None,
            fig.get("p50_ms") if b else None,
            None,
            None,
            "only-in-a" if a else "only-in-b",
            "none",
        )
    if _key(b)[0] != artifact:  # two versions of one model, paired by target
        artifact = f"{artifact} → {_key(b)[0]}"
    a50, b50 = _center_ms(a), _center_ms(b)
    judged = judge_latency(a, b, threshold=threshold, alpha=alpha)
    verdict = {SLOWER: "regression", FASTER: "improvement"}.get(judged.verdict, "unchanged")
    return ResultComparison(
        artifact, target, a50, b50, judged.change, judged.p_value, verdict, judged.method, judged.n_a, judged.n_b
    )


def compare(
    a: Side, b: Side, *, history: History | None = None, threshold: float = 0.05, alpha: float = 0.01
) -> Comparison:
    """Compare run A (the reference) with run B. Sides are history run refs, result JSON files, or results."""
    if not 0 < alpha < 1 or threshold < 0:
        raise BenchError("alpha must be in (0, 1) and threshold >= 0", hint="e.g. --alpha 0.01 --threshold 0.05")
    label_a, results_a = load_side(a, history)
    label_b, results_b = load_side(b, history)
    if not results_a or not results_b:
        raise BenchError(f"nothing to compare: {label_a if not results_a else label_b} has no results")
    rows = [compare_pair(ra, rb, threshold, alpha) for ra, rb in pair_results(results_a, results_b)]
    return Comparison(label_a, label_b, threshold, alpha, rows)
