"""Recipe sections [teacher], [student], [distill] (and the `train` tables inside them).

Every field carries a description: docs/RECIPE.md and the JSON Schema are generated from them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from edgekd.config.base import StrictModel


class ModelSpec(StrictModel):
    """A built-in architecture sized by width and depth, or the user's own factory."""

    arch: Literal["auto", "mlp", "cnn", "mobilenet", "custom", "resnet8", "dscnn", "mobilenet_v1", "fc_autoencoder"] = (
        Field(
            "auto",
            description='Model family: "auto" ("cnn" for images, "mlp" for tables), "mlp" (any data), "cnn" and "mobilenet" '
            '(images), "custom" (your own factory), or an MLPerf Tiny reference architecture, layer for layer as in '
            'mlcommons/tiny: "resnet8" (images), "dscnn" (images or (1, frames, coefficients) features), "mobilenet_v1" '
            '(images, sized by alpha) and "fc_autoencoder" (architecture only: its reconstruction objective is not supported '
            'yet, so it is refused as a teacher or student). Sidecars record the family "auto" resolved to.',
        )
    )
    width: int | None = Field(
        None, ge=1,
        description="Built-in families: units (mlp) or channels of the first block (cnn, mobilenet), default 16; resnet8's "
        "first-stack filters (default the published reference's 16), dscnn's filters (default 64); refused for mobilenet_v1 "
        "(use alpha).",
    )  # fmt: skip
    depth: int | None = Field(
        None, ge=1,
        description="mlp, cnn, mobilenet: number of hidden layers (mlp) or blocks (cnn, mobilenet), default 2; refused for the "
        "MLPerf Tiny architectures (their depth is the reference's).",
    )  # fmt: skip
    alpha: float | None = Field(
        None, gt=0,
        description='arch = "mobilenet_v1" only: width multiplier (filters = int(reference filters x alpha)); default 0.25, the '
        "MLPerf Tiny visual wake words reference.",
    )  # fmt: skip

    @model_validator(mode="after")
    def _sizes_apply(self) -> ModelSpec:
        """width/depth/alpha only where they size the chosen family (never accepted and ignored)."""
        tiny = self.arch in ("resnet8", "dscnn", "mobilenet_v1", "fc_autoencoder")
        if self.arch == "fc_autoencoder":
            raise ValueError("fc_autoencoder is architecture only: its reconstruction objective (anomaly detection, AUC) is "
                             "not supported yet, so it cannot be trained as a classifier teacher or student")  # fmt: skip
        if self.depth is not None and (tiny or self.arch == "custom"):
            raise ValueError(f"depth does not apply to arch = {self.arch!r} (remove depth)")
        if self.width is not None and self.arch in ("mobilenet_v1", "custom"):
            fix = (
                "use alpha, e.g. 0.25 (the reference)"
                if self.arch == "mobilenet_v1"
                else "your factory sizes the model"
            )
            raise ValueError(f"width does not apply to arch = {self.arch!r}: {fix}")
        if self.alpha is not None and self.arch != "mobilenet_v1":
            raise ValueError(f"alpha applies to arch = 'mobilenet_v1' only, not {self.arch!r} (remove alpha)")
        return self

    factory: str | None = Field(
        None,
        description='arch = "custom": "package.module:function" returning a torch.nn.Module. edgekd passes the keywords the '
        "function declares among input_shape (C, H, W) or (F,), num_classes and in_channels; the model takes a float32 "
        "(batch, *input_shape) tensor and returns (batch, num_classes) logits.",
    )


PATIENT_LR = 1e-3
PATIENT_EPOCHS = 100


class AugmentConfig(StrictModel):
    """Seeded per-sample augmentation, with mixup; every view is fixed by (seed, epoch, sample)."""

    shift: bool = Field(True, description="1-pixel shifts for images, small Gaussian jitter for tables.")
    mixup: float = Field(
        0.0, ge=0,
        description="Mixup Beta(α, α) parameter; 0 = off. Each sample is mixed with a seeded partner, λ' = max(λ, 1 - λ) "
        "(MixMatch), so a view is fixed per (sample, epoch) and the teacher cache can hold it; the hard label is the "
        "dominant sample's, the teacher's soft targets carry the mix. Beyer et al. (CVPR 2022) distil with consistent "
        "mixup views (α = 1 there).",
    )  # fmt: skip

    @property
    def enabled(self) -> bool:
        return self.shift or self.mixup > 0


class DistillAugmentConfig(AugmentConfig):
    """[distill] train.augment: the augmentation, and whether the teacher sees the same views."""

    consistent: bool | None = Field(
        None,
        description="The teacher scores the student's augmented (mixed) view (true: consistent views, the teacher cached "
        "per sample and augmentation seed), or the plain sample (false). Default: [distill] consistent_teaching.",
    )


class TrainConfig(StrictModel):
    """One training run: optimiser, schedule, and which epoch's weights are kept."""

    epochs: int = Field(20, ge=1, description="Passes over the training split.")
    batch_size: int | None = Field(
        None, ge=1,
        description="Samples per optimiser step (per process under DDP). Default: 64, or the training split / 16 (at least 8) "
        "when that is smaller, so a 100-sample data set still gets ~13 steps per epoch (measured on iris: the default MLP "
        "teacher reached 76 % test accuracy with 64 and 96 % with 8, logistic regression 97 %).",
    )  # fmt: skip
    lr: float = Field(3e-3, gt=0, description="Peak learning rate.")
    weight_decay: float = Field(1e-4, ge=0, description="Decoupled weight decay (AdamW) or L2 (SGD).")
    optimizer: Literal["adamw", "sgd"] = Field("adamw", description='"adamw", or "sgd" (Nesterov momentum 0.9).')
    schedule: Literal["cosine", "step", "none", "patient"] = Field(
        "cosine",
        description='Per-step learning rate: "cosine" decay to 0, "step" (x0.1 at 50 % and 75 %), "none" (constant), or '
        '"patient": cosine with a mild peak lr (1e-3) over a long run (100 epochs) unless lr / epochs are set (Beyer et al., '
        '"Knowledge distillation: A good teacher is patient and consistent", CVPR 2022).',
    )
    select: Literal["best_val", "last"] = Field(
        "best_val",
        description='Which weights are kept: "best_val" = the epoch (from min_epochs on) with the highest validation accuracy, '
        'ties broken by the lower validation loss, then the later epoch; "last" = the final epoch. Without a validation '
        'split (val_fraction = 0) "best_val" falls back to "last" and a warning is recorded.',
    )
    min_epochs: int | None = Field(
        None,
        ge=1,
        description="Epochs always trained before a checkpoint may be selected or early stopping may end training. "
        "Default: half of `epochs` (rounded up), so a tiny validation split that saturates early cannot keep an "
        "under-trained epoch-2 model (measured on a 150-sample set: see docs/RELIABILITY.md).",
    )
    patience: int | None = Field(
        None, ge=1,
        description="Early stopping: end training after this many epochs (past min_epochs) without a better validation "
        "score. Needs a validation split; refused with val_fraction = 0.",
    )  # fmt: skip
    augment: bool | AugmentConfig = Field(
        False,
        description="Seeded per-sample augmentation: true = 1-pixel shifts for images, small Gaussian jitter for tables; "
        "or a table { shift, mixup }.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto",
        description='Where training runs: "cuda" (refused when no GPU is visible), "cpu", or "auto" (cuda when available). '
        "On CUDA, image models train in channels_last memory format.",
    )
    amp: Literal["off", "bf16", "fp16"] = Field(
        "off",
        description='Automatic mixed precision: "bf16" (CPU and CUDA, torch.autocast), "fp16" (CUDA only, with a '
        'GradScaler), or "off" (fp32).',
    )
    threads: int = Field(
        1, ge=0,
        description="torch intra-op threads while training; 0 = torch's default. Small models train fastest on one thread "
        "(measured 8x faster than 2 threads for the digits teacher on a busy 2-core host).",
    )  # fmt: skip

    @model_validator(mode="after")
    def _schedule_preset(self) -> TrainConfig:
        if self.schedule == "patient":  # a preset: long cosine at a mild peak lr, unless the recipe sets them
            if "lr" not in self.model_fields_set:
                self.__dict__["lr"] = PATIENT_LR
            if "epochs" not in self.model_fields_set:
                self.__dict__["epochs"] = PATIENT_EPOCHS
        return self

    @model_validator(mode="after")
    def _min_epochs_fit(self) -> TrainConfig:
        if self.min_epochs is not None and self.min_epochs > self.epochs:
            raise ValueError(f"min_epochs ({self.min_epochs}) cannot exceed epochs ({self.epochs})")
        return self

    @property
    def augmentation(self) -> AugmentConfig | None:
        """The augmentation in effect, or None."""
        if self.augment is True:
            return AugmentConfig()
        if isinstance(self.augment, AugmentConfig) and self.augment.enabled:
            return self.augment
        return None

    @property
    def augment_enabled(self) -> bool:
        return self.augmentation is not None

    def batch_for(self, samples: int) -> int:
        """The batch size for a training split of `samples` samples (see `batch_size`)."""
        return self.batch_size if self.batch_size is not None else min(64, max(8, samples // 16))

    @property
    def first_selectable_epoch(self) -> int:
        """1-based epoch from which a checkpoint may be kept and early stopping may act."""
        return self.min_epochs if self.min_epochs is not None else max(1, math.ceil(self.epochs / 2))


class DistillTrainConfig(TrainConfig):
    """[distill] train: a TrainConfig whose augment table may also say whether the teacher sees the same views."""

    augment: bool | DistillAugmentConfig = Field(
        False,
        description="Seeded per-sample augmentation: true = 1-pixel shifts for images, small Gaussian jitter for tables; "
        "or a table { shift, mixup, consistent }, e.g. { consistent = true, mixup = 1.0 } for consistent-view KD.",
    )


class TeacherPreprocessing(StrictModel):
    """The teacher's own inputs, as x = (raw * scale - mean) / std, independently of the student's."""

    scale: float | None = Field(
        None,
        gt=0,
        description="raw -> float step; default: the data's (1/255 for 8-bit images, 1/16 for digits, 1 for CSV).",
    )
    mean: float | list[float] = Field(
        [], description="Subtracted after scaling: one value, or one per channel / feature. Empty: 0."
    )
    std: float | list[float] = Field(
        [], description="Divided by after subtracting the mean: one value, or one per channel / feature. Empty: 1."
    )

    @model_validator(mode="after")
    def _std_nonzero(self) -> TeacherPreprocessing:
        values = self.std if isinstance(self.std, list) else [self.std]
        if any(v == 0 or not math.isfinite(v) for v in values):
            raise ValueError("std values must be finite and non-zero")
        return self


class TeacherConfig(StrictModel):
    """The teacher: trained here (builtin), or loaded from a file or a soft-label table."""

    kind: Literal["builtin", "module", "torchscript", "onnx", "soft_labels"] = Field(
        "builtin",
        description='"builtin" (trained here), "module" (your factory + a state dict), "torchscript" (TorchScript or a '
        'torch.export .pt2), "onnx" (run in ONNX Runtime), "soft_labels" (an .npz of ids and logits/probabilities).',
    )
    model: ModelSpec = Field(
        ModelSpec(width=32, depth=3),
        description='builtin: the architecture; module: { arch = "custom", factory = "pkg.mod:fn" }.',
    )
    path: Path | None = Field(
        None, description="Weights / TorchScript / torch.export / ONNX / soft-label .npz file; relative to the recipe."
    )
    train: TrainConfig = Field(TrainConfig(epochs=15), description="builtin: how the teacher is trained.")
    outputs: Literal["logits", "probabilities"] = Field("logits", description="What an external teacher returns.")
    label_names: list[str] | None = Field(
        None, description="Class names of an external teacher, in output order (default: the data's)."
    )
    preprocessing: Literal["auto", "student", "raw"] | TeacherPreprocessing = Field(
        "auto",
        description='The teacher\'s own inputs. "student": the student\'s (normalised) inputs; "raw": the values as loaded, '
        "only scaled (uint8 images and digits in 0..1, CSV units), not normalised; or { scale, mean, std }. "
        '"auto": builtin teachers get the student\'s, ONNX files written by edgekd what their metadata records, '
        'every other imported teacher "raw". Not used by soft_labels teachers.',
    )
    check: bool = Field(
        True,
        description="Before distillation, evaluate the teacher on the validation split and stop if it is near chance or, for "
        "an imported teacher, more than 2 pt below a logistic-regression baseline beyond noise; the message names the likely "
        "preprocessing mismatch. A builtin teacher below the baseline is a recorded warning. false: record the result and go on.",
    )

    @model_validator(mode="after")
    def _external_teacher_has_file(self) -> TeacherConfig:
        if self.kind != "builtin" and self.path is None:
            raise ValueError(f"teacher kind {self.kind!r} needs a path")
        if self.kind == "module" and self.model.arch != "custom":
            raise ValueError('teacher kind "module" needs model = { arch = "custom", factory = "pkg.mod:fn" }')
        if self.kind == "soft_labels" and self.preprocessing != "auto":
            raise ValueError("preprocessing does not apply to a soft_labels teacher (it is never run); remove the key")
        return self


class StudentConfig(StrictModel):
    """The small model that is distilled and shipped."""

    model: ModelSpec = Field(
        ModelSpec(width=8, depth=3),
        description="The student's architecture (default on images: a 6.3k-param CNN, 6.7 % of the default teacher).",
    )


class LossConfig(StrictModel):
    """One distillation loss term; the total loss is the weighted sum of all terms."""

    kind: Literal["hinton", "fitnets", "dkd", "dist", "pseudo_labels"] = Field(
        "hinton",
        description='"hinton" (soft targets + hard labels), "fitnets" (feature hints), "dkd" (decoupled KD), "dist" '
        '(DIST: Pearson relations between and within classes, tolerant of a much stronger teacher), "pseudo_labels" (teacher argmax).',
    )
    temperature: float | None = Field(
        None,
        gt=0,
        description="Softmax temperature of the soft targets (hinton, dkd, dist). Default: 4, or 2 with "
        "standardize = true (z-scored logits have unit spread; the base temperature of Sun et al. 2024).",
    )
    alpha: float = Field(
        0.5, ge=0, le=1, description="hinton: weight of the soft term (1 - alpha on hard labels); dkd: TCKD weight."
    )
    beta: float | None = Field(
        None,
        ge=0,
        description="dkd: weight of the non-target (NCKD) term (default 8); dist: weight of the "
        "inter-class relation (default 1).",
    )
    gamma: float = Field(1.0, ge=0, description="dist: weight of the intra-class relation.")
    standardize: bool = Field(
        False,
        description="hinton, dkd, dist: z-score each sample's student and teacher logits before the softmax (logit "
        "standardisation, Sun et al. CVPR 2024), so the student matches the teacher's logit relations, not their scale.",
    )
    weight: float = Field(1.0, ge=0, description="Weight of this term in the total loss.")
    hint_layers: list[str] = Field(
        [], description='fitnets: "student.path=teacher.path" pairs of layers whose outputs are matched.'
    )

    @model_validator(mode="after")
    def _options_apply(self) -> LossConfig:
        if self.standardize and self.kind not in ("hinton", "dkd", "dist"):
            raise ValueError(f"standardize applies to the soft-target losses hinton, dkd and dist, not {self.kind!r}")
        return self

    @property
    def resolved_temperature(self) -> float:
        """The temperature in effect (see `temperature`)."""
        if self.temperature is not None:
            return self.temperature
        return 2.0 if self.standardize else 4.0

    @property
    def resolved_beta(self) -> float:
        """The beta in effect (see `beta`)."""
        if self.beta is not None:
            return self.beta
        return 1.0 if self.kind == "dist" else 8.0


class DistillConfig(StrictModel):
    """How the student is distilled from the teacher (and the from-scratch baseline trained beside it)."""

    losses: list[LossConfig] = Field([LossConfig()], description="The loss terms, summed with their weights.")
    train: DistillTrainConfig = Field(
        DistillTrainConfig(epochs=30), description="How the student (and the scratch baseline) are trained."
    )
    baseline: bool = Field(
        True, description="Also train the same student from scratch with the same budget, to show what KD bought."
    )
    teacher_cache: bool = Field(
        True, description="Compute teacher outputs once and keep them (memory-mapped, sha256-checked) for every epoch."
    )
    cache_topk: int | None = Field(
        None, ge=1, description="Store only the teacher's top-k classes per sample (the rest spread evenly)."
    )
    consistent_teaching: bool = Field(
        True, description="With augmentation: the teacher scores the student's augmented view, not the plain sample."
    )

    @field_validator("train", mode="before")
    @classmethod
    def _distill_train(cls, value: object) -> object:
        """Accept a plain TrainConfig (code building configs) as the [distill] train table it describes."""
        if isinstance(value, TrainConfig) and not isinstance(value, DistillTrainConfig):
            return value.model_dump(exclude_unset=True)
        return value

    @model_validator(mode="after")
    def _one_consistency(self) -> DistillConfig:
        augment = self.train.augment
        if (isinstance(augment, DistillAugmentConfig) and augment.consistent is not None and "consistent_teaching" in self.model_fields_set
                and augment.consistent != self.consistent_teaching):  # fmt: skip
            raise ValueError(f"train.augment.consistent = {str(augment.consistent).lower()} contradicts consistent_teaching = "
                             f"{str(self.consistent_teaching).lower()}; keep one of them")  # fmt: skip
        return self

    @property
    def consistent_views(self) -> bool:
        """Whether the teacher scores the student's augmented view (train.augment.consistent, else consistent_teaching)."""
        augment = self.train.augment
        if isinstance(augment, DistillAugmentConfig) and augment.consistent is not None:
            return augment.consistent
        return self.consistent_teaching
