"""The command line as a user meets it: real subprocesses, exit codes, one-line errors, no tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def edgekd(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgekd.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_help_lists_every_command_and_imports_nothing_heavy() -> None:
    result = edgekd("--help")
    assert result.returncode == 0, result.stderr
    for command in ("run", "distill", "export", "quantize", "verify", "bench", "handoff", "report", "targets"):
        assert command in result.stdout
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, edgekd.cli; heavy = {'torch','tensorflow','onnx','onnxruntime','onnx2tf',"
         "'ai_edge_litert','matplotlib','sklearn','scipy'} & set(sys.modules); print(sorted(heavy))"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
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
