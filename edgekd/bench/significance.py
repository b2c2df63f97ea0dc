"""Is B's latency different from A's, and does it matter? The one decision `bench compare` and
`report --compare` both use, so the two commands can never disagree on the same pair of runs.

A change counts when the centres (median, else mean) differ by more than `threshold` (relative) AND the
difference is significant at level `alpha`:
- with raw samples on both sides: a two-sided Mann-Whitney U test on them (rank-based, so the unit and
  the shape of the distribution do not matter);
- else with a 95% CI of either median: the CIs must not overlap;
- else with count, mean and std on both sides (benchmark_model / onnxruntime_perf_test summaries):
  Welch's t-test on the means;
- else there is no evidence of noise either way and the change is not called ("none").
Samples of one run are not fully independent (drift, caches), so the p-value alone is overconfident: the
relative threshold keeps tiny-but-"significant" changes from failing CI.

Raw samples are nanoseconds (`latencies_ns`, integers, as the runner measures them) in every schema;
`raw_latencies_ns` also reads the milliseconds (`latencies_ms`) that report.json schema 1 and the pipeline
rows it was built from carried.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

#: Verdicts of `judge_latency` (the commands name them in their own words: regression / slower, ...).
SLOWER, FASTER, SAME = "slower", "faster", "same"


@dataclass(frozen=True)
class LatencyJudgement:
    change: float | None  # b/a - 1 of the centres; None when A's centre is missing or not positive
    p_value: float | None
    method: str  # mann-whitney-u | ci-overlap | welch-t-from-summary | none
    verdict: str  # slower | faster | same
    n_a: int
    n_b: int


def figures(row: dict[str, Any]) -> dict[str, Any]:
    """The figures of a bench row: flat (report rows) or nested under "summary" (BenchResult.to_dict)."""
    nested = row.get("summary")
    return {**row, **nested} if isinstance(nested, dict) else row


def raw_latencies_ns(row: dict[str, Any]) -> list[int]:
    """A row's raw latencies in ns: `latencies_ns`, or the legacy `latencies_ms` (report.json schema 1)."""
    found = figures(row)
    if found.get("latencies_ns"):
        return [int(v) for v in found["latencies_ns"] if _is_number(v)]
    return [round(float(v) * 1e6) for v in found.get("latencies_ms") or [] if _is_number(v)]


def centre_ms(row: dict[str, Any]) -> float | None:
    """The median latency of a row, else its mean (a tool summary without a median); None without either."""
    found = figures(row)
    for key in ("p50_ms", "mean_ms"):
        if _is_number(found.get(key)):
            return float(found[key])
    return None


def judge_latency(a: dict[str, Any], b: dict[str, Any], *, threshold: float, alpha: float) -> LatencyJudgement:
    """Judge row B against row A (see the module docstring)."""
    fa, fb = figures(a), figures(b)
    centre_a, centre_b = centre_ms(fa), centre_ms(fb)
    change = centre_b / centre_a - 1 if centre_a is not None and centre_b is not None and centre_a > 0 else None
    raw_a, raw_b = raw_latencies_ns(fa), raw_latencies_ns(fb)
    p_value: float | None = None
    if raw_a and raw_b:
        p_value, method = mann_whitney_p(raw_a, raw_b), "mann-whitney-u"
        significant = p_value < alpha
    elif fa.get("ci95_median_ms") or fb.get("ci95_median_ms"):
        ci_a, ci_b = _interval(fa.get("ci95_median_ms"), centre_a), _interval(fb.get("ci95_median_ms"), centre_b)
        significant = ci_a is not None and ci_b is not None and (ci_b[0] > ci_a[1] or ci_b[1] < ci_a[0])
        method = "ci-overlap"
    else:
        p_value, method = welch_from_summaries(fa, fb)
        significant = p_value is not None and p_value < alpha
    verdict = SAME
    if significant and change is not None and abs(change) > threshold:
        verdict = SLOWER if change > 0 else FASTER
    n_a = int(fa.get("runs") or 0) or len(raw_a)
    n_b = int(fb.get("runs") or 0) or len(raw_b)
    return LatencyJudgement(change, p_value, method, verdict, n_a, n_b)


def _interval(ci: Any, centre: float | None) -> tuple[float, float] | None:
    """A (low, high) CI, or the point (centre, centre) when there is none; None when neither is known."""
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(_is_number(v) for v in ci):
        return float(ci[0]), float(ci[1])
    return (centre, centre) if centre is not None else None


def mann_whitney_p(a: list[int], b: list[int]) -> float:
    """Two-sided Mann-Whitney U p-value of two non-empty sample sets (1.0 when every sample is the same)."""
    if min(a) == max(a) == min(b) == max(b):
        return 1.0
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(b, a, alternative="two-sided").pvalue)


def welch_from_summaries(fa: dict[str, Any], fb: dict[str, Any]) -> tuple[float | None, str]:
    """Welch's t-test on the means from count/mean/std (all a tool summary gives); (None, "none") without them."""
    triples = [(f.get("mean_ms"), f.get("std_ms"), f.get("runs")) for f in (fb, fa)]
    if any(not _is_number(value) for triple in triples for value in triple):
        return None, "none"
    (mean_b, std_b, n_b), (mean_a, std_a, n_a) = [(float(m), float(s), int(n)) for m, s, n in triples]  # type: ignore[arg-type]
    if n_a < 2 or n_b < 2:
        return None, "none"
    if std_a == 0 and std_b == 0:
        return (1.0 if mean_a == mean_b else 0.0), "welch-t-from-summary"
    from scipy.stats import ttest_ind_from_stats

    result = ttest_ind_from_stats(mean_b, std_b, n_b, mean_a, std_a, n_a, equal_var=False)
    return float(result.pvalue), "welch-t-from-summary"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
