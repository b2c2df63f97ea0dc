"""`edgekd distill --nproc 2`: DistributedDataParallel over two CPU processes (torchrun, gloo)."""

from __future__ import annotations

import json
import math

import pytest

from edgekd.artifacts import load_artifact
from edgekd.commands.distill import distill_cmd
from edgekd.distill.models import load_torch_model
from tests.support.distill_fixtures import SMALL_RECIPE as RECIPE


@pytest.mark.ddp
@pytest.mark.slow
def test_two_process_ddp_distillation(tmp_path) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE)
    distill_cmd(
        recipe, out=tmp_path / "run", nproc=2, resume=False, labeled_fraction=None, seed=None, json_output=False
    )
    outcome = json.loads((tmp_path / "run" / "distill" / "outcome.json").read_text())
    metrics = outcome["metrics"]
    assert metrics["world_size"] == 2 and metrics["backend"] == "gloo"
    rows = metrics["history"]["student"]
    per_rank = math.ceil(math.ceil(metrics["train_samples"] / 2) / 32)  # each rank saw half of every epoch
    assert len(rows) == 2 and all(r["steps"] == per_rank and r["world_size"] == 2 for r in rows)
    assert metrics["history"]["scratch"][0]["steps"] == per_rank  # same budget for the baseline
    assert metrics["teacher_cache"]["misses"] == 2  # rank 0 wrote one entry per augmented epoch
    student = load_artifact(outcome["artifacts"][0])
    assert student.name == "student_torch"
    load_torch_model(student)
    assert 0.0 <= metrics["student_accuracy"] <= 1.0


@pytest.mark.ddp
@pytest.mark.slow
def test_ddp_workers_feed_an_imported_teacher_its_own_raw_inputs(tmp_path) -> None:
    """An ONNX teacher trained outside edgekd on raw [0, 1] digits keeps its own accuracy under --nproc 2."""
    import numpy as np
    import torch

    from tests.support.distill_fixtures import digits, raw_digits, train_outside_edgekd

    data = digits()
    x_raw, y = raw_digits()
    model = train_outside_edgekd(x_raw[data.ids_train], y[data.ids_train])
    torch.onnx.export(model, (torch.from_numpy(x_raw[:4]),), str(tmp_path / "teacher.onnx"), input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, dynamo=False)  # fmt: skip
    with torch.no_grad():
        outside = float(np.mean(model(torch.from_numpy(x_raw[data.ids_test])).argmax(1).numpy() == y[data.ids_test]))
    recipe = tmp_path / "r.toml"
    recipe.write_text('[teacher]\nkind = "onnx"\npath = "teacher.onnx"\n[student]\nmodel = { arch = "cnn", width = 4, depth = 2 }\n'
                      "[distill]\ntrain = { epochs = 1, batch_size = 32 }\nbaseline = false\n")  # fmt: skip
    distill_cmd(
        recipe, out=tmp_path / "run", nproc=2, resume=False, labeled_fraction=None, seed=None, json_output=False
    )
    metrics = json.loads((tmp_path / "run" / "distill" / "outcome.json").read_text())["metrics"]
    assert metrics["world_size"] == 2 and "mean" not in metrics["teacher_preprocessing"]
    assert abs(metrics["teacher_accuracy"] - outside) <= 0.005


def test_process_group_backend_follows_the_device(monkeypatch) -> None:
    import torch
    import torch.distributed as dist

    from edgekd.distill.ddp import process_group_backend

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert process_group_backend("auto") == process_group_backend("cpu") == "gloo"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(dist, "is_nccl_available", lambda: True)
    assert process_group_backend("auto") == process_group_backend("cuda") == "nccl"
    assert process_group_backend("cpu") == "gloo"


def _gather_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    import numpy as np
    import torch.distributed as dist

    from edgekd.distill.objectives import gather_rows

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        n = 7
        full = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
        got = gather_rows(full[rank::world], n, rank, world)  # each rank "computes" only its shard
        np.save(f"{out_dir}/rank{rank}.npy", got)
    finally:
        dist.destroy_process_group()


def test_teacher_outputs_computed_in_shards_are_gathered_in_sample_order(tmp_path) -> None:
    import socket

    import numpy as np
    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(_gather_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    expected = np.arange(21, dtype=np.float32).reshape(7, 3)
    for rank in (0, 1):
        np.testing.assert_array_equal(np.load(tmp_path / f"rank{rank}.npy"), expected)
