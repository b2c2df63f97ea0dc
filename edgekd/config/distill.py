from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from edgekd.config.base import StrictModel


class ModelSpec(StrictModel):
    """A built-in architecture sized by width and depth, or the user's own factory."""

    arch: Literal["mlp", "cnn", "mobilenet", "custom"] = "cnn"
    width: int = Field(16, ge=1)
    depth: int = Field(2, ge=1)
    factory: str | None = None  # "package.module:function" for arch = "custom"


class TrainConfig(StrictModel):
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    schedule: Literal["cosine", "step", "none"] = "cosine"
    patience: int | None = Field(None, ge=1)  # early stopping on validation accuracy
    augment: bool = False
    threads: int = Field(1, ge=0)  # torch intra-op threads while training; 0 = torch's default. Small models
    # train fastest on one thread (measured 8x faster than 2 threads for the digits teacher on a busy 2-core host)


class TeacherConfig(StrictModel):
    """The teacher: trained here (builtin), or loaded from a file or a soft-label table."""

    kind: Literal["builtin", "module", "torchscript", "onnx", "soft_labels"] = "builtin"
    model: ModelSpec = ModelSpec(arch="cnn", width=32, depth=3)
    path: Path | None = None  # weights / TorchScript / torch.export / ONNX / soft-label .npz; relative to the recipe
    train: TrainConfig = TrainConfig(epochs=15)
    outputs: Literal["logits", "probabilities"] = "logits"  # what an external teacher returns
    label_names: list[str] | None = None  # class names of an external teacher (default: the data's)

    @model_validator(mode="after")
    def _external_teacher_has_file(self) -> TeacherConfig:
        if self.kind != "builtin" and self.path is None:
            raise ValueError(f"teacher kind {self.kind!r} needs a path")
        if self.kind == "module" and self.model.arch != "custom":
            raise ValueError('teacher kind "module" needs model = { arch = "custom", factory = "pkg.mod:fn" }')
        return self


class StudentConfig(StrictModel):
    model: ModelSpec = ModelSpec(arch="cnn", width=8, depth=3)  # 6.3k params: 6.7% of the default teacher


class LossConfig(StrictModel):
    kind: Literal["hinton", "fitnets", "dkd", "pseudo_labels"] = "hinton"
    temperature: float = Field(4.0, gt=0)
    alpha: float = Field(0.5, ge=0, le=1)  # hinton: soft-term weight (1 - alpha on hard labels); dkd: TCKD weight
    beta: float = Field(8.0, ge=0)  # DKD non-target weight
    weight: float = Field(1.0, ge=0)
    hint_layers: list[str] = []  # FitNets: "student.path=teacher.path"


class DistillConfig(StrictModel):
    losses: list[LossConfig] = [LossConfig()]
    train: TrainConfig = TrainConfig(epochs=30)
    baseline: bool = True  # also train the same student from scratch with the same budget
    teacher_cache: bool = True
    cache_topk: int | None = Field(None, ge=1)  # store only the teacher's top-k classes per sample
    consistent_teaching: bool = True  # with augmentation: the teacher scores the student's augmented view
