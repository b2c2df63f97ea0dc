"""Recipe sections of the conversion stages: `[export]`, `[calibration]`, `[quantize]`, `[tflite]`, `[verify]`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, InstanceOf, model_validator

from edgekd.artifacts import Artifact
from edgekd.config.base import StrictModel

DEFAULT_OPSET = 18  # highest opset every runtime in the pinned set (ORT, onnx2tf) handles fully


class ExportConfig(StrictModel):
    """torch -> ONNX (torch's dynamo exporter)."""

    # >= 18: torch's dynamo exporter writes 18+ natively; lowering its graphs to 13..17 fails (measured).
    opset: int = Field(
        DEFAULT_OPSET,
        ge=18,
        le=23,
        description="ONNX opset. 18 decomposes an exact GELU into Erf "
        "(a Flex op in TFLite); 20 keeps Gelu (builtin GELU in TFLite, not in TFLite Micro)",
    )
    dynamic_batch: bool = Field(False, description="export a symbolic batch dimension instead of batch 1")
    simplify: bool = Field(True, description="run onnxsim's graph simplification on the exported model")


class CalibrationConfig(StrictModel):
    """One calibration set, drawn from the training split, shared by every quantizer."""

    size: int | None = Field(
        None,
        ge=1,
        description="samples drawn (seeded) from the training split; unset: 200, "
        "or the whole split when it is smaller (noted in the run). A size larger than the "
        "split is refused before training",
    )


class _OrtQuantFields(StrictModel):
    """What ONNX Runtime's static/dynamic quantizer can be told: shared by the recipe's [quantize] section and
    the ort_quant converter's own options (which know nothing of the accuracy budget)."""

    enabled: bool = Field(True, description="run the quantize stage (ONNX Runtime int8)")
    mode: Literal["static", "dynamic"] = Field(
        "static",
        description="static: QDQ with the calibration set (for convolutions); dynamic: weights only, MatMul/Gemm",
    )
    per_channel: bool = Field(True, description="one weight scale per output channel (else per tensor)")
    reduce_range: bool = Field(False, description="7-bit weights, for CPUs without VNNI that saturate otherwise")
    method: Literal["minmax", "entropy", "percentile"] = Field(
        "minmax", description="static: how activation ranges are calibrated"
    )
    activation_type: Literal["int8", "uint8"] = Field("int8", description="static: type of the quantized activations")


class QuantizeConfig(_OrtQuantFields):
    """ONNX Runtime int8 of the exported ONNX model."""

    max_accuracy_drop: float | None = Field(
        None,
        ge=0,
        le=1,
        description="accuracy budget: largest absolute top-1 accuracy drop of int8 against the fp32 student, "
        "measured in each deployment runtime (ORT; LiteRT when [tflite] makes int8; TFLite Micro when the "
        "handoff runs it) on the validation split, e.g. 0.01. Set: the quantization ladder (calibration "
        "search, sensitivity, mixed precision, QAT) runs and the fastest model within it is kept per runtime; "
        "a budget no rung holds fails the run. Unset: one static int8 model, gated by [verify] only",
    )
    qat: bool | Literal["always"] = Field(
        True,
        description="with max_accuracy_drop: true: when no post-training rung holds the budget, fine-tune the "
        "fake-quantized student against the run's own teacher (quantization-aware distillation; needs a "
        'torch teacher); "always": fine-tune also when an earlier rung holds it, to see what QAT buys (the '
        "fastest model within the budget is still the one kept; `edgekd qat RECIPE` runs this); false: never",
    )
    raise_to: Literal["float", "int16"] = Field(
        "float",
        description="with max_accuracy_drop: what the most sensitive ops are raised to until the budget holds: "
        "float (fast on CPUs) or int16 activations (for NPUs)",
    )

    @model_validator(mode="after")
    def _budget_options_take_effect(self) -> QuantizeConfig:
        # the ladder's options without a budget, or a budget the ladder cannot apply, would be accepted and ignored
        if self.max_accuracy_drop is None:
            given = sorted({"qat", "raise_to"} & self.model_fields_set)
            if given:
                raise ValueError(
                    f"{' and '.join(given)} {'applies' if len(given) == 1 else 'apply'} only with an accuracy "
                    "budget: set max_accuracy_drop (e.g. 0.01) or remove "
                    f"{'it' if len(given) == 1 else 'them'}"
                )
            return self
        if self.mode == "dynamic":
            raise ValueError(
                'max_accuracy_drop runs the static int8 ladder: mode = "dynamic" cannot hold a budget; '
                'use mode = "static" or remove max_accuracy_drop'
            )
        if not self.enabled:
            raise ValueError("max_accuracy_drop needs the quantize stage: set enabled = true or remove the budget")
        ladder_picks = sorted({"method"} & self.model_fields_set)
        if ladder_picks:
            raise ValueError(
                "method is chosen by the ladder (rung 1 measures every calibration method, op scope and bias "
                "correction) when "
                "max_accuracy_drop is set: remove method"
            )
        if not self.per_channel or self.reduce_range or self.activation_type != "int8":
            raise ValueError(
                "the accuracy ladder quantizes with per-channel int8 weights and int8 activations: with "
                "max_accuracy_drop, leave per_channel, reduce_range and activation_type at their defaults"
            )
        return self


TflitePrecision = Literal["fp32", "fp16", "dynamic_range", "int8"]
PseudoOp = Literal[
    "Erf", "GeLU", "HardSwish", "Abs", "Neg", "Power", "PReLU", "LeakyReLU", "Asin", "Acos", "Atan", "GatherND"
]


class _TflitePrecisions(StrictModel):
    precisions: list[TflitePrecision] = Field(
        ["fp32", "int8"], description="one artifact per precision, named tflite_<precision>"
    )


class _Onnx2TfFields(StrictModel):
    """What onnx2tf can be told: shared by the recipe's [tflite] section and onnx2tf's own options."""

    int8_io: Literal["int8", "float"] = Field(
        "int8",
        description="int8 model's input/output tensors: int8 (quantize on the device) or float (the model quantizes)",
    )
    keep_nchw: bool = Field(False, description="keep the NCHW input layout (onnx2tf makes NHWC inputs otherwise)")
    per_channel: bool = Field(
        True,
        description="onnx2tf int8 / dynamic-range weights: one scale per output "
        "channel (true) or one per tensor (false, for runtimes or NPUs that need it)",
    )
    # onnx2tf: ONNX ops to replace with builtin-op approximations instead of TensorFlow (Flex) kernels,
    # e.g. ["Erf"] for an exact GELU. Off by default: an approximation is a choice the user makes.
    pseudo_ops: list[PseudoOp] = Field(
        [],
        description="onnx2tf: ONNX ops replaced by builtin-op approximations "
        'instead of Flex kernels, e.g. ["Erf"] for an exact GELU at opset 18',
    )


class TfliteConfig(_Onnx2TfFields, _TflitePrecisions):
    """ONNX/torch -> TFLite."""

    enabled: bool = Field(True, description="run the tflite stage")
    converter: Literal["onnx2tf", "litert_torch"] = Field(
        "onnx2tf",
        description="onnx2tf converts the ONNX file (every precision); litert_torch converts the torch "
        "student (fp32 and int8 only; needs litert-torch)",
    )
    also_litert_torch: bool = Field(
        False,
        description="with onnx2tf: run litert-torch too (artifacts "
        "litert_torch_<precision>) and cross-check the two converters",
    )

    @model_validator(mode="after")
    def _onnx2tf_options_need_onnx2tf(self) -> TfliteConfig:
        # an option only onnx2tf reads, given for litert_torch, would be accepted and ignored: refused instead
        given = sorted(set(_Onnx2TfFields.model_fields) & self.model_fields_set)
        if self.converter != "onnx2tf" and given:
            raise ValueError(
                f"{', '.join(given)} {'is an onnx2tf option' if len(given) == 1 else 'are onnx2tf options'}: "
                f'converter = "{self.converter}" does not read {"it" if len(given) == 1 else "them"}; remove '
                f'{"it" if len(given) == 1 else "them"} or use converter = "onnx2tf"'
            )
        # litert-torch's PT2E int8 has no per-tensor switch here: refused, never silently per-channel
        if not self.per_channel and self.also_litert_torch:
            raise ValueError(
                'per_channel = false is an onnx2tf option: use converter = "onnx2tf" without also_litert_torch'
            )
        return self

    def converter_runs(self) -> list[tuple[str, dict[str, Any]]]:
        """(converter name, run options beyond this section) for each converter this section runs, in order.
        The recipe's vocabulary (converter, also_litert_torch) is mapped to registry names here, once."""
        runs: list[tuple[str, dict[str, Any]]] = [(self.converter, {"name_prefix": "tflite"})]
        if self.also_litert_torch and self.converter == "onnx2tf":
            # its files are student.litert_torch.<precision>.tflite; precisions it cannot make (fp16, dynamic
            # range) are skipped rather than failing the first converter's work
            runs.append(("litert_torch", {"name_prefix": "litert_torch", "skip_unsupported": True}))
        return runs


# The converters' own options models (edgekd.converter_protocol.Converter.Options): a recipe section plus
# what the run supplies (the calibration set, metadata, artifact names). Not recipe sections themselves.


class TorchOnnxOptions(ExportConfig):
    """torch_onnx: the [export] section plus the metadata stamped into the file."""

    metadata: dict[str, Any] = Field(
        {},
        description="metadata_props written into the ONNX file (recipe hash, "
        "labels, preprocessing); non-strings are stored as JSON",
    )


class OrtQuantOptions(_OrtQuantFields):
    """ort_quant: the quantizer's part of the [quantize] section plus the calibration set static mode needs."""

    calibration: InstanceOf[Artifact] | None = Field(
        None, description="the calibration set (an .npz artifact); required in static mode"
    )


class TfliteRunOptions(_TflitePrecisions):
    """What every TFLite converter takes: precisions, the calibration set (int8) and how artifacts are named."""

    calibration: InstanceOf[Artifact] | None = Field(
        None, description="the calibration set (an .npz artifact); required for int8"
    )
    name_prefix: str = Field(
        "tflite",
        description="artifacts are named <name_prefix>_<precision> (a second converter beside the first uses its own)",
    )
    skip_unsupported: bool = Field(
        False,
        description="skip precisions this converter cannot write instead of "
        "refusing them (when it runs beside another converter)",
    )


class Onnx2TfOptions(_Onnx2TfFields, TfliteRunOptions):
    """onnx2tf: every precision, layout, per-tensor weights and pseudo-op approximations."""


class LiteRtTorchOptions(TfliteRunOptions):
    """litert_torch: fp32 and PT2E static int8 (per-channel), NCHW inputs."""


class Threshold(StrictModel):
    """The parity gate of one precision: every artifact of it is compared with the torch student."""

    max_abs: float | None = Field(
        None, description="largest allowed absolute difference of the outputs; unset: not checked"
    )
    agreement: float = Field(
        0.95,
        ge=0,
        le=1,
        description="smallest allowed top-1 agreement with the torch student (fraction of test samples)",
    )
    max_accuracy_drop: float | None = Field(
        None,
        ge=0,
        le=1,
        description="largest allowed test-accuracy loss "
        "against the torch student, as a fraction (0.02 = 2 points); unset: "
        "not checked",
    )


class VerifyConfig(StrictModel):
    """Parity of every artifact against the torch student, on the test split."""

    fp32: Threshold = Field(Threshold(max_abs=1e-4, agreement=0.999), description="gate of fp32 artifacts")
    fp16: Threshold = Field(Threshold(agreement=0.99), description="gate of fp16 artifacts")
    dynamic_range: Threshold = Field(
        Threshold(agreement=0.95, max_accuracy_drop=0.02), description="gate of dynamic-range artifacts"
    )
    int8: Threshold = Field(Threshold(agreement=0.95, max_accuracy_drop=0.02), description="gate of int8 artifacts")
    fail_run: bool = Field(
        True,
        description="a failing artifact fails the run (after every artifact was checked "
        "and the report written); false: recorded only",
    )
