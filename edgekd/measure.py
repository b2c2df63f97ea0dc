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
    """Summary of one set of latencies, all in nanoseconds."""

    n: int
    p50_ns: float
    p90_ns: float
    p99_ns: float
    mean_ns: float
    std_ns: float
    iqr_ns: float
    mad_ns: float  # median absolute deviation (unscaled)
    min_ns: float
    max_ns: float
    ci95_median_ns: tuple[float, float]
    unstable: bool
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def ms(self) -> dict[str, Any]:
        """The same figures in milliseconds, keyed like BenchResult.summary()."""
        return {
            "p50_ms": self.p50_ns / 1e6,
            "p90_ms": self.p90_ns / 1e6,
            "p99_ms": self.p99_ns / 1e6,
            "mean_ms": self.mean_ns / 1e6,
            "std_ms": self.std_ns / 1e6,
            "iqr_ms": self.iqr_ns / 1e6,
            "mad_ms": self.mad_ns / 1e6,
            "min_ms": self.min_ns / 1e6,
            "max_ms": self.max_ns / 1e6,
            "ci95_median_ms": [self.ci95_median_ns[0] / 1e6, self.ci95_median_ns[1] / 1e6],
            "runs": self.n,
            "unstable": self.unstable,
        }

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ci95_median_ns"] = list(self.ci95_median_ns)
        data["warnings"] = list(self.warnings)
        return data

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Stats:
        values = dict(data)
        values["ci95_median_ns"] = tuple(values["ci95_median_ns"])
        values["warnings"] = tuple(values.get("warnings", ()))
        return Stats(**values)


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
    """Per-window summaries for sustained mode: median, p90 and the temperatures read after each window."""
    rows = []
    for index, window in enumerate(windows):
        chunk = list(latencies_ns[window["start"] : window["end"]])
        row: dict[str, Any] = {"window": index, "runs": len(chunk), "t_s": window.get("t_s"),
                               "temps_c": window.get("temps_c", {})}
        if chunk:
            stats = compute_stats(chunk)
            row.update({"p50_ms": stats.p50_ns / 1e6, "p90_ms": stats.p90_ns / 1e6, "mean_ms": stats.mean_ns / 1e6})
        rows.append(row)
    if len(rows) >= 2 and "p50_ms" in rows[0] and "p50_ms" in rows[-1] and rows[0]["p50_ms"] > 0:
        rows[-1]["drift_vs_first"] = rows[-1]["p50_ms"] / rows[0]["p50_ms"] - 1.0
    return rows
