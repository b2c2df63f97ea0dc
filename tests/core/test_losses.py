"""Golden values and properties of the distillation losses (Hinton KD, DKD, DIST, logit standardisation, pseudo-labels, FitNets)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgekd.distill.losses import DKD, FitNetsHint, HintonKD, PseudoLabelCE
from edgekd.errors import ModelError

STUDENT = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
TEACHER = torch.tensor([[1.5, 1.0, -0.5], [-1.0, 2.0, 0.0]])
TARGETS = torch.tensor([0, 2])


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return (p * (np.log(p) - np.log(q))).sum(axis=1)


def _ce(z: np.ndarray, y: np.ndarray) -> float:
    return float(-np.log(_softmax(z)[np.arange(len(y)), y]).mean())


def _reference_hinton(s: np.ndarray, t: np.ndarray, y: np.ndarray, temp: float, alpha: float) -> float:
    soft = _kl(_softmax(t / temp), _softmax(s / temp)).mean()
    return (1 - alpha) * _ce(s, y) + alpha * temp**2 * soft


def _reference_dkd(s: np.ndarray, t: np.ndarray, y: np.ndarray, temp: float, alpha: float, beta: float) -> float:
    ps, pt = _softmax(s / temp), _softmax(t / temp)
    tckd, nckd = [], []
    for i, cls in enumerate(y):
        bs = np.array([ps[i, cls], 1 - ps[i, cls]])
        bt = np.array([pt[i, cls], 1 - pt[i, cls]])
        tckd.append((bt * np.log(bt / bs)).sum())
        rest = [c for c in range(s.shape[1]) if c != cls]
        qs, qt = ps[i, rest] / ps[i, rest].sum(), pt[i, rest] / pt[i, rest].sum()
        nckd.append((qt * np.log(qt / qs)).sum())
    return _ce(s, y) + temp**2 * (alpha * np.mean(tckd) + beta * np.mean(nckd))


def test_hinton_golden_value() -> None:
    value = HintonKD(temperature=2.0, alpha=0.7)(STUDENT, TEACHER, TARGETS).item()
    assert value == pytest.approx(0.4945898652076721, rel=1e-5)
    assert value == pytest.approx(
        _reference_hinton(STUDENT.numpy(), TEACHER.numpy(), TARGETS.numpy(), 2.0, 0.7), rel=1e-5
    )


def test_dkd_golden_value() -> None:
    value = DKD(temperature=2.0, alpha=1.0, beta=8.0)(STUDENT, TEACHER, TARGETS).item()
    assert value == pytest.approx(3.99084210395813, rel=1e-5)
    assert value == pytest.approx(
        _reference_dkd(STUDENT.numpy(), TEACHER.numpy(), TARGETS.numpy(), 2.0, 1.0, 8.0), rel=1e-5
    )


def test_dkd_recomposes_classical_kd() -> None:
    """The paper's identity: KL(p_t ‖ p_s) = TCKD + (1 - p_t[target]) · NCKD, per sample."""
    temp = 3.0
    s, t, y = STUDENT[:1], TEACHER[:1], TARGETS[:1]
    ce = torch.nn.functional.cross_entropy(s, y).item()
    tckd = (DKD(temp, 1.0, 0.0)(s, t, y).item() - ce) / temp**2
    nckd = (DKD(temp, 0.0, 1.0)(s, t, y).item() - ce) / temp**2
    p_target = torch.softmax(t / temp, dim=1)[0, y[0]].item()
    kd = HintonKD(temp, 1.0)(s, t, y).item() / temp**2
    assert kd == pytest.approx(tckd + (1 - p_target) * nckd, rel=1e-4)


def test_pseudo_labels_use_teacher_argmax_for_hidden_labels() -> None:
    hidden = torch.tensor([0, -1])
    value = PseudoLabelCE()(STUDENT, TEACHER, hidden).item()
    assert value == pytest.approx(0.6716271042823792, rel=1e-5)
    expected = torch.nn.functional.cross_entropy(
        STUDENT, torch.tensor([0, 1])
    ).item()  # teacher's top class of row 2 is 1
    assert value == pytest.approx(expected, rel=1e-6)


def test_identical_logits_give_zero_soft_loss() -> None:
    assert HintonKD(4.0, 1.0)(TEACHER, TEACHER.clone(), TARGETS).item() == pytest.approx(0.0, abs=1e-6)


def test_hidden_labels_drop_out_of_cross_entropy() -> None:
    only_first = HintonKD(2.0, 0.0)(STUDENT, TEACHER, torch.tensor([0, -1])).item()
    expected = torch.nn.functional.cross_entropy(STUDENT[:1], TARGETS[:1]).item()
    assert only_first == pytest.approx(expected, rel=1e-6)
    none_labelled = HintonKD(2.0, 0.0)(STUDENT, TEACHER, torch.tensor([-1, -1]))
    assert none_labelled.item() == 0.0 and none_labelled.requires_grad is False or none_labelled.item() == 0.0


@pytest.mark.parametrize("loss", [HintonKD(3.0, 0.6), DKD(3.0, 1.0, 4.0), PseudoLabelCE()])
def test_sequence_outputs_match_flattened(loss: torch.nn.Module) -> None:
    """(B, T, C) outputs are scored like (B·T, C) rows."""
    gen = torch.Generator().manual_seed(0)
    s, t = torch.randn(2, 5, 4, generator=gen), torch.randn(2, 5, 4, generator=gen)
    y = torch.randint(0, 4, (2, 5), generator=gen)
    assert loss(s, t, y).item() == pytest.approx(
        loss(s.reshape(10, 4), t.reshape(10, 4), y.reshape(10)).item(), rel=1e-6
    )


def test_student_teacher_shape_mismatch_is_a_clear_error() -> None:
    with pytest.raises(ModelError, match="student outputs"):
        HintonKD()(STUDENT, torch.zeros(2, 4), TARGETS)


def test_gradients_reach_the_student() -> None:
    s = STUDENT.clone().requires_grad_(True)
    DKD()(s, TEACHER, TARGETS).backward()
    assert s.grad is not None and float(s.grad.abs().sum()) > 0


def test_fitnets_hint_with_identity_adapter_is_mse() -> None:
    hint = FitNetsHint(3, 3, spatial=True)
    with torch.no_grad():
        hint.adapter.weight.copy_(torch.eye(3).reshape(3, 3, 1, 1))
    gen = torch.Generator().manual_seed(1)
    fs, ft = torch.randn(2, 3, 4, 4, generator=gen), torch.randn(2, 3, 4, 4, generator=gen)
    assert hint(fs, ft).item() == pytest.approx(torch.mean((fs - ft) ** 2).item(), rel=1e-6)
    assert hint(ft, ft).item() == pytest.approx(0.0, abs=1e-7)


def test_fitnets_adapter_maps_channels_and_pools_larger_teacher_maps() -> None:
    hint = FitNetsHint(4, 8, spatial=True)
    fs, ft = torch.randn(2, 4, 2, 2), torch.randn(2, 8, 4, 4)
    loss = hint(fs, ft)
    loss.backward()
    assert hint.adapter.weight.grad is not None and float(hint.adapter.weight.grad.abs().sum()) > 0
    vector = FitNetsHint(5, 7, spatial=False)
    assert vector(torch.randn(3, 6, 5), torch.randn(3, 6, 7)).dim() == 0  # (B, T, C) features


def test_fitnets_rank_mismatch_is_a_clear_error() -> None:
    with pytest.raises(ModelError, match="do not align"):
        FitNetsHint(4, 8, spatial=False)(torch.randn(2, 4), torch.randn(2, 3, 8))


# --- DIST and logit standardisation ------------------------------------------------------------------------

STUDENT4 = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-0.5, 1.5, 0.0], [1.0, -2.0, 0.5]])
TEACHER4 = torch.tensor([[1.5, 1.0, -0.5], [-1.0, 2.0, 0.0], [0.0, 3.0, -1.0], [2.5, -1.0, -0.5]])
TARGETS4 = torch.tensor([0, 2, 1, 0])
GOLDEN_DIST = 4.437772274017334  # DIST(T=2, β=1, γ=2) on the tensors above
GOLDEN_STANDARDIZED = {
    "hinton": 0.2881234288215637,
    "dkd": 0.9348222017288208,
    "dist": 5.085838317871094,
}  # T=2, α=0.7, β=3, γ=2


def _zscore(z: np.ndarray) -> np.ndarray:
    return (z - z.mean(axis=1, keepdims=True)) / (z.std(axis=1, ddof=1, keepdims=True) + 1e-7)


def _pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([np.corrcoef(a[i], b[i])[0, 1] for i in range(len(a))])


def _reference_dist(s: np.ndarray, t: np.ndarray, y: np.ndarray, temp: float, beta: float, gamma: float) -> float:
    ps, pt = _softmax(s / temp), _softmax(t / temp)
    inter = 1 - _pearson(ps, pt).mean()
    intra = 1 - _pearson(ps.T, pt.T).mean()
    return _ce(s, y) + temp**2 * (beta * inter + gamma * intra)


def test_dist_golden_value() -> None:
    from edgekd.distill.losses import DIST

    value = DIST(temperature=2.0, beta=1.0, gamma=2.0)(STUDENT4, TEACHER4, TARGETS4).item()
    assert value == pytest.approx(GOLDEN_DIST, rel=1e-5)
    reference = _reference_dist(STUDENT4.numpy(), TEACHER4.numpy(), TARGETS4.numpy(), 2.0, 1.0, 2.0)
    assert value == pytest.approx(reference, rel=1e-5)


def test_dist_identical_logits_leave_only_cross_entropy() -> None:
    """Perfectly correlated relations: the inter- and intra-class terms vanish."""
    from edgekd.distill.losses import DIST

    ce = torch.nn.functional.cross_entropy(TEACHER4, TARGETS4).item()
    assert DIST(4.0)(TEACHER4, TEACHER4.clone(), TARGETS4).item() == pytest.approx(ce, abs=1e-4)  # eps in ρ


@pytest.mark.parametrize("kind", ["hinton", "dkd", "dist"])
def test_standardize_matches_the_loss_on_z_scored_logits(kind: str) -> None:
    """Sun et al. 2024: the soft terms see Z(z) = (z - mean) / std; the CE term keeps the raw logits."""
    from edgekd.distill.losses import logit_loss

    s, t, y = STUDENT4.numpy(), TEACHER4.numpy(), TARGETS4.numpy()
    value = logit_loss(kind, 2.0, 0.7, 3.0, 2.0, standardize=True)(STUDENT4, TEACHER4, TARGETS4).item()
    zs, zt = _zscore(s), _zscore(t)
    if kind == "hinton":
        expected = 0.3 * _ce(s, y) + 0.7 * 4.0 * _kl(_softmax(zt / 2.0), _softmax(zs / 2.0)).mean()
    elif kind == "dkd":
        expected = _reference_dkd(zs, zt, y, 2.0, 0.7, 3.0) - _ce(zs, y) + _ce(s, y)
    else:
        expected = _reference_dist(zs, zt, y, 2.0, 3.0, 2.0) - _ce(zs, y) + _ce(s, y)
    assert value == pytest.approx(expected, rel=1e-5)
    assert value == pytest.approx(GOLDEN_STANDARDIZED[kind], rel=1e-5)


def test_standardized_loss_ignores_the_teachers_logit_scale_and_shift() -> None:
    """A teacher whose logits are 5x larger and shifted teaches the same thing once standardised."""
    plain = HintonKD(2.0, 1.0, standardize=True)(STUDENT4, TEACHER4, TARGETS4).item()
    scaled = HintonKD(2.0, 1.0, standardize=True)(STUDENT4, 5.0 * TEACHER4 + 3.0, TARGETS4).item()
    assert scaled == pytest.approx(plain, rel=1e-5)
    assert HintonKD(2.0, 1.0)(STUDENT4, 5.0 * TEACHER4, TARGETS4).item() != pytest.approx(
        HintonKD(2.0, 1.0)(STUDENT4, TEACHER4, TARGETS4).item()
    )


def test_dist_gradients_and_sequences() -> None:
    from edgekd.distill.losses import DIST

    s = STUDENT4.clone().requires_grad_(True)
    DIST(standardize=True)(s, TEACHER4, TARGETS4).backward()
    assert s.grad is not None and float(s.grad.abs().sum()) > 0
    gen = torch.Generator().manual_seed(0)
    seq_s, seq_t = torch.randn(2, 5, 4, generator=gen), torch.randn(2, 5, 4, generator=gen)
    seq_y = torch.randint(0, 4, (2, 5), generator=gen)
    assert DIST()(seq_s, seq_t, seq_y).item() == pytest.approx(
        DIST()(seq_s.reshape(10, 4), seq_t.reshape(10, 4), seq_y.reshape(10)).item(), rel=1e-6
    )


def test_loss_config_defaults_and_refusals() -> None:
    from pydantic import ValidationError

    from edgekd.config.distill import LossConfig

    assert LossConfig().resolved_temperature == 4.0 and LossConfig(standardize=True).resolved_temperature == 2.0
    assert LossConfig(kind="dist").resolved_beta == 1.0 and LossConfig(kind="dkd").resolved_beta == 8.0
    assert LossConfig(kind="dist", temperature=1.0, standardize=True).resolved_temperature == 1.0
    with pytest.raises(ValidationError, match="standardize applies"):
        LossConfig(kind="pseudo_labels", standardize=True)
