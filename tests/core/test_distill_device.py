"""Device choice, mixed precision (bf16 autocast covered on the CPU) and no per-step host syncs in the trainer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgekd.config.distill import TrainConfig
from edgekd.distill.models import build_model
from edgekd.distill.objectives import SupervisedObjective
from edgekd.distill.train import TrainData, fit
from edgekd.errors import RecipeError
from tests.support.distill_fixtures import digits


@pytest.fixture(scope="module")
def train_data() -> TrainData:
    data = digits()
    return TrainData(data.x_train[:256], data.y_train[:256], data.ids_train[:256], data.x_val, data.y_val)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model({"arch": "cnn", "width": 4, "depth": 2}, (1, 8, 8), 10)


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA GPU visible to torch (torch.cuda.is_available() is false)"
)
@pytest.mark.parametrize("amp", ["off", "bf16", "fp16"])
def test_trainer_runs_on_cuda(train_data, amp) -> None:
    model = _model()
    result = fit(model, train_data, TrainConfig(epochs=2, batch_size=32, device="cuda", amp=amp), SupervisedObjective(),
                 seed=0, label="cuda")  # fmt: skip
    assert result.history[-1]["device"].startswith("cuda") and result.history[-1]["amp"] == amp
    assert next(model.parameters()).device.type == "cpu"  # handed back on the CPU for export
    assert result.history[-1]["val_accuracy"] > 0.2


def test_cuda_without_a_gpu_and_fp16_on_cpu_are_refused(train_data, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RecipeError, match='device = "cuda" but torch sees no CUDA GPU'):
        fit(_model(), train_data, TrainConfig(epochs=1, device="cuda"), SupervisedObjective(), seed=0, label="x")
    with pytest.raises(RecipeError, match='amp = "fp16" needs a CUDA device'):
        fit(
            _model(),
            train_data,
            TrainConfig(epochs=1, device="auto", amp="fp16"),
            SupervisedObjective(),
            seed=0,
            label="x",
        )


def test_bf16_autocast_trains_on_the_cpu(train_data) -> None:
    model = _model()
    seen: list[torch.dtype] = []
    handle = model.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    result = fit(model, train_data, TrainConfig(epochs=3, batch_size=32, lr=2e-2, device="cpu", amp="bf16"), SupervisedObjective(),
                 seed=0, label="bf16")  # fmt: skip
    handle.remove()
    assert torch.bfloat16 in seen  # the autocast path really ran in bf16
    assert result.history[-1]["amp"] == "bf16" and result.history[-1]["device"] == "cpu"
    assert all(np.isfinite(r["loss"]) for r in result.history) and result.history[-1]["val_accuracy"] > 0.3
    assert next(model.parameters()).dtype == torch.float32


def test_host_syncs_do_not_scale_with_the_number_of_steps(train_data, monkeypatch) -> None:
    """No .item()/float()/int()/bool() on a tensor per step: the count is the same for 4 and 32 steps per epoch."""
    counts = {"n": 0}
    for name in ("item", "__float__", "__int__", "__bool__"):
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _original=original, **kwargs):
            counts["n"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    syncs = []
    for batch_size in (64, 8):
        counts["n"] = 0
        fit(_model(), train_data, TrainConfig(epochs=1, batch_size=batch_size, optimizer="sgd", device="cpu"), SupervisedObjective(),
            seed=0, label="syncs")  # fmt: skip
        syncs.append(counts["n"])
    assert syncs[0] == syncs[1], f"host syncs: {syncs[0]} with 4 steps, {syncs[1]} with 32 steps"


def test_a_torch_teacher_stays_on_the_cpu_for_cpu_training_and_moves_for_cuda() -> None:
    from edgekd.distill.teachers import Teacher

    teacher = Teacher(kind="torch", num_classes=3, fingerprint="f", module=torch.nn.Linear(4, 3))
    teacher.place(torch.device("cpu"))
    assert teacher.device is None
    assert teacher.logits(np.zeros((2, 4), dtype=np.float32), np.arange(2)).shape == (2, 3)
    if torch.cuda.is_available():
        teacher.place(torch.device("cuda", 0))
        assert next(teacher.module.parameters()).device.type == "cuda"
        assert teacher.logits(np.zeros((2, 4), dtype=np.float32), np.arange(2)).dtype == np.float32
