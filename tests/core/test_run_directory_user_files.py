"""Moving a stage's outputs into a run directory never deletes a folder or zip the user put there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekd.errors import UsageError
from edgekd.run_directory import OUTPUT_MARKER, RunDirectory, commit

SIDECAR = json.dumps({"schema": "edgekd.artifact/1", "path": "report.md"})  # what edgekd's sidecars hold


def _stage_output(tmp_path: Path) -> Path:
    workdir = tmp_path / "work"
    (workdir / "handoff").mkdir(parents=True)
    (workdir / "handoff" / "model_data.cc").write_text("// new bundle\n")
    (workdir / "handoff" / "bundle.json").write_text(json.dumps({"files": {"model_data.cc": "x"}}))
    return workdir


def test_a_users_handoff_folder_in_the_run_directory_is_refused_and_kept(tmp_path: Path) -> None:
    run = RunDirectory(tmp_path / "run")
    (run.path / "handoff" / "src").mkdir(parents=True)
    (run.path / "handoff" / "src" / "main.c").write_text("int main(void) { return 0; }\n")
    with pytest.raises(UsageError, match="not an edgekd handoff bundle"):
        commit(run, _stage_output(tmp_path), [])
    assert (run.path / "handoff" / "src" / "main.c").read_text() == "int main(void) { return 0; }\n"


def test_a_users_zip_beside_the_bundle_is_refused_and_kept(tmp_path: Path) -> None:
    run = RunDirectory(tmp_path / "run")
    run.path.mkdir()
    (run.path / "handoff.zip").write_bytes(b"my own archive")
    workdir = _stage_output(tmp_path)
    (workdir / "handoff.zip").write_bytes(b"PK")
    with pytest.raises(UsageError, match="not a zip of an edgekd handoff bundle"):
        commit(run, workdir, [])
    assert (run.path / "handoff.zip").read_bytes() == b"my own archive"


def test_an_empty_or_new_destination_is_filled(tmp_path: Path) -> None:
    run = RunDirectory(tmp_path / "run")
    (run.path / "handoff").mkdir(parents=True)
    commit(run, _stage_output(tmp_path), [])
    assert (run.path / "handoff" / "model_data.cc").read_text() == "// new bundle\n"


def test_a_users_file_named_like_an_artifact_is_refused_and_kept(tmp_path: Path) -> None:
    run = RunDirectory(tmp_path / "run")
    run.path.mkdir()
    (run.path / "report.md").write_text("my notes\n")
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "report.md").write_text("# report\n")
    (workdir / "report.md.json").write_text(SIDECAR)
    with pytest.raises(UsageError, match="edgekd did not write it"):
        commit(run, workdir, [])
    assert (run.path / "report.md").read_text() == "my notes\n"
    (run.path / "report.md.json").write_text(SIDECAR)  # an earlier run's artifact, with its sidecar: replaced
    commit(run, workdir, [])
    assert (run.path / "report.md").read_text() == "# report\n"


def _folder_output(tmp_path: Path, name: str, content: str) -> Path:
    workdir = tmp_path / f"work-{content}"
    (workdir / "teacher_cache" / name).mkdir(parents=True)
    return workdir


def test_a_stage_folder_that_is_not_a_bundle_is_replaced_on_rerun(tmp_path: Path) -> None:
    """The distill stage's teacher_cache/ is rewritten when distill reruns (a bundle rule must not block it):
    the folder an earlier commit moved in carries edgekd's marker."""
    run = RunDirectory(tmp_path / "run")
    run.path.mkdir()
    commit(run, _folder_output(tmp_path, "old", "first"), [])
    assert (run.path / "teacher_cache" / OUTPUT_MARKER).is_file()
    commit(run, _folder_output(tmp_path, "new", "second"), [])
    assert sorted(p.name for p in (run.path / "teacher_cache").iterdir()) == [OUTPUT_MARKER, "new"]


def test_a_users_folder_named_like_a_stage_folder_is_refused_and_kept(tmp_path: Path) -> None:
    """A user's own teacher_cache/ in --out (no marker) is never replaced: the move is refused, nothing lost."""
    run = RunDirectory(tmp_path / "run")
    (run.path / "teacher_cache").mkdir(parents=True)
    (run.path / "teacher_cache" / "logits.npy").write_bytes(b"the user's own logits")
    with pytest.raises(UsageError, match="edgekd did not write it"):
        commit(run, _folder_output(tmp_path, "new", "ours"), [])
    assert (run.path / "teacher_cache" / "logits.npy").read_bytes() == b"the user's own logits"
    assert sorted(p.name for p in (run.path / "teacher_cache").iterdir()) == ["logits.npy"]


def test_a_users_file_named_like_a_sidecar_is_refused_and_kept(tmp_path: Path) -> None:
    """The handoff bundle's sidecar is `handoff.json`: a user's own handoff.json was overwritten by it (a sidecar
    had no rule of its own); now only a sidecar edgekd wrote is replaced."""
    run = RunDirectory(tmp_path / "run")
    run.path.mkdir()
    (run.path / "handoff.json").write_text('{"my": "settings"}')
    workdir = _stage_output(tmp_path)
    (workdir / "handoff.json").write_text(SIDECAR)
    with pytest.raises(UsageError, match="handoff.json exists and edgekd did not write it .*not an edgekd sidecar"):
        commit(run, workdir, [])
    assert (run.path / "handoff.json").read_text() == '{"my": "settings"}'
    assert not (run.path / "handoff").exists()  # refused before anything moved
    (run.path / "handoff.json").write_text(SIDECAR)  # an earlier run's sidecar: replaced
    commit(run, workdir, [])
    assert (run.path / "handoff" / "model_data.cc").read_text() == "// new bundle\n"


def test_a_file_without_a_sidecar_never_replaces_a_users_file(tmp_path: Path) -> None:
    """A stage output without a sidecar (none is written today) was moved over any file of its name."""
    run = RunDirectory(tmp_path / "run")
    run.path.mkdir()
    (run.path / "notes.txt").write_text("mine\n")
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "notes.txt").write_text("a stage's\n")
    with pytest.raises(UsageError, match="notes.txt exists and edgekd did not write it"):
        commit(run, workdir, [])
    assert (run.path / "notes.txt").read_text() == "mine\n"
