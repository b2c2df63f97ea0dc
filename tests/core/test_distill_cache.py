"""Teacher-output cache: sharded memory-mapped entries, integrity by sha256, top-k storage, keys."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekd.distill import cache as cache_module
from edgekd.distill.cache import TeacherOutputCache, cache_key, data_fingerprint, dense_from_topk, topk_log_probs
from edgekd.errors import CacheError


def _logits(n: int = 10, c: int = 6) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, c)).astype(np.float32) * 3


def test_entry_is_sharded_memory_mapped_and_exact(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(cache_module, "IN_MEMORY_BYTES", 0)  # a large entry: it stays memory-mapped
    cache = TeacherOutputCache(tmp_path, shard_rows=4)
    logits = _logits()
    opened = cache.get_or_compute("k1", lambda: logits)
    assert sorted(p.name for p in (tmp_path / "k1").iterdir()) == [
        "index.json",
        "values_00000.npy",
        "values_00001.npy",
        "values_00002.npy",
    ]
    assert isinstance(opened._values[0], np.memmap)
    positions = np.array([9, 0, 4, 5, 3])
    assert np.array_equal(opened.rows(positions), logits[positions])
    index = json.loads((tmp_path / "k1" / "index.json").read_text())
    assert index["num_samples"] == 10 and all(len(s["values_sha256"]) == 64 for s in index["shards"])


def test_second_use_is_a_hit_and_does_not_compute(tmp_path) -> None:
    cache = TeacherOutputCache(tmp_path)
    cache.get_or_compute("k", _logits)
    cache.get_or_compute("k", lambda: pytest.fail("recomputed a valid entry"))
    assert (cache.hits, cache.misses) == (1, 1)


def test_damaged_shard_is_detected_and_rebuilt(tmp_path) -> None:
    cache = TeacherOutputCache(tmp_path, shard_rows=4)
    logits = _logits()
    cache.get_or_compute("k", lambda: logits)
    shard = tmp_path / "k" / "values_00001.npy"
    raw = bytearray(shard.read_bytes())
    raw[-1] ^= 0xFF  # flip a bit in the last stored float
    shard.write_bytes(bytes(raw))
    with pytest.raises(CacheError, match="fails its sha256 check"):
        cache.open("k")
    opened = cache.get_or_compute("k", lambda: logits)
    assert cache.misses == 2 and np.array_equal(opened.rows(np.arange(10)), logits)


def test_topk_keeps_the_top_classes_and_the_remaining_mass(tmp_path) -> None:
    logits = _logits(8, 6)
    cache = TeacherOutputCache(tmp_path, topk=2)
    rows = cache.get_or_compute("k", lambda: logits).rows(np.arange(8))
    exact = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    approx = np.exp(rows)
    top = np.argsort(-logits, axis=1)[:, :2]
    assert np.allclose(np.take_along_axis(approx, top, 1), np.take_along_axis(exact, top, 1), atol=1e-6)
    assert np.allclose(approx.sum(1), 1.0, atol=1e-5)
    assert np.array_equal(rows.argmax(1), logits.argmax(1))
    values, indices = topk_log_probs(logits, 6)  # k = C reproduces the distribution exactly
    assert np.allclose(np.exp(dense_from_topk(values, indices, 6)), exact, atol=1e-6)


def test_keys_separate_teacher_data_view_and_topk() -> None:
    x = np.zeros((3, 2), np.float32)
    data = data_fingerprint(x, np.arange(3), {"mean": 0.0})
    assert data != data_fingerprint(x, np.arange(3), {"mean": 0.1})  # preprocessing is part of the key
    assert data != data_fingerprint(x + 1, np.arange(3), {"mean": 0.0})
    keys = {cache_key("t", data, "plain", None), cache_key("t2", data, "plain", None), cache_key("t", data, "aug:1", None),
            cache_key("t", data, "aug:2", None), cache_key("t", data, "plain", 3)}  # fmt: skip
    assert len(keys) == 5
