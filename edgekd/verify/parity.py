"""The parity gate: every exported artifact against the torch reference, on the held-out split.

Per artifact: max absolute and relative error of the outputs, mean cosine similarity, top-1 agreement
with the reference, task accuracy and its delta. Thresholds come per precision from the recipe's
[verify] section. Every artifact is checked before anything is raised, so one report names every
failing artifact and metric; failing files are kept for inspection.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekd.artifacts import Artifact
from edgekd.config.export import Threshold, VerifyConfig
from edgekd.errors import EdgekdError, ParityError

if TYPE_CHECKING:
    from edgekd.verify.backends import Samples

log = logging.getLogger(__name__)


@dataclass
class ParityReport:
    """One row per candidate artifact; `reference_accuracy` is the torch model's."""

    reference: str
    reference_accuracy: float | None  # None: the samples had no labels (random inputs for a multi-input model)
    samples: int
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [row for row in self.rows if not row["passed"]]

    @property
    def passed(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "reference_accuracy": self.reference_accuracy,
            "samples": self.samples,
            "passed": self.passed,
            "rows": self.rows,
        }

    def table(self, rows: list[dict[str, Any]] | None = None) -> str:
        """A plain-text table (artifact, precision, agreement, max abs, accuracy delta, verdict)."""
        return parity_table(self.rows if rows is None else rows)

    def raise_if_failed(self) -> None:
        """ParityError with a table of every failing artifact and metric (other artifacts are kept)."""
        error = parity_error(self.rows, reference=self.reference, samples=self.samples)
        if error is not None:
            raise error


def parity_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of parity rows (artifact, precision, agreement, max abs, accuracy, its delta, verdict)."""
    header = f"{'artifact':<22} {'precision':<13} {'agree':>7} {'max_abs':>10} {'acc':>7} {'Δacc':>7}  result"
    lines = [header]
    for r in rows:
        verdict = "ok" if r.get("passed") else "FAIL: " + ("; ".join(r.get("failures") or []) or "failed")
        lines.append(
            f"{r.get('artifact')!s:<22} {r.get('precision')!s:<13} {_fmt(r.get('top1_agreement'), '.4f'):>7} "
            f"{_fmt(r.get('max_abs_error'), '.2e'):>10} {_fmt(r.get('accuracy'), '.4f'):>7} "
            f"{_fmt(r.get('accuracy_delta'), '+.4f'):>7}  {verdict}"
        )
    return "\n".join(lines)


def parity_error(
    rows: list[dict[str, Any]], *, reference: str | None = None, samples: int | None = None
) -> ParityError | None:
    """The one ParityError of failed parity rows (None when every row passed), for `edgekd verify` and the
    verify stage's gate alike: it names every failing artifact and metric, and its hint fits the failure
    (a model TensorFlow Lite Micro cannot run at all needs a different fix from a loose threshold)."""
    failed = [row for row in rows if not row.get("passed")]
    if not failed:
        return None
    names = ", ".join(str(row.get("artifact")) for row in failed)
    against = f" against {reference} on {samples} held-out samples" if reference else ""
    unrunnable = any(
        row.get("runtime") == "tflite-micro" and "could not run" in " ".join(row.get("failures") or [])
        for row in failed
    )
    hint = (
        "TensorFlow Lite Micro cannot run the int8 model the firmware would get: replace the layer behind the "
        'operator it names, or set [handoff] platform = "linux" / "android"'
        if unrunnable
        else "thresholds are in the recipe's [verify] section (loosen them only if the loss is acceptable); the "
        "parity table is in report.html and, for int8, the worst layers in report.json"
    )
    return ParityError(
        f"{len(failed)} of {len(rows)} artifacts failed the parity gate ({names}){against}:\n{parity_table(failed)}",
        failures=[
            {
                "artifact": row.get("artifact"),
                "failures": row.get("failures") or [],
                "worst_layers": row.get("worst_layers", []),
            }
            for row in failed
        ],
        hint=hint,
    )


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def output_metrics(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """Error metrics between two (N, ...) float outputs.

    max_rel_error is relative to the largest reference magnitude (per-element relative error explodes on
    logits near zero and says nothing about a classifier)."""
    ref = reference.reshape(len(reference), -1).astype(np.float64)
    cand = candidate.reshape(len(candidate), -1).astype(np.float64)
    diff = np.abs(ref - cand)
    scale = float(np.abs(ref).max()) or 1.0
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1)
    cosine = np.where(norms > 0, (ref * cand).sum(axis=1) / np.where(norms > 0, norms, 1.0), 1.0)
    return {
        "max_abs_error": float(diff.max()),
        "mean_abs_error": float(diff.mean()),
        "max_rel_error": float(diff.max() / scale),
        "cosine": float(cosine.mean()),
        "min_cosine": float(cosine.min()),
    }


def check_thresholds(metrics: dict[str, Any], threshold: Threshold) -> list[str]:
    """The failed checks, each naming the metric, the value and the limit."""
    failures = []
    if threshold.max_abs is not None and metrics["max_abs_error"] > threshold.max_abs:
        failures.append(f"max_abs_error {metrics['max_abs_error']:.3g} > {threshold.max_abs:g}")
    if metrics["top1_agreement"] < threshold.agreement:
        failures.append(f"top1_agreement {metrics['top1_agreement']:.4f} < {threshold.agreement:g}")
    drop = -metrics["accuracy_delta"] if metrics.get("accuracy_delta") is not None else 0.0  # no labels: no accuracy
    if threshold.max_accuracy_drop is not None and drop > threshold.max_accuracy_drop + 1e-12:
        failures.append(f"accuracy drop {100 * drop:.2f} points > {100 * threshold.max_accuracy_drop:.2f}")
    return failures


def verify_artifacts(
    reference: Artifact,
    candidates: list[Artifact],
    x: Samples,
    y: np.ndarray | None,
    config: VerifyConfig,
    *,
    diagnose_int8: bool = True,
    audit_ops: bool = True,
) -> ParityReport:
    """Run the reference and each candidate on (x, y) and judge each candidate by its precision's thresholds.

    A candidate that cannot run at all gets a failing row saying why; the others are still checked.
    `x` may be a dict of arrays per input name (multi-input ONNX); `y=None` (unlabelled samples) leaves
    accuracy out and judges agreement and error only.
    """
    from edgekd.verify.backends import predict, sample_count
    from edgekd.verify.ops import audit

    n = sample_count(x)
    if n == 0 or (y is not None and n != len(y)):
        labels = "no" if y is None else len(y)
        raise ParityError(f"parity needs samples: got {n} inputs and {labels} labels", hint="check the held-out split")
    ref_out = predict(reference, x)
    ref_pred = ref_out.argmax(axis=1)
    ref_acc = float((ref_pred == y).mean()) if y is not None else None
    report = ParityReport(reference=reference.name, reference_accuracy=ref_acc, samples=n)
    by_sha = {a.sha256: a for a in [reference, *candidates]}
    for candidate in candidates:
        threshold: Threshold = getattr(config, candidate.precision or "fp32", config.fp32)
        row: dict[str, Any] = {
            "artifact": candidate.name,
            "path": str(candidate.path),
            "format": candidate.format,
            "precision": candidate.precision,
            "reference_accuracy": ref_acc,
            "threshold": threshold.model_dump(),
        }
        try:
            out = predict(candidate, x)
            if out.shape != ref_out.shape:
                raise ParityError(f"output shape {out.shape} differs from the reference's {ref_out.shape}")
        except EdgekdError as exc:
            row.update(_empty_metrics(), passed=False, failures=[f"could not run: {exc.message}"], ops={})
            report.rows.append(row)
            continue
        pred = out.argmax(axis=1)
        row.update(output_metrics(ref_out, out))
        row["top1_agreement"] = float((pred == ref_pred).mean())
        row["accuracy"] = float((pred == y).mean()) if y is not None else None
        row["accuracy_delta"] = (
            row["accuracy"] - ref_acc if row["accuracy"] is not None and ref_acc is not None else None
        )
        row["failures"] = check_thresholds(row, threshold)
        row["passed"] = not row["failures"]
        row["ops"] = _safe_audit(audit, candidate) if audit_ops else {}
        if not row["passed"] and diagnose_int8 and candidate.precision == "int8":
            row["worst_layers"] = _diagnose(candidate, by_sha.get(candidate.parent or ""), candidates, x)
        report.rows.append(row)
    return report


def _empty_metrics() -> dict[str, Any]:
    keys = (
        "max_abs_error",
        "mean_abs_error",
        "max_rel_error",
        "cosine",
        "min_cosine",
        "top1_agreement",
        "accuracy",
        "accuracy_delta",
    )
    return dict.fromkeys(keys)


def _safe_audit(audit: Any, artifact: Artifact) -> dict[str, Any]:
    try:
        return dict(audit(artifact))
    except EdgekdError as exc:
        return {"error": exc.message}


def _diagnose(
    candidate: Artifact, parent: Artifact | None, candidates: list[Artifact], x: Samples
) -> list[dict[str, Any]]:
    """Worst layers of a failing int8 artifact vs its float sibling of the same format (one-input models)."""
    if isinstance(x, dict):  # the layer diagnosis feeds one array; named inputs get no worst-layer list
        return []
    from edgekd.verify.debug import worst_layers

    float_model = next((c for c in candidates if c.format == candidate.format and c.precision == "fp32"), None)
    if candidate.format == "onnx" and parent is not None and parent.format == "onnx":
        float_model = parent
    if float_model is None:
        return []
    try:
        return worst_layers(candidate, float_model, x)
    except Exception as exc:  # noqa: BLE001 - diagnosis is best effort: logged, the parity verdict stands without it
        log.warning("int8 layer diagnosis of %s failed: %s", candidate.name, exc)
        return []


def cross_check(first: Artifact, second: Artifact, x: np.ndarray) -> dict[str, Any]:
    """Compare two artifacts directly (e.g. the onnx2tf and litert-torch TFLite files of one precision)."""
    from edgekd.verify.backends import predict

    a, b = predict(first, x), predict(second, x)
    return {
        "first": first.name,
        "second": second.name,
        "producers": [first.producer, second.producer],
        "top1_agreement": float((a.argmax(axis=1) == b.argmax(axis=1)).mean()),
        **output_metrics(a, b),
    }


def cross_check_converters(artifacts: list[Artifact], x: np.ndarray) -> list[dict[str, Any]]:
    """Pair TFLite artifacts of the same precision written by different converters and compare each pair.

    Returns [] unless both TFLite converters ran; rows are stored beside the parity rows in the report."""
    by_precision: dict[str | None, list[Artifact]] = {}
    for artifact in artifacts:
        if artifact.format == "tflite":
            by_precision.setdefault(artifact.precision, []).append(artifact)
    rows = []
    for precision, group in sorted(by_precision.items(), key=lambda item: str(item[0])):
        producers = {a.producer.split()[0] for a in group}
        if len(producers) < 2:
            continue
        first, *others = group
        for other in others:
            if other.producer.split()[0] != first.producer.split()[0]:
                rows.append({"precision": precision, **cross_check(first, other, x)})
    return rows
