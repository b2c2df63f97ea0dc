"""A fleet member lost part-way: the repeats it finished are kept beside its error (no device needed)."""

from __future__ import annotations

from pathlib import Path

from edgekd.bench.fleet import bench_fleet
from edgekd.bench.orchestrate import TargetLost
from edgekd.bench.result import BenchResult
from edgekd.errors import TargetError
from edgekd.measure import compute_stats


class Named:
    def __init__(self, name: str) -> None:
        self.name = name

    def cleanup(self) -> None:
        pass


def _result(target: str) -> BenchResult:
    return BenchResult(
        artifact="m",
        artifact_sha256="0" * 64,
        format="onnx",
        precision="fp32",
        target=target,
        runtime="ort",
        versions={},
        latencies_ns=[1000, 1100, 1200],
        stats=compute_stats([1000, 1100, 1200]),
        init_ms=None,
        first_ms=None,
        peak_rss_kb=None,
        baseline_rss_kb=None,
        warnings=["incomplete: flaky was lost after 1 of 2 repeat(s)"],
    )


def test_a_target_lost_part_way_keeps_its_finished_repeats(tmp_path: Path) -> None:
    def bench(target, artifacts, config):  # type: ignore[no-untyped-def]
        if target.name == "flaky":
            raise TargetLost(TargetError("lost the SSH connection to flaky"), [_result("flaky")])
        return [_result(target.name)]

    arrived: list[str] = []
    outcome = bench_fleet(
        [Named("steady"), Named("flaky")],
        ["artifact"],
        None,  # type: ignore[arg-type, list-item]
        bench=bench,
        on_result=lambda name, result: arrived.append(name),
    )
    assert [r.target for r in outcome.results["flaky"]] == ["flaky"] and "flaky" in outcome.errors
    assert outcome.summary()["flaky"] == {"results": 1, "error": "lost the SSH connection to flaky"}
    assert sorted(arrived) == ["flaky", "steady"]
