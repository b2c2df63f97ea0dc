"""`handoff --out` never deletes or moves a file edgekd did not write (issue 21 item 1).

A user's folder (src/main.c, NOTES.md), a user's file, and a user's zip at the bundle's zip name are each
refused before any work, byte for byte untouched, with no hidden `.old`/`.tmp` copies left beside them.
An earlier edgekd bundle is still replaced, removing exactly the files it lists.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekd.artifacts import describe_file
from edgekd.config.handoff import HandoffConfig
from edgekd.errors import UsageError
from edgekd.fileio import sha256_file
from edgekd.handoff.bundle import build_handoff

REPO = Path(__file__).resolve().parents[2]
from tests.support.tflite_models import build_tflite_models


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_tflite_models(tmp_path_factory.mktemp("tflite_models"))


def bundle(model: Path, out: Path, **config: object):
    return build_handoff(describe_file(model), out, HandoffConfig(**config), labels=[], preprocessing={},
                         calibration=None, bench_summary=[], versions={})  # fmt: skip


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under root (hidden ones too) -> its bytes (None for folders)."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def user_folder(root: Path) -> Path:
    folder = root / "firmware"
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "main.c").write_text("int main(void) { return 0; }\n")
    (folder / "NOTES.md").write_text("my notes\n")
    return folder


def run_cli(args: list[str]):
    import typer
    from typer.testing import CliRunner

    from edgekd.commands.handoff import handoff_cmd

    app = typer.Typer()
    app.command("handoff")(handoff_cmd)
    app.command("unused")(lambda: None)
    return CliRunner().invoke(app, ["handoff", *args])


def test_a_users_folder_is_refused_and_kept_byte_for_byte(models: dict[str, Path], tmp_path: Path) -> None:
    folder = user_folder(tmp_path)
    before = snapshot(tmp_path)
    result = run_cli([str(models["cnn_int8"]), "--out", str(folder)])
    assert isinstance(result.exception, UsageError) and result.exception.exit_code == 2
    assert "is a folder that is not an edgekd handoff bundle (it holds NOTES.md, src)" in result.exception.message
    assert snapshot(tmp_path) == before  # names and contents, no hidden .old/.tmp siblings


def test_a_users_file_at_out_is_refused_and_not_renamed(models: dict[str, Path], tmp_path: Path) -> None:
    target = tmp_path / "bundle"
    target.write_bytes(b"user data\x00\x01")
    before = snapshot(tmp_path)
    result = run_cli([str(models["cnn_int8"]), "--out", str(target)])
    assert isinstance(result.exception, UsageError) and "is a file, not a folder" in result.exception.message
    assert snapshot(tmp_path) == before


def test_a_users_zip_at_the_zip_name_is_refused(models: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "handoff.zip").write_bytes(b"PK not ours")
    before = snapshot(tmp_path)
    with pytest.raises(UsageError, match="handoff.zip exists and is not a zip of an edgekd handoff bundle"):
        bundle(models["cnn_int8"], tmp_path / "handoff")
    assert snapshot(tmp_path) == before
    bundle(models["cnn_int8"], tmp_path / "handoff", zip=False)  # without a zip it is left alone
    assert (tmp_path / "handoff.zip").read_bytes() == b"PK not ours"


def test_a_file_added_to_an_earlier_bundle_blocks_the_rebuild(models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "handoff"
    bundle(models["cnn_fp32"], out)
    (out / "NOTES.md").write_text("integration notes\n")
    before = snapshot(tmp_path)
    with pytest.raises(UsageError, match=r"holds files the earlier bundle did not write \(NOTES.md\)"):
        bundle(models["cnn_int8"], out)
    assert snapshot(tmp_path) == before


def test_an_earlier_bundle_is_replaced_and_only_its_files_go(models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "handoff"
    first = bundle(models["cnn_fp32"], out)
    (tmp_path / "keep.txt").write_text("beside the bundle\n")
    second = bundle(models["cnn_int8"], out)
    assert sha256_file(out / "model.tflite") == sha256_file(models["cnn_int8"])
    assert second.files["model.tflite"] != first.files["model.tflite"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["handoff", "handoff.zip", "keep.txt"]
    assert set(json.loads((out / "bundle.json").read_text())["files"]) | {"bundle.json", "SHA256SUMS"} == {
        p.name for p in out.iterdir()
    }


def test_an_empty_folder_is_used(models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    bundle(models["cnn_int8"], out, zip=False)
    assert (out / "bundle.json").is_file()


def test_a_link_and_a_folder_with_a_foreign_bundle_json_are_refused(models: dict[str, Path], tmp_path: Path) -> None:
    folder = user_folder(tmp_path)
    (folder / "bundle.json").write_text('{"files": {"NOTES.md": "x"}}')  # not edgekd's schema
    (tmp_path / "link").symlink_to(folder)
    before = snapshot(tmp_path)
    with pytest.raises(UsageError, match="is a folder that is not an edgekd handoff bundle"):
        bundle(models["cnn_int8"], folder)
    with pytest.raises(UsageError, match="is a symbolic link"):
        bundle(models["cnn_int8"], tmp_path / "link")
    assert snapshot(tmp_path) == before
