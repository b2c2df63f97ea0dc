"""Host-side statistics: exact figures on known samples, the median's CI coverage, the unstable flag."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgekd.measure import compute_stats, median_ci_ranks, window_stats


def test_known_samples_give_exact_figures() -> None:
    stats = compute_stats(list(range(1, 101)))  # 1..100 ns
    assert stats.n == 100
    assert stats.p50_ns == pytest.approx(50.5)
    assert stats.p90_ns == pytest.approx(90.1)
    assert stats.p99_ns == pytest.approx(99.01)
    assert stats.mean_ns == pytest.approx(50.5)
    assert stats.std_ns == pytest.approx(np.std(np.arange(1, 101), ddof=1))
    assert stats.iqr_ns == pytest.approx(49.5)
    assert stats.mad_ns == pytest.approx(25.0)
    assert stats.ci95_median_ns == (40.0, 61.0)  # order statistics 40 and 61 for n = 100 (textbook table)


def test_ci_ranks_match_the_binomial_distribution() -> None:
    from scipy.stats import binom

    for n in (6, 10, 25, 100, 999):
        lo, hi = median_ci_ranks(n)
        coverage = binom.cdf(hi, n, 0.5) - binom.cdf(lo, n, 0.5)  # P(lo+1 <= B <= hi)
        assert coverage >= 0.95
        narrower = binom.cdf(hi - 1, n, 0.5) - binom.cdf(lo + 1, n, 0.5)
        assert narrower < 0.95  # and it is the tightest symmetric interval that covers


def test_ci_of_large_samples_uses_the_normal_approximation() -> None:
    lo, hi = median_ci_ranks(10_000)
    assert (lo, hi) == (4901, 5098)
    assert median_ci_ranks(1001)[1] - median_ci_ranks(1001)[0] in (63, 64, 65)


def test_ci_covers_the_true_median_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(0)
    true_median = np.exp(10)  # lognormal(10, 0.3)
    hits = 0
    for _ in range(400):
        lo, hi = compute_stats(rng.lognormal(10, 0.3, 60)).ci95_median_ns
        hits += lo <= true_median <= hi
    assert 0.93 <= hits / 400 <= 0.995


def test_wide_spread_is_flagged_unstable() -> None:
    steady = compute_stats([100, 101, 99, 100, 102, 98, 100, 101, 99, 100, 100])
    noisy = compute_stats([100, 150, 80, 120, 90, 140, 70, 160, 100, 110, 95])
    assert not steady.unstable and steady.warnings == ()
    assert noisy.unstable and "IQR/median" in noisy.warnings[0]


def test_few_samples_are_warned_about_and_bad_samples_rejected() -> None:
    assert any("only 3 samples" in w for w in compute_stats([1, 2, 3]).warnings)
    with pytest.raises(ValueError):
        compute_stats([])
    with pytest.raises(ValueError):
        compute_stats([1, -5])


def test_stats_round_trip_through_dict() -> None:
    from edgekd.measure import Stats

    stats = compute_stats([5, 6, 7, 8, 9, 10, 11, 12, 13, 14])
    assert Stats.from_dict(stats.to_dict()) == stats


def test_window_stats_show_drift() -> None:
    latencies = [100] * 10 + [150] * 10
    rows = window_stats(
        latencies,
        [
            {"start": 0, "end": 10, "t_s": 1.0, "temps_c": {"cpu": 50.0}},
            {"start": 10, "end": 20, "t_s": 2.0, "temps_c": {"cpu": 80.0}},
        ],
    )
    assert [r["p50_ms"] for r in rows] == [100 / 1e6, 150 / 1e6]
    assert rows[-1]["drift_vs_first"] == pytest.approx(0.5)
    assert rows[1]["temps_c"] == {"cpu": 80.0}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=10**9), min_size=1, max_size=300))
def test_figures_are_ordered_and_the_ci_holds_the_median(samples: list[int]) -> None:
    stats = compute_stats(samples)
    assert stats.min_ns <= stats.p50_ns <= stats.p90_ns <= stats.p99_ns <= stats.max_ns
    assert stats.ci95_median_ns[0] <= stats.p50_ns <= stats.ci95_median_ns[1]
    assert stats.iqr_ns >= 0 and stats.mad_ns >= 0


def test_window_rows_carry_the_core_frequencies_read_after_each_window() -> None:
    from edgekd.measure import window_stats

    windows = [{"start": 0, "end": 3, "t_s": 1.0, "temps_c": {"cpu": 50.0}, "freq_khz": [2400000, 2400000]},
               {"start": 3, "end": 6, "t_s": 2.0, "temps_c": {"cpu": 71.0}, "freq_khz": [1500000, 1500000]}]  # fmt: skip
    rows = window_stats([1000, 1100, 1200, 2000, 2100, 2200], windows)
    assert [row["freq_khz"] for row in rows] == [[2400000, 2400000], [1500000, 1500000]]
