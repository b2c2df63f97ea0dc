"""The keyword-spotting frontend against the MLPerf Tiny reference's own TensorFlow ops (tf.signal), on clips made here."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from edgekd.config.data import AudioConfig
from edgekd.data.audio_frontend import features, frontend_record
from edgekd.errors import RecipeError
from edgekd.recipe import parse_recipe


def clips(n: int = 3, samples: int = 16000) -> np.ndarray:
    """Tones in noise, int16, with one negative-peaked clip (max |x| is not the positive peak)."""
    rng = np.random.default_rng(0)
    t = np.arange(samples) / 16000
    out = np.stack([0.4 * np.sin(2 * np.pi * (300 + 700 * i) * t) + 0.05 * rng.normal(size=samples) for i in range(n)])
    out[-1] = -np.abs(out[-1])
    return np.round(out * 30000).astype(np.int16)


def reference_tf(pcm: np.ndarray, audio: AudioConfig) -> np.ndarray:
    """get_dataset.py's feature_type "mfcc" branch, line for line (with the peak as max|x|)."""
    import tensorflow as tf

    x = tf.constant(pcm, tf.float32)
    x = x / tf.reduce_max(tf.abs(x), axis=1, keepdims=True)
    stfts = tf.signal.stft(x, frame_length=audio.window_samples, frame_step=audio.stride_samples, fft_length=None,
                           window_fn=tf.signal.hann_window)  # fmt: skip
    spectrograms = tf.abs(stfts)
    weights = tf.signal.linear_to_mel_weight_matrix(audio.mel_bins, stfts.shape[-1], audio.sample_rate, audio.lower_hz,
                                                    audio.upper_hz)  # fmt: skip
    log_mel = tf.math.log(tf.tensordot(spectrograms, weights, 1) + audio.log_offset)
    return tf.signal.mfccs_from_log_mel_spectrograms(log_mel)[..., : audio.coefficients].numpy()


def test_defaults_are_the_reference_49_frames_of_10_mfccs() -> None:
    audio = AudioConfig()
    assert (audio.clip_samples, audio.window_samples, audio.stride_samples, audio.fft_length) == (16000, 480, 320, 512)
    assert audio.shape == (49, 10)
    out = features(clips(), audio)
    assert out.shape == (3, 49, 10) and out.dtype == np.float32 and np.isfinite(out).all()
    record = frontend_record(audio)
    for key in ("sample_rate_hz", "window_samples", "stride_samples", "fft_length", "mel_bins", "lower_hz", "upper_hz",
                "coefficients", "log_offset", "peak_normalize", "window_function", "dct"):  # fmt: skip
        assert record[key] is not None, key
    assert record["output_shape"] == [49, 10]


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="tensorflow is not installed")
@pytest.mark.parametrize("audio", [AudioConfig(), AudioConfig(window_ms=40.0, coefficients=13, upper_hz=7600.0)])
def test_mfccs_equal_tf_signal(audio: AudioConfig) -> None:
    pcm = clips()
    ours = features(pcm, audio)
    theirs = reference_tf(pcm, audio)
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() < 1e-4 * max(
        1.0, np.abs(theirs).max()
    )  # measured 6e-6 of 12: float64 here, float32 in TF


def test_log_mel_and_silence() -> None:
    audio = AudioConfig(features="log_mel")
    silent = np.zeros((1, 16000), np.int16)
    out = features(silent, audio)
    assert out.shape == (1, 49, 40) and np.allclose(out, np.log(1e-6))  # a silent clip is not divided by its zero peak


@pytest.mark.parametrize(
    ("audio", "message"),
    [
        ({"window_ms": 2000}, "window_ms = 2000 is longer than clip_ms = 1000"),
        ({"upper_hz": 9000}, r"upper_hz <= 8000 \(half the sample rate\)"),
        ({"coefficients": 50}, "coefficients = 50 exceeds mel_bins = 40"),
    ],
)
def test_frontend_parameters_that_cannot_work_are_refused_in_the_recipe(audio: dict, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        parse_recipe({"data": {"source": "wav", "path": "clips", "audio": audio}})


def test_audio_is_refused_for_other_sources() -> None:
    with pytest.raises(RecipeError, match="audio applies to source = 'wav' only, not 'npz'"):
        parse_recipe({"data": {"source": "npz", "path": "x.npz", "audio": {"sample_rate": 8000}}})
