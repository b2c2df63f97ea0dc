"""Rung 4 of the quantization ladder: quantization-aware distillation with `torchao.quantization.pt2e`.

The fp32 student is exported with torch.export (batch dimension dynamic), prepared with `prepare_qat_pt2e`
under a quantizer whose fake-quant scheme is the deployment's (int8 activations per tensor, affine as LiteRT
and ORT's "+asym" candidates quantize them, or symmetric; weights per output channel), its observers calibrated on the calibration set
(PTQ-calibrated start), then trained against the teacher with edgekd's KD loss (Hinton: labels + soft
targets) at a small learning rate. From `freeze_after` on, observers stop moving and batch-norm uses its
running statistics. After every epoch the model is converted (`convert_pt2e`) and the epoch whose
*converted* model is most accurate on the validation samples is kept.

The kept float weights (the QAT model's own parameters, BN unfolded) go back into a copy of the user's
student and are exported and quantized by the ladder's runtime backends with the same calibration set:
the QAT weights sit on the grid those backends' min/max calibration reproduces.
`torch.ao.quantization` is deprecated: nothing here uses it.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekd.errors import DataError, ModelError, UsageError

if TYPE_CHECKING:
    from torch import nn

    from edgekd.quantize.ladder_state import RungContext


@dataclass(frozen=True)
class QatInputs:
    """What rung 4 needs beyond the ONNX model: the torch student it was exported from, its teacher, the
    training samples (.npz with x and y) and the schedule. `student` must compute what the ONNX model does."""

    student: nn.Module
    teacher: nn.Module
    train: Path
    epochs: int = 6
    lr: float = 5e-4
    freeze_after: int = 3  # observers and BN statistics frozen from this epoch (0-based) on
    batch_size: int = 64
    temperature: float = 4.0
    alpha: float = 0.5  # weight of the soft (teacher) term; 1 - alpha on the labels
    seed: int = 0
    threads: int = 1  # torch intra-op threads while training (0: torch's default); 1 avoids spinning on a busy CPU
    symmetric: bool = False  # activations fake-quantized with zero point 0, or affine (LiteRT's; ORT's "+asym")

    def key(self, state_hash: str) -> list[Any]:
        """What the rung's result depends on besides the ladder's inputs (for the resume key)."""
        return [state_hash, self.epochs, self.lr, self.freeze_after, self.batch_size, self.temperature, self.alpha,
                self.seed, self.symmetric]  # fmt: skip


def available() -> str | None:
    """None, or why rung 4 cannot run here."""
    if importlib.util.find_spec("torchao") is None:
        return "torchao is not installed (pip install torchao==0.18.0, as pinned in requirements.lock)"
    return None


def state_hash(module: nn.Module) -> str:
    """sha256 of a module's parameters and buffers (names, shapes, bytes): the student's identity."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def check(qat: QatInputs) -> None:
    """Refuse a schedule that cannot do what it says before any work (typed errors, one message each)."""
    if qat.epochs < 1 or qat.batch_size < 1 or qat.threads < 0 or not (qat.lr > 0 and np.isfinite(qat.lr)):
        raise UsageError(f"QAT needs epochs >= 1, batch_size >= 1, threads >= 0 and a finite lr > 0 (got "
                         f"{qat.epochs}, {qat.batch_size}, {qat.threads}, {qat.lr})", hint="e.g. epochs=6, lr=5e-4")  # fmt: skip
    if not 0 <= qat.freeze_after <= qat.epochs:
        raise UsageError(f"QAT freeze_after must be between 0 and epochs ({qat.epochs}), got {qat.freeze_after}",
                         hint="freeze observers and BN statistics after a few epochs, e.g. half of them")  # fmt: skip
    reason = available()
    if reason:
        raise UsageError(f"rung 4 (quantization-aware distillation) cannot run: {reason}",
                         hint="install torchao, or run the ladder without QAT inputs")  # fmt: skip


def _int8_config(symmetric: bool) -> Any:
    """Fake-quant as deployed: activations int8 per tensor (symmetric, or affine as LiteRT's), weights int8 per
    output channel (symmetric, as both runtimes)."""
    import torch
    from torchao.quantization.pt2e.fake_quantize import FusedMovingAvgObsFakeQuantize
    from torchao.quantization.pt2e.observer import MovingAverageMinMaxObserver, MovingAveragePerChannelMinMaxObserver
    from torchao.quantization.pt2e.quantizer import QuantizationConfig, QuantizationSpec

    activation = QuantizationSpec(
        dtype=torch.int8, quant_min=-128, quant_max=127,
        qscheme=torch.per_tensor_symmetric if symmetric else torch.per_tensor_affine,
        observer_or_fake_quant_ctr=FusedMovingAvgObsFakeQuantize.with_args(observer=MovingAverageMinMaxObserver,
                                                                           eps=2**-12),
    )  # fmt: skip
    weight = QuantizationSpec(
        dtype=torch.int8, quant_min=-127, quant_max=127, qscheme=torch.per_channel_symmetric, ch_axis=0,
        observer_or_fake_quant_ctr=FusedMovingAvgObsFakeQuantize.with_args(
            observer=MovingAveragePerChannelMinMaxObserver, eps=2**-12),
    )  # fmt: skip
    return QuantizationConfig(activation, activation, weight, None, is_qat=True)


def _load_train(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from edgekd.quantize.ort_backend import load_samples

    x, y = load_samples(Path(path), labels=True)
    assert y is not None  # labels=True returns labels or raises
    return x, y.astype(np.int64)


def _converted_accuracy(prepared: Any, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of the *converted* (integer-simulating) model made from the current QAT state."""
    import torch
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    converted = convert_pt2e(copy.deepcopy(prepared))
    move_exported_model_to_eval(converted)
    with torch.no_grad():
        pred = np.concatenate([converted(torch.from_numpy(x[i : i + 256])).argmax(-1).numpy()
                               for i in range(0, len(x), 256)])  # fmt: skip
    return float((pred == y).mean())


def _train_qat(
    qat: QatInputs, x_calib: np.ndarray, x_val: np.ndarray, y_val: np.ndarray
) -> tuple[nn.Module, list[dict[str, Any]]]:
    """Quantization-aware distillation; returns (a copy of the student with the kept epoch's float weights,
    one row per epoch with its loss and converted accuracy)."""
    import torch
    from torchao.quantization.pt2e import disable_observer, move_exported_model_to_eval, move_exported_model_to_train
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import X86InductorQuantizer

    from edgekd.distill.losses import logit_loss

    check(qat)
    x_train, y_train = _load_train(qat.train)
    if x_train.shape[1:] != x_val.shape[1:]:
        raise DataError(f"QAT training samples have shape {x_train.shape[1:]} per sample, the validation samples "
                        f"{x_val.shape[1:]}", hint="give training samples preprocessed like the validation ones")  # fmt: skip
    torch.manual_seed(qat.seed)
    student = copy.deepcopy(qat.student).eval()
    teacher = copy.deepcopy(qat.teacher).eval()
    example = (torch.from_numpy(x_calib[: min(len(x_calib), 8)]),)
    try:
        exported = torch.export.export(student, example, dynamic_shapes=({0: torch.export.Dim.DYNAMIC},)).module()
        quantizer = X86InductorQuantizer()
        quantizer.set_global(_int8_config(qat.symmetric))
        prepared = prepare_qat_pt2e(exported, quantizer)
    except Exception as exc:  # noqa: BLE001 - torch.export/prepare raise many types; re-raised typed
        raise ModelError(
            f"QAT: torch.export / prepare_qat_pt2e failed on the student: {str(exc).splitlines()[0]}",
            hint="the student must be traceable by torch.export with a dynamic batch dimension",
        ) from None
    with torch.no_grad():  # PTQ-calibrated start: observers see the calibration set once
        prepared(torch.from_numpy(x_calib))
    loss_fn = logit_loss("hinton", qat.temperature, qat.alpha, 0.0)
    optimizer = torch.optim.AdamW(prepared.parameters(), lr=qat.lr, weight_decay=0.0)
    rng = np.random.default_rng(qat.seed)
    epochs: list[dict[str, Any]] = []
    best: tuple[float, dict[str, Any]] | None = None
    for epoch in range(qat.epochs):
        frozen = epoch >= qat.freeze_after
        if frozen:
            prepared.apply(disable_observer)
            move_exported_model_to_eval(prepared)  # BN uses (and no longer updates) its running statistics
        else:
            move_exported_model_to_train(prepared)
        total, steps = 0.0, 0
        for idx in np.array_split(rng.permutation(len(x_train)), max(1, len(x_train) // qat.batch_size)):
            xb, yb = torch.from_numpy(x_train[idx]), torch.from_numpy(y_train[idx])
            with torch.no_grad():
                soft = teacher(xb)
            loss = loss_fn(prepared(xb), soft, yb)
            if not torch.isfinite(loss):
                raise ModelError(f"QAT: the loss became {loss.item()} at epoch {epoch}", hint="lower the QAT lr")
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, steps = total + loss.item(), steps + 1
        accuracy = _converted_accuracy(prepared, x_val, y_val)
        epochs.append({"epoch": epoch, "loss": round(total / steps, 6), "converted_accuracy": round(accuracy, 6),
                       "frozen": frozen})  # fmt: skip
        if best is None or accuracy > best[0]:
            best = (accuracy, {k: v.detach().clone() for k, v in prepared.state_dict().items()})
    assert best is not None  # epochs >= 1 was checked
    kept = copy.deepcopy(qat.student).eval()
    own = kept.state_dict()
    missing = [name for name, _ in kept.named_parameters() if name not in best[1]]
    if missing:  # torch.export renamed them: the trained weights cannot go back into the student
        raise ModelError(f"QAT: the trained model lost the student's parameter names ({', '.join(missing[:3])})",
                         hint="a student whose parameters torch.export keeps by name (plain nn.Module attributes)")  # fmt: skip
    # parameters and BN statistics from the kept epoch; buffers the QAT graph does not carry stay as they were
    kept.load_state_dict({**own, **{k: v for k, v in best[1].items() if k in own}}, strict=True)
    for row in epochs:
        row["kept"] = row["converted_accuracy"] == round(best[0], 6) and not any(r.get("kept") for r in epochs)
    return kept, epochs


def train_qat(
    qat: QatInputs, x_calib: np.ndarray, x_val: np.ndarray, y_val: np.ndarray
) -> tuple[nn.Module, list[dict[str, Any]]]:
    """Quantization-aware distillation with `qat.threads` torch threads (see _train_qat)."""
    from edgekd.distill.train import torch_threads

    with torch_threads(qat.threads), warnings.catch_warnings():
        # torch's own deprecation inside deepcopy of an exported graph (copyreg -> LeafSpec): nothing the user can
        # act on, printed once per epoch otherwise
        warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)
        return _train_qat(qat, x_calib, x_val, y_val)


def _torch_predict(module: nn.Module, x: np.ndarray) -> np.ndarray:
    from edgekd.distill.train import predict

    return predict(module, x)


def check_student(qat: QatInputs, x_val: np.ndarray, fp32_pred: np.ndarray, model_name: str) -> None:
    """The torch student must compute what the fp32 ONNX model does (checked before any rung runs)."""
    same = float((_torch_predict(qat.student, x_val) == fp32_pred).mean())
    if same < 0.99:
        raise ModelError(f"the QAT student agrees with {model_name} on only {same:.1%} of the validation samples",
                         hint="give the torch student the ONNX model was exported from (same weights)")  # fmt: skip


def rung_qat(ctx: RungContext, qat: QatInputs, parent: str) -> dict[str, Any]:
    """Rung 4: train (train_qat), export the kept weights to fp32 ONNX (edgekd's torch_onnx exporter), quantize
    it for ORT (static QDQ, the calibration method chosen by measured accuracy as in rung 1) and, when asked,
    for LiteRT/TFLM;
    one row with the ORT figures, per-runtime parity figures and the per-epoch QAT history."""
    import onnx

    from edgekd.converters.torch_onnx import export_module
    from edgekd.quantize import ort_backend, rungs
    from edgekd.quantize.ladder_state import publish_model as publish
    from edgekd.quantize.ladder_state import tflite_rows

    kept, epochs = train_qat(qat, ctx.x_calib, ctx.x_val, ctx.y_val)
    batch = ort_backend.ModelInput.of(ctx.model).batch
    proto = export_module(kept, tuple(int(d) for d in ctx.x_val.shape[1:]), opset=18, dynamic_batch=batch is None)
    fp32_work = ctx.work / "qat.fp32.onnx"
    onnx.save(proto, str(fp32_work))
    settings = {"epochs": qat.epochs, "lr": qat.lr, "freeze_after": qat.freeze_after, "temperature": qat.temperature,
                "alpha": qat.alpha, "seed": qat.seed, "scheme": f"int8 activations per tensor {'symmetric' if qat.symmetric else 'affine'}, weights per channel"}  # fmt: skip
    fp32_dest = ctx.out / "qat.fp32.onnx"
    fp32_sha = publish(fp32_work, fp32_dest, name="onnx_fp32_qat", parent=parent, config={"qat": settings},
                       precision="fp32")  # fmt: skip
    prepared = ort_backend.prepare(fp32_work, ctx.work / "qat.prepared.onnx")
    # the same candidates and rule as rung 1 (no budget: QAT is not retrained when the budget changes), on the
    # QAT-trained weights; figures still against the fp32 model
    best, candidates = rungs.best_ptq(dataclasses.replace(ctx, prepared=prepared), "qat")
    dest = ctx.out / "qat.int8.onnx"
    sha = publish(ctx.work / best["file"], dest, name="onnx_int8_qat", parent=fp32_sha,
                  config={"per_channel": True, "nodes_to_exclude": best["scope_float"], **rungs.config_of(best),
                          "qat": settings})  # fmt: skip
    ort = {k: best[k] for k in ("accuracy", "drop", "agreement", "p50_ms")}
    tflite, tflite_files = tflite_rows(ctx, fp32_dest, "qat", fp32_sha)
    return {"rung": 4, "name": "qat", **rungs.config_of(best), "candidates": candidates, "excluded": best["scope_float"],
            "int16": [],
            **ort, "model": dest.name,
            "qat": {**settings, "history": epochs,
                    "converted_accuracy": max(e["converted_accuracy"] for e in epochs)},
            "runtimes": {"ort": {**ort, "model": dest.name}, **tflite},
            "files": {fp32_dest.name: fp32_sha, dest.name: sha, **tflite_files}}  # fmt: skip
