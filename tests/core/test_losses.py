"""Golden values and properties of the distillation losses (Hinton KD, DKD, pseudo-labels, FitNets)."""

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
    assert value == pytest.approx(_reference_hinton(STUDENT.numpy(), TEACHER.numpy(), TARGETS.numpy(), 2.0, 0.7), rel=1e-5)


def test_dkd_golden_value() -> None:
    value = DKD(temperature=2.0, alpha=1.0, beta=8.0)(STUDENT, TEACHER, TARGETS).item()
    assert value == pytest.approx(3.99084210395813, rel=1e-5)
    assert value == pytest.approx(_reference_dkd(STUDENT.numpy(), TEACHER.numpy(), TARGETS.numpy(), 2.0, 1.0, 8.0), rel=1e-5)


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
    expected = torch.nn.functional.cross_entropy(STUDENT, torch.tensor([0, 1])).item()  # teacher's top class of row 2 is 1
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
    assert loss(s, t, y).item() == pytest.approx(loss(s.reshape(10, 4), t.reshape(10, 4), y.reshape(10)).item(), rel=1e-6)


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
