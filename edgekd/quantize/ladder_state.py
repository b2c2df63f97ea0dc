"""The quantization ladder's files and shared state: ladder.json rows, published artifacts, resume checks.

Everything the ladder writes goes through here: `publish_model` (a model copied atomically from the work
directory, with the ladder's sidecar), `write_json` (ladder.json, sensitivity.json), and
`refuse_foreign_outputs` (a same-named file without the ladder's sidecar is the user's: never overwritten).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.errors import UsageError
from edgekd.quantize import ort_backend

LADDER_SCHEMA = "edgekd.quant_ladder/1"
SENSITIVITY_SCHEMA = "edgekd.sensitivity/1"
PRODUCER = "quant_ladder"


@dataclass
class RungContext:
    """What every rung needs: the prepared float model, the samples, the fp32 reference and the work dir."""

    out: Path
    work: Path
    model: Path
    prepared: Path
    x_val: np.ndarray
    y_val: np.ndarray
    x_calib: np.ndarray
    fp32_pred: np.ndarray
    fp32_accuracy: float
    runs: int
    runtimes: tuple[str, ...]

    def figures(self, path: Path) -> dict[str, Any]:
        """Accuracy, drop vs fp32 and top-1 agreement with fp32 of one model in ORT (no latency)."""
        pred = ort_backend.predict(path, self.x_val)
        accuracy = float((pred == self.y_val).mean())
        return {
            "accuracy": round(accuracy, 6),
            "drop": round(self.fp32_accuracy - accuracy, 6),
            "agreement": round(float((pred == self.fp32_pred).mean()), 6),
        }

    def measure(self, path: Path) -> dict[str, Any]:
        """`figures` and the p50 latency of one model."""
        return {**self.figures(path), "p50_ms": round(ort_backend.p50_ms(path, self.x_val[0], self.runs), 5)}


def key_of(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def read_ladder(path: Path) -> dict[str, Any]:
    """An earlier ladder.json, or an empty one when absent or not ours (it is then rewritten)."""
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and data.get("schema") == LADDER_SCHEMA and isinstance(data.get("rows"), list):
            return data
    return {"schema": LADDER_SCHEMA, "rows": []}


def write_json(path: Path, data: dict[str, Any], *, name: str, parent: str | None) -> str:
    from edgekd.artifacts import write_artifact

    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    return write_artifact(path, text.encode(), name=name, format="json", parent=parent, producer=PRODUCER).sha256


def publish_model(src: Path, dest: Path, *, name: str, parent: str, config: dict[str, Any],
                   precision: str = "int8") -> str:  # fmt: skip
    """Copy a candidate (.onnx, or a .tflite with its converter's sidecar) from the work dir to its final name
    atomically and describe it with the ladder's sidecar."""
    from edgekd.artifacts import create_artifact, load_artifact
    from edgekd.fileio import atomic_path
    from edgekd.verify.model_io import load_onnx, onnx_tensor_specs

    with atomic_path(dest, suffix=dest.suffix) as tmp:
        shutil.copyfile(src, tmp)
    if dest.suffix == ".tflite":
        made = load_artifact(src)  # the converter's description: input layout and quantization
        inputs, outputs, fmt, config = made.inputs, made.outputs, "tflite", {**made.config, **config}
    else:
        (inputs, outputs), fmt = onnx_tensor_specs(load_onnx(dest)), "onnx"
    return create_artifact(
        dest,
        name=name,
        format=fmt,
        precision=precision,
        inputs=inputs,
        outputs=outputs,
        parent=parent,
        producer=PRODUCER,
        config=config,
    ).sha256


def tflite_rows(ctx: RungContext, onnx_fp32: Path, tag: str, parent: str) -> tuple[dict[str, Any], dict[str, str]]:
    """LiteRT/TFLM rows of `onnx_fp32` converted to full int8 (published as `<tag>.int8.tflite`); ({}, {})
    when no TFLite runtime was asked for."""
    from edgekd.quantize import litert_backend

    if not {"litert", "tflm"} & set(ctx.runtimes):
        return {}, {}
    made = litert_backend.to_tflite(onnx_fp32, ctx.x_calib, ctx.work, tag, ("fp32", "int8"))
    # onnx2tf checks its layout choices by running the model on the calibration samples it is given, and for a
    # fixed-batch model several samples can make it choose wrong (measured: a transformer's softmax taken over
    # the query axis, 0.30 accuracy in fp32 and int8 alike). The fp32 file that LiteRT's rungs 2-3 quantize is
    # converted on its own, without them; the int8 rows say when the two conversions disagree.
    clean = litert_backend.to_tflite(onnx_fp32, ctx.x_calib, ctx.work, f"{tag}-fp32", ("fp32",))["fp32"]
    dest = ctx.out / f"{tag}.int8.tflite"
    sha = publish_model(
        made["int8"],
        dest,
        name=f"tflite_int8_{tag}",
        parent=parent,
        config={"converter": "onnx2tf", "per_channel": True, "calibration": "minmax (TFLite converter)"},
    )
    rows = litert_backend.measure(
        dest,
        ctx.x_val,
        ctx.y_val,
        ctx.fp32_pred,
        ctx.fp32_accuracy,
        ctx.runs,
        tuple(r for r in ctx.runtimes if r != "ort"),
    )
    if "litert" in rows:  # LiteRT's own fp32/int8 latency ratio
        rows["litert"]["fp32_p50_ms"] = round(litert_backend.p50_ms(clean, ctx.x_val[0], ctx.runs), 5)
    wrong = litert_backend.conversion_check(made["fp32"], clean, ctx.x_val, ctx.fp32_pred)
    for row in rows.values():
        row.update({"conversion_error": wrong} if wrong else {})
    # the fp32 .tflite is what the LiteRT rungs 2-3 quantize selectively: kept so a resumed ladder has it
    fp32_dest = ctx.out / f"{tag}.fp32.tflite"
    fp32_sha = publish_model(clean, fp32_dest, name=f"tflite_fp32_{tag}", parent=parent,
                             config={"converter": "onnx2tf", "calibration_samples": False}, precision="fp32")  # fmt: skip
    return rows, {dest.name: sha, fp32_dest.name: fp32_sha}


def still_valid(row: dict[str, Any], key: str, out: Path) -> bool:
    """A finished row can be reused: same input key, and every file it names is unchanged."""
    from edgekd.fileio import sha256_file

    if row.get("key") != key:
        return False
    for file, sha in row.get("files", {}).items():
        path = out / file
        if not path.is_file() or sha256_file(path) != sha:
            return False
    return True


OUTPUT_FILES = (
    "ladder.json",
    "ptq.int8.onnx",
    "sensitivity.json",
    "mixed.int8.onnx",
    "ptq.int8.tflite",
    "ptq.fp32.tflite",
    "aeq.int8.tflite",
    "mixed.int8.tflite",
    "qat.fp32.tflite",
    "qat.fp32.onnx",
    "qat.int8.onnx",
    "qat.int8.tflite",
)


def refuse_foreign_outputs(out: Path) -> None:
    """The ladder overwrites only files it wrote: a same-named file without its sidecar is the user's."""
    for name in OUTPUT_FILES:
        file = out / name
        side = out / f"{name}.json"
        ours = False
        with contextlib.suppress(OSError, ValueError):
            ours = json.loads(side.read_text(encoding="utf-8")).get("producer", "").startswith(PRODUCER)
        if file.exists() and not ours:
            raise UsageError(
                f"{file} exists and was not written by the quantization ladder",
                hint="choose another --out directory (the ladder never overwrites a file it did not write)",
            )
