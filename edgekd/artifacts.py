"""Artifacts: every file edgekd writes, described by a sidecar `<file>.json` beside it.

An Artifact is frozen. Its `sha256` is the file's content hash at the time it was written; loading an
artifact re-checks it, so a corrupted or swapped file is detected before it is used.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from edgekd.errors import ModelError
from edgekd.fileio import atomic_write_json, sha256_file, sha256_path

SIDECAR_SCHEMA = "edgekd.artifact/1"

#: Model formats edgekd produces, with their file suffixes. The single source of truth for names.
MODEL_FORMATS: dict[str, str] = {"torch": ".pt", "onnx": ".onnx", "tflite": ".tflite"}
PRECISIONS = ("fp32", "fp16", "dynamic_range", "int8")


@dataclass(frozen=True)
class QuantParams:
    """Affine quantization: real = scale * (q - zero_point); per-tensor when axis is None."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int | None = None


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output. `shape` may hold strings for symbolic (dynamic) dimensions."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str  # numpy dtype name: "float32", "int8", "uint8", ...
    layout: str | None = None  # "NCHW", "NHWC", "NC", ...
    quant: QuantParams | None = None

    @staticmethod
    def from_dict(data: dict[str, Any]) -> TensorSpec:
        quant = data.get("quant")
        return TensorSpec(
            name=data["name"],
            shape=tuple(data["shape"]),
            dtype=data["dtype"],
            layout=data.get("layout"),
            quant=QuantParams(tuple(quant["scale"]), tuple(quant["zero_point"]), quant.get("axis")) if quant else None,
        )


@dataclass(frozen=True)
class Artifact:
    """A file plus what it is: format, precision, interface, lineage and the config that made it."""

    path: Path
    name: str  # stable name within a run: "student_torch", "onnx_int8", "tflite_fp32", ...
    format: str  # torch | onnx | tflite | npz | json | dir | ...
    sha256: str
    precision: str | None = None
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    parent: str | None = None  # sha256 of the artifact this one was made from
    producer: str = ""  # "converter-or-stage-name edgekd-version"
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def size_bytes(self) -> int:
        if self.path.is_dir():
            return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())
        return self.path.stat().st_size

    @property
    def sidecar(self) -> Path:
        return sidecar_path(self.path)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        data["schema"] = SIDECAR_SCHEMA
        return data

    @staticmethod
    def from_dict(data: dict[str, Any], base: Path | None = None) -> Artifact:
        path = Path(data["path"])
        if base is not None and not path.is_absolute():
            path = base / path
        return Artifact(
            path=path,
            name=data["name"],
            format=data["format"],
            sha256=data["sha256"],
            precision=data.get("precision"),
            inputs=tuple(TensorSpec.from_dict(t) for t in data.get("inputs", ())),
            outputs=tuple(TensorSpec.from_dict(t) for t in data.get("outputs", ())),
            parent=data.get("parent"),
            producer=data.get("producer", ""),
            config=data.get("config", {}),
        )

    def moved_to(self, path: Path) -> Artifact:
        return replace(self, path=path)

    def write_sidecar(self) -> Artifact:
        """Write `<file>.json` beside the file (atomically), with the path stored relative to it."""
        data = self.to_dict()
        data["path"] = self.path.name
        atomic_write_json(self.sidecar, data)
        return self


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def create_artifact(
    path: str | Path,
    *,
    name: str,
    format: str,
    precision: str | None = None,
    inputs: tuple[TensorSpec, ...] | list[TensorSpec] = (),
    outputs: tuple[TensorSpec, ...] | list[TensorSpec] = (),
    parent: Artifact | str | None = None,
    producer: str = "",
    config: dict[str, Any] | None = None,
) -> Artifact:
    """Hash an existing file (or directory), describe it, and write its sidecar. It must be complete."""
    from edgekd import __version__

    file = Path(path)
    parent_sha = parent.sha256 if isinstance(parent, Artifact) else parent
    artifact = Artifact(
        path=file,
        name=name,
        format=format,
        sha256=sha256_path(file),
        precision=precision,
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        parent=parent_sha,
        producer=f"{producer} edgekd-{__version__}".strip(),
        config=dict(config or {}),
    )
    return artifact.write_sidecar()


def write_artifact(path: str | Path, data: bytes, **describe: Any) -> Artifact:
    """Write `data` to `path` atomically, then describe it like create_artifact(path, **describe)."""
    from edgekd.fileio import atomic_write_bytes

    atomic_write_bytes(path, data)
    return create_artifact(path, **describe)


def load_artifact(path: str | Path, *, verify: bool = True) -> Artifact:
    """Read a file's sidecar and (by default) check the file still has the recorded sha256."""
    file = Path(path)
    if file.suffix == ".json" and file.name.count(".") >= 2 and not sidecar_path(file).exists():
        file = file.with_name(file.name[: -len(".json")])  # given the sidecar itself
    if not file.exists():
        raise ModelError(f"{file} does not exist", hint="check the path, or rerun the stage that produces it")
    side = sidecar_path(file)
    if not side.exists():
        raise ModelError(
            f"{file} has no sidecar {side.name}",
            hint="edgekd describes every file it writes; use describe_file() for a file from elsewhere",
        )
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
        artifact = Artifact.from_dict(data, base=file.parent)
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"sidecar {side} is not valid: {exc}", hint="delete it and rerun the stage") from None
    if verify:
        actual = sha256_path(artifact.path)
        if actual != artifact.sha256:
            raise ModelError(
                f"{artifact.path} changed since it was written (sha256 {actual[:12]}… ≠ recorded {artifact.sha256[:12]}…)",
                hint="rerun the stage that produces it (edgekd run resumes and redoes only what changed)",
            )
    return artifact


def guess_format(path: Path) -> str:
    for fmt, suffix in MODEL_FORMATS.items():
        if path.suffix == suffix:
            return fmt
    if path.suffix in (".pt2", ".ts"):
        return "torch"
    raise ModelError(
        f"cannot tell the format of {path.name} from its suffix",
        hint="edgekd reads " + ", ".join(f"{s} ({f})" for f, s in MODEL_FORMATS.items()),
    )


def describe_file(path: str | Path) -> Artifact:
    """An Artifact for a model file given on the command line: its sidecar if present, else guessed."""
    file = Path(path)
    if not file.exists():
        raise ModelError(f"{file} does not exist", hint="check the path")
    if not file.is_file():
        raise ModelError(f"{file} is not a file")
    if sidecar_path(file).exists():
        return load_artifact(file)
    fmt = guess_format(file)
    return Artifact(path=file, name=file.stem, format=fmt, sha256=sha256_file(file))
