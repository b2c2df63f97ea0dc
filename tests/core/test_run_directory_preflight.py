"""A run directory's entries that a stage would have to replace are refused before any stage (preflight), by
the same rule the commit of each stage applies; an older edgekd's unmarked teacher_cache/ is recognised by its
content, a user's folder of that name never is.

The run directory is the user's (`--out` names any folder): the test writes its files there itself; the
pipeline runs are real `edgekd run` subprocesses on a tiny CSV written by the test.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from fnmatch import fnmatchcase
from pathlib import Path

import numpy as np
import pytest

from edgekd import preflight
from edgekd.errors import UsageError
from edgekd.recipe import load_recipe, parse_recipe
from edgekd.run_directory import FOLDER, OUTPUT_MARKER, check_destination, older_output

RECIPE = textwrap.dedent(
    """
    [data]
    source = "csv"
    path = "small.csv"
    [teacher]
    check = false
    model = { arch = "mlp", width = 16, depth = 1 }
    train = { epochs = 30 }
    [student]
    model = { arch = "mlp", width = 8, depth = 1 }
    [distill]
    train = { epochs = 30 }
    [bench]
    enabled = false
    """
)


def _write_recipe(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(150, 4))
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0).astype(int)
    lines = ["a,b,c,d,label"] + [",".join(f"{v:.4f}" for v in row) + f",{label}" for row, label in zip(x, y)]
    (folder / "small.csv").write_text("\n".join(lines) + "\n")
    (folder / "r.toml").write_text(RECIPE)
    return folder / "r.toml"


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgekd.cli", "run", "r.toml", "--out", "run", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=600, check=False)  # fmt: skip


def test_a_users_report_md_in_the_run_directory_is_refused_by_preflight(tmp_path: Path) -> None:
    """Before: the run trained teacher and student, then the report stage refused to replace report.md."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "report.md").write_bytes(b"# my notes\n")
    recipe = parse_recipe({})
    with pytest.raises(UsageError) as refused:
        preflight.check_recipe(recipe, None, tmp_path, run)
    assert "report.md exists and edgekd did not write it" in refused.value.message
    assert "the report stage of this run writes report.md" in refused.value.message
    assert refused.value.hint and "move the file out of the way" in refused.value.hint
    assert (run / "report.md").read_bytes() == b"# my notes\n"
    preflight.check_recipe(parse_recipe({"report": {"markdown": False}}), None, tmp_path, run)  # not written: fine
    preflight.check_recipe(recipe, {"data", "teacher"}, tmp_path, run)  # --only stages that never write it: fine


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("handoff", lambda p: (p / "handoff").mkdir() or (p / "handoff" / "main.c").write_text("int main;")),
        ("handoff.zip", lambda p: (p / "handoff.zip").write_bytes(b"my archive")),
        ("handoff.json", lambda p: (p / "handoff.json").write_text('{"board": "mine"}')),
        ("teacher_cache", lambda p: (p / "teacher_cache").mkdir() or (p / "teacher_cache" / "x.npy").write_bytes(b"1")),
        ("student.int8.tflite", lambda p: (p / "student.int8.tflite").write_bytes(b"TFL3")),
    ],
)
def test_each_kind_of_collision_is_refused_by_preflight(tmp_path: Path, name: str, make: object) -> None:
    run = tmp_path / "run"
    run.mkdir()
    make(run)  # type: ignore[operator]
    before = sorted((p.relative_to(run), p.read_bytes() if p.is_file() else b"") for p in run.rglob("*"))
    with pytest.raises(UsageError, match=f"{name}"):
        preflight.check_recipe(parse_recipe({}), None, tmp_path, run)
    assert sorted((p.relative_to(run), p.read_bytes() if p.is_file() else b"") for p in run.rglob("*")) == before


def test_other_files_of_the_user_are_left_to_live_beside_the_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "notes").mkdir(parents=True)
    (run / "README.txt").write_text("mine")
    (run / "teacher_cache").mkdir()  # empty: edgekd may fill it
    preflight.check_recipe(parse_recipe({}), None, tmp_path, run)


def test_run_into_a_folder_holding_a_users_report_md_fails_before_the_teacher_trains(tmp_path: Path) -> None:
    _write_recipe(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / "report.md").write_bytes(b"# my notes\n")
    result = _run(tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "report.md exists and edgekd did not write it" in result.stderr and "hint:" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in run.iterdir()) == ["report.md"]  # no stage output, not even data.npz
    assert (run / "report.md").read_bytes() == b"# my notes\n"


def test_an_older_edgekds_unmarked_teacher_cache_is_replaced_and_a_users_never(tmp_path: Path) -> None:
    """A real run; its teacher_cache/ made to look as an edgekd before the marker left it; a forced rerun
    replaces it. The stage-output table covers every entry of the real run (it cannot drift unseen)."""
    recipe_path = _write_recipe(tmp_path)
    first = _run(tmp_path)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    run = tmp_path / "run"
    recipe, _ = load_recipe(recipe_path)
    outputs = preflight.stage_outputs(recipe, None)
    for entry in run.iterdir():
        if entry.name != ".edgekd":
            assert any(fnmatchcase(entry.name, p) or fnmatchcase(entry.name, f"{p}.json") for _, p, _ in outputs), entry

    cache = run / "teacher_cache"
    (cache / OUTPUT_MARKER).unlink()  # as round 1 left it
    assert older_output(run, cache)
    preflight.check_recipe(recipe, None, tmp_path, run)
    again = _run(tmp_path, "--force")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert (cache / OUTPUT_MARKER).is_file()

    (cache / OUTPUT_MARKER).unlink()
    (cache / "my_logits.npy").write_bytes(b"the user's own")  # a file the cache does not list: not edgekd's
    assert not older_output(run, cache)
    with pytest.raises(UsageError, match=r"teacher_cache exists and edgekd did not write it") as refused:
        preflight.check_recipe(recipe, None, tmp_path, run)
    assert refused.value.hint and f"mv {cache} {cache}.old" in refused.value.hint
    assert (cache / "my_logits.npy").read_bytes() == b"the user's own"


def _cache_entry(folder: Path) -> Path:
    """A teacher-output cache entry written by edgekd's own cache writer."""
    from edgekd.distill.cache import TeacherOutputCache

    key = "0123456789abcdef0123456789abcdef"
    TeacherOutputCache(folder).write(key, np.arange(12, dtype=np.float32).reshape(4, 3))
    return folder / key


def _stage_manifest(run: Path) -> None:
    stages = run / ".edgekd" / "stages"
    stages.mkdir(parents=True)
    (stages / "distill.json").write_text('{"schema": "edgekd.stage/1", "stage": "distill", "artifacts": []}')


def test_older_teacher_cache_needs_a_stage_record_and_every_file_verified(tmp_path: Path) -> None:
    run = tmp_path / "run"
    entry = _cache_entry(run / "teacher_cache")
    assert not older_output(run, run / "teacher_cache")  # no stage recorded: not an edgekd run directory
    _stage_manifest(run)
    assert older_output(run, run / "teacher_cache")
    check_destination(run, "teacher_cache", FOLDER)
    shard = entry / "values_00000.npy"
    original = shard.read_bytes()
    shard.write_bytes(original[:-4] + b"\0\0\0\0")  # content changed after edgekd wrote it
    assert not older_output(run, run / "teacher_cache")
    with pytest.raises(UsageError, match="not an older edgekd's output that can be verified"):
        check_destination(run, "teacher_cache", FOLDER)
    assert shard.read_bytes() == original[:-4] + b"\0\0\0\0"
    shard.write_bytes(original)
    (run / "teacher_cache" / "notes").mkdir()  # a folder of the user's beside the entries
    assert not older_output(run, run / "teacher_cache")
    assert not older_output(run, run / "handoff")  # only folders an older edgekd left unmarked are recognised
