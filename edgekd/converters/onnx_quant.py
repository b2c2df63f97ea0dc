"""ONNX fp32 -> ONNX Runtime int8.

Static QDQ (per-channel weights by default) calibrated on the shared calibration set is the default.
Dynamic int8 quantizes weights only and computes activation scales at run time; ORT implements it well
only for MatMul/Gemm, and on convolutions it is many times slower than fp32, so it is refused there.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edgekd.artifacts import Artifact, TensorSpec, create_artifact
from edgekd.config.export import OrtQuantOptions
from edgekd.converter_protocol import missing_modules
from edgekd.errors import ConversionError
from edgekd.fileio import atomic_path

log = logging.getLogger(__name__)

# Op types that make dynamic quantization a bad idea: ORT's dynamic ConvInteger path is slow.
CONV_OPS = frozenset({"Conv", "ConvTranspose"})
DYNAMIC_OPS = ("MatMul", "Gemm")


class OrtQuantizer:
    """`onnx_fp32` -> `onnx_int8` with onnxruntime.quantization."""

    name = "ort_quant"
    Options = OrtQuantOptions

    def available(self) -> str | None:
        return missing_modules({"onnxruntime": "onnxruntime"}, "pip install onnxruntime")

    def convert(self, src: Artifact, options: OrtQuantOptions, out_dir: Path) -> list[Artifact]:
        """Quantize `src` into `<out_dir>/<stem>.int8.onnx`. Static mode calibrates on `options.calibration`."""
        from edgekd.verify.model_io import load_onnx, onnx_tensor_specs

        calibration = options.calibration
        model = load_onnx(src.path)
        op_types = {node.op_type for node in model.graph.node}
        out = Path(out_dir) / f"{src.path.stem.removesuffix('.fp32')}.int8.onnx"
        with tempfile.TemporaryDirectory(prefix="edgekd-ortq-") as work:
            prepared = _preprocess(src.path, Path(work) / "prepared.onnx")
            with atomic_path(out, suffix=".onnx") as tmp:
                if options.mode == "dynamic":
                    _refuse_dynamic_on_conv(op_types, src.path.name)
                    _quantize_dynamic(prepared, tmp, options)
                else:
                    inputs, _ = onnx_tensor_specs(model)
                    _quantize_static(prepared, tmp, options, _required(calibration), inputs)
        quantized = load_onnx(out)
        inputs, outputs = onnx_tensor_specs(quantized)
        artifact = create_artifact(
            out,
            name="onnx_int8",
            format="onnx",
            precision="int8",
            inputs=inputs,
            outputs=outputs,
            parent=src,
            producer=self.name,
            config={
                **options.model_dump(mode="json", exclude={"calibration"}),
                "calibration_sha256": calibration.sha256
                if calibration is not None and options.mode == "static"
                else None,
                "layout": inputs[0].layout if inputs else None,
                "input_shape": src.config.get("input_shape"),
                "num_classes": src.config.get("num_classes"),
                "metadata": src.config.get("metadata", {}),
            },
        )
        return [artifact]


def _required(calibration: Artifact | None) -> Artifact:
    if calibration is None:
        raise ConversionError(
            "ort_quant: static int8 needs a calibration set", hint='give one, or use [quantize] mode = "dynamic"'
        )
    return calibration


def _refuse_dynamic_on_conv(op_types: set[str], source: str) -> None:
    conv = sorted(op_types & CONV_OPS)
    if conv:
        raise ConversionError(
            f"ort_quant: dynamic int8 refused for {source}: it has {', '.join(conv)} layers",
            hint='ORT\'s dynamic int8 convolution is many times slower than fp32; use [quantize] mode = "static"',
        )


def _preprocess(src: Path, out: Path) -> Path:
    """ORT's recommended pre-pass (shape inference + graph optimisation); falls back to the input."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        with _quiet():
            quant_pre_process(str(src), str(out), skip_symbolic_shape=False)
        return out
    except Exception as exc:  # noqa: BLE001 - the pre-pass is an optimisation; quantizing the original is still right
        log.warning("ORT quantization pre-processing failed (%s); quantizing the graph as exported", exc)
        return src


class _SampleReader:
    """CalibrationDataReader over an array, one batch at a time, sized to the model's batch dimension."""

    def __init__(self, input_name: str, x: np.ndarray, batch: int) -> None:
        self._batches = iter([x[i : i + batch] for i in range(0, len(x), batch) if len(x[i : i + batch]) == batch])
        self._input_name = input_name

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {self._input_name: batch}

    def rewind(self) -> None:  # pragma: no cover - only some calibrators call it
        pass


def _quantize_static(
    prepared: Path, out: Path, options: OrtQuantOptions, calibration: Artifact, inputs: tuple[TensorSpec, ...]
) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from edgekd.calibration import load_calibration

    if len(inputs) != 1:
        raise ConversionError(f"ort_quant: static calibration supports one-input models, this one has {len(inputs)}")
    spec = inputs[0]
    x = load_calibration(calibration, spec.shape, layout=spec.layout or "NCHW")
    batch = spec.shape[0] if isinstance(spec.shape[0], int) and spec.shape[0] > 0 else min(len(x), 32)
    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    activation = QuantType.QInt8 if options.activation_type == "int8" else QuantType.QUInt8
    try:
        with _quiet():
            quantize_static(
                str(prepared),
                str(out),
                _SampleReader(spec.name, x, int(batch)),
                quant_format=QuantFormat.QDQ,
                per_channel=options.per_channel,
                reduce_range=options.reduce_range,
                activation_type=activation,
                weight_type=QuantType.QInt8,
                calibrate_method=methods[options.method],
                extra_options={"ActivationSymmetric": options.activation_type == "int8"},
            )
    except Exception as exc:  # noqa: BLE001 - ORT raises ValueError/RuntimeError/onnxruntime Fail from deep inside
        raise ConversionError(f"ort_quant: static quantization failed: {_first_line(exc)}") from None


def _quantize_dynamic(prepared: Path, out: Path, options: OrtQuantOptions) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    try:
        with _quiet():
            quantize_dynamic(
                str(prepared),
                str(out),
                op_types_to_quantize=list(DYNAMIC_OPS),
                per_channel=options.per_channel,
                reduce_range=options.reduce_range,
                weight_type=QuantType.QInt8,
            )
    except Exception as exc:  # noqa: BLE001 - as above: ORT raises many types; one typed error
        raise ConversionError(f"ort_quant: dynamic quantization failed: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """ORT's quantizer prints progress and warnings; keep them out of the user's console."""
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield
