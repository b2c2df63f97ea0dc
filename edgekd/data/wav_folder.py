"""`source = "wav"`: a folder with one subfolder of .wav clips per class, read with the standard library's `wave`.

Every file must be mono 16-bit PCM at the configured sample rate (the Speech Commands / MLPerf Tiny format):
another rate, width, channel count or encoding is refused with the file named, never converted silently.
Clips are zero-padded at the end or cut to `clip_ms`, then turned into (1, frames, features) MFCCs by
`edgekd.data.audio_frontend`; those features are the "raw" values of the preprocessing contract, and the
frontend's parameters go into the preprocessing record (`audio_frontend`) for the sidecar and the manifest.
"""

from __future__ import annotations

import re
import wave
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgekd.errors import DataError

if TYPE_CHECKING:
    from edgekd.config.data import AudioConfig
    from edgekd.data.sources import RawData

WAV_SUFFIX = ".wav"
CONVERT_HINT = "convert it to mono 16-bit PCM, e.g. `sox in.wav -c 1 -b 16 -e signed-integer out.wav`"
# WAVE format tags `wave` refuses ("unknown format: N"), named in the message
FORMAT_TAGS = {3: "IEEE float", 6: "A-law", 7: "mu-law", 17: "IMA ADPCM", 85: "MP3", 65534: "WAVE_FORMAT_EXTENSIBLE"}


def read_pcm(file: Path, sample_rate: int) -> np.ndarray:
    """One mono 16-bit PCM WAV at `sample_rate` as int16 samples; anything else is a DataError naming the file."""
    try:
        with wave.open(str(file), "rb") as clip:
            channels, width, rate, declared = (
                clip.getnchannels(),
                clip.getsampwidth(),
                clip.getframerate(),
                clip.getnframes(),
            )
            data = clip.readframes(declared)
    except wave.Error as exc:
        tag = re.fullmatch(r"unknown format: (\d+)", str(exc))
        what = f"{FORMAT_TAGS.get(int(tag.group(1)), 'format tag ' + tag.group(1))}, not PCM" if tag else str(exc)
        raise DataError(f"cannot read {file} as a PCM WAV file ({what})", hint=CONVERT_HINT) from None
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read {file} as a WAV file: {exc or 'it ends early'}", hint=CONVERT_HINT) from None
    if width != 2:
        raise DataError(f"{file} is {8 * width}-bit PCM; edgekd reads 16-bit PCM WAV (the keyword-spotting format)",
                        hint=CONVERT_HINT)  # fmt: skip
    if channels != 1:
        raise DataError(f"{file} has {channels} channels; keyword spotting takes mono clips", hint=CONVERT_HINT)
    if rate != sample_rate:
        raise DataError(f"{file} is sampled at {rate} Hz, not the {sample_rate} Hz of [data] audio.sample_rate; "
                        "edgekd does not resample",
                        hint=f"resample the files (e.g. `sox in.wav -r {sample_rate} out.wav`), or set [data] audio = "
                             f"{{ sample_rate = {rate} }} if every file has that rate")  # fmt: skip
    if len(data) < declared * width * channels:  # `wave` returns what is there without a word
        raise DataError(f"{file} is truncated: its header declares {declared:,} samples but {len(data) // 2:,} follow",
                        hint="copy or record the file again")  # fmt: skip
    pcm = np.frombuffer(data, dtype="<i2")
    if pcm.size == 0:
        raise DataError(f"{file} holds no samples", hint="remove the empty file")
    return pcm


def fixed_length(pcm: np.ndarray, samples: int) -> np.ndarray:
    """Zero-pad at the end (as the reference does) or cut to the first `samples`."""
    if len(pcm) >= samples:
        return pcm[:samples]
    return np.pad(pcm, (0, samples - len(pcm)))


def class_files(path: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    """(sorted class names, [(file, class index)]) of a folder of class subfolders; an empty class is refused."""
    if not path.exists():
        raise DataError(f"WAV folder {path} does not exist", hint="[data] path is taken relative to the recipe file")
    if not path.is_dir():
        raise DataError(f"WAV folder {path} is not a directory", hint="point [data] path at the folder holding one "
                        "subfolder of .wav files per class")  # fmt: skip
    classes = sorted(d.name for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError(
            f"{path} has no class subfolders", hint="put each class's clips in its own subfolder: root/yes/1.wav"
        )
    files: list[tuple[Path, int]] = []
    for index, name in enumerate(classes):
        found = sorted(f for f in (path / name).iterdir() if f.suffix.lower() == WAV_SUFFIX and f.is_file())
        if not found:
            raise DataError(f"class folder {path / name} holds no .wav files",
                            hint="add the class's clips, or remove the folder (every subfolder is a class)")  # fmt: skip
        files += [(f, index) for f in found]
    return classes, files


def read_wav_folder(path: Path, audio: AudioConfig) -> RawData:
    """The clips' features (N, 1, frames, features) float32, labels and class names; scale 1 (features are floats)."""
    from edgekd.data.audio_frontend import CHUNK, features
    from edgekd.data.sources import RawData

    classes, files = class_files(path)
    x = np.empty((len(files), 1, *audio.shape), np.float32)
    for begin in range(0, len(files), CHUNK):  # a chunk of clips at a time: Speech Commands' PCM alone is 3.4 GB
        chunk = [
            fixed_length(read_pcm(file, audio.sample_rate), audio.clip_samples)
            for file, _ in files[begin : begin + CHUNK]
        ]
        x[begin : begin + len(chunk), 0] = features(np.stack(chunk), audio)  # (B, frames, features)
    y = np.array([label for _, label in files], dtype=np.int64)
    return RawData(x, y, classes, 1.0, "float32")
