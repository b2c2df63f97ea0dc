"""build_handoff: write the firmware bundle, verify it on the host, and publish it atomically.

The bundle is assembled in a hidden folder beside `out_dir` and renamed onto it only after every file is
written and verified, so a killed run never leaves a half bundle under the final name. The zip beside
it is deterministic (sorted entries, fixed timestamps) and written atomically too.
"""

from __future__ import annotations

import importlib.metadata
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.artifacts import Artifact
from edgekd.config.handoff import HandoffConfig
from edgekd.errors import HandoffError, ModelError
from edgekd.fileio import sha256_bytes, sha256_file, storage_error
from edgekd.handoff import golden as golden_mod
from edgekd.handoff.arena import ArenaPlan, TflmFailure, margin_problem, plan_arena
from edgekd.handoff.c_array import render_model_data
from edgekd.handoff.identifiers import bundle_symbols
from edgekd.handoff.integrator_readme import render_readme
from edgekd.handoff.manifest import build_manifest, render_manifest_header
from edgekd.handoff.memory import check_budgets, memory_section
from edgekd.handoff.op_resolver import (
    check_op_resolver_header,
    render_op_resolver_header,
    require_tflm_support,
    resolver_entries,
)
from edgekd.handoff.publish import BUNDLE_SCHEMA, check_destination, publish, staging_dir
from edgekd.handoff.self_test import render_self_test
from edgekd.handoff.tflite_reader import TfliteModel, parse_tflite
from edgekd.handoff.vela import compile_with_vela, is_ethos_u
from edgekd.handoff.verify import check_against_tflm, verify_sources

__all__ = ["BUNDLE_SCHEMA", "HandoffResult", "build_handoff", "infer_precision"]


@dataclass(frozen=True)
class HandoffResult:
    path: Path
    zip_path: Path | None
    manifest: dict[str, Any]
    arena: dict[str, Any]  # bytes, basis_bytes, method "measured-tflm" | "estimate", margin, note
    files: dict[str, str]  # file name in the bundle -> sha256
    verification: dict[str, Any] = field(default_factory=dict)
    golden: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """What report.json shows under "handoff"."""
        return {
            "path": str(self.path),
            "zip": str(self.zip_path) if self.zip_path else None,
            "model_name": self.manifest["model"]["name"],
            "model_file": self.manifest["model"]["file"],
            "model_bytes": self.manifest["model"]["bytes"],
            "platform": self.manifest["platform"],
            "symbols": self.manifest["symbols"],
            "operators": self.manifest["operators"],
            "arena_bytes": self.arena["bytes"],
            "arena_method": self.arena["method"],
            "arena_margin": self.arena["margin"],
            "memory": self.manifest.get("memory"),
            "ethos_u": self.manifest.get("ethos_u"),
            "compiled": bool(self.verification.get("compiled")),
            "round_trip_matches": bool(self.verification.get("round_trip_matches")),
            "aligned": bool(self.verification.get("aligned")),
            "compile_skipped": self.verification.get("skipped"),
            "golden_tflm_max_abs_diff": self.golden.get("tflm_max_abs_diff"),
            "files": dict(self.files),
        }


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _collect_versions(model_schema: int, compiler: str | None, extra: dict[str, str]) -> dict[str, Any]:
    from edgekd import __version__

    versions: dict[str, Any] = {
        "edgekd": __version__,
        "tflite_schema": model_schema,
        "ai-edge-litert": _package_version("ai-edge-litert"),
        "tflite-micro": _package_version("tflite-micro"),
        "numpy": np.__version__,
    }
    if compiler:
        versions["compiler"] = compiler
    versions.update(extra)
    return {key: value for key, value in versions.items() if value is not None}


def _check_labels(labels: list[str], model: TfliteModel, model_name: str) -> None:
    """One label per class of a single-output classifier (other models: labels are taken as given)."""
    if not labels or len(model.outputs) != 1 or not model.outputs[0].shape:
        return
    classes = model.outputs[0].shape[-1]
    if classes != len(labels):
        raise HandoffError(
            f"{len(labels)} labels given but {model_name}'s output has {classes} classes",
            hint="give one label per output class, in class-index order",
        )


def infer_precision(model: TfliteModel) -> str:
    """The precision a .tflite without a sidecar most likely has, from its tensor types."""
    types = model.tensor_types()
    if "FLOAT16" in types:
        return "fp16"
    if "FLOAT32" not in types:
        return "int8"
    return "dynamic_range" if types & {"INT8", "UINT8"} else "fp32"


def _read_model(tflite: Artifact) -> tuple[bytes, str]:
    if tflite.format != "tflite":
        raise HandoffError(
            f"the handoff needs a .tflite model, got {tflite.name} ({tflite.format})",
            hint="set [handoff] artifact to a TFLite artifact such as tflite_int8 or tflite_fp32",
        )
    try:
        data = tflite.path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read {tflite.path}: {exc.strerror}", hint="rerun the tflite stage") from None
    sha256 = sha256_bytes(data)
    if sha256 != tflite.sha256:
        raise ModelError(
            f"{tflite.path} changed since it was written (sha256 {sha256[:12]}… ≠ {tflite.sha256[:12]}…)",
            hint="rerun the tflite stage",
        )
    return data, sha256


def _golden_and_arena(
    path: Path, model: TfliteModel, config: HandoffConfig, calibration: Artifact | None
) -> tuple[golden_mod.GoldenVectors, ArenaPlan, dict[str, Any]]:
    """Golden vectors from LiteRT, the arena from TFLM run on the same inputs, and their agreement."""
    golden = golden_mod.golden_vectors(path, model.inputs, calibration.path if calibration else None)
    try:
        plan = plan_arena(path, model, golden.inputs, margin=config.arena_margin)
    except TflmFailure as failure:
        if _runs_tflm(config.platform):
            raise HandoffError(
                f"TensorFlow Lite Micro cannot run {path.name}: {failure.reason}",
                hint="use a full int8 or fp32 model with TFLM-supported operators, or bundle for "
                'platform "linux"/"android"',
            ) from None
        plan = plan_arena(
            path,
            model,
            golden.inputs,
            margin=config.arena_margin,
            skip_tflm=f"TFLite Micro cannot run this model ({failure.reason})",
        )
    info = golden_mod.golden_summary(golden)
    tolerances = [golden_mod.tolerance(out) for out in golden.outputs]
    if plan.tflm_outputs is not None:  # the same inputs through TFLM: how far the MCU runtime may differ
        diffs = [
            golden_mod.max_difference([want], [got])
            for want, got in zip(golden.outputs, plan.tflm_outputs, strict=True)
        ]
        tolerances = [max(tol, diff) for tol, diff in zip(tolerances, diffs, strict=True)]
        info["tflm_max_abs_diff"] = max(diffs, default=0.0)
    for entry, tol in zip(info["outputs"], tolerances, strict=True):
        entry["tolerance"] = tol
    return golden, plan, info


def build_handoff(
    tflite: Artifact,
    out_dir: Path,
    config: HandoffConfig,
    *,
    labels: list[str],
    preprocessing: dict[str, Any],
    calibration: Artifact | None,
    bench_summary: list[dict[str, Any]],
    versions: dict[str, str],
) -> HandoffResult:
    """Write `out_dir` (the `handoff/` folder) and `<out_dir>.zip`, verified; see the module docstring."""
    from edgekd import __version__

    zip_path = out_dir.with_name(out_dir.name + ".zip")
    check_destination(out_dir, zip_path if config.zip else None)  # before any work: never someone else's files
    problem = margin_problem(config.arena_margin)
    if problem:
        raise HandoffError(problem, hint="set [handoff] arena_margin (or --arena-margin) to e.g. 0.2")
    data, sha256 = _read_model(tflite)
    symbols = bundle_symbols(config.model_name)
    model = parse_tflite(data, source=tflite.path.name)
    _check_labels(labels, model, tflite.path.name)
    entries = resolver_entries(model.used_operator_codes())
    if _runs_tflm(config.platform):
        require_tflm_support(entries, model.tensor_types(), model=tflite.path.name)
    file_name = f"{symbols.base}.tflite"
    manifest = build_manifest(  # first: a preprocessing that does not fit the input fails before any work
        model,
        model_name=config.model_name,
        symbols=symbols,
        file_name=file_name,
        file_bytes=len(data),
        sha256=sha256,
        precision=tflite.precision or infer_precision(model),
        platform=config.platform,
        labels=labels,
        preprocessing=preprocessing,
        operators=[entry.op for entry in entries],
        declared_inputs=tflite.inputs,
        declared_outputs=tflite.outputs,
    )
    golden, plan, golden_info = _golden_and_arena(tflite.path, model, config, calibration)
    arena = manifest["arena"] = plan.to_dict()
    if _runs_tflm(config.platform):  # flash and RAM of a TFLM deployment; budgets fail before anything is written
        manifest["memory"] = memory_section(len(data), [entry.op for entry in entries], arena, manifest)
        check_budgets(manifest["memory"], max_arena_kb=config.max_arena_kb, max_flash_kb=config.max_flash_kb,
                      model=tflite.path.name)  # fmt: skip
    tolerances = [entry["tolerance"] for entry in golden_info["outputs"]]
    resolver_text = render_op_resolver_header(entries, symbols, source=file_name, edgekd_version=__version__)
    model_cc, model_h = render_model_data(data, symbols, source=file_name, sha256=sha256, edgekd_version=__version__)
    texts = {
        "model_data.cc": model_cc,
        "model_data.h": model_h,
        "model_manifest.h": render_manifest_header(manifest, symbols, edgekd_version=__version__),
        "op_resolver.h": resolver_text,
        "self_test.cc": render_self_test(manifest, symbols, edgekd_version=__version__),
        "golden.h": golden_mod.render_golden_header(
            golden, symbols, source=file_name, edgekd_version=__version__, tolerances=tolerances
        ),
    }
    vela_model = None
    if is_ethos_u(config.platform):  # the NPU build beside the plain int8 model; figures are Vela's estimates
        vela_model, vela_info = compile_with_vela(tflite.path, config.platform)
        manifest["ethos_u"] = {**vela_info, "file": f"{symbols.base}_vela.tflite", "sha256": sha256_bytes(vela_model)}
    staging = staging_dir(out_dir)
    try:
        (staging / file_name).write_bytes(data)
        if vela_model is not None:
            (staging / manifest["ethos_u"]["file"]).write_bytes(vela_model)
        for name, text in texts.items():
            (staging / name).write_text(text, encoding="utf-8")
        _write_json(staging / "model_manifest.json", manifest)
        np.savez(staging / "golden.npz", **golden.npz_arrays())

        golden_sizes = {key: int(array.nbytes) for key, array in golden.npz_arrays().items()}
        verification = verify_sources(
            staging,
            staging / file_name,
            symbols,
            golden_sizes,
            compiler=config.compiler,
            required=config.require_compiler,
        )
        verification["op_resolver"] = check_op_resolver_header(resolver_text, entries, symbols)
        verification["tflm_headers"] = check_against_tflm(staging, config.tflm_include, compiler=config.compiler)
        verification["golden_litert_rerun_max_abs_diff"] = golden_mod.max_difference(
            golden.outputs, golden_mod.run_litert(staging / file_name, golden.inputs)
        )

        calibration_info = (
            {"name": calibration.name, "file": calibration.path.name, "sha256": calibration.sha256}
            if calibration
            else None
        )
        all_versions = _collect_versions(model.schema_version, verification.get("compiler"), versions)
        files = {path.name: sha256_file(path) for path in sorted(staging.iterdir())}
        files["README.md"] = _write_text(
            staging / "README.md",
            render_readme(
                manifest=manifest,
                symbols=symbols,
                files=files,
                verification=verification,
                golden=golden_info,
                bench=bench_summary,
                versions=all_versions,
                calibration=calibration_info,
            ),
        )
        index = {
            "schema": BUNDLE_SCHEMA,
            "model_name": config.model_name,
            "platform": config.platform,
            "source": {
                "artifact": tflite.name,
                "file": tflite.path.name,
                "sha256": sha256,
                "precision": manifest["model"]["precision"],
            },
            "files": dict(sorted(files.items())),
            "calibration": calibration_info,
            "versions": all_versions,
            "bench": bench_summary,
            "arena": arena,
            "memory": manifest.get("memory"),
            "ethos_u": manifest.get("ethos_u"),
            "golden": golden_info,
            "verification": verification,
        }
        files["bundle.json"] = _write_json(staging / "bundle.json", index)
        files["SHA256SUMS"] = _write_text(
            staging / "SHA256SUMS", "".join(f"{digest}  {name}\n" for name, digest in sorted(files.items()))
        )
        publish(staging, out_dir, zip_path if config.zip else None)
    except OSError as exc:
        raise storage_error(exc, out_dir) from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return HandoffResult(
        path=out_dir,
        zip_path=zip_path if config.zip else None,
        manifest=manifest,
        arena=arena,
        files=files,
        verification=verification,
        golden=golden_info,
    )


def _runs_tflm(platform: str) -> bool:
    """micro and the Ethos-U platforms run on TensorFlow Lite Micro (the NPU through its ethos-u operator)."""
    return platform == "micro" or is_ethos_u(platform)


def _write_text(path: Path, text: str) -> str:
    data = text.encode("utf-8")
    path.write_bytes(data)
    return sha256_bytes(data)


def _write_json(path: Path, obj: Any) -> str:
    import json

    return _write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"cannot serialise {type(obj).__name__}")
