"""The command line as a user meets it: real subprocesses, exit codes, one-line errors, no tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def edgekd(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgekd.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300, check=False
    )


def test_help_lists_every_command_and_imports_nothing_heavy() -> None:
    result = edgekd("--help")
    assert result.returncode == 0, result.stderr
    for command in (
        "run",
        "distill",
        "export",
        "quantize",
        "verify",
        "bench",
        "handoff",
        "report",
        "targets",
        "recipe",
    ):
        assert command in result.stdout
    probe = subprocess.run(
        [sys.executable, "-c", ("import sys, edgekd.cli; heavy = {'torch','tensorflow','onnx','onnxruntime','onnx2tf',"
         "'ai_edge_litert','matplotlib','sklearn','scipy'} & set(sys.modules); print(sorted(heavy))")],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    check=False,)  # fmt: skip
    assert probe.stdout.strip() == "[]", probe.stdout + probe.stderr


def test_unknown_recipe_key_is_one_line_with_exit_2(tmp_path: Path) -> None:
    recipe = tmp_path / "typo.toml"
    recipe.write_text('[bench]\ntargets = ["local"]\nwarmpu = 5\n')
    result = edgekd("run", str(recipe), "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    first = result.stderr.strip().splitlines()[0]
    assert first.startswith("error:") and "bench.warmpu" in first and "unknown key" in first
    assert "did you mean 'warmup'" in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "args, needle",
    [
        (["run", "does-not-exist.toml"], "does not exist"),
        (["run", "examples/digits.toml", "--only", "exprot"], "did you mean 'export'"),
        (["targets", "doctor", "lcoal"], "did you mean 'local'"),
    ],
)
def test_user_mistakes_end_in_a_clean_error(args: list[str], needle: str) -> None:
    result = edgekd(*args)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and needle in result.stderr


def test_targets_list_json_has_local() -> None:
    import json

    result = edgekd("--json", "targets", "list")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["targets"]["local"]["kind"] == "local"


def test_summary_line_says_unknown_and_no_baseline_instead_of_crashing() -> None:
    from edgekd.commands.run import distill_line

    line = distill_line({"teacher_accuracy": 0.97, "teacher_params": None, "student_accuracy": 0.9,
                         "student_params": 2410, "scratch_accuracy": None})  # fmt: skip
    assert line == "teacher 0.9700 (unknown params) · KD student 0.9000 (2,410) · no scratch baseline"
    assert "scratch 0.8500" in distill_line(
        {"scratch_accuracy": 0.85, "teacher_params": "12k"}
    )  # odd values shown as-is


def test_strict_fails_with_exit_3_on_chosen_verdicts_only() -> None:
    from edgekd.commands.run import StrictVerdictError, check_strict

    report = {"verdicts": [{"code": "energy_unavailable", "message": "no meter", "severity": "info"},
                           {"code": "kd_below_scratch", "message": "KD lost 3 pt", "severity": "warning"}]}  # fmt: skip
    with pytest.raises(StrictVerdictError, match="kd_below_scratch: KD lost 3 pt") as info:
        check_strict(report, True)  # true: every warning verdict, not the info ones
    assert info.value.exit_code == 3 and "energy_unavailable" not in info.value.message
    with pytest.raises(StrictVerdictError, match="energy_unavailable"):
        check_strict(report, ["energy_unavailable"])
    check_strict(report, False)
    check_strict(report, ["teacher_below_scratch"])
    check_strict({}, True)  # a report without verdicts fails nothing


def test_strict_verdict_with_an_unknown_code_is_refused_before_anything_runs(tmp_path: Path) -> None:
    result = edgekd(
        "run", "examples/digits.toml", "--out", str(tmp_path / "run"), "--strict-verdict", "kd_below_scrach"
    )
    assert result.returncode == 2 and "did you mean 'kd_below_scratch'" in result.stderr
    assert not (tmp_path / "run").exists()


def test_the_suite_never_writes_the_users_history() -> None:
    """Issue 21 item 16: conftest points EDGEKD_HISTORY at the session's temp dir, for subprocesses too."""
    probe = subprocess.run([sys.executable, "-c", "from edgekd.bench.history import default_history_path as p; print(p())"],
                           capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)  # fmt: skip
    path = Path(probe.stdout.strip())
    assert path.name == "history.sqlite" and not path.is_relative_to(Path.home() / ".local" / "share" / "edgekd")


def test_an_unknown_option_shows_clicks_usage_and_exits_2_through_typers_public_api() -> None:
    result = edgekd("run", "--bogus", "x")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "Usage: edgekd run" in result.stderr and "Try 'edgekd run --help' for help." in result.stderr
    assert "No such option: --bogus" in result.stderr
    private = [str(p.relative_to(ROOT)) for p in (ROOT / "edgekd").rglob("*.py") if "typer._click" in p.read_text()]
    assert private == []  # typer's vendored click is private; typer.TyperException is its public base
