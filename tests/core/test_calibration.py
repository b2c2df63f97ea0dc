"""The calibration set: seeded, from the training split only, described and hashed; bad data refused."""

from __future__ import annotations

import numpy as np
import pytest

from edgekd.artifacts import load_artifact
from edgekd.calibration import check_samples, load_calibration, make_calibration_set
from edgekd.config.data import DataConfig
from edgekd.data.datasets import Dataset, load_dataset
from edgekd.errors import DataError


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset(DataConfig(), seed=0)


def test_seeded_subset_of_the_training_split(digits, tmp_path):
    first = make_calibration_set(digits, 50, 7, tmp_path / "a.npz")
    again = make_calibration_set(digits, 50, 7, tmp_path / "b.npz")
    other = make_calibration_set(digits, 50, 8, tmp_path / "c.npz")
    assert first.config["sample_ids"] == again.config["sample_ids"] != other.config["sample_ids"]
    ids = set(first.config["sample_ids"])
    assert len(ids) == 50 and ids <= set(digits.ids_train.tolist())
    assert not ids & set(digits.ids_test.tolist()) and not ids & set(digits.ids_val.tolist())
    loaded = load_artifact(first.path)  # sidecar + sha256 verified
    assert loaded.name == "calibration" and loaded.config["layout"] == "NCHW" and loaded.config["split"] == "train"
    assert loaded.config["preprocessing"]["mean"] == pytest.approx(digits.preprocessing["mean"])
    with np.load(first.path) as archive:
        rows = [int(np.where(digits.ids_train == i)[0][0]) for i in archive["ids"]]
        np.testing.assert_array_equal(archive["x"], digits.x_train[rows])


def test_size_beyond_the_training_split_is_an_error(digits, tmp_path):
    with pytest.raises(DataError, match=f"exceeds the {len(digits.x_train)} training samples"):
        make_calibration_set(digits, len(digits.x_train) + 1, 0, tmp_path / "c.npz")
    assert not list(tmp_path.iterdir())


def test_nan_samples_are_refused_and_nothing_written(digits, tmp_path):
    broken = Dataset(**vars(digits))
    broken.x_train = digits.x_train.copy()
    broken.x_train[:, 0, 0, 0] = np.nan
    with pytest.raises(DataError, match="200 of 200 calibration samples from the training split contain NaN"):
        make_calibration_set(broken, 200, 0, tmp_path / "c.npz")
    assert not list(tmp_path.iterdir())


def test_layout_conversion_and_shape_check(digits, tmp_path):
    artifact = make_calibration_set(digits, 10, 0, tmp_path / "c.npz")
    nchw = load_calibration(artifact, (1, 1, 8, 8))
    nhwc = load_calibration(artifact, (1, 8, 8, 1), layout="NHWC")
    np.testing.assert_array_equal(nchw.transpose(0, 2, 3, 1), nhwc)
    assert load_calibration(artifact, ("batch", 1, 8, 8)).shape == (10, 1, 8, 8)
    with pytest.raises(DataError, match=r"the model expects \(3, 8, 8\)"):
        load_calibration(artifact, (1, 3, 8, 8))


def test_check_samples_messages():
    with pytest.raises(DataError, match="not NCHW"):
        check_samples(np.zeros((4, 64), dtype=np.float32), "NCHW", source="x")
    with pytest.raises(DataError, match="are int64, not float"):
        check_samples(np.zeros((4, 1, 8, 8), dtype=np.int64), "NCHW", source="x")
    check_samples(np.zeros((4, 64), dtype=np.float32), "NC", source="x")
