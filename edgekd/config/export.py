from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgekd.config.base import StrictModel

DEFAULT_OPSET = 18  # highest opset every runtime in the pinned set (ORT, onnx2tf) handles fully


class ExportConfig(StrictModel):
    """torch -> ONNX."""

    # >= 18: torch's dynamo exporter writes 18+ natively; lowering its graphs to 13..17 fails (measured).
    opset: int = Field(DEFAULT_OPSET, ge=18, le=23)
    dynamic_batch: bool = False
    simplify: bool = True


class CalibrationConfig(StrictModel):
    """One calibration set, drawn from the training split, shared by every quantizer."""

    size: int | None = Field(None, ge=1)


class QuantizeConfig(StrictModel):
    """ONNX Runtime int8."""

    enabled: bool = True
    mode: Literal["static", "dynamic"] = "static"
    per_channel: bool = True
    reduce_range: bool = False
    method: Literal["minmax", "entropy", "percentile"] = "minmax"
    activation_type: Literal["int8", "uint8"] = "int8"


class TfliteConfig(StrictModel):
    """ONNX/torch -> TFLite."""

    enabled: bool = True
    converter: Literal["onnx2tf", "litert_torch"] = "onnx2tf"
    precisions: list[Literal["fp32", "fp16", "dynamic_range", "int8"]] = ["fp32", "int8"]
    int8_io: Literal["int8", "float"] = "int8"
    keep_nchw: bool = False
    also_litert_torch: bool = False  # run the second converter too and cross-check them
    # onnx2tf: ONNX ops to replace with builtin-op approximations instead of TensorFlow (Flex) kernels,
    # e.g. ["Erf"] for an exact GELU. Off by default: an approximation is a choice the user makes.
    pseudo_ops: list[Literal["Erf", "GeLU", "HardSwish", "Abs", "Neg", "Power", "PReLU", "LeakyReLU", "Asin", "Acos", "Atan", "GatherND"]] = []


class Threshold(StrictModel):
    max_abs: float | None = None
    agreement: float = Field(0.95, ge=0, le=1)
    max_accuracy_drop: float | None = Field(None, ge=0, le=1)  # fraction: 0.02 = 2 points


class VerifyConfig(StrictModel):
    fp32: Threshold = Threshold(max_abs=1e-4, agreement=0.999)
    fp16: Threshold = Threshold(agreement=0.99)
    dynamic_range: Threshold = Threshold(agreement=0.95, max_accuracy_drop=0.02)
    int8: Threshold = Threshold(agreement=0.95, max_accuracy_drop=0.02)
    fail_run: bool = True  # a failing artifact fails the run (after every artifact was checked)
