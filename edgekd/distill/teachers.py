"""Teachers from anywhere, behind one interface that returns logits for a batch.

Kinds (recipe `[teacher] kind`) and the artifact `prepare_teacher` records for each:
- builtin: trained here; "teacher_torch" (format torch: state dict + model spec in the sidecar).
- module: `package.module:factory` plus a state dict loaded with weights_only=True; "teacher_torch".
- torchscript: a TorchScript (`torch.jit.save`) or `torch.export` (`.pt2`) file; "teacher_torchscript"
  (format torchscript) or "teacher_export" (format torch_export).
- onnx: any framework's model run in ONNX Runtime; "teacher_onnx" (format onnx).
- soft_labels: an .npz of precomputed `logits` or `probabilities` per sample id (`ids`, the index of
  the sample in the source data), the "teacher behind an API" workflow; "teacher_soft_labels" (npz).
Probability outputs are turned into log-probabilities, which act as logits (softmax(log p) = p).

A teacher takes its own inputs (see edgekd.distill.teacher_inputs): callers always pass the student's
inputs, and `Teacher.inputs` turns them into the teacher's view of the same samples.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekd.distill.models import one_line, torch_load_error
from edgekd.errors import DataError, ModelError
from edgekd.preprocessing import Preprocessing, reprocess

if TYPE_CHECKING:
    from torch import nn

    from edgekd.artifacts import Artifact

ARTIFACT_NAMES = {"torch": "teacher_torch", "torchscript": "teacher_torchscript", "torch_export": "teacher_export",
                  "onnx": "teacher_onnx", "npz": "teacher_soft_labels"}  # fmt: skip
_EPS = 1e-12
log = logging.getLogger(__name__)


@dataclass
class Teacher:
    """A loaded teacher. `module` is set for torch-based teachers (needed for FitNets hints)."""

    kind: str  # torch | torchscript | torch_export | onnx | npz
    num_classes: int
    fingerprint: str  # sha256 of the teacher file: part of the output-cache key
    label_names: list[str] | None = None
    outputs: str = "logits"
    module: nn.Module | None = None
    session: Any = None  # onnxruntime.InferenceSession
    table: dict[int, int] = field(default_factory=dict)  # soft labels: sample id -> row
    table_values: np.ndarray | None = None
    preprocessing: Preprocessing | None = None  # the teacher's own inputs (None: the student's)
    student_preprocessing: Preprocessing | None = None  # what callers pass in
    device: Any = None  # torch teachers: where `module` runs (None: the CPU)

    def place(self, device: Any) -> None:
        """Run a torch teacher's module on `device` (a torch.device); other kinds stay where they are."""
        if self.module is None or device is None or device.type == "cpu":
            return
        try:
            self.module.to(device)
        except (
            AttributeError,
            RuntimeError,
            NotImplementedError,
        ) as exc:  # e.g. a torch.export program that cannot move
            log.warning(
                "the teacher stays on the CPU: it cannot move to %s (%s)",
                device,
                str(exc).splitlines()[0] if str(exc) else exc,
            )
            return
        self.device = device

    def inputs(self, x: np.ndarray) -> np.ndarray:
        """The student's inputs `x` -> this teacher's inputs for the same samples."""
        if self.preprocessing is None or self.student_preprocessing is None:
            return x
        return reprocess(x, self.student_preprocessing, self.preprocessing)

    @property
    def inputs_key(self) -> str:
        """The teacher's preprocessing as a stable string: part of the teacher-output cache key."""
        if self.preprocessing is None or self.preprocessing == self.student_preprocessing:
            return "student"
        return json.dumps(self.preprocessing.to_dict(), sort_keys=True, default=str)

    @property
    def scores_views(self) -> bool:
        """Whether the teacher can score new (augmented) inputs, not only a fixed set of samples."""
        return self.kind != "npz"

    def logits(self, x: np.ndarray, ids: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """(B, C) float32 logits for inputs `x` (samples `ids`)."""
        if self.kind == "npz":
            rows = self._rows(ids)
            raw = self.table_values[rows]
        else:
            batch_size = self._fixed_batch() or batch_size
            raw = np.concatenate([self._run(self.inputs(x[i : i + batch_size])) for i in range(0, len(x), batch_size)])
        if self.outputs == "probabilities":
            raw = np.log(np.clip(raw, _EPS, None))
        return raw.astype(np.float32, copy=False)

    def _fixed_batch(self) -> int | None:
        """An ONNX model exported with a fixed batch size must be fed exactly that many samples."""
        if self.session is None:
            return None
        first = self.session.get_inputs()[0].shape[0] if self.session.get_inputs()[0].shape else None
        return first if isinstance(first, int) and first > 0 else None

    def _run(self, x: np.ndarray) -> np.ndarray:
        if self.session is not None:
            name = self.session.get_inputs()[0].name
            fixed = self._fixed_batch()
            if fixed and len(x) < fixed:  # pad the last chunk, drop the padding's outputs
                padded = np.concatenate([x, np.repeat(x[-1:], fixed - len(x), axis=0)])
                return np.asarray(self.session.run(None, {name: padded})[0])[: len(x)]
            return np.asarray(self.session.run(None, {name: x})[0])
        import torch

        with torch.no_grad():
            inputs = torch.from_numpy(x)
            if self.device is not None:
                inputs = inputs.to(self.device, non_blocking=True)
            return self.module(inputs).float().cpu().numpy()

    def _rows(self, ids: np.ndarray) -> np.ndarray:
        missing = [int(i) for i in ids if int(i) not in self.table]
        if missing:
            shown = ", ".join(str(i) for i in missing[:10]) + (" …" if len(missing) > 10 else "")
            raise DataError(f"the soft-label file has no entry for {len(missing)} sample(s): ids {shown}",
                            hint="score every sample of the data set (ids are indices into the source data)")  # fmt: skip
        return np.array([self.table[int(i)] for i in ids], dtype=np.int64)


def load_teacher(artifact: Artifact, student_preprocessing: dict[str, Any] | None = None) -> Teacher:
    """Open the teacher an artifact from `prepare_teacher` describes.

    With `student_preprocessing` (the data's), the teacher converts the student's inputs into its own
    (the `preprocessing` its sidecar records; artifacts without one took the student's inputs).
    """
    teacher = _open_teacher(artifact)
    if student_preprocessing is not None:
        student = Preprocessing.from_dict(student_preprocessing)
        recorded = artifact.config.get("preprocessing")
        teacher.student_preprocessing = student
        teacher.preprocessing = Preprocessing.from_dict(recorded) if recorded is not None else student
    return teacher


def _open_teacher(artifact: Artifact) -> Teacher:
    config = artifact.config
    names = config.get("label_names")
    outputs = config.get("outputs", "logits")
    if artifact.format == "torch":
        from edgekd.distill.models import load_torch_model

        module = load_torch_model(artifact)
        return Teacher("torch", int(config["num_classes"]), artifact.sha256, names, "logits", module=module)
    if artifact.format in ("torchscript", "torch_export"):
        module = open_torch_program(artifact.path, artifact.format)
        return Teacher(artifact.format, int(config["num_classes"]), artifact.sha256, names, outputs, module=module)
    if artifact.format == "onnx":
        return Teacher(
            "onnx", int(config["num_classes"]), artifact.sha256, names, outputs, session=open_onnx(artifact.path)
        )
    if artifact.format == "npz":
        ids, values, file_names = read_soft_labels(artifact.path)
        table = {int(i): row for row, i in enumerate(ids)}
        kind_outputs = "probabilities" if config.get("values") == "probabilities" else "logits"
        return Teacher(
            "npz", values.shape[1], artifact.sha256, names or file_names, kind_outputs, table=table, table_values=values
        )
    raise ModelError(f"{artifact.path}: teacher format {artifact.format!r} is not supported",
                     hint="use a teacher artifact written by prepare_teacher")  # fmt: skip


def load_state_dict_file(path: Path) -> dict[str, Any]:
    """A state dict from `path`, refusing anything but tensors (weights_only=True)."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises UnpicklingError, RuntimeError, EOFError, OSError, ValueError
        raise torch_load_error(path, exc) from None
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise ModelError(f"{path} is not a state dict (got {type(state).__name__})",
                         hint="save model.state_dict(), not the model object")  # fmt: skip
    return state


def open_torch_program(path: Path, fmt: str | None = None) -> nn.Module:
    """Load a TorchScript file or a torch.export program (.pt2) as a callable module."""
    import torch

    if fmt == "torch_export" or (fmt is None and path.suffix == ".pt2"):
        try:
            return torch.export.load(str(path)).module()
        except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad archive
            raise ModelError(f"{path} is not a torch.export program: {str(exc).splitlines()[0]}",
                             hint="save it with torch.export.save(torch.export.export(model, args), path)") from None  # fmt: skip
    try:
        return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as exc:  # noqa: BLE001 - RuntimeError for wrong files, ValueError for some archives
        raise ModelError(f"{path} is not a TorchScript file: {str(exc).splitlines()[0]}",
                         hint="save it with torch.jit.save(torch.jit.script(model), path), or use a .pt2 from torch.export") from None  # fmt: skip


def torch_program_format(path: Path) -> str:
    """torch_export for a .pt2 archive, torchscript otherwise (both are zip files)."""
    return "torch_export" if path.suffix == ".pt2" else "torchscript"


def open_onnx(path: Path) -> Any:
    import onnxruntime as ort

    try:
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own Fail/InvalidGraph types
        raise ModelError(f"{path} cannot be opened by ONNX Runtime: {one_line(exc)}",
                         hint="check that it is an .onnx model with one image/feature input") from None  # fmt: skip


def read_soft_labels(path: Path) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """(ids, values (N, C), label names or None) from a soft-label .npz; no pickled objects allowed."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (ValueError, OSError) as exc:
        raise DataError(f"{path} is not a readable .npz of soft labels: {exc}",
                        hint="np.savez(path, ids=..., logits=...) or probabilities=..., without object arrays") from None  # fmt: skip
    values = arrays.get("logits", arrays.get("probabilities"))
    if "ids" not in arrays or values is None:
        raise DataError(f"{path} needs arrays 'ids' and 'logits' (or 'probabilities'); it has {sorted(arrays)}")
    ids = arrays["ids"].astype(np.int64)
    if values.ndim != 2 or len(values) != len(ids):
        raise DataError(
            f"{path}: values must be (N, classes) with one row per id; got {values.shape} for {len(ids)} ids"
        )
    if not np.all(np.isfinite(values)):
        raise DataError(f"{path}: soft labels contain NaN or Inf", hint="rescore or drop those samples")
    if len(np.unique(ids)) != len(ids):
        raise DataError(f"{path}: sample ids repeat", hint="one row per sample id")
    names = [str(n) for n in arrays["label_names"]] if "label_names" in arrays else None
    return ids, values.astype(np.float32), names


def class_mapping(
    teacher_names: list[str] | None, teacher_classes: int, student_names: list[str], other_label: str | None
) -> list[list[int]]:
    """For each student class, the teacher classes whose probability it collects.

    A student class named like a teacher class takes that class (renormalised over the kept classes);
    the `other_label` class collects every teacher class not kept. Without teacher names the class
    counts must agree and classes map one to one.
    """
    if teacher_names is not None and len(teacher_names) != teacher_classes:
        raise ModelError(f"the teacher has {teacher_classes} outputs but {len(teacher_names)} label names",
                         hint="fix [teacher] label_names")  # fmt: skip
    if teacher_names is None or teacher_names == student_names:
        if teacher_classes != len(student_names):
            raise DataError(
                f"class count mismatch: the teacher predicts {teacher_classes} classes, the data has {len(student_names)}",
                hint="give [teacher] label_names so classes can be matched by name, or use data with the teacher's classes",
            )
        return [[i] for i in range(teacher_classes)]
    index = {name: i for i, name in enumerate(teacher_names)}
    mapping: list[list[int]] = []
    unknown = [n for n in student_names if n not in index and n != other_label]
    if unknown:
        raise DataError(f"student classes {unknown} are not among the teacher's classes {teacher_names}",
                        hint="[data] classes must name classes the teacher knows")  # fmt: skip
    kept = {index[n] for n in student_names if n != other_label}
    for name in student_names:
        mapping.append(sorted(set(range(teacher_classes)) - kept) if name == other_label else [index[name]])
    if any(not group for group in mapping):
        raise DataError(
            "the 'other' class would collect no teacher class", hint="drop other_class, or keep fewer classes"
        )
    return mapping


def map_logits(logits: np.ndarray, mapping: list[list[int]]) -> np.ndarray:
    """(B, C_teacher) -> (B, C_student): logsumexp over each student class's teacher classes.

    Softmax over the result equals the teacher's probabilities renormalised over the kept classes,
    with "other" holding the summed probability of the rest.
    """
    if all(len(group) == 1 for group in mapping) and [g[0] for g in mapping] == list(range(logits.shape[1])):
        return logits
    out = np.empty((len(logits), len(mapping)), dtype=np.float32)
    for c, group in enumerate(mapping):
        part = logits[:, group]
        top = part.max(axis=1, keepdims=True)
        out[:, c] = (top + np.log(np.exp(part - top).sum(axis=1, keepdims=True)))[:, 0]
    return out
