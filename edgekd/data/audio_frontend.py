"""The keyword-spotting frontend: a 16-bit PCM clip -> (frames, coefficients) MFCC or log-mel features.

The MLPerf Tiny keyword-spotting reference, in numpy (mlcommons/tiny, commit 1afd2c9,
benchmark/training/keyword_spotting/get_dataset.py `get_preprocess_audio_func`, feature_type "mfcc", with
kws_util.py's defaults: 16 kHz, 1000 ms clips, 30 ms window, 20 ms stride, 10 coefficients):

    x      = pcm / max|pcm|                                  per clip (the reference divides by tf.reduce_max)
    frames = x[i*stride : i*stride + window] * hann          periodic Hann, 1 + (clip - window) // stride frames
    mag    = |rfft(frames, n=fft_length)|                    fft_length = next power of two >= window
    mel    = mag @ W                                         W = tf.signal.linear_to_mel_weight_matrix (HTK mel)
    logmel = log(mel + log_offset)
    mfcc   = DCT-II(logmel) * sqrt(2 / mel_bins), first `coefficients`   (tf.signal.mfccs_from_log_mel_spectrograms)

Why numpy and not a library: the reference computes these with TensorFlow's `tf.signal`, which firmware does
not run; the `tflite-micro` wheel ships TFLM's signal kernels (SignalWindow, SignalRfft, SignalFilterBank, ...)
but not the Python graph builders that make a model of them, and that chain (the micro_speech frontend:
square-root filterbank energies, spectral subtraction, PCAN, int16 log) ends in log filterbank energies of
another scale, not these MFCCs. So edgekd computes the reference's features in ~60 lines a firmware engineer
can port line for line (every parameter is in `frontend_record`, which reaches the data sidecar and the
handoff manifest), and tests/core/test_audio_frontend.py checks them against `tf.signal` itself.
The one deliberate difference: the peak is max|pcm| (the reference's positive peak can be 0 or negative).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from edgekd.config.data import AudioConfig

CHUNK = 512  # clips per vectorised batch: (512, 49, 512) float64 spectra stay near 100 MB


def frontend_record(frontend: AudioConfig) -> dict[str, Any]:
    """Every parameter and the formulas, for the data sidecar and the handoff manifest (firmware ports these)."""
    frames, per_frame = frontend.shape
    return {
        "kind": "kws_audio_frontend",
        "reference": "mlcommons/tiny benchmark/training/keyword_spotting/get_dataset.py (feature_type mfcc)",
        "input": f"mono 16-bit PCM at {frontend.sample_rate} Hz, {frontend.clip_samples} samples "
        "(zero-padded at the end / cut to the first ones)",
        "sample_rate_hz": frontend.sample_rate,
        "clip_ms": frontend.clip_ms,
        "clip_samples": frontend.clip_samples,
        "window_ms": frontend.window_ms,
        "window_samples": frontend.window_samples,
        "stride_ms": frontend.stride_ms,
        "stride_samples": frontend.stride_samples,
        "window_function": "periodic Hann: 0.5 - 0.5 cos(2 pi n / window_samples)",
        "fft_length": frontend.fft_length,
        "spectrum": "magnitude |rfft|",
        "mel_bins": frontend.mel_bins,
        "mel_scale": "HTK: 1127 ln(1 + f / 700); triangular, tf.signal.linear_to_mel_weight_matrix (DC bin zero)",
        "lower_hz": frontend.lower_hz,
        "upper_hz": frontend.upper_hz,
        "log": f"ln(mel + {frontend.log_offset:g})",
        "log_offset": frontend.log_offset,
        "features": frontend.features,
        "coefficients": frontend.coefficients if frontend.features == "mfcc" else None,
        "dct": "DCT-II * sqrt(2 / mel_bins) (tf.signal.mfccs_from_log_mel_spectrograms)"
        if frontend.features == "mfcc"
        else None,
        "peak_normalize": "pcm / max|pcm| per clip (a silent clip stays 0)"
        if frontend.peak_normalize
        else "pcm / 32768",
        "output_shape": [frames, per_frame],
        "output_layout": "(frames, features): the model input is (1, frames, features) per clip",
    }


def mel_matrix(frontend: AudioConfig) -> np.ndarray:
    """(fft_length // 2 + 1, mel_bins) triangular weights, as tf.signal.linear_to_mel_weight_matrix."""
    bins = frontend.fft_length // 2 + 1
    hz = np.linspace(0.0, frontend.sample_rate / 2.0, bins)[1:]  # the DC bin gets no weight (padded back below)
    mel = 1127.0 * np.log1p(hz / 700.0)[:, None]
    edges = np.linspace(1127.0 * np.log1p(frontend.lower_hz / 700.0), 1127.0 * np.log1p(frontend.upper_hz / 700.0),
                        frontend.mel_bins + 2)  # fmt: skip
    lower, center, upper = edges[:-2][None], edges[1:-1][None], edges[2:][None]
    weights = np.maximum(0.0, np.minimum((mel - lower) / (center - lower), (upper - mel) / (upper - center)))
    return np.pad(weights, [[1, 0], [0, 0]])


def dct_matrix(mel_bins: int, coefficients: int) -> np.ndarray:
    """(mel_bins, coefficients): y[k] = sqrt(2 / N) * sum_n x[n] cos(pi k (2n + 1) / 2N)."""
    n = np.arange(mel_bins)[:, None]
    k = np.arange(coefficients)[None]
    return np.sqrt(2.0 / mel_bins) * np.cos(np.pi * k * (2 * n + 1) / (2 * mel_bins))


def features(pcm: np.ndarray, frontend: AudioConfig) -> np.ndarray:
    """(N, clip_samples) int16 clips -> (N, frames, features) float32."""
    n_frames, window, stride = frontend.frames, frontend.window_samples, frontend.stride_samples
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(window) / window)
    mel = mel_matrix(frontend)
    dct = dct_matrix(frontend.mel_bins, frontend.coefficients) if frontend.features == "mfcc" else None
    starts = np.arange(n_frames)[:, None] * stride + np.arange(window)[None]  # (frames, window) sample indices
    out = np.empty((len(pcm), *frontend.shape), np.float32)
    for begin in range(0, len(pcm), CHUNK):
        x = pcm[begin : begin + CHUNK].astype(np.float64)
        if frontend.peak_normalize:
            peak = np.abs(x).max(axis=1, keepdims=True)
            x = x / np.where(peak > 0, peak, 1.0)
        else:
            x = x / 32768.0
        spectrum = np.abs(np.fft.rfft(x[:, starts] * hann, n=frontend.fft_length))  # (B, frames, bins)
        log_mel = np.log(spectrum @ mel + frontend.log_offset)  # (B, frames, mel_bins)
        out[begin : begin + CHUNK] = log_mel @ dct if dct is not None else log_mel
    return out
