"""The embedded default end to end: `edgekd run examples/digits.toml`, then again from the cache.

This is the spine's promise: five artifacts, each passing parity and each benchmarked locally, a firmware
bundle, the three reports; a rerun that is all cache hits; deleting one artifact redoes only its stage
and what follows from it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIVE = {("torch", "fp32"), ("onnx", "fp32"), ("onnx", "int8"), ("tflite", "fp32"), ("tflite", "int8")}

pytestmark = pytest.mark.slow


def edgekd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgekd.cli", *args], capture_output=True, text=True, cwd=ROOT, timeout=1800)


def statuses(out: Path) -> dict[str, str]:
    return {p.stem: json.loads(p.read_text())["key"] for p in (out / ".edgekd" / "stages").glob("*.json")}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "digits"
    result = edgekd("run", "examples/digits.toml", "--out", str(out))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


def test_report_has_five_artifacts_passing_parity_with_latency(demo_run: Path) -> None:
    report = json.loads((demo_run / "report.json").read_text())
    assert report["schema"] == "edgekd.report/1"
    kinds = {(a["format"], a["precision"]) for a in report["artifacts"]}
    assert FIVE <= kinds
    names = {a["name"]: a for a in report["artifacts"]}
    for artifact in names.values():
        assert (demo_run / artifact["path"]).exists() and artifact["size_bytes"] > 0
    parity = {row["artifact"]: row for row in report["parity"]}
    bench = {row["artifact"]: row for row in report["bench"] if row["target"] == "local"}
    for name, artifact in names.items():
        row = parity[name]
        assert row["passed"], row
        floor = 0.999 if artifact["precision"] == "fp32" else 0.95
        assert row["top1_agreement"] >= floor
        assert 0.0 <= row["accuracy"] <= 1.0 and row["max_abs_error"] is not None
        assert "ops" in row
        b = bench[name]
        assert 0 < b["p50_ms"] <= b["p90_ms"] <= b["p99_ms"]
        assert b["peak_rss_kb"] > 0
        assert (b["energy_j_per_inference"] is not None) or b["energy_unavailable"]
    distill = report["distill"]
    for key in ("teacher_accuracy", "student_accuracy", "scratch_accuracy"):
        assert 0.0 <= distill[key] <= 1.0
    assert distill["student_params"] <= 0.1 * distill["teacher_params"]
    assert report["handoff"]["path"]


def test_handoff_and_reports_are_written(demo_run: Path) -> None:
    handoff = demo_run / "handoff"
    for name in ("model_data.cc", "model_data.h", "op_resolver.h", "model_manifest.json", "golden.npz", "golden.h"):
        assert (handoff / name).exists(), name
    assert list(handoff.glob("*.tflite"))
    for name in ("report.json", "report.md", "report.html"):
        assert (demo_run / name).stat().st_size > 0


def test_rerun_is_all_cache_hits_and_deletion_redoes_only_downstream(demo_run: Path) -> None:
    before = {p.stem: p.stat().st_mtime_ns for p in (demo_run / ".edgekd" / "stages").glob("*.json")}
    result = edgekd("run", "examples/digits.toml", "--out", str(demo_run))
    assert result.returncode == 0, result.stderr[-2000:]
    after = {p.stem: p.stat().st_mtime_ns for p in (demo_run / ".edgekd" / "stages").glob("*.json")}
    assert before == after  # no manifest rewritten: every stage was a cache hit
    onnx = json.loads((demo_run / ".edgekd" / "stages" / "quantize.json").read_text())["artifacts"][0]["path"]
    (demo_run / onnx).unlink()
    result = edgekd("run", "examples/digits.toml", "--out", str(demo_run))
    assert result.returncode == 0, result.stderr[-2000:]
    again = {p.stem: p.stat().st_mtime_ns for p in (demo_run / ".edgekd" / "stages").glob("*.json")}
    rerun = {stage for stage in again if again[stage] != after[stage]}
    upstream = {"data", "teacher", "distill", "export", "calibrate", "tflite"}
    assert "quantize" in rerun and not (rerun & upstream)
