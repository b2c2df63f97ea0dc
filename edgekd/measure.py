"""Statistics over raw latency samples, computed on the host (the runner only measures).

Percentiles use numpy's linear interpolation. The 95% confidence interval of the median is the
distribution-free order-statistic interval (binomial, exact up to 1000 samples, normal approximation
above), so it needs no assumption about the latency distribution, which is skewed and often bimodal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

#: IQR/median above this marks a measurement unstable (pyperf and torch.utils.benchmark use the same idea).
UNSTABLE_IQR_RATIO = 0.1


@dataclass(frozen=True)
class Stats:
    """Summary of one set of latencies, all in nanoseconds.

    Computed from raw samples (`source = "samples"`, every figure known) or taken from a benchmark tool's
    printed summary (`source = "tool-summary"`, see `from_summaries`): then a figure the tool does not
    print is None rather than estimated."""

    n: int
    p50_ns: float | None
    p90_ns: float | None
    p99_ns: float | None
    mean_ns: float
    std_ns: float | None
    iqr_ns: float | None
    mad_ns: float | None  # median absolute deviation (unscaled)
    min_ns: float | None
    max_ns: float | None
    ci95_median_ns: tuple[float, float] | None
    unstable: bool
    warnings: tuple[str, ...] = field(default_factory=tuple)
    source: str = "samples"  # samples | tool-summary

    @property
    def center_ns(self) -> float:
        """The median where known, else the mean (tool summaries without percentiles)."""
        return self.p50_ns if self.p50_ns is not None else self.mean_ns

    def ms(self) -> dict[str, Any]:
        """The same figures in milliseconds, keyed like BenchResult.summary() (None where unknown)."""
        return {
            "p50_ms": _ms(self.p50_ns),
            "p90_ms": _ms(self.p90_ns),
            "p99_ms": _ms(self.p99_ns),
            "mean_ms": self.mean_ns / 1e6,
            "std_ms": _ms(self.std_ns),
            "iqr_ms": _ms(self.iqr_ns),
            "mad_ms": _ms(self.mad_ns),
            "min_ms": _ms(self.min_ns),
            "max_ms": _ms(self.max_ns),
            "ci95_median_ms": None if self.ci95_median_ns is None else [v / 1e6 for v in self.ci95_median_ns],
            "runs": self.n,
            "unstable": self.unstable,
        }

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ci95_median_ns"] = None if self.ci95_median_ns is None else list(self.ci95_median_ns)
        data["warnings"] = list(self.warnings)
        return data

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Stats:
        values = dict(data)
        ci = values.get("ci95_median_ns")
        values["ci95_median_ns"] = None if ci is None else tuple(ci)
        values["warnings"] = tuple(values.get("warnings", ()))
        return Stats(**values)

    @staticmethod
    def from_summaries(summaries: Sequence[dict[str, Any]], tool: str) -> Stats:
        """Stats from benchmark tools' printed summaries (one per repeat; figures in ms, see
        edgekd.targets.adb.parsers): count, mean_ms, std_ms, min_ms, max_ms and whichever of p50/p90/p99
        the tool prints. Count, mean, std (pooled), min and max combine exactly over repeats; percentiles
        of several repeats are the median of the repeats' percentiles (said so in the warnings). IQR, MAD
        and the median's CI need the samples: None. Unstable when std/mean > 0.1/1.349, the coefficient of
        variation equivalent to IQR/median > 0.1 for a normal distribution."""
        if not summaries or any(s.get("mean_ms") is None for s in summaries):
            raise ValueError(f"{tool} printed no average latency")
        counts = [int(s.get("count") or 0) for s in summaries]
        total = sum(counts)
        weights = counts if total else [1] * len(summaries)
        mean = sum(w * s["mean_ms"] for w, s in zip(weights, summaries)) / sum(weights)
        std = _pooled_std(summaries, weights, mean)
        lows, highs = [s.get("min_ms") for s in summaries], [s.get("max_ms") for s in summaries]
        warnings = [
            (
                f"statistics from {tool}'s printed summary: it gives no per-run samples, so IQR, MAD and "
                "the median's confidence interval are unavailable"
            )
        ]
        percentiles: dict[str, float | None] = {}
        for key in ("p50_ms", "p90_ms", "p99_ms"):
            values = [s.get(key) for s in summaries]
            percentiles[key] = None if None in values else _median(values)  # type: ignore[arg-type]
        missing = [key.removesuffix("_ms") for key, value in percentiles.items() if value is None]
        if missing:
            warnings.append(f"{tool} does not report {'/'.join(missing)}: left empty, not estimated")
        if len(summaries) > 1 and len(missing) < 3:
            warnings.append(
                f"percentiles over {len(summaries)} repeats are the median of each repeat's "
                f"{tool} percentiles (approximate)"
            )
        cv_limit = UNSTABLE_IQR_RATIO / 1.349
        unstable = bool(std is not None and mean > 0 and std / mean > cv_limit)
        if unstable:
            warnings.append(
                f"unstable: std/mean = {std / mean:.2f} > {cv_limit:.3f} (no samples for IQR/median) — "
                "close other programs, raise --runs or use a cooldown"
            )
        return Stats(
            n=total,
            p50_ns=_ns(percentiles["p50_ms"]),
            p90_ns=_ns(percentiles["p90_ms"]),
            p99_ns=_ns(percentiles["p99_ms"]),
            mean_ns=mean * 1e6,
            std_ns=_ns(std),
            iqr_ns=None,
            mad_ns=None,
            min_ns=None if None in lows else min(lows) * 1e6,  # type: ignore[type-var,operator]
            max_ns=None if None in highs else max(highs) * 1e6,  # type: ignore[type-var,operator]
            ci95_median_ns=None,
            unstable=unstable,
            warnings=tuple(warnings),
            source="tool-summary",
        )


def _ms(value_ns: float | None) -> float | None:
    return None if value_ns is None else value_ns / 1e6


def _ns(value_ms: float | None) -> float | None:
    return None if value_ms is None else value_ms * 1e6


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _pooled_std(summaries: Sequence[dict[str, Any]], weights: Sequence[int], mean: float) -> float | None:
    """The standard deviation of all runs together from each repeat's count, mean and std."""
    stds = [s.get("std_ms") for s in summaries]
    if None in stds:
        return None
    if len(summaries) == 1:
        return float(stds[0])  # type: ignore[arg-type]
    total = sum(weights)
    squares = sum((w - 1) * sd**2 + w * (s["mean_ms"] - mean) ** 2 for w, sd, s in zip(weights, stds, summaries))  # type: ignore[operator]
    return math.sqrt(squares / (total - 1)) if total > 1 else 0.0


def median_ci_ranks(n: int, confidence: float = 0.95) -> tuple[int, int]:
    """0-based ranks (lo, hi) of sorted samples bracketing the median with at least `confidence`.

    P(x_(lo) <= median <= x_(hi)) = P(lo+1 <= B <= hi) for B ~ Binomial(n, 1/2), 1-based order statistics.
    """
    if n < 1:
        raise ValueError("need at least one sample")
    alpha = 1.0 - confidence
    if n > 1000:
        half = 0.5 * _z(1 - alpha / 2) * math.sqrt(n)
        lo = max(0, math.floor(n / 2 - half) - 1)
        return lo, min(n - 1, math.ceil(n / 2 + half))
    # Exact: the largest k with P(B < k) <= alpha/2 (B ~ Binomial(n, 1/2)), then [x_(k), x_(n-k+1)].
    total = 2**n
    cumulative = 0
    k = 0
    while k < n:
        nxt = cumulative + math.comb(n, k)
        if nxt / total > alpha / 2:
            break
        cumulative = nxt
        k += 1
    # k successes below keep the coverage; k == 0 means even min..max is under `confidence`.
    lo = max(k - 1, 0)
    hi = min(n - k, n - 1)
    return lo, hi


def _z(p: float) -> float:
    """Normal quantile via the inverse error function's Newton refinement (no scipy needed)."""
    x = 0.0
    for _ in range(60):
        cdf = 0.5 * (1 + math.erf(x / math.sqrt(2)))
        pdf = math.exp(-x * x / 2) / math.sqrt(2 * math.pi)
        x -= (cdf - p) / pdf
    return x


def compute_stats(latencies_ns: Sequence[int] | Sequence[float]) -> Stats:
    """p50/p90/p99, mean, std, IQR, MAD and the median's 95% CI; flags IQR/median > 0.1 as unstable."""
    import numpy as np

    samples = np.asarray(list(latencies_ns), dtype=np.float64)
    if samples.size == 0:
        raise ValueError("no latency samples to summarise")
    if not np.all(np.isfinite(samples)) or np.any(samples < 0):
        raise ValueError("latencies must be finite and non-negative")
    p25, p50, p75, p90, p99 = np.percentile(samples, [25, 50, 75, 90, 99])
    ordered = np.sort(samples)
    lo, hi = median_ci_ranks(samples.size)
    iqr = float(p75 - p25)
    warnings: list[str] = []
    unstable = bool(p50 > 0 and iqr / p50 > UNSTABLE_IQR_RATIO)
    if unstable:
        warnings.append(
            f"unstable: IQR/median = {iqr / p50:.2f} > {UNSTABLE_IQR_RATIO} — close other programs, pin cores, "
            "raise --runs or use a cooldown"
        )
    if samples.size < 10:
        warnings.append(f"only {samples.size} samples: percentiles and the confidence interval are rough")
    return Stats(
        n=int(samples.size),
        p50_ns=float(p50),
        p90_ns=float(p90),
        p99_ns=float(p99),
        mean_ns=float(samples.mean()),
        std_ns=float(samples.std(ddof=1)) if samples.size > 1 else 0.0,
        iqr_ns=iqr,
        mad_ns=float(np.median(np.abs(samples - p50))),
        min_ns=float(ordered[0]),
        max_ns=float(ordered[-1]),
        ci95_median_ns=(float(ordered[lo]), float(ordered[hi])),
        unstable=unstable,
        warnings=tuple(warnings),
    )


def window_stats(latencies_ns: Sequence[int], windows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-window summaries for sustained mode: median, p90, and the temperatures and core frequencies (kHz)
    read after each window."""
    rows = []
    for index, window in enumerate(windows):
        chunk = list(latencies_ns[window["start"] : window["end"]])
        row: dict[str, Any] = {
            "window": index,
            "runs": len(chunk),
            "t_s": window.get("t_s"),
            "temps_c": window.get("temps_c", {}),
            "freq_khz": window.get("freq_khz"),
        }
        if chunk:
            stats = compute_stats(chunk)
            figures = {"p50_ms": stats.p50_ns, "p90_ms": stats.p90_ns, "mean_ms": stats.mean_ns}
            row.update({key: None if ns is None else ns / 1e6 for key, ns in figures.items()})
        rows.append(row)
    if len(rows) >= 2 and "p50_ms" in rows[0] and "p50_ms" in rows[-1] and rows[0]["p50_ms"] > 0:
        rows[-1]["drift_vs_first"] = rows[-1]["p50_ms"] / rows[0]["p50_ms"] - 1.0
    return rows
