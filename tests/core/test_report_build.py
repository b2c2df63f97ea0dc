"""report.json assembly from stage manifests: the contract, partial runs, bad manifests, Pareto, warnings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekd.errors import UsageError
from edgekd.report.build import MAX_LATENCY_SAMPLES, REPORT_SCHEMA, build_report
from tests.support.report_run import ARTIFACTS, make_run_dir

CONTRACT = {
    "artifacts": {"name", "format", "precision", "path", "sha256", "size_bytes"},
    "distill": {"teacher_accuracy", "student_accuracy", "scratch_accuracy", "teacher_params", "student_params"},
    "parity": {"artifact", "top1_agreement", "max_abs_error", "accuracy", "passed", "ops"},
    "bench": {
        "artifact",
        "target",
        "runtime",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "peak_rss_kb",
        "energy_j_per_inference",
        "energy_unavailable",
    },
}


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run_dir(tmp_path_factory.mktemp("run"))


def test_contract_keys_and_types(full_run: Path) -> None:
    report = build_report(full_run)
    assert report["schema"] == REPORT_SCHEMA
    json.dumps(report)  # serialisable as is
    for section in ("artifacts", "parity", "bench"):
        assert report[section], section
        for row in report[section]:
            assert CONTRACT[section] <= set(row), (section, CONTRACT[section] - set(row))
    assert CONTRACT["distill"] <= set(report["distill"])
    assert report["handoff"]["path"] == "handoff"
    for row in report["parity"]:
        assert 0.0 <= row["accuracy"] <= 1.0


def test_artifacts_are_the_student_and_its_exports(full_run: Path) -> None:
    report = build_report(full_run)
    names = [a["name"] for a in report["artifacts"]]
    assert names == [a[0] for a in ARTIFACTS]  # no teacher, no scratch baseline, no calibration npz
    for art in report["artifacts"]:
        assert art["format"] in ("torch", "onnx", "tflite")
        assert art["size_bytes"] == (full_run / art["path"]).stat().st_size
    assert report["distill"]["teacher_size_bytes"] == (full_run / "teacher.pt").stat().st_size


def test_partial_run_still_reports(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path, stages=("data", "teacher", "distill"))
    report = build_report(run)
    assert report["parity"] == [] and report["bench"] == [] and report["handoff"] is None
    assert report["passed"] is None
    assert [a["name"] for a in report["artifacts"]] == ["student_torch"]
    status = {s["stage"]: s["status"] for s in report["stages"]}
    assert status["distill"] == "done" and status["bench"] == "not run"
    messages = " ".join(w["message"] for w in report["warnings"])
    assert "verify did not run" in messages and "bench did not run" in messages


def test_unreadable_manifest_becomes_a_warning(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path)
    (run / ".edgekd" / "stages" / "bench.json").write_text("{truncated", encoding="utf-8")
    report = build_report(run)
    assert report["bench"] == []
    assert any("bench.json is unreadable" in w["message"] for w in report["warnings"])
    assert len(report["parity"]) == 5


def test_missing_artifact_file_is_reported(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path)
    (run / "student.int8.onnx").unlink()
    report = build_report(run)
    row = next(a for a in report["artifacts"] if a["name"] == "onnx_int8")
    assert row["size_bytes"] is None
    assert any(w["artifact"] == "onnx_int8" and "missing" in w["message"] for w in report["warnings"])


@pytest.mark.parametrize("given", ["missing", "plain_dir"])
def test_not_a_run_directory(tmp_path: Path, given: str) -> None:
    target = tmp_path / "nope"
    if given == "plain_dir":
        target.mkdir()
    with pytest.raises(UsageError) as info:
        build_report(target)
    assert info.value.hint


def test_pareto_flags_dominated_points(full_run: Path) -> None:
    points = {(p["artifact"], p["target"]): p for p in build_report(full_run)["pareto"]}
    # torch: same accuracy as tflite_fp32 but bigger and slower -> dominated
    assert points[("student_torch", "local")]["pareto_optimal"] is False
    assert points[("onnx_fp32", "local")]["pareto_optimal"] is False
    assert points[("tflite_int8", "local")]["pareto_optimal"] is True  # smallest and fastest
    assert points[("tflite_fp32", "pi5")]["pareto_optimal"] is True  # most accurate among the fast ones


def test_warnings_cover_parity_noise_throttling_and_energy(full_run: Path) -> None:
    warnings = build_report(full_run)["warnings"]
    by_source: dict[str, list[dict]] = {}
    for item in warnings:
        by_source.setdefault(item["source"], []).append(item)
    assert [w["artifact"] for w in by_source["verify"]] == ["tflite_int8"]
    bench_messages = " ".join(w["message"] for w in by_source["bench"])
    assert "unstable" in bench_messages and "throttling" in bench_messages
    # one energy line per target and reason, not one per artifact; pi5 measured energy
    assert [(w["target"], w["artifact"]) for w in by_source["energy"]] == [("local", None)]
    assert "RAPL" in by_source["energy"][0]["message"]


def test_long_latency_series_are_thinned(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path, runs=MAX_LATENCY_SAMPLES * 2 + 7)
    row = build_report(run)["bench"][0]
    assert len(row["latencies_ns"]) == MAX_LATENCY_SAMPLES
    assert row["latencies_thinned_from"] == MAX_LATENCY_SAMPLES * 2 + 7


def test_bench_rows_in_to_dict_form_with_nanoseconds(tmp_path: Path) -> None:
    """BenchResult.to_dict() rows (figures under "summary", raw latencies in ns) are read the same way."""
    run = make_run_dir(tmp_path, stages=("bench",))
    manifest = run / ".edgekd" / "stages" / "bench.json"
    data = json.loads(manifest.read_text())
    first = data["summary"]["results"][0]
    flat = dict(first)
    nested = {
        "artifact": first["artifact"],
        "target": first["target"],
        "latencies_ns": first["latencies_ns"],
        "summary": {k: v for k, v in first.items() if k != "latencies_ns"},
    }
    data["summary"]["results"][0] = nested
    manifest.write_text(json.dumps(data))
    row = build_report(run)["bench"][0]
    assert row["p50_ms"] == flat["p50_ms"] and row["peak_rss_kb"] == flat["peak_rss_kb"]
    assert row["latencies_ns"] == flat["latencies_ns"] and all(isinstance(v, int) for v in row["latencies_ns"])
    assert "latencies_ms" not in row


def test_bench_rows_of_an_older_edgekd_in_milliseconds_become_nanoseconds(tmp_path: Path) -> None:
    """A bench manifest written before schema 2 (raw samples as `latencies_ms`) still reports, in ns."""
    run = make_run_dir(tmp_path, stages=("bench",))
    manifest = run / ".edgekd" / "stages" / "bench.json"
    data = json.loads(manifest.read_text())
    first = data["summary"]["results"][0]
    first["latencies_ms"] = [v / 1e6 for v in first.pop("latencies_ns")]
    manifest.write_text(json.dumps(data))
    row = build_report(run)["bench"][0]
    assert row["latencies_ns"] == [round(v * 1e6) for v in first["latencies_ms"]]
    assert "latencies_ms" not in row


def test_malformed_but_valid_json_manifests_do_not_crash(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path, stages=("data", "distill"))
    stages = run / ".edgekd" / "stages"
    (stages / "verify.json").write_text(json.dumps({"stage": "verify", "artifacts": 5, "summary": {"rows": "nope"}}))
    (stages / "bench.json").write_text(json.dumps({"stage": "bench", "summary": ["x"], "artifacts": [1, "a"]}))
    (stages / "export.json").write_text("[1, 2]")
    report = build_report(run)
    assert report["parity"] == [] and report["bench"] == []
    assert any("export.json is unreadable" in w["message"] for w in report["warnings"])


def test_kd_within_noise_is_a_warning(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path, stages=("distill",))
    manifest = run / ".edgekd" / "stages" / "distill.json"
    data = json.loads(manifest.read_text())
    data["summary"].update(kd_minus_scratch=-0.0056, within_noise=True)
    manifest.write_text(json.dumps(data))
    messages = [w["message"] for w in build_report(run)["warnings"] if w["source"] == "distill"]
    assert messages == [
        ("distillation did not measurably help: KD minus scratch student -0.56 pt (within noise, band ±1.21 pt)")
    ]


def test_identity_from_manifests_and_recipe(full_run: Path) -> None:
    from edgekd.recipe import parse_recipe

    found = build_report(full_run)["identity"]
    assert found["recipe_name"] is None and found["recipe_hash"] == "a" * 64  # from the ONNX export's metadata
    assert found["input_shape"] == [1, 8, 8] and found["num_classes"] == 10 and len(found["data_sha256"]) == 64
    recipe = parse_recipe({"run": {"name": "mine"}, "data": {"source": "digits"}})
    given = build_report(full_run, recipe=recipe)["identity"]
    assert given["recipe_name"] == "mine" and given["recipe_hash"] == recipe.recipe_hash()
