"""torch -> ONNX fp32 with the dynamo exporter, as one self-contained file.

The exported graph is checked (`onnx.checker` full check + strict shape inference), optionally simplified
with onnxsim, and stamped with metadata_props (edgekd version, recipe hash, labels, preprocessing) so a
file found on its own still says where it came from.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekd.artifacts import Artifact, create_artifact
from edgekd.config.export import TorchOnnxOptions
from edgekd.converter_protocol import missing_modules
from edgekd.errors import ConversionError, ModelError
from edgekd.fileio import atomic_path

if TYPE_CHECKING:
    import onnx

log = logging.getLogger(__name__)

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
NATIVE_MIN_OPSET = 18  # lowest opset torch's dynamo exporter writes itself


class TorchOnnxConverter:
    """torch state-dict artifact -> `onnx_fp32`."""

    name = "torch_onnx"
    Options = TorchOnnxOptions

    def available(self) -> str | None:
        return missing_modules(
            {"torch": "torch", "onnx": "onnx", "onnxscript": "onnxscript"},
            "pip install 'edgekd' (torch, onnx and onnxscript are core dependencies)",
        )

    def convert(self, src: Artifact, options: TorchOnnxOptions, out_dir: Path) -> list[Artifact]:
        """Export `src` (a torch artifact) to `<out_dir>/<stem>.onnx` and describe it."""
        from edgekd.distill.models import load_torch_model
        from edgekd.verify.model_io import onnx_tensor_specs

        if "input_shape" not in src.config:
            raise ModelError(f"{src.path}: sidecar lacks 'input_shape'; cannot build an example input")
        module = load_torch_model(src)
        input_shape = tuple(int(d) for d in src.config["input_shape"])
        proto = export_module(module, input_shape, opset=options.opset, dynamic_batch=options.dynamic_batch)
        check_onnx(proto, src.path.name)
        simplified = False
        if options.simplify:
            proto, simplified = simplify(proto)
        metadata = options.metadata
        set_metadata(proto, metadata)

        out = Path(out_dir) / f"{src.path.stem}.onnx"
        _save(proto, out)
        inputs, outputs = onnx_tensor_specs(proto)
        artifact = create_artifact(
            out,
            name="onnx_fp32",
            format="onnx",
            precision="fp32",
            inputs=inputs,
            outputs=outputs,
            parent=src,
            producer=self.name,
            config={
                "opset": options.opset,
                "dynamic_batch": options.dynamic_batch,
                "simplified": simplified,
                "layout": inputs[0].layout if inputs else None,
                "input_shape": list(input_shape),
                "num_classes": src.config.get("num_classes"),
                "metadata": {k: str(v) for k, v in metadata.items()},
            },
        )
        return [artifact]


def export_module(module: Any, input_shape: tuple[int, ...], *, opset: int, dynamic_batch: bool) -> onnx.ModelProto:
    """Run the dynamo exporter in memory. A static export has batch 1, the size devices run."""
    import torch

    if opset < NATIVE_MIN_OPSET:
        # Measured with torch 2.13 / onnx 1.23: down-converting the exporter's opset-18 graph fails or yields an
        # invalid graph (ReduceMean noop_with_empty_axes) for every model family edgekd builds.
        raise ConversionError(
            f"torch_onnx: opset {opset} is below {NATIVE_MIN_OPSET}, the lowest the dynamo exporter writes correctly",
            hint=f"set [export] opset = {NATIVE_MIN_OPSET} or higher (runtimes in the pinned set read up to 23)",
        )
    generator = torch.Generator().manual_seed(0)
    batch = 2 if dynamic_batch else 1  # a dynamic dim needs an example size other than 0/1 to stay symbolic
    example = torch.randn((batch, *input_shape), generator=generator)
    dynamic_shapes = ({0: torch.export.Dim("batch", min=1, max=65536)},) if dynamic_batch else None
    quiet = io.StringIO()
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # "torchvision is not installed" and other notes, per export
    try:
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            program = torch.onnx.export(
                module.eval(),
                (example,),
                None,
                dynamo=True,
                external_data=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes=dynamic_shapes,
                verbose=False,
            )
    except Exception as exc:  # noqa: BLE001 - torch.export raises many types (Unsupported, UserError, ...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConversionError(
            f"torch_onnx: the dynamo exporter failed: {first}",
            hint="the model uses something torch.export cannot trace; see the exporter's message above",
        ) from None
    finally:
        exporter_log.setLevel(level)
    if program is None:  # only when an output path is given; kept in memory here
        raise ConversionError("torch_onnx: the dynamo exporter returned no program")
    return program.model_proto


def check_onnx(proto: onnx.ModelProto, source: str) -> None:
    """onnx.checker full check with strict shape inference: a broken graph is caught at export time."""
    import onnx

    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ConversionError(
            f"torch_onnx: the exported graph of {source} does not validate: {str(exc).splitlines()[0]}"
        ) from None


def simplify(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
    """onnxsim, kept only if it verifies; a simplifier failure is logged, never fatal."""
    try:
        import onnxsim
    except ImportError:
        log.warning("onnxsim is not installed; keeping the unsimplified graph (pip install onnxsim)")
        return proto, False
    try:
        simplified, ok = onnxsim.simplify(proto)
    except Exception as exc:  # noqa: BLE001 - onnxsim raises plain RuntimeError/ValueError from C++
        log.warning("onnxsim failed (%s); keeping the unsimplified graph", exc)
        return proto, False
    if not ok:
        log.warning("onnxsim could not verify its result; keeping the unsimplified graph")
        return proto, False
    return simplified, True


def set_metadata(proto: onnx.ModelProto, metadata: dict[str, Any]) -> None:
    """Write metadata_props; non-string values (labels, preprocessing) are stored as JSON."""
    from edgekd import __version__

    values = {"edgekd_version": __version__, **metadata}
    existing = {prop.key: prop for prop in proto.metadata_props}
    for key, value in values.items():
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        prop = existing.get(key) or proto.metadata_props.add()
        prop.key, prop.value = key, text
    proto.producer_name = "edgekd"
    proto.producer_version = __version__


def _save(proto: onnx.ModelProto, out: Path) -> None:
    import onnx

    with atomic_path(out, suffix=".onnx") as tmp:
        onnx.save_model(proto, str(tmp), save_as_external_data=False)
