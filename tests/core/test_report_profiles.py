"""Per-op profiles in report.json / report.md / report.html, the fp32-vs-int8 view and the fallback verdict.

The bench stage's rows carry `profile` (OpProfile dicts, as `[bench] profile = true` leaves them); the profiles
here are written by the test (an fp32 ONNX model whose int8 twin pays for DequantizeLinear, a TFLite model
that asked for XNNPACK and left a RESIZE on the CPU, a TFLite model fully delegated, one without a profiler).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgekd.profile.schema import OpProfile, OpRow
from edgekd.report.build import build_report
from edgekd.report.html import render_html
from edgekd.report.markdown import render_markdown
from edgekd.report.plots import render_plots
from tests.support.report_run import make_run_dir

CPU = "CPUExecutionProvider"


def _profile(model: str, rows: list[tuple[str, str, str, float]], **extra: Any) -> dict[str, Any]:
    profile = OpProfile(
        runtime=extra.pop("runtime", "ort"),
        model=model,
        source="test",
        runs=50,
        rows=[OpRow(op, op_type, provider, ms) for op, op_type, provider, ms in rows],
        target="local",
        median_ms=extra.pop("median_ms", None),
        **extra,
    )
    return profile.to_dict()


PROFILES = {
    "onnx_fp32": _profile(
        "student.fp32.onnx",
        [("conv1", "Conv", CPU, 0.040), ("relu1", "Relu", CPU, 0.004), ("fc", "Gemm", CPU, 0.010)],
        median_ms=0.056,
        overhead="profiled median 0.070 ms vs unprofiled 0.056 ms (+25.0 %)",
    ),
    "onnx_int8": _profile(
        "student.int8.onnx",
        [
            ("q", "QuantizeLinear", CPU, 0.006),
            ("conv1", "QLinearConv", CPU, 0.030),
            ("dq1", "DequantizeLinear", CPU, 0.045),
            ("relu1", "Relu", CPU, 0.004),
            ("fc", "Gemm", CPU, 0.010),
        ],
    ),
    "tflite_fp32": _profile(
        "student.fp32.tflite",
        [("xnn", "TfLiteXNNPackDelegate", "XNNPACK", 0.020), ("resize", "RESIZE_BILINEAR", "CPU", 0.015)],
        runtime="tflite",
        requested=["XNNPACK"],
    ),
    "tflite_int8": _profile(
        "student.int8.tflite",
        [("xnn", "TfLiteXNNPackDelegate", "XNNPACK", 0.020)],
        runtime="tflite",
        requested=["XNNPACK"],
    ),
}


def _run_with_profiles(tmp_path: Path, profiles: dict[str, dict[str, Any]]) -> Path:
    run_dir = make_run_dir(tmp_path)
    manifest = run_dir / ".edgekd" / "stages" / "bench.json"
    data = json.loads(manifest.read_text())
    for row in data["summary"]["results"]:
        if row["target"] == "local" and row["artifact"] in profiles:
            row["profile"] = profiles[row["artifact"]]
        if row["target"] == "local" and row["artifact"] == "student_torch":
            row["profile"] = OpProfile.unavailable(
                "torch", "student.pt", "runtime torch has no per-op profiler in the runner", target="local"
            ).to_dict()
    manifest.write_text(json.dumps(data))
    return run_dir


def test_report_json_lists_the_profiles_and_the_int8_view_names_the_responsible_op_types(tmp_path: Path) -> None:
    report = build_report(_run_with_profiles(tmp_path, PROFILES))
    assert {(p["artifact"], p["target"]) for p in report["profiles"]} == {
        ("onnx_fp32", "local"),
        ("onnx_int8", "local"),
        ("tflite_fp32", "local"),
        ("tflite_int8", "local"),
        ("student_torch", "local"),
    }
    assert all("profile" not in row for row in report["bench"])  # moved, not copied
    (onnx,) = [c for c in report["profile_comparisons"] if c["format"] == "onnx"]
    assert (onnx["fp32"], onnx["int8"]) == ("onnx_fp32", "onnx_int8")
    assert onnx["int8_ms"] > onnx["fp32_ms"]
    assert onnx["slower"][0] == "DequantizeLinear" and "QuantizeLinear" in onnx["slower"]
    assert "Conv" in onnx["faster"]  # QLinearConv met the Conv it replaces


def test_fallback_verdict_for_a_partly_delegated_model_only(tmp_path: Path) -> None:
    report = build_report(_run_with_profiles(tmp_path, PROFILES))
    fallbacks = [v for v in report["verdicts"] if v["code"] == "accelerator_fallback"]
    assert len(fallbacks) == 1 and fallbacks[0]["severity"] == "warning"
    assert "student.fp32.tflite asked for XNNPACK on local" in fallbacks[0]["message"]
    assert "RESIZE_BILINEAR" in fallbacks[0]["message"]


def test_markdown_shows_the_per_op_view_for_every_profiled_artifact_and_cold_start(tmp_path: Path) -> None:
    text = render_markdown(build_report(_run_with_profiles(tmp_path, PROFILES)))
    assert "## Where the time goes (per-op profiles)" in text and "## Cold start" in text
    for name in ("onnx_fp32", "onnx_int8", "tflite_fp32", "tflite_int8"):
        assert f"### {name} on local" in text
    assert "No per-op profile: runtime torch has no per-op profiler in the runner" in text
    assert text.count("Top 5 ops:") == 4 and text.count("Time by op type:") == 4
    assert "int8 is slower; responsible: DequantizeLinear (+45.0 µs)" in text
    assert "profiler overhead: profiled median 0.070 ms vs unprofiled 0.056 ms (+25.0 %)" in text


def test_html_has_the_op_type_plot_tables_and_cold_start(tmp_path: Path) -> None:
    report = build_report(_run_with_profiles(tmp_path, PROFILES))
    plots = render_plots(report)
    assert "profile" in {plot.key for plot in plots}
    page = render_html(report, plots)
    assert '<section id="profile">' in page and 'id="plot-profile"' in page
    assert 'src="data:image/svg+xml;base64,' in page.split('id="plot-profile"')[1][:200]
    assert page.count("top 5 ops and time by op type") == 4
    assert "int8 is slower; responsible: DequantizeLinear" in page
    assert '<section id="coldstart">' in page and 'href="#profile"' in page


def test_without_profiles_there_is_no_profile_section_or_plot(tmp_path: Path) -> None:
    report = build_report(make_run_dir(tmp_path))
    assert report["profiles"] == [] and report["profile_comparisons"] == []
    assert "per-op" not in render_markdown(report)
    assert "profile" not in {plot.key for plot in render_plots(report)}


def test_layout_variants_meet_the_op_they_implement() -> None:
    """ORT's int8 graph runs NhwcMaxPool where the fp32 graph runs MaxPool: one row, not 'int8 only' + 'fp32 only'."""
    from edgekd.profile.views import compare_by_op_type

    fp32 = OpProfile(runtime="ort", model="a", source="t", rows=[OpRow("p", "MaxPool", CPU, 0.010)])
    int8 = OpProfile(runtime="ort", model="b", source="t", rows=[OpRow("p", "NhwcMaxPool", CPU, 0.020)])
    (row,) = compare_by_op_type(fp32, int8)
    assert (row["op_type"], row["verdict"], row["kernels_int8"]) == ("MaxPool", "slower", ["NhwcMaxPool"])


def test_long_op_type_tables_end_in_one_row_for_the_rest() -> None:
    from edgekd.report.profiles import TOP_OP_TYPES, profile_tables

    rows = [(f"n{i}", f"T{i}", "CPU", 0.001 * (i + 1)) for i in range(TOP_OP_TYPES + 5)]
    _, _, _, types = profile_tables(_profile("m.pt", rows, runtime="torch"))
    assert len(types) == TOP_OP_TYPES + 1 and types[-1][0] == "… 5 more op types" and types[-1][1] == 5
