"""[data] source = "wav": a folder of class subfolders of WAV clips written here (tones and noise), and its bad inputs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgekd.config.data import AudioConfig, DataConfig
from edgekd.data.datasets import load_dataset
from edgekd.errors import DataError
from tests.support.wav_clips import clip_folder, float_wav, tone, write_wav


def test_wav_folder_gives_reference_mfccs_and_records_the_frontend(tmp_path: Path) -> None:
    clip_folder(tmp_path / "clips")
    data = load_dataset(DataConfig(source="wav", path=Path("clips"), test_fraction=0.25), 0, base=tmp_path)
    assert data.input_shape == (1, 49, 10) and data.label_names == ["high", "low", "mid"]
    assert len(data.x_train) + len(data.x_val) + len(data.x_test) == 36  # README.txt is not a clip
    prep = data.preprocessing
    frontend = prep["audio_frontend"]
    assert (
        frontend["sample_rate_hz"] == 16000 and frontend["window_samples"] == 480 and frontend["stride_samples"] == 320
    )
    assert frontend["fft_length"] == 512 and frontend["mel_bins"] == 40 and frontend["coefficients"] == 10
    assert frontend["output_shape"] == [49, 10] and prep["raw_dtype"] == "float32" and prep["layout"] == "NCHW"
    # the features carry the pitch: the nearest class mean of the training split names every test clip (over the
    # first 25 frames, 0.5 s: every clip is at least 0.6 s, so zero padding does not weigh in)
    means = np.stack([data.x_train[data.y_train == c, 0, :25].mean(axis=(0, 1)) for c in range(3)])  # (classes, 10)
    test = data.x_test[:, 0, :25].mean(axis=1)  # (N, 10)
    nearest = np.argmin(((test[:, None] - means[None]) ** 2).sum(axis=2), axis=1)
    assert (nearest == data.y_test).mean() == 1.0


def test_log_mel_features_and_a_shorter_clip(tmp_path: Path) -> None:
    clip_folder(tmp_path / "clips", per_class=4)
    audio = AudioConfig(features="log_mel", clip_ms=500, mel_bins=32)
    data = load_dataset(
        DataConfig(source="wav", path=tmp_path / "clips", audio=audio, val_fraction=0.0, test_fraction=0.25), 0
    )
    assert data.input_shape == (1, 24, 32)  # 1 + (8000 - 480) // 320 frames of 32 log-mel energies


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            "rate",
            r"low/03\.wav is sampled at 8000 Hz, not the 16000 Hz of \[data\] audio\.sample_rate; edgekd does not resample",
        ),
        ("eight_bit", r"mid/00\.wav is 8-bit PCM; edgekd reads 16-bit PCM WAV"),
        ("stereo", r"high/05\.wav has 2 channels; keyword spotting takes mono clips"),
        ("float", r"cannot read .*low/float\.wav as a PCM WAV file \(IEEE float, not PCM\)"),
        ("empty_class", r"class folder .*clips/silence holds no \.wav files"),
        ("truncated", r"low/01\.wav is truncated: its header declares 16,000 samples but 9,000 follow"),
        ("not_wav", r"cannot read .*high/00\.wav as a PCM WAV file \(file does not start with RIFF id\)"),
    ],
)
def test_bad_clips_are_one_data_error_naming_the_file(tmp_path: Path, damage: str, message: str) -> None:
    root = clip_folder(tmp_path / "clips", per_class=6)
    rng = np.random.default_rng(1)
    if damage == "rate":
        write_wav(root / "low" / "03.wav", tone(400.0, 1.0, rng, rate=8000), rate=8000)
    elif damage == "eight_bit":
        write_wav(root / "mid" / "00.wav", tone(1200.0, 1.0, rng), width=1)
    elif damage == "stereo":
        write_wav(root / "high" / "05.wav", np.repeat(tone(2500.0, 1.0, rng), 2), channels=2)
    elif damage == "float":
        float_wav(root / "low" / "float.wav")
    elif damage == "truncated":
        whole = write_wav(root / "low" / "01.wav", tone(400.0, 1.0, rng)).read_bytes()
        (root / "low" / "01.wav").write_bytes(whole[: 44 + 18000])  # the 44-byte header, then 9,000 of 16,000 samples
    elif damage == "empty_class":
        (root / "silence").mkdir()
        (root / "silence" / "notes.txt").write_text("to do\n")
    else:
        (root / "high" / "00.wav").write_bytes(b"ID3\x03" + bytes(200))  # an MP3 named .wav
    with pytest.raises(DataError, match=message) as caught:
        load_dataset(DataConfig(source="wav", path=root), 0)
    assert caught.value.hint  # every refusal says how to fix it


def test_empty_class_folder_of_an_image_folder_is_refused(tmp_path: Path) -> None:
    from PIL import Image

    for name in ("cat", "dog"):
        (tmp_path / "images" / name).mkdir(parents=True)
    for i in range(4):
        Image.fromarray(np.full((4, 4), i * 40, np.uint8)).save(tmp_path / "images" / "cat" / f"{i}.png")
    with pytest.raises(DataError, match=r"class folder .*images/dog holds no images") as caught:
        load_dataset(DataConfig(source="image_folder", path=tmp_path / "images"), 0)
    assert "remove the folder" in caught.value.hint


def test_cli_refuses_a_wav_at_another_rate_with_exit_1(tmp_path: Path) -> None:
    root = clip_folder(tmp_path / "clips", per_class=4)
    write_wav(root / "mid" / "02.wav", tone(1200.0, 1.0, np.random.default_rng(2), rate=44100), rate=44100)
    recipe = tmp_path / "kws_dscnn.toml"
    recipe.write_text('[data]\nsource = "wav"\npath = "clips"\n', encoding="utf-8")
    env = dict(os.environ, EDGEKD_HISTORY=str(tmp_path / "history.sqlite"))
    done = subprocess.run([sys.executable, "-m", "edgekd.cli", "run", str(recipe), "--only", "data", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in done.stderr
    assert "mid/02.wav is sampled at 44100 Hz, not the 16000 Hz" in errors[0]
    assert "sox in.wav -r 16000 out.wav" in done.stderr


@pytest.mark.parametrize(
    "change",
    [{"sample_rate": 8000}, {"clip_ms": 800}, {"window_ms": 40}, {"stride_ms": 10}, {"features": "log_mel"},
     {"mel_bins": 20}, {"lower_hz": 100}, {"upper_hz": 3000}, {"coefficients": 13}, {"log_offset": 1e-3},
     {"peak_normalize": False}],
)  # fmt: skip
def test_every_audio_key_takes_effect(tmp_path: Path, change: dict) -> None:
    """Every frontend parameter changes the features or the recorded frontend (none is accepted and ignored)."""
    assert set(AudioConfig.model_fields) >= set(change)
    rate = int(change.get("sample_rate", 16000))
    rng = np.random.default_rng(3)
    for name, freq in (("a", 500.0), ("b", 1500.0)):
        for i in range(4):
            write_wav(tmp_path / "w" / name / f"{i}.wav", tone(freq, 1.0, rng, rate=rate) // (1 + i), rate=rate)
    config = {"source": "wav", "path": tmp_path / "w", "val_fraction": 0.0, "test_fraction": 0.25, "normalize": "none"}
    other = load_dataset(DataConfig(**config, audio=AudioConfig(**{"sample_rate": rate, **change})), 0)
    if "sample_rate" in change:  # the files are at 8 kHz: the key is what lets them be read at all
        with pytest.raises(DataError, match="sampled at 8000 Hz, not the 16000 Hz"):
            load_dataset(DataConfig(**config), 0)
        assert other.preprocessing["audio_frontend"]["window_samples"] == 240  # 30 ms at 8 kHz
        return
    base = load_dataset(DataConfig(**config), 0)
    assert other.preprocessing["audio_frontend"] != base.preprocessing["audio_frontend"]
    same = other.x_train.shape == base.x_train.shape and np.allclose(other.x_train, base.x_train)
    assert not same, change


def test_every_audio_field_is_described() -> None:
    for name, field in AudioConfig.model_fields.items():
        assert field.description and field.description.endswith("."), name
