"""Teacher-output cache: teacher logits computed once, stored as sharded memory-mapped .npy arrays.

An entry is a directory named by its key, a hash of (teacher weights, training inputs and ids,
preprocessing, the teacher's own preprocessing, view). The view is "plain" or the augmentation seed of an epoch, so augmented views are
cached per (sample, augmentation seed) and never confused with plain ones. Layout:

    <root>/<key>/index.json            {"schema", "key", "num_samples", "num_classes", "topk", "shards": [...]}
    <root>/<key>/values_00000.npy      (rows, C) float32 logits, or (rows, k) top-k log-probabilities
    <root>/<key>/indices_00000.npy     (rows, k) int32 class indices (top-k only)

Each shard's sha256 is recorded in index.json and checked before use. No pickle anywhere
(np.load(allow_pickle=False)). Entries are written to a temporary directory and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.errors import CacheError
from edgekd.fileio import atomic_write_json, read_json, sha256_file, storage_error

CACHE_SCHEMA = "edgekd.teacher-cache/1"
SHARD_ROWS = 4096
IN_MEMORY_BYTES = 256 * 2**20  # entries up to this size are held in one array (60,000 x 10 logits: 2.4 MB)
log = logging.getLogger(__name__)


def data_fingerprint(x: np.ndarray, ids: np.ndarray, preprocessing: dict[str, Any]) -> str:
    """Hash of the training inputs, their ids and the preprocessing that produced them."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(x).tobytes())
    digest.update(np.ascontiguousarray(ids, dtype=np.int64).tobytes())
    digest.update(json.dumps(preprocessing, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def cache_key(teacher_sha256: str, data_sha256: str, view: str, topk: int | None, inputs: str = "student") -> str:
    """The entry name. `inputs` is the teacher's preprocessing ("student" when it takes the student's inputs):
    the same weights fed other inputs give other outputs."""
    fields = {"schema": CACHE_SCHEMA, "teacher": teacher_sha256, "data": data_sha256, "view": view, "topk": topk}
    if inputs != "student":  # keys of teachers on the student's inputs stay as they were
        fields["inputs"] = inputs
    payload = json.dumps(fields)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


class CachedOutputs:
    """An opened, verified entry: rows of teacher logits read from memory-mapped shards.

    An entry of at most IN_MEMORY_BYTES is read into one array per role (the shards were just read for their
    sha256 check, so this is a copy from the page cache): a batch is then one fancy index (2 us for 64 rows of
    a 60,000-sample entry, against 83 us through 15 memory-mapped shards). Larger entries stay memory-mapped.
    """

    def __init__(self, directory: Path, index: dict[str, Any]) -> None:
        self.directory = directory
        self.num_samples = int(index["num_samples"])
        self.num_classes = int(index["num_classes"])
        self.topk = index["topk"]
        self._values = [np.load(directory / s["values"], mmap_mode="r", allow_pickle=False) for s in index["shards"]]
        self._indices = [
            np.load(directory / s["indices"], mmap_mode="r", allow_pickle=False)
            for s in index["shards"]
            if "indices" in s
        ]
        self._starts = np.cumsum([0] + [len(v) for v in self._values])
        if len(self._values) > 1 and sum(a.nbytes for a in self._values + self._indices) <= IN_MEMORY_BYTES:
            self._values = [np.concatenate(self._values)]
            self._indices = [np.concatenate(self._indices)] if self._indices else []
            self._starts = np.array([0, self.num_samples])

    def rows(self, positions: np.ndarray) -> np.ndarray:
        """(B, C) float32 logits for the given sample positions (dense even when top-k is stored)."""
        values = _gather(self._values, self._starts, positions).astype(np.float32, copy=False)
        if self.topk is None:
            return values
        return dense_from_topk(values, _gather(self._indices, self._starts, positions), self.num_classes)


def _gather(shards: list[np.ndarray], starts: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Rows `positions` of the shards read as one array: one fancy index per shard the batch touches.

    Not one index per row: a Python loop over the batch cost 180 us per batch of 64 (0.4 ms with top-k) on a
    60,000-sample cache of 15 shards, 6-15 % of a small student's whole training step; this costs ~20 us."""
    if len(shards) == 1:  # at most SHARD_ROWS samples, or read into memory
        return np.asarray(shards[0][positions])
    positions = np.asarray(positions, dtype=np.int64)
    shard = np.searchsorted(starts, positions, side="right") - 1
    offset = positions - starts[shard]
    out = np.empty((len(positions), *shards[0].shape[1:]), dtype=shards[0].dtype)
    for number in np.unique(shard):
        chosen = shard == number
        out[chosen] = shards[number][offset[chosen]]
    return out


def topk_log_probs(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest log-probabilities per row and their class indices."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    indices = np.argsort(-log_probs, axis=1)[:, :k].astype(np.int32)
    return np.take_along_axis(log_probs, indices, axis=1).astype(np.float32), indices


def dense_from_topk(values: np.ndarray, indices: np.ndarray, num_classes: int) -> np.ndarray:
    """Rebuild (B, C) log-probabilities: stored top-k exactly, the remaining mass spread evenly."""
    k = values.shape[1]
    if k >= num_classes:
        out = np.empty((len(values), num_classes), dtype=np.float32)
        np.put_along_axis(out, indices.astype(np.int64), values, axis=1)
        return out
    rest = np.clip(1.0 - np.exp(values).sum(axis=1, keepdims=True), 1e-12, None) / (num_classes - k)
    out = np.repeat(np.log(rest), num_classes, axis=1).astype(np.float32)
    np.put_along_axis(out, indices.astype(np.int64), values, axis=1)
    return out


class TeacherOutputCache:
    """Get-or-compute access to cache entries under `root`."""

    def __init__(self, root: Path, topk: int | None = None, shard_rows: int = SHARD_ROWS) -> None:
        self.root = Path(root)
        self.topk = topk
        self.shard_rows = shard_rows
        self.hits = 0
        self.misses = 0

    def entry(self, key: str) -> Path:
        return self.root / key

    def open(self, key: str) -> CachedOutputs:
        """Open an entry after checking every shard's sha256. Raises CacheError if absent or damaged."""
        directory = self.entry(key)
        index_path = directory / "index.json"
        if not index_path.exists():
            raise CacheError(f"teacher-output cache entry {key} does not exist")
        try:
            index = read_json(index_path)
        except (OSError, ValueError) as exc:
            raise CacheError(f"teacher-output cache index {index_path} is unreadable: {exc}") from None
        if index.get("schema") != CACHE_SCHEMA or index.get("key") != key:
            raise CacheError(f"teacher-output cache entry {directory} has a foreign index")
        for shard in index["shards"]:
            for role in ("values", "indices"):
                if role in shard and sha256_file(directory / shard[role]) != shard[f"{role}_sha256"]:
                    raise CacheError(f"teacher-output cache shard {directory / shard[role]} fails its sha256 check",
                                     hint="the entry is rebuilt automatically; delete the cache directory if this repeats")  # fmt: skip
        return CachedOutputs(directory, index)

    def get_or_compute(self, key: str, compute: Callable[[], np.ndarray]) -> CachedOutputs:
        """The entry for `key`, computing and storing it first if it is missing or fails its check."""
        if (self.entry(key) / "index.json").exists():
            try:
                opened = self.open(key)
                self.hits += 1
                return opened
            except CacheError as exc:
                log.warning("%s; recomputing the teacher outputs", exc.message)
        self.misses += 1
        self.write(key, compute())
        return self.open(key)

    def write(self, key: str, logits: np.ndarray) -> None:
        """Store (N, C) teacher logits under `key`, replacing any previous entry atomically."""
        final = self.entry(key)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=self.root))
        except OSError as exc:
            raise storage_error(exc, self.root) from None
        try:
            shards = []
            for number, start in enumerate(range(0, len(logits), self.shard_rows)):
                chunk = logits[start : start + self.shard_rows]
                shard: dict[str, Any] = {"rows": len(chunk)}
                if self.topk is None:
                    arrays = {"values": chunk.astype(np.float32)}
                else:
                    values, indices = topk_log_probs(chunk, self.topk)
                    arrays = {"values": values, "indices": indices}
                for role, array in arrays.items():
                    name = f"{role}_{number:05d}.npy"
                    np.save(tmp / name, array, allow_pickle=False)
                    shard[role] = name
                    shard[f"{role}_sha256"] = sha256_file(tmp / name)
                shards.append(shard)
            index = {"schema": CACHE_SCHEMA, "key": key, "num_samples": len(logits), "num_classes": int(logits.shape[1]),
                     "topk": self.topk, "shards": shards}  # fmt: skip
            atomic_write_json(tmp / "index.json", index)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        except OSError as exc:
            raise storage_error(exc, final) from None
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
