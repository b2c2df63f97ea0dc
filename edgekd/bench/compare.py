"""Compare two benchmark runs: per (artifact, target), is B's latency different from A's, and does it matter?

A change is a regression when B's median is slower by more than `threshold` (relative) AND the difference
is significant: a two-sided Mann-Whitney U test on the raw samples at level `alpha`. Samples of one run
are not fully independent (drift, caches), so the p-value alone is overconfident: the relative threshold
keeps tiny-but-"significant" changes from failing CI. Without raw samples the 95% CIs of the medians
must not overlap instead; without those either (benchmark_model / onnxruntime_perf_test summaries) Welch's
t-test on the means from count, mean and std decides. Raw samples are the result's `latencies_ns`, or the `latencies_ms`
that pipeline bench rows carry (edgekd/stages/delivery.py). A tool summary without a median is compared
on its mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgekd.bench.history import History
from edgekd.bench.result import BenchResult
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
        return {"schema": "edgekd.compare/1", "a": self.a, "b": self.b, "threshold": self.threshold,
                "alpha": self.alpha, "regressions": len(self.regressions), "exit_code": self.exit_code,
                "rows": [asdict(row) for row in self.rows]}


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
    return result.get("summary", result)


def _key(result: dict[str, Any]) -> tuple[str, str | None]:
    figures = _figures(result)
    return str(figures.get("artifact")), figures.get("target")


def pair_results(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[tuple[dict | None, dict | None]]:
    """Match by (artifact, target). Two one-model runs on the same target pair up even if the files'
    names differ (comparing two versions of a model)."""
    by_a = {_key(r): r for r in a}
    by_b = {_key(r): r for r in b}
    if len(a) == 1 and len(b) == 1 and not set(by_a) & set(by_b) and _key(a[0])[1] == _key(b[0])[1]:
        return [(a[0], b[0])]
    keys = list(dict.fromkeys([*by_a, *by_b]))
    return [(by_a.get(key), by_b.get(key)) for key in keys]


def raw_samples_ns(result: dict[str, Any]) -> list[float]:
    """The result's raw latencies in ns: `latencies_ns` (bench results) or `latencies_ms` (pipeline rows)."""
    if result.get("latencies_ns"):
        return [float(v) for v in result["latencies_ns"]]
    figures = _figures(result)
    millis = result.get("latencies_ms") or figures.get("latencies_ms") or []
    return [float(v) * 1e6 for v in millis]


def _center_ms(figures: dict[str, Any]) -> float:
    value = figures.get("p50_ms")
    if value is None:
        value = figures.get("mean_ms")
    if value is None:
        raise BenchError(f"result {figures.get('artifact')} has neither a median nor a mean latency",
                         hint="is this an edgekd bench result?")
    return float(value)


def _welch_from_summaries(fa: dict[str, Any], fb: dict[str, Any]) -> tuple[float | None, str]:
    """Welch's t-test on the means from count/mean/std (all a tool summary gives); (None, "none") without them."""
    figures = [(f.get("mean_ms"), f.get("std_ms"), f.get("runs")) for f in (fb, fa)]
    if any(value is None for triple in figures for value in triple) or any(int(n) < 2 for _, _, n in figures):
        return None, "none"
    (mean_b, std_b, n_b), (mean_a, std_a, n_a) = figures
    if std_a == 0 and std_b == 0:
        return (1.0 if mean_a == mean_b else 0.0), "welch-t-from-summary"
    from scipy.stats import ttest_ind_from_stats

    result = ttest_ind_from_stats(mean_b, std_b, int(n_b), mean_a, std_a, int(n_a), equal_var=False)
    return float(result.pvalue), "welch-t-from-summary"


def compare_pair(
    a: dict[str, Any] | None, b: dict[str, Any] | None, threshold: float, alpha: float
) -> ResultComparison:
    present = a or b
    assert present is not None  # pair_results never yields (None, None)
    artifact, target = _key(present)
    if a is None or b is None:
        fig = _figures(present)
        return ResultComparison(artifact, target, fig.get("p50_ms") if a else None, fig.get("p50_ms") if b else None,
                                None, None, "only-in-a" if a else "only-in-b", "none")
    fa, fb = _figures(a), _figures(b)
    if _key(b)[0] != artifact:  # two versions of one model, paired by target
        artifact = f"{artifact} → {_key(b)[0]}"
    a50, b50 = _center_ms(fa), _center_ms(fb)
    change = b50 / a50 - 1 if a50 > 0 else None
    raw_a, raw_b = raw_samples_ns(a), raw_samples_ns(b)
    if raw_a and raw_b:
        from scipy.stats import mannwhitneyu

        p_value: float | None = float(mannwhitneyu(raw_b, raw_a, alternative="two-sided").pvalue)
        significant = p_value < alpha
        method = "mann-whitney-u"
    elif fa.get("ci95_median_ms") or fb.get("ci95_median_ms"):
        lo_a, hi_a = fa.get("ci95_median_ms") or (a50, a50)
        lo_b, hi_b = fb.get("ci95_median_ms") or (b50, b50)
        p_value = None
        significant = lo_b > hi_a or hi_b < lo_a
        method = "ci-overlap"
    else:  # benchmark tools' summaries: no samples, no CI
        p_value, method = _welch_from_summaries(fa, fb)
        significant = p_value is not None and p_value < alpha
    verdict = "unchanged"
    if significant and change is not None and abs(change) > threshold:
        verdict = "regression" if change > 0 else "improvement"
    return ResultComparison(artifact, target, a50, b50, change, p_value, verdict, method,
                            int(fa.get("runs") or len(raw_a)), int(fb.get("runs") or len(raw_b)))


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
