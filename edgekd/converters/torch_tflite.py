"""torch -> TFLite with litert-torch (the second TFLite converter): fp32 and PT2E static int8.

It converts straight from the torch module, so it shares no code path with onnx2tf: when both ran, the
cross-converter check compares their files. Inputs stay NCHW (the torch layout). litert-torch is an
optional, large install (jax, transformers); `available()` says how to get it.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgekd.artifacts import Artifact, TensorSpec, write_artifact
from edgekd.config.export import LiteRtTorchOptions
from edgekd.converter_protocol import missing_modules
from edgekd.errors import ConversionError, ModelError

log = logging.getLogger(__name__)

SUPPORTED_PRECISIONS = ("fp32", "int8")
INSTALL = "requirements-litert.txt"  # litert-torch 0.10 downgrades pydantic (via xdsl): it cannot share the main lock
SMOKE_SAMPLES = 16


class LiteRtTorchConverter:
    """torch artifact -> `<name_prefix>_fp32` / `<name_prefix>_int8` TFLite files."""

    name = "litert_torch"
    Options = LiteRtTorchOptions

    def available(self) -> str | None:
        return missing_modules(
            {"litert_torch": "litert-torch", "torchao": "torchao (a litert-torch dependency)"},
            f"pip install -r {INSTALL} into a venv of its own (about 1 GB: jax, transformers; torch stays 2.13)",
        )

    def convert(self, src: Artifact, options: LiteRtTorchOptions, out_dir: Path) -> list[Artifact]:
        """One artifact per requested precision. fp16 and dynamic-range are not offered by this converter:
        they raise a ConversionError unless `options.skip_unsupported` (used when it runs beside onnx2tf)."""
        from edgekd.calibration import load_calibration
        from edgekd.distill.models import load_torch_model

        calibration, name_prefix = options.calibration, options.name_prefix
        if calibration is None:
            raise ConversionError(f"{self.name} needs a calibration set (its first sample is the example input)")
        unsupported = [p for p in options.precisions if p not in SUPPORTED_PRECISIONS]
        if unsupported and not options.skip_unsupported:
            raise ConversionError(
                f"{self.name} writes only {', '.join(SUPPORTED_PRECISIONS)}; asked for {', '.join(unsupported)}",
                hint='use converter = "onnx2tf" for fp16 / dynamic_range, or drop them from [tflite] precisions',
            )
        module = load_torch_model(src)
        input_shape = tuple(int(d) for d in src.config["input_shape"])
        samples = load_calibration(calibration, (1, *input_shape), layout="NCHW")
        stem = src.path.stem
        written = []
        for precision in [p for p in options.precisions if p in SUPPORTED_PRECISIONS]:
            blob = _convert_fp32(module, samples) if precision == "fp32" else _convert_pt2e_int8(module, samples)
            written.append((precision, blob))
        results = []
        for precision, blob in written:
            final = (
                Path(out_dir) / f"{stem}.{name_prefix}.{precision}.tflite"
                if name_prefix != "tflite"
                else Path(out_dir) / f"{stem}.{precision}.tflite"
            )
            inputs, outputs = _check_blob(blob, precision, samples, final.parent)
            results.append(
                write_artifact(
                    final,
                    blob,
                    name=f"{name_prefix}_{precision}",
                    format="tflite",
                    precision=precision,
                    inputs=inputs,
                    outputs=outputs,
                    parent=src,
                    producer=self.name,
                    config={
                        "layout": "NCHW",
                        "quantizer": "pt2e static, per-channel, HistogramObserver" if precision == "int8" else None,
                        "calibration_sha256": calibration.sha256 if precision == "int8" else None,
                        "input_shape": list(input_shape),
                        "num_classes": src.config.get("num_classes"),
                    },
                )
            )
        return results


def _example(samples: Any) -> tuple[Any, ...]:
    import torch

    return (torch.from_numpy(samples[:1].copy()),)


def _convert_fp32(module: Any, samples: Any) -> bytes:
    import litert_torch

    with _converter_errors("fp32"):
        return _serialize(litert_torch.convert(module.eval(), _example(samples)))


def _convert_pt2e_int8(module: Any, samples: Any) -> bytes:
    """PT2E static int8: export, insert observers, run the calibration set through, convert, lower."""
    import litert_torch
    import torch
    from litert_torch.quantize import pt2e_quantizer
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e import quantize_pt2e

    example = _example(samples)
    with _converter_errors("int8"):
        exported = torch.export.export(module.eval(), example).module()
        quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
            pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True)
        )
        prepared = quantize_pt2e.prepare_pt2e(exported, quantizer)
        with torch.no_grad():
            for i in range(len(samples)):  # calibration: the observers see every sample
                prepared(torch.from_numpy(samples[i : i + 1].copy()))
        quantized = quantize_pt2e.convert_pt2e(prepared, fold_quantize=False)
        return _serialize(litert_torch.convert(quantized, example, quant_config=QuantConfig(pt2e_quantizer=quantizer)))


def _serialize(edge_model: Any) -> bytes:
    for attribute in ("tflite_model", "_tflite_model"):
        value = getattr(edge_model, attribute, None)
        value = value() if callable(value) else value
        if isinstance(value, (bytes, bytearray)):
            return bytes(value)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="edgekd-litert-") as work:
        path = Path(work) / "model.tflite"
        edge_model.export(str(path))
        return path.read_bytes()


def _check_blob(
    blob: bytes, precision: str, samples: Any, where: Path
) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Describe the converted bytes and run a few calibration samples through LiteRT before keeping them."""
    import tempfile

    from edgekd.verify.backends import predict
    from edgekd.verify.model_io import tflite_tensor_specs

    where.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(suffix=".tflite", dir=where, prefix=".check-") as handle:
        handle.write(blob)
        handle.flush()
        path = Path(handle.name)
        try:
            inputs, outputs = tflite_tensor_specs(path, image_layout="NCHW")
            probe = Artifact(path=path, name=precision, format="tflite", sha256="", precision=precision, inputs=inputs)
            predict(probe, samples[:SMOKE_SAMPLES])
        except ModelError as exc:
            raise ConversionError(f"litert_torch wrote a {precision} model LiteRT cannot run: {exc.message}") from None
    return inputs, outputs


@contextlib.contextmanager
def _converter_errors(precision: str) -> Iterator[None]:
    """litert-torch/torch.export failures -> ConversionError naming the converter and, when given, the op."""
    import re

    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield
    except ConversionError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch.export, MLIR lowering and the TFLite converter raise many types
        text = " ".join(str(exc).split())
        op = re.search(r"(aten\.\w+(?:\.\w+)?|tfl\.\w+|stablehlo\.\w+)", text)
        where = f" at op {op.group(1)}" if op else ""
        raise ConversionError(
            f"litert_torch could not convert the {precision} model{where}: {text[:300] or type(exc).__name__}",
            hint='use [tflite] converter = "onnx2tf", or change the op the message names',
        ) from None
