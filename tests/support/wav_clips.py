"""WAV clips written by tests: tones in noise per class folder, and files in the formats edgekd refuses."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np

TONES = {"high": 2500.0, "low": 400.0, "mid": 1200.0}  # class -> tone (Hz); sorted class order: high, low, mid


def write_wav(path: Path, samples: np.ndarray, rate: int = 16000, width: int = 2, channels: int = 1) -> Path:
    """A PCM WAV through the standard library: int16 samples (rescaled to 8-bit unsigned when width = 1)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (
        samples.astype("<i2").tobytes()
        if width == 2
        else ((samples.astype(np.int32) >> 8) + 128).astype(np.uint8).tobytes()
    )
    with wave.open(str(path), "wb") as clip:
        clip.setnchannels(channels)
        clip.setsampwidth(width)
        clip.setframerate(rate)
        clip.writeframes(data)
    return path


def tone(freq: float, seconds: float, rng: np.random.Generator, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    x = 0.5 * np.sin(2 * np.pi * freq * (1 + 0.03 * rng.normal()) * t + rng.uniform(0, 6.3)) + 0.05 * rng.normal(
        size=t.size
    )
    return np.round(x * 20000).astype(np.int16)


def clip_folder(root: Path, per_class: int = 12) -> Path:
    """One subfolder per tone; clips 0.6 to 1.3 s long (padded / cut to 1 s), plus a non-WAV file that is ignored."""
    rng = np.random.default_rng(0)
    for name, freq in TONES.items():
        for i in range(per_class):
            write_wav(root / name / f"{i:02d}.wav", tone(freq, rng.uniform(0.6, 1.3), rng))
    (root / "low" / "README.txt").write_text("recorded on a phone\n")
    return root


def float_wav(path: Path) -> Path:
    """A 32-bit IEEE-float WAV (format tag 3), written by hand: `wave` cannot write one."""
    data = np.zeros(1600, "<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, 16000, 16000 * 4, 4, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path
