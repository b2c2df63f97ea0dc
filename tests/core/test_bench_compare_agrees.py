"""`edgekd bench compare` and `edgekd report --compare` give the same latency verdict on the same pair of runs.

Both commands' own code paths are fed one pair of sample sets: `bench compare` as BenchResult dicts (raw
samples in ns beside their summary), `report --compare` as report.json documents whose bench rows are built
by the report's own `bench_row`. Before the two shared one decision (edgekd.bench.significance) they could
disagree: the report called any p50 shift beyond the tolerance "slower" when a side had fewer than 5 samples.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from edgekd.bench.compare import compare
from edgekd.measure import compute_stats
from edgekd.report.build import bench_row
from edgekd.report.compare import compare_reports
from edgekd.report.schema import REPORT_SCHEMA

BENCH_TO_REPORT = {"regression": "slower", "improvement": "faster", "unchanged": "same"}

samples = st.lists(st.integers(min_value=50_000, max_value=5_000_000), min_size=1, max_size=40)


def result(latencies_ns: list[int], *, raw: bool) -> dict[str, Any]:
    """A bench result as `edgekd bench --json` writes it (figures under "summary"); raw=False: a tool's
    summary only (no samples, no CI: the decision falls back to Welch's t on count/mean/std)."""
    figures = {"artifact": "student_int8", "target": "local", "runtime": "ort", **compute_stats(latencies_ns).ms()}
    if not raw:
        figures.pop("ci95_median_ms", None)
    return {
        "artifact": "student_int8",
        "target": "local",
        "latencies_ns": latencies_ns if raw else [],
        "summary": figures,
    }


def report(results: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schema": REPORT_SCHEMA, "run": {"name": "r"}, "artifacts": [], "parity": [], "distill": None,
            "bench": [bench_row(r) for r in results]}  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    a=samples,
    b=samples,
    scale=st.sampled_from([1.0, 1.02, 1.1, 1.5, 0.7]),
    raw_a=st.booleans(),
    raw_b=st.booleans(),
    threshold=st.sampled_from([0.0, 0.05, 0.2]),
    alpha=st.sampled_from([0.01, 0.05]),
)
def test_both_commands_give_the_same_verdict_on_the_same_pair(
    a: list[int], b: list[int], scale: float, raw_a: bool, raw_b: bool, threshold: float, alpha: float
) -> None:
    b = [max(1, round(v * scale)) for v in b]
    side_a, side_b = [result(a, raw=raw_a)], [result(b, raw=raw_b)]
    [bench] = compare(side_a, side_b, threshold=threshold, alpha=alpha).rows
    [latency] = compare_reports(report(side_a), report(side_b), latency_tolerance=threshold, alpha=alpha)["latency"]
    assert BENCH_TO_REPORT[bench.verdict] == latency["verdict"]
    assert bench.p_value == latency["p_value"] and bench.method == latency["method"]


def test_few_samples_and_a_big_shift_is_not_a_regression_in_either_command() -> None:
    """The case that used to disagree: 3 samples a side, 50% slower. Three samples cannot show it at 1%."""
    a, b = [1_000_000, 1_100_000, 900_000], [1_500_000, 1_650_000, 1_350_000]
    [bench] = compare([result(a, raw=True)], [result(b, raw=True)]).rows
    [latency] = compare_reports(report([result(a, raw=True)]), report([result(b, raw=True)]))["latency"]
    assert (bench.verdict, latency["verdict"]) == ("unchanged", "same")
    assert bench.method == latency["method"] == "mann-whitney-u" and bench.p_value == latency["p_value"] > 0.01
