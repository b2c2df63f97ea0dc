from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgekd.artifacts import QuantParams, TensorSpec, create_artifact, describe_file, load_artifact
from edgekd.errors import ModelError, StorageError
from edgekd.fileio import atomic_path, save_npz, sha256_file


def test_sidecar_round_trip_and_tamper_detection(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(b"model-bytes")
    spec = TensorSpec("x", (1, 1, 8, 8), "int8", "NCHW", QuantParams((0.1,), (-3,)))
    written = create_artifact(path, name="onnx_int8", format="onnx", precision="int8", inputs=[spec], config={"a": 1})
    loaded = load_artifact(path)
    assert loaded == written
    assert loaded.inputs[0].quant == QuantParams((0.1,), (-3,))
    path.write_bytes(b"model-bytez")
    with pytest.raises(ModelError, match="changed since it was written"):
        load_artifact(path)


def test_describe_file_rejects_unknown_suffix_and_missing(tmp_path: Path) -> None:
    odd = tmp_path / "m.bin"
    odd.write_bytes(b"x")
    with pytest.raises(ModelError, match="cannot tell the format"):
        describe_file(odd)
    with pytest.raises(ModelError, match="does not exist"):
        describe_file(tmp_path / "nope.onnx")


def test_atomic_path_leaves_nothing_on_failure(tmp_path: Path) -> None:
    final = tmp_path / "out.bin"
    with pytest.raises(RuntimeError), atomic_path(final) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert not final.exists()
    assert list(tmp_path.iterdir()) == []


def test_save_npz_is_reproducible(tmp_path: Path) -> None:
    arrays = {"x": np.arange(12, dtype=np.float32).reshape(3, 4), "y": np.array([1, 2, 3])}
    save_npz(tmp_path / "a.npz", arrays)
    save_npz(tmp_path / "b.npz", arrays)
    assert sha256_file(tmp_path / "a.npz") == sha256_file(tmp_path / "b.npz")
    with np.load(tmp_path / "a.npz", allow_pickle=False) as data:
        np.testing.assert_array_equal(data["x"], arrays["x"])


def test_disk_full_becomes_storage_error(tmp_path: Path) -> None:
    import errno

    from edgekd.fileio import storage_error

    error = storage_error(OSError(errno.ENOSPC, "No space left on device"), tmp_path / "x")
    assert isinstance(error, StorageError) and "no space left" in error.message and error.hint
