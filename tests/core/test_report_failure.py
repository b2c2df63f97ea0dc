"""A run whose stage failed: report.json/html/md and `edgekd report` name the failure, never "all pass".

The failed stage's manifest is the one edgekd.pipeline writes when a stage raises (`"status": "failed"`
and an `"error"` record); tests/support/report_run.fail_stage writes the same document.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from edgekd import console
from edgekd.commands.report import report_cmd
from edgekd.config.report import ReportConfig
from edgekd.report import write_reports
from edgekd.report.build import build_report
from tests.support.report_run import fail_stage, make_run_dir

MESSAGE = "TensorFlow Lite Micro has no kernel for RELU_0_TO_1 (HardSigmoid) in student.int8.tflite"
HINT = 'use a student without HardSigmoid, or [handoff] platform = "linux"'


def _failed_handoff(root: Path) -> Path:
    run = make_run_dir(root)  # every stage done, all five artifacts... then handoff fails
    fail_stage(run, "handoff", error_type="HandoffError", message=MESSAGE, hint=HINT)
    return run


def test_report_json_names_the_failed_stage(tmp_path: Path) -> None:
    report = build_report(_failed_handoff(tmp_path))
    assert report["failure"] == {
        "stage": "handoff",
        "type": "HandoffError",
        "message": MESSAGE,
        "hint": HINT,
        "exit_code": 1,
        "not_run": [],
    }
    assert report["passed"] is False  # parity rows alone would have said True
    status = {row["stage"]: row for row in report["stages"]}
    assert status["handoff"]["status"] == "failed" and status["handoff"]["error"]["type"] == "HandoffError"
    assert report["handoff"] is None  # the failed manifest is not read as a bundle
    assert report["warnings"][0] == {
        "source": "handoff",
        "artifact": None,
        "target": None,
        "message": f"stage handoff failed (HandoffError): {MESSAGE}",
    }


def test_stages_kept_from_running_are_not_run_and_their_old_manifests_ignored(tmp_path: Path) -> None:
    """tflite fails; verify, bench and handoff manifests left by an earlier run must not be shown as done."""
    run = make_run_dir(tmp_path)
    fail_stage(
        run,
        "tflite",
        error_type="ConversionError",
        message="onnx2tf wrote no model",
        not_run=("verify", "bench", "handoff"),
    )
    report = build_report(run)
    status = {row["stage"]: row["status"] for row in report["stages"]}
    assert status["tflite"] == "failed"
    assert [status[s] for s in ("verify", "bench", "handoff")] == ["not run"] * 3
    assert report["parity"] == [] and report["bench"] == [] and report["handoff"] is None
    assert not [v for v in report["verdicts"] if v["code"] in ("int8_slower_than_fp32", "energy_unavailable")]
    messages = [w["message"] for w in report["warnings"]]
    assert "stage bench did not run (stage tflite failed); its section is empty" in messages
    assert report["passed"] is False


def test_a_stage_run_after_the_failure_is_kept(tmp_path: Path) -> None:
    """`run --only bench` after a failed tflite: that bench result is newer than the failure, so it is shown."""
    run = make_run_dir(tmp_path)
    fail_stage(
        run,
        "tflite",
        error_type="ConversionError",
        message="onnx2tf wrote no model",
        not_run=("verify", "bench", "handoff"),
        finished_at="2026-01-01T11:00:00+0000",
    )
    report = build_report(run)
    status = {row["stage"]: row["status"] for row in report["stages"]}
    assert status == {**status, "tflite": "failed", "verify": "done", "bench": "done", "handoff": "done"}
    assert report["bench"]


def test_html_and_markdown_show_the_failure_first(tmp_path: Path) -> None:
    run = _failed_handoff(tmp_path)
    write_reports(run, build_report(run), ReportConfig())
    html = (run / "report.html").read_text(encoding="utf-8")
    assert 'id="failure"' in html and html.index('id="failure"') < html.index("artifacts fail parity")
    assert "run failed at stage handoff (HandoffError)" in html and "RELU_0_TO_1" in html
    assert '<li class="failed">handoff<span>failed: HandoffError</span></li>' in html
    markdown = (run / "report.md").read_text(encoding="utf-8")
    first = markdown.splitlines()[2]
    assert first.startswith("**❌ Run failed at stage handoff** (HandoffError): TensorFlow Lite Micro")
    assert "hint: use a student without HardSigmoid" in markdown
    assert "handoff ✗ failed" in markdown


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _options(json_output: bool = typer.Option(False, "--json")) -> None:
        console.set_mode(json_output=json_output)

    app.command("report")(report_cmd)
    return app


def test_report_command_says_the_run_failed(tmp_path: Path) -> None:
    """Issue 21 item 9: every artifact passes parity, handoff failed: the failure comes first."""
    run = _failed_handoff(tmp_path)
    verify = run / ".edgekd" / "stages" / "verify.json"
    data = json.loads(verify.read_text())
    for row in data["summary"]["rows"]:
        row.update(passed=True, failures=[])
    verify.write_text(json.dumps(data))
    result = CliRunner().invoke(_app(), ["report", str(run)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())  # rich wraps at 80 columns
    assert text.startswith(f"run failed at stage handoff (HandoffError): {MESSAGE} all artifacts pass parity;")
    as_json = CliRunner().invoke(_app(), ["--json", "report", str(run)])
    data = json.loads(as_json.stdout)
    assert data["passed"] is False and data["failure"]["stage"] == "handoff" and data["verdicts"]
    console.set_mode()


def test_a_run_with_no_stage_manifest_yet_still_reports(tmp_path: Path) -> None:
    """The pipeline made .edgekd/ but no stage finished, nor could record its failure (e.g. a full disk)."""
    run = tmp_path / "run"
    (run / ".edgekd" / "tmp").mkdir(parents=True)
    report = build_report(run)
    assert report["artifacts"] == [] and report["verdicts"] == [] and report["passed"] is None
    assert report["warnings"][0]["message"] == "no stage has finished in this run directory yet"
    assert all(row["status"] == "not run" for row in report["stages"])


def test_a_run_that_failed_at_its_first_stage_still_reports(tmp_path: Path) -> None:
    run = tmp_path / "run"
    fail_stage(
        run,
        "data",
        error_type="DataError",
        message="the data set is empty",
        not_run=("teacher", "distill", "export", "calibrate", "quantize", "tflite", "verify", "bench", "handoff"),
    )
    report = build_report(run)
    write_reports(run, report, ReportConfig())
    assert report["failure"]["stage"] == "data" and report["verdicts"] == []
    assert report["artifacts"] == [] and report["distill"] is None and report["data"] is None
    assert "Run failed at stage data" in (run / "report.md").read_text(encoding="utf-8")


def test_a_gate_stop_names_the_stage_and_drops_older_results_of_the_stages_it_kept_from_running() -> None:
    """A parity gate stops the run after verify finished: verify's rows stay, the old handoff result of an
    earlier run is not read as current, and a handoff that ran after the stop (a later --only run) is."""
    from edgekd.report.failures import split_failures

    gate = {"type": "ParityError", "message": "1 artifact(s) failed the parity gate", "hint": None, "exit_code": 1,
            "not_run": ["bench", "handoff"], "at": "2026-12-02T10:00:00+0000"}  # fmt: skip
    verify = {"status": "ok", "finished_at": "2026-12-02T09:59:59+0000", "summary": {"rows": []}, "gate": gate}
    old_handoff = {"status": "ok", "finished_at": "2026-12-01T08:00:00+0000", "summary": {"path": "handoff"}}
    done, failures = split_failures({"verify": verify, "handoff": old_handoff})
    assert [f["stage"] for f in failures] == ["verify"] and failures[0]["gate"] is True
    assert "verify" in done and "handoff" not in done
    newer = {**old_handoff, "finished_at": "2026-12-02T11:00:00+0000"}
    done, _ = split_failures({"verify": verify, "handoff": newer})
    assert "handoff" in done
