"""Distillation losses, each a plain `nn.Module` with `forward(student_out, teacher_out, targets)`.

Every logit loss (hinton, dkd, dist) takes `standardize`: logit standardisation (Sun et al., "Logit
Standardization in Knowledge Distillation", CVPR 2024, arXiv:2403.01427) z-scores each sample's student
and teacher logits, Z(z) = (z - mean(z)) / std(z), before the temperature softmax, so the student
matches the teacher's logit *relations* rather than their magnitude. Cross-entropy stays on raw logits.

Shapes: logits are (B, C) or sequences (B, T, C); targets are (B,) or (B, T) class indices, with -1
marking a sample whose true label the student may not see (label-scarce training). Every loss returns
a scalar mean over the labelled / scored positions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from edgekd.errors import ModelError

if TYPE_CHECKING:
    import torch
    from torch import nn

IGNORE = -1  # target value of an unlabelled sample


def flatten_logits(
    logits: torch.Tensor, targets: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(B, T, C) -> (B*T, C) and (B, T) -> (B*T,), so sequence outputs reuse the (B, C) formulas."""
    if logits.dim() == 2:
        return logits, targets
    if logits.dim() == 3:
        return logits.reshape(-1, logits.shape[-1]), None if targets is None else targets.reshape(-1)
    raise ModelError(f"expected logits of shape (B, C) or (B, T, C), got {tuple(logits.shape)}")


def hard_label_loss(student: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy averaged over the labelled positions only; 0 (with a gradient path) when none is labelled.

    Written without data-dependent shapes or host syncs (ignore_index and a clamped count), so a training
    step never waits on the device.
    """
    import torch.nn.functional as F

    total = F.cross_entropy(student, targets, ignore_index=IGNORE, reduction="sum")
    return total / (targets != IGNORE).sum().clamp_min(1)


def standardize_logits(logits: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Z-score each row over the classes (Sun et al. 2024, eq. 8): (z - mean) / (std + eps), unbiased std as in their code."""
    return (logits - logits.mean(dim=-1, keepdim=True)) / (logits.std(dim=-1, keepdim=True) + eps)


def pearson_rows(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Pearson correlation of each row of `a` with the same row of `b` (the cosine of the centred rows)."""
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    correlation: torch.Tensor = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + eps)
    return correlation


def _soft_inputs(student: torch.Tensor, teacher: torch.Tensor, standardize: bool) -> tuple[torch.Tensor, torch.Tensor]:
    return (standardize_logits(student), standardize_logits(teacher)) if standardize else (student, teacher)


def _check_pair(student: torch.Tensor, teacher: torch.Tensor) -> None:
    if student.shape != teacher.shape:
        raise ModelError(
            f"student outputs {tuple(student.shape)} but teacher outputs {tuple(teacher.shape)}",
            hint="the student needs as many classes as the (mapped) teacher outputs",
        )


def logit_pair(
    student_out: torch.Tensor, teacher_out: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(s, y, t): the checked student and teacher logits as (N, C) and the targets as (N,), what every logit
    loss starts from."""
    _check_pair(student_out, teacher_out)
    s, y = flatten_logits(student_out, targets)
    t, _ = flatten_logits(teacher_out)
    return s, cast("torch.Tensor", y), t  # targets given: flattened, never None


def _build_loss_classes() -> dict[str, type[nn.Module]]:
    import torch
    import torch.nn.functional as F
    from torch import nn

    class SoftTargetLoss(nn.Module):
        """What the logit losses that soften with a temperature share (hinton, dkd, dist): the temperature,
        `standardize`, and the inputs every one of them starts from."""

        def __init__(self, temperature: float, standardize: bool) -> None:
            super().__init__()
            self.temperature = temperature
            self.standardize = standardize

        def soft_pair(
            self, student_out: torch.Tensor, teacher_out: torch.Tensor, targets: torch.Tensor
        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
            """(s, y, t, zs, zt): the (N, C) student and teacher logits, the (N,) targets, and the logits the
            soft terms use (z-scored per row with `standardize`, else s and t themselves)."""
            s, y, t = logit_pair(student_out, teacher_out, targets)
            zs, zt = _soft_inputs(s, t, self.standardize)
            return s, y, t, zs, zt

    class HintonKD(SoftTargetLoss):
        """Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network" (2015), arXiv:1503.02531.

        L = (1 - α) · CE(z_s, y) + α · T² · KL(softmax(z_t / T) ‖ softmax(z_s / T))

        The T² factor keeps the soft term's gradient scale independent of T. The KL term is averaged
        over samples (batchmean); CE only over labelled samples. With `standardize`, z_s and z_t in the
        KL term are z-scored per sample first (see the module doc).
        """

        def __init__(self, temperature: float = 4.0, alpha: float = 0.5, standardize: bool = False) -> None:
            super().__init__(temperature, standardize)
            self.alpha = alpha

        def forward(self, student_out: torch.Tensor, teacher_out: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            s, y, _t, zs, zt = self.soft_pair(student_out, teacher_out, targets)
            temp = self.temperature
            soft = F.kl_div(
                F.log_softmax(zs / temp, dim=1), F.log_softmax(zt / temp, dim=1), reduction="batchmean", log_target=True
            )
            return (1.0 - self.alpha) * hard_label_loss(s, y) + self.alpha * temp * temp * soft

    class DKD(SoftTargetLoss):
        """Zhao, Cui, Song, Qiu, Liang, "Decoupled Knowledge Distillation", CVPR 2022, arXiv:2203.08679.

        With b = [p_target, 1 - p_target] (binary target/non-target split) and p̂ the distribution over
        the non-target classes only:
            TCKD = KL(b_t ‖ b_s),  NCKD = KL(p̂_t ‖ p̂_s)
            L = CE(z_s, y) + T² · (α · TCKD + β · NCKD)
        The target class of an unlabelled sample is the teacher's top class. With `standardize`, TCKD and
        NCKD are computed on z-scored logits.
        """

        def __init__(
            self, temperature: float = 4.0, alpha: float = 1.0, beta: float = 8.0, standardize: bool = False
        ) -> None:
            super().__init__(temperature, standardize)
            self.alpha = alpha
            self.beta = beta

        def forward(self, student_out: torch.Tensor, teacher_out: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            s, y, t, zs, zt = self.soft_pair(student_out, teacher_out, targets)
            target = torch.where(y == IGNORE, t.argmax(dim=1), y)
            mask = F.one_hot(target, s.shape[1]).bool()
            temp = self.temperature
            p_s = F.softmax(zs / temp, dim=1)
            p_t = F.softmax(zt / temp, dim=1)
            eps = 1e-8
            b_s = torch.stack([(p_s * mask).sum(1), (p_s * ~mask).sum(1)], dim=1).clamp_min(eps)
            b_t = torch.stack([(p_t * mask).sum(1), (p_t * ~mask).sum(1)], dim=1).clamp_min(eps)
            tckd = (b_t * (b_t.log() - b_s.log())).sum(1).mean()
            # Non-target distribution: push the target logit to -inf (via a large offset) and renormalise.
            offset = 1000.0 * mask
            log_q_s = F.log_softmax(zs / temp - offset, dim=1)
            log_q_t = F.log_softmax(zt / temp - offset, dim=1)
            nckd = (log_q_t.exp() * (log_q_t - log_q_s)).masked_fill(mask, 0.0).sum(1).mean()
            return hard_label_loss(s, y) + temp * temp * (self.alpha * tckd + self.beta * nckd)

    class DIST(SoftTargetLoss):
        """Huang, You, Wang, Qian, Xu, "Knowledge Distillation from A Stronger Teacher", NeurIPS 2022, arXiv:2205.10536.

        Matches relations instead of exact probabilities, which tolerates a large teacher-student gap.
        With p = softmax(z / T) per sample (rows: samples, columns: classes) and ρ the Pearson correlation:
            inter = 1 - mean_i ρ(p_s[i, :], p_t[i, :])   (each sample's ranking of the classes)
            intra = 1 - mean_c ρ(p_s[:, c], p_t[:, c])   (each class's ranking of the batch's samples)
            L = CE(z_s, y) + T² · (β · inter + γ · intra)
        The paper's α (CE weight) is 1; β = γ = 1, T = 4 on CIFAR-100 (T = 1 on ImageNet). CE only over
        labelled samples; the relation terms use every sample.
        """

        def __init__(
            self, temperature: float = 4.0, beta: float = 1.0, gamma: float = 1.0, standardize: bool = False
        ) -> None:
            super().__init__(temperature, standardize)
            self.beta = beta
            self.gamma = gamma

        def forward(self, student_out: torch.Tensor, teacher_out: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            s, y, _t, zs, zt = self.soft_pair(student_out, teacher_out, targets)
            temp = self.temperature
            p_s, p_t = F.softmax(zs / temp, dim=1), F.softmax(zt / temp, dim=1)
            inter = 1.0 - pearson_rows(p_s, p_t).mean()
            intra = 1.0 - pearson_rows(p_s.t(), p_t.t()).mean()
            return hard_label_loss(s, y) + temp * temp * (self.beta * inter + self.gamma * intra)

    class PseudoLabelCE(nn.Module):
        """Cross-entropy on true labels where known and on the teacher's top class elsewhere.

        L = CE(z_s, y') with y' = y if labelled else argmax z_t (Lee, "Pseudo-Label", ICML-W 2013).
        The baseline that tells whether soft targets buy anything over the teacher's hard answers.
        """

        def forward(self, student_out: torch.Tensor, teacher_out: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            s, y, t = logit_pair(student_out, teacher_out, targets)
            return F.cross_entropy(s, torch.where(y == IGNORE, t.argmax(dim=1), y))

    class FitNetsHint(nn.Module):
        """Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015, arXiv:1412.6550.

        L = mean((r(F_s) - F_t)²), with r a learned regressor: a 1×1 convolution for (B, C, H, W)
        feature maps, a linear layer for (B, C) or (B, T, C) features. When the teacher map is
        spatially larger it is average-pooled to the student's size. Here `student_out` and
        `teacher_out` are the intermediate features named in the recipe, not logits.
        """

        def __init__(self, student_channels: int, teacher_channels: int, spatial: bool) -> None:
            super().__init__()
            self.spatial = spatial
            if spatial:
                self.adapter: nn.Module = nn.Conv2d(student_channels, teacher_channels, 1, bias=False)
            else:
                self.adapter = nn.Linear(student_channels, teacher_channels, bias=False)

        def forward(
            self, student_out: torch.Tensor, teacher_out: torch.Tensor, targets: torch.Tensor | None = None
        ) -> torch.Tensor:
            mapped = self.adapter(student_out)
            teacher = teacher_out.detach()
            if self.spatial and mapped.shape[-2:] != teacher.shape[-2:]:
                teacher = F.adaptive_avg_pool2d(teacher, mapped.shape[-2:])
            if mapped.shape != teacher.shape:
                raise ModelError(
                    f"hint features do not align: student {tuple(mapped.shape)} vs teacher {tuple(teacher.shape)}",
                    hint="pick layers whose outputs have the same rank (both conv maps or both vectors)",
                )
            return F.mse_loss(mapped, teacher)

    return {"hinton": HintonKD, "dkd": DKD, "dist": DIST, "pseudo_labels": PseudoLabelCE, "fitnets": FitNetsHint}


_CLASSES: dict[str, type[nn.Module]] = {}


def loss_class(kind: str) -> type[nn.Module]:
    """The loss module class registered under `kind` (hinton, dkd, dist, pseudo_labels, fitnets)."""
    if not _CLASSES:
        _CLASSES.update(_build_loss_classes())
    try:
        return _CLASSES[kind]
    except KeyError:
        raise ModelError(f"unknown loss {kind!r}", hint="use one of " + ", ".join(sorted(_CLASSES))) from None


def __getattr__(name: str) -> Any:
    # HintonKD, DKD, DIST, PseudoLabelCE, FitNetsHint are built on first use so this module imports without torch.
    names = {
        "HintonKD": "hinton",
        "DKD": "dkd",
        "DIST": "dist",
        "PseudoLabelCE": "pseudo_labels",
        "FitNetsHint": "fitnets",
    }
    if name in names:
        return loss_class(names[name])
    raise AttributeError(name)


def logit_loss(
    kind: str, temperature: float, alpha: float, beta: float, gamma: float = 1.0, standardize: bool = False
) -> nn.Module:
    """Build a loss that compares logits (every kind except fitnets)."""
    if kind == "hinton":
        return loss_class("hinton")(temperature=temperature, alpha=alpha, standardize=standardize)
    if kind == "dkd":
        return loss_class("dkd")(temperature=temperature, alpha=alpha, beta=beta, standardize=standardize)
    if kind == "dist":
        return loss_class("dist")(temperature=temperature, beta=beta, gamma=gamma, standardize=standardize)
    if kind == "pseudo_labels":
        return loss_class("pseudo_labels")()
    raise ModelError(f"{kind!r} is not a logit loss")
