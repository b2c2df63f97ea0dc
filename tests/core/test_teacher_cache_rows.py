"""Teacher-output cache rows: exact across shards, and a batch costs one index per shard, never one per row."""

from __future__ import annotations

import numpy as np
import pytest

from edgekd.distill import cache as cache_module
from edgekd.distill.cache import TeacherOutputCache


class CountingShard:
    """A shard that counts how often it is indexed (a per-row Python loop indexes it once per row)."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.shape, self.dtype, self.nbytes = array.shape, array.dtype, array.nbytes
        self.calls = 0

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, key: object) -> np.ndarray:
        self.calls += 1
        return self.array[key]


def _logits(n: int = 50, c: int = 10) -> np.ndarray:
    return np.random.default_rng(1).standard_normal((n, c)).astype(np.float32) * 3


@pytest.mark.parametrize("in_memory_bytes", [0, cache_module.IN_MEMORY_BYTES], ids=["memory-mapped", "in memory"])
@pytest.mark.parametrize("topk", [None, 3])
def test_rows_across_shards_equal_one_unsharded_entry(tmp_path, monkeypatch, in_memory_bytes, topk) -> None:
    monkeypatch.setattr(cache_module, "IN_MEMORY_BYTES", in_memory_bytes)
    logits = _logits()
    sharded = TeacherOutputCache(tmp_path / "sharded", topk=topk, shard_rows=7).get_or_compute("k", lambda: logits)
    whole = TeacherOutputCache(tmp_path / "whole", topk=topk, shard_rows=1000).get_or_compute("k", lambda: logits)
    assert len(list((tmp_path / "sharded" / "k").glob("values_*.npy"))) == 8
    for positions in (np.random.default_rng(2).permutation(50)[:16], np.array([49, 0, 6, 7, 7, 48]), np.arange(50)):
        rows = sharded.rows(positions)
        assert rows.dtype == np.float32 and rows.shape == (len(positions), 10)
        assert np.array_equal(rows, whole.rows(positions))
        if topk is None:
            assert np.array_equal(rows, logits[positions])


def test_a_batch_indexes_each_shard_once_not_each_row(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(cache_module, "IN_MEMORY_BYTES", 0)  # keep the 8 memory-mapped shards
    logits = _logits()
    opened = TeacherOutputCache(tmp_path, topk=3, shard_rows=7).get_or_compute("k", lambda: logits)
    opened._values = [CountingShard(np.asarray(a)) for a in opened._values]
    opened._indices = [CountingShard(np.asarray(a)) for a in opened._indices]
    positions = np.array([0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 40, 41, 42, 43, 44, 45, 46, 47])  # 18 rows in 4 shards
    opened.rows(positions)
    calls = [shard.calls for shard in opened._values + opened._indices]
    assert sum(calls) == 8 and max(calls) == 1  # values and indices of the 4 shards touched, once each


def test_a_small_sharded_entry_is_read_into_one_array(tmp_path) -> None:
    logits = _logits()
    opened = TeacherOutputCache(tmp_path, shard_rows=7).get_or_compute("k", lambda: logits)
    assert len(opened._values) == 1 and not isinstance(opened._values[0], np.memmap)
    assert np.array_equal(opened.rows(np.arange(50)[::-1]), logits[::-1])
