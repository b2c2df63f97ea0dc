"""Golden tests: recorded outputs of the real benchmark_model / onnxruntime_perf_test binaries.

Each recordings/android/<tool>/NAME.txt has NAME.expected.json beside it, the document it must parse into.
Regenerate a golden only after checking the new figures against the .txt by eye.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekd.errors import BenchError
from edgekd.targets.adb.parsers import PARSERS

pytestmark = pytest.mark.adb

RECORDINGS = Path(__file__).resolve().parents[2] / "support" / "recordings" / "android"
TOOLS = {"benchmark_model": "benchmark_model", "onnxruntime_perf_test": "ort_perf_test"}
CASES = sorted(p for tool in TOOLS for p in (RECORDINGS / tool).glob("*.txt") if not p.stem.startswith("error_"))
ERRORS = sorted(p for tool in TOOLS for p in (RECORDINGS / tool).glob("error_*.txt"))


def _parse(path: Path) -> dict:
    return PARSERS[TOOLS[path.parent.name]](path.read_text())


@pytest.mark.parametrize("recording", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_parser_matches_golden(recording: Path) -> None:
    golden = json.loads(recording.with_suffix(".expected.json").read_text())
    assert _parse(recording) == golden


@pytest.mark.parametrize("recording", ERRORS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_tool_failure_is_a_bench_error_quoting_the_tool(recording: Path) -> None:
    with pytest.raises(BenchError) as caught:
        _parse(recording)
    last_error = [line for line in recording.read_text().splitlines() if line.strip()][-1]
    assert last_error in caught.value.message
    assert caught.value.hint


def test_goldens_cover_the_formats_that_matter() -> None:
    """Every memory-line generation, e-notation, percentiles and ORT's compact form are represented."""
    texts = "\n".join(p.read_text() for p in CASES)
    for marker in (
        "Memory footprint delta",
        "Peak memory footprint (MB): init=",
        "via periodic monitoring",
        "e+06",
        "median=",
        "P999 Latency",
        "Session creation time cost:0.",
        "INFO: count=",
    ):
        assert marker in texts, marker


def test_benchmark_model_units_and_run_split() -> None:
    """µs -> ms, the *last* count line is the measured one, and e-notation survives."""
    doc = _parse(RECORDINGS / "benchmark_model" / "riscv_qemu_op_profiling.txt")
    assert doc["schema"] == "edgekd.run/1" and doc["latencies_ns"] is None
    assert doc["summary"]["count"] == 50 and doc["summary"]["warmup_count"] == 1
    assert doc["summary"]["mean_ms"] == pytest.approx(2950.34)
    assert doc["init_ms"] == pytest.approx(17.187) and doc["first_ms"] == pytest.approx(3512.391)
    assert doc["peak_rss_kb"] is None and "delta" in doc["notes"][0]


@pytest.mark.parametrize("label", ["Total inference requests", "Peak working set size", "Average inference time cost"])
def test_an_overflowing_number_is_a_bench_error(label: str) -> None:
    import re

    text = (RECORDINGS / "onnxruntime_perf_test" / "pixel6_resnet18_lutnn.txt").read_text(encoding="utf-8")
    garbled = re.sub(re.escape(label) + r"(:\s*)[\d.]+", lambda m: label + m.group(1) + "1e999", text)
    assert garbled != text
    with pytest.raises(BenchError, match="impossible number"):
        PARSERS["ort_perf_test"](garbled)
