"""The data side of the preprocessing contract: every split is `Preprocessing.apply(raw)` of the stored values.

Raw files are written by the tests (uint8/uint16/int32/float npz, 8- and 16-bit PNG folders, TIFFs, CSV);
the recorded scale, raw dtype/range and normalisation must reproduce the arrays exactly, and every
`[data]` key either changes what is loaded or is refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from edgekd.config.data import DataConfig
from edgekd.data.datasets import Dataset, load_dataset
from edgekd.errors import DataError, RecipeError
from edgekd.preprocessing import Preprocessing, reprocess
from edgekd.recipe import parse_recipe
from tests.support.wav_clips import clip_folder


def _load(tmp_path, **config) -> Dataset:
    return load_dataset(DataConfig(**config), seed=0, base=tmp_path)


def _splits(data: Dataset) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(data.x_train, data.ids_train), (data.x_val, data.ids_val), (data.x_test, data.ids_test)]


def _npz(tmp_path, name: str, x: np.ndarray, classes: int = 3) -> str:
    np.savez(tmp_path / name, x=x, y=np.arange(len(x)) % classes)
    return name


def _grey_folder(root, levels: np.ndarray, dtype=np.uint8, size=(4, 5), count: int = 8) -> None:
    """Two classes of `count` images each; image i of a class is filled with one of `levels`."""
    for label in ("a", "b"):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            value = levels[(i + (label == "b")) % len(levels)]
            Image.fromarray(np.full(size, value, dtype)).save(root / label / f"{i}.png")


RNG = np.random.default_rng(0)
RAW = {
    "uint8": RNG.integers(0, 256, size=(30, 5, 5), dtype=np.uint8),
    "uint16": RNG.integers(0, 65536, size=(30, 5, 5), dtype=np.uint16),
    "float64": RNG.normal(size=(30, 7)),
    "int64_images": RNG.integers(0, 256, size=(30, 1, 5, 5)),
}
SCALE = {"uint8": 1 / 255, "uint16": 1 / 65535, "float64": 1.0, "int64_images": 1 / 255}


@pytest.mark.parametrize("kind", sorted(RAW))
@pytest.mark.parametrize("normalize", ["standard", "none", {"mean": [0.25], "std": [0.5]}])
def test_npz_splits_are_exactly_the_recorded_preprocessing_of_the_raw_values(tmp_path, kind, normalize) -> None:
    raw = RAW[kind]
    data = _load(tmp_path, source="npz", path=_npz(tmp_path, "d.npz", raw), normalize=normalize)
    prep = Preprocessing.from_dict(data.preprocessing)
    assert prep.scale == SCALE[kind] and data.preprocessing["scale"] == SCALE[kind]
    assert prep.raw_dtype == str(raw.dtype) and prep.raw_range == (float(raw.min()), float(raw.max()))
    assert Preprocessing.from_dict(prep.to_dict()) == prep  # the dict round-trips
    stored = raw[:, None] if raw.ndim == 3 else raw  # (N, H, W) -> (N, 1, H, W)
    for x, ids in _splits(data):
        assert np.array_equal(prep.apply(stored[ids]), x)  # bit for bit
    as_loaded = reprocess(data.x_test, prep, Preprocessing(scale=prep.scale))  # a raw-input teacher's view
    np.testing.assert_allclose(as_loaded, stored[data.ids_test] * np.float32(SCALE[kind]), atol=2e-6)


def test_digits_record_scale_sixteenth_and_keep_the_split_arrays(tmp_path) -> None:
    data = load_dataset(DataConfig(), 0)
    prep = Preprocessing.from_dict(data.preprocessing)
    assert (prep.scale, prep.raw_dtype, prep.raw_range, prep.layout) == (1 / 16, "uint8", (0.0, 16.0), "NCHW")
    raw = load_digits().images[:, None]  # 0..16 as stored by scikit-learn
    assert np.array_equal(prep.apply(raw[data.ids_train]), data.x_train)
    assert abs(float(data.x_train.mean())) < 1e-3 and abs(float(data.x_train.std()) - 1) < 1e-3
    loaded = load_dataset(DataConfig(normalize="none"), 0)
    assert np.array_equal(loaded.x_test, (raw[loaded.ids_test] / 16).astype(np.float32))  # "as loaded": 0..1
    assert loaded.preprocessing["mean"] == 0.0 and loaded.preprocessing["std"] == 1.0
    assert loaded.preprocessing["normalize"] == "none"


def test_given_normalisation_per_channel_and_counts_checked(tmp_path) -> None:
    x = RNG.integers(0, 256, size=(30, 6, 6, 3), dtype=np.uint8)  # channels last
    given = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    data = _load(tmp_path, source="npz", path=_npz(tmp_path, "rgb.npz", x), normalize=given)
    raw = x.transpose(0, 3, 1, 2)[data.ids_train].astype(np.float32) * np.float32(1 / 255)
    expected = (raw - np.float32(given["mean"])[None, :, None, None]) / np.float32(given["std"])[None, :, None, None]
    np.testing.assert_allclose(data.x_train, expected, rtol=1e-6, atol=1e-6)
    assert data.preprocessing["normalize"] == "given" and len(data.preprocessing["mean"]) == 3
    with pytest.raises(DataError, match="mean has 2 values but the model input has 3 channels"):
        _load(tmp_path, source="npz", path="rgb.npz", normalize={"mean": [0.5, 0.5], "std": [0.2]})
    (tmp_path / "t.csv").write_text("a,b,label\n" + "".join(f"{i},{i * 2},{i % 2}\n" for i in range(20)))
    with pytest.raises(DataError, match="mean has 3 values but the model input has 2 features"):
        _load(tmp_path, source="csv", path="t.csv", normalize={"mean": [0, 0, 0], "std": [1]})


def test_scale_override_and_unknown_bit_depth(tmp_path) -> None:
    x = RNG.integers(0, 4096, size=(30, 1, 4, 4)).astype(np.int32)  # 12-bit sensor counts in int32
    path = _npz(tmp_path, "twelve.npz", x)
    with pytest.raises(DataError, match=r"int32 with values \d+\.\.\d+, so their bit depth is unknown") as info:
        _load(tmp_path, source="npz", path=path)
    assert "[data] scale" in info.value.hint
    data = _load(tmp_path, source="npz", path=path, scale=1 / 4095, normalize="none")
    assert data.preprocessing["scale"] == 1 / 4095 and float(data.x_train.max()) <= 1.0
    assert np.array_equal(data.x_train, x[data.ids_train].astype(np.float32) * np.float32(1 / 4095))


def test_image_size_resizes_every_image_source_or_is_refused(tmp_path) -> None:
    digits = load_dataset(DataConfig(image_size=[16, 12]), 0)
    assert digits.input_shape == (1, 16, 12) and digits.preprocessing["resize"] == [16, 12]
    npz = _load(tmp_path, source="npz", path=_npz(tmp_path, "i.npz", RAW["uint8"]), image_size=[3, 3], normalize="none")
    assert npz.input_shape == (1, 3, 3) and npz.preprocessing["resize_filter"] == "bilinear"
    flat = np.full((30, 1, 5, 5), 200, np.uint8)  # a constant image stays constant whatever the filter
    const = _load(tmp_path, source="npz", path=_npz(tmp_path, "c.npz", flat), image_size=[2, 9], normalize="none")
    np.testing.assert_allclose(const.x_train, 200 / 255, rtol=1e-6)
    _grey_folder(tmp_path / "imgs", np.array([10, 200], np.uint8))
    Image.fromarray(np.zeros((9, 9), np.uint8)).save(tmp_path / "imgs" / "a" / "big.png")
    folder = _load(tmp_path, source="image_folder", path="imgs", image_size=[6, 6])
    assert folder.input_shape == (1, 6, 6) and folder.preprocessing["resize"] == [6, 6]
    with pytest.raises(DataError, match=r"image_size applies to images, but .* holds feature vectors of shape \(7,\)"):
        _load(tmp_path, source="npz", path=_npz(tmp_path, "table.npz", RAW["float64"]), image_size=[2, 2])
    with pytest.raises(RecipeError, match="data: image_size applies to images; source = 'csv' holds tables"):
        parse_recipe({"data": {"source": "csv", "path": "t.csv", "image_size": [4, 4]}})


def test_sixteen_bit_png_folder_keeps_levels_and_one_channel(tmp_path) -> None:
    levels = (np.arange(16) * 4369).astype(np.uint16)  # 16 grey levels spread over 0..65535
    _grey_folder(tmp_path / "deep", levels, np.uint16, count=16)
    assert Image.open(next((tmp_path / "deep" / "a").iterdir())).mode == "I;16"  # a real 16-bit PNG
    data = _load(tmp_path, source="image_folder", path="deep", normalize="none", val_fraction=0)
    assert data.input_shape == (1, 4, 5)
    assert data.preprocessing["scale"] == 1 / 65535 and data.preprocessing["raw_dtype"] == "uint16"
    seen = np.unique(np.concatenate([data.x_train.ravel(), data.x_test.ravel()]))
    assert len(seen) == 16  # not 2 levels after an 8-bit conversion
    np.testing.assert_array_equal(seen, levels.astype(np.float32) * np.float32(1 / 65535))
    Image.fromarray(np.full((4, 5), 7, np.uint8)).save(tmp_path / "deep" / "b" / "eight.png")
    with pytest.raises(
        DataError, match=r"images mix bit depths: 32 16-bit \(e\.g\. a/0\.png\), 1 8-bit \(e\.g\. b/eight\.png\)"
    ):
        _load(tmp_path, source="image_folder", path="deep")


def test_int32_and_float_tiff_folders(tmp_path) -> None:
    for label in ("a", "b"):
        (tmp_path / "tif" / label).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(np.full((3, 3), 1000 * i + (label == "b"), np.int32)).save(
                tmp_path / "tif" / label / f"{i}.tif"
            )
    data = _load(tmp_path, source="image_folder", path="tif", normalize="none", val_fraction=0)
    assert data.preprocessing["raw_dtype"] == "uint16" and data.preprocessing["raw_range"] == [0.0, 5001.0]
    Image.fromarray(np.full((3, 3), 70000, np.int32)).save(tmp_path / "tif" / "a" / "huge.tif")
    with pytest.raises(DataError, match="has values outside 0..65535"):
        _load(tmp_path, source="image_folder", path="tif")


def test_grey_with_alpha_stays_one_channel(tmp_path) -> None:
    for label in ("a", "b"):
        (tmp_path / "la" / label).mkdir(parents=True)
        for i in range(6):
            pixels = np.stack([np.full((3, 3), 40 * i + (label == "b"), np.uint8), np.full((3, 3), 255, np.uint8)], -1)
            Image.fromarray(pixels, mode="LA").save(tmp_path / "la" / label / f"{i}.png")
    assert _load(tmp_path, source="image_folder", path="la").input_shape == (1, 3, 3)


# Every [data] key: a non-default value changes what the data stage produces, or is refused.
# (labeled_fraction is applied by edgekd.distill, which hides labels from the student.)
CONSUMED_ELSEWHERE = {"labeled_fraction": "edgekd.distill.api"}


def _idx_folder(folder: Path) -> str:
    """MNIST-style IDX files (uncompressed): 100 training and 50 test 4x4 images, labels 0..9 cycling."""
    import struct

    folder.mkdir()
    for prefix, n in (("train", 100), ("t10k", 50)):
        for kind, array in (("images-idx3", np.zeros((n, 4, 4), np.uint8) + np.arange(n, dtype=np.uint8)[:, None, None]),
                            ("labels-idx1", (np.arange(n) % 10).astype(np.uint8))):  # fmt: skip
            header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
            (folder / f"{prefix}-{kind}-ubyte").write_bytes(header + array.tobytes())
    return str(folder)


def test_every_data_key_takes_effect(tmp_path) -> None:
    (tmp_path / "t.csv").write_text("f,cls\n" + "".join(f"{i},{i % 3}\n" for i in range(60)))
    np.savez(tmp_path / "d.npz", x=RAW["uint8"], y=np.arange(30) % 3)
    base = load_dataset(DataConfig(), 0)
    changed = {
        "source": lambda: _load(tmp_path, source="npz", path="d.npz"),
        "audio": lambda: _load(
            tmp_path, source="wav", path=str(clip_folder(tmp_path / "wav", per_class=10)), audio={"clip_ms": 500}
        ),
        "path": lambda: _load(tmp_path, source="npz", path="d.npz"),
        "val_fraction": lambda: load_dataset(DataConfig(val_fraction=0.2), 0),
        "test_fraction": lambda: load_dataset(DataConfig(test_fraction=0.3), 0),
        "classes": lambda: load_dataset(DataConfig(classes=["1", "2"]), 0),
        "other_class": lambda: load_dataset(DataConfig(classes=["1", "2"], other_class=True), 0),
        "image_size": lambda: load_dataset(DataConfig(image_size=[9, 9]), 0),
        "label_column": lambda: _load(tmp_path, source="csv", path="t.csv", label_column="cls"),
        "scale": lambda: load_dataset(DataConfig(scale=1.0, normalize="none"), 0),
        "normalize": lambda: load_dataset(DataConfig(normalize="none"), 0),
        "limit": lambda: load_dataset(DataConfig(limit=500), 0),
        "label_set": lambda: _load(
            tmp_path, source="idx", path=_idx_folder(tmp_path / "idx"), label_set="fashion_mnist"
        ),
    }
    assert set(changed) | set(CONSUMED_ELSEWHERE) == set(DataConfig.model_fields)
    for key, load in changed.items():
        other = load()
        same = (other.label_names == base.label_names and other.x_train.shape == base.x_train.shape
                and np.array_equal(other.x_train, base.x_train) and other.preprocessing == base.preprocessing)  # fmt: skip
        assert not same, key
    assert load_dataset(DataConfig(classes=["1", "2"], other_class=True), 0).label_names[-1] == "other"
    with pytest.raises(RecipeError, match="label_column applies to source = 'csv' only"):
        parse_recipe({"data": {"label_column": "cls"}})
    with pytest.raises(RecipeError, match="'digits' is bundled and takes no path"):
        parse_recipe({"data": {"path": "x.npz"}})


def test_every_data_field_is_described() -> None:
    from edgekd.config.data import NormalizeStats

    for model in (DataConfig, NormalizeStats):
        for name, field in model.model_fields.items():
            assert field.description and field.description.endswith("."), f"{model.__name__}.{name}"


@pytest.mark.parametrize(
    "normalize, needle",
    [
        ("standrad", "must be 'standard', 'none' or { mean = [...], std = [...] } (did you mean 'standard'?)"),
        ({"mean": [0.5]}, "data.normalize: std: Field required"),
        ({"mean": 0.5, "std": 0}, "std values must be finite and greater than 0"),
        ({"mean": 0.5, "std": 1, "scale": 2}, "scale: unknown key"),
        ({"mean": [0, 0], "std": [1, 1, 1]}, "2 mean values but 3 std values"),
    ],
)
def test_normalize_mistakes_are_one_recipe_error(normalize, needle) -> None:
    with pytest.raises(RecipeError) as info:
        parse_recipe({"data": {"normalize": normalize}})
    assert needle in str(info.value) and "more problem" not in str(info.value)
    assert parse_recipe({"data": {"normalize": {"mean": 0.5, "std": 2}}}).data.normalize.mean == [0.5]
