"""ONNX fp32 -> TFLite (fp32, fp16, dynamic-range, full int8) with onnx2tf, fully offline.

onnx2tf is run in a child process with its own working directory:
- it prints a great deal and calls sys.exit() on errors, so its output is captured and its exit can't
  take edgekd down; the captured output feeds the ConversionError (op type and name when it says so);
- it downloads a sample image array from the internet for image-like inputs, even when calibration data
  is given; the child replaces that download with a local, seeded array before converting;
- full-int8 calibration uses the shared calibration set (same samples as ORT), already normalised, so
  onnx2tf's mean/std are 0/1;
- onnx2tf simplifies with the `onnxsim` *command*, found on PATH: with an unactivated venv it was missing
  and the step silently skipped, so the result depended on the shell. The child's PATH starts with this
  interpreter's bin folder, and graphs edgekd already simplified at export skip it (same files, ~9 s saved).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, get_args

from edgekd.artifacts import Artifact, TensorSpec, write_artifact
from edgekd.config.export import Onnx2TfOptions, PseudoOp
from edgekd.converter_protocol import missing_modules
from edgekd.errors import ConversionError, ModelError
from edgekd.onnx_rewrite import hardsigmoid_as_relu6

TIMEOUT_S = 1800
SMOKE_SAMPLES = 16  # calibration samples each converted file is run on before it is kept

# Our precision name -> the file onnx2tf writes (`<stem>_<suffix>.tflite`) and the artifact name.
_OUTPUT_FILES = {
    "fp32": "float32",
    "fp16": "float16",
    "dynamic_range": "dynamic_range_quant",
}
_INT8_FILES = {"int8": "full_integer_quant", "float": "integer_quant"}  # by int8_io
PSEUDO_OPS = frozenset(get_args(PseudoOp))  # ops onnx2tf can approximate


class Onnx2TfConverter:
    """`onnx_fp32` -> `tflite_<precision>` for each requested precision."""

    name = "onnx2tf"
    Options = Onnx2TfOptions

    def available(self) -> str | None:
        return missing_modules(
            {"onnx2tf": "onnx2tf", "tensorflow": "tensorflow-cpu", "ai_edge_litert": "ai-edge-litert",
             "onnx_graphsurgeon": "onnx-graphsurgeon", "tf_keras": "tf-keras"},
            "pip install 'edgekd[tflite]' (onnx2tf and tf-keras with --no-deps)",
        )  # fmt: skip

    def convert(self, src: Artifact, options: Onnx2TfOptions, out_dir: Path) -> list[Artifact]:
        """Convert `src` once and return one artifact per precision in `options.precisions`, named
        `<name_prefix>_<precision>`. `per_channel=False` gives int8/dynamic-range weights one scale per tensor."""
        import numpy as np

        from edgekd.calibration import load_calibration
        from edgekd.verify.model_io import load_onnx, onnx_tensor_specs

        inputs, _ = onnx_tensor_specs(load_onnx(src.path))
        if len(inputs) != 1:
            raise ConversionError(f"{self.name}: edgekd converts one-input models, {src.path.name} has {len(inputs)}")
        spec = inputs[0]
        image = len(spec.shape) == 4
        tf_layout = "NCHW" if (options.keep_nchw or not image) else "NHWC"
        want_int8 = "int8" in options.precisions
        calibration = options.calibration
        if want_int8 and calibration is None:
            raise ConversionError(f"{self.name}: int8 needs a calibration set", hint="give one, or drop int8")
        per_channel, name_prefix = options.per_channel, options.name_prefix

        stem = src.path.stem.removesuffix(".fp32")
        with tempfile.TemporaryDirectory(prefix="edgekd-onnx2tf-") as work_dir:
            work = Path(work_dir)
            # onnx2tf rewrites its input file in place (onnxsim): give it a copy, never the artifact; HardSigmoid
            # is written as ReLU6 in the copy (onnx_rewrite), so the file runs in TFLite Micro too
            onnx_copy = work / src.path.name
            rewritten = hardsigmoid_as_relu6(src.path, onnx_copy)
            job: dict[str, Any] = {
                "onnx": str(onnx_copy),
                "out": str(work / "out"),
                "input_name": spec.name,
                "keep_nchw": bool(options.keep_nchw and image),
                "dynamic_range": "dynamic_range" in options.precisions,
                "int8": want_int8,
                "int8_io": options.int8_io,
                "quant_type": "per-channel" if per_channel else "per-tensor",
                "pseudo_ops": list(options.pseudo_ops),
                "onnxsim": not src.config.get("simplified", False),
                "calibration": None,
            }
            samples = None
            if calibration is not None and want_int8:
                samples = load_calibration(calibration, spec.shape, layout=spec.layout or "NCHW")
                x = (
                    samples.transpose(0, 2, 3, 1) if image and tf_layout == "NHWC" else samples
                )  # (N,C,H,W) -> (N,H,W,C)
                np.save(work / "calibration.npy", x)
                job["calibration"] = str(work / "calibration.npy")
            output = _run_child(job, work)

            # Check every produced file before keeping any, so a failing precision leaves nothing behind.
            checked = []
            for precision in options.precisions:
                suffix = _INT8_FILES[options.int8_io] if precision == "int8" else _OUTPUT_FILES[precision]
                produced = work / "out" / f"{src.path.stem}_{suffix}.tflite"
                if not produced.exists():
                    raise missing_output_error(output, precision, produced.name)
                checked.append((precision, produced, *_describe_or_refuse(produced, precision, tf_layout, samples)))
                _check_precision(produced, precision, src.path.name)
            results: list[Artifact] = []
            for precision, produced, tfl_inputs, tfl_outputs in checked:
                results.append(
                    write_artifact(
                        Path(out_dir) / f"{stem}.{precision}.tflite",
                        produced.read_bytes(),
                        name=f"{name_prefix}_{precision}",
                        format="tflite",
                        precision=precision,
                        inputs=tfl_inputs,
                        outputs=tfl_outputs,
                        parent=src,
                        producer=self.name,
                        config={
                            "keep_nchw": options.keep_nchw,
                            "int8_io": options.int8_io if precision == "int8" else None,
                            "per_channel": per_channel if precision in ("int8", "dynamic_range") else None,
                            "layout": tf_layout,
                            "calibration_sha256": calibration.sha256 if calibration and precision == "int8" else None,
                            "input_shape": src.config.get("input_shape"),
                            "num_classes": src.config.get("num_classes"),
                            "metadata": src.config.get("metadata", {}),
                            "hardsigmoid_as_relu6": rewritten,
                        },
                    )
                )
        return results


def _describe_or_refuse(
    produced: Path, precision: str, layout: str, samples: Any
) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """TensorSpecs of a file onnx2tf wrote, checked by loading (and, given samples, running) it in LiteRT
    before it is kept.

    onnx2tf falls back to TensorFlow ("Flex") kernels for ops TFLite lacks (Erf from an exact GELU, for
    one); LiteRT's builtin interpreter and every microcontroller runtime refuse such files. Some int8
    kernels (DIV) fail at run time on real data; a few calibration samples catch that here."""
    from edgekd.verify.backends import predict
    from edgekd.verify.model_io import tflite_tensor_specs

    try:
        inputs, outputs = tflite_tensor_specs(produced, image_layout=layout)
        if samples is not None:
            probe = Artifact(
                path=produced, name=precision, format="tflite", sha256="", precision=precision, inputs=inputs
            )
            predict(probe, samples[:SMOKE_SAMPLES])
        return inputs, outputs
    except ModelError as exc:
        flex = sorted(set(re.findall(r"Flex(\w+)", exc.message)))
        if flex:
            ops = ", ".join(flex)
            raise ConversionError(
                f"onnx2tf: the {precision} model needs TensorFlow op(s) {ops} (Flex kernels), which LiteRT's builtin "
                f"ops do not have",
                hint=flex_hint(flex),
            ) from None
        raise ConversionError(
            f"onnx2tf wrote a {precision} model LiteRT cannot run: {exc.message}",
            hint='try another precision, [tflite] int8_io = "float", or converter = "litert_torch"',
        ) from None


def _check_precision(produced: Path, precision: str, source: str) -> None:
    """Refuse a file whose tensors are not the precision it would be labelled with. TensorFlow's dynamic-range
    quantizer skips weight tensors under 1024 elements, so a small model's "dynamic_range" file is fp32."""
    from edgekd.verify.model_io import tflite_precision

    actual = tflite_precision(produced)
    if actual == precision:
        return
    if precision == "dynamic_range" and actual == "fp32":
        raise ConversionError(
            f"onnx2tf: the dynamic_range model of {source} has no int8 tensor: TensorFlow quantizes only weight "
            "tensors of 1024 or more elements, and every weight here is smaller, so the file is the fp32 model",
            hint="drop dynamic_range from [tflite] precisions (its file would be the fp32 model), or use int8 (full integer)",
        )
    raise ConversionError(
        f"onnx2tf: the {precision} model of {source} holds {actual} tensors",
        hint="report this: onnx2tf wrote another precision than asked for",
    )


def flex_hint(ops: list[str]) -> str:
    """How to get rid of TensorFlow (Flex) ops, most specific fix first (Erf: the exact GELU of opset < 20)."""
    fixes = []
    if "Erf" in ops:
        fixes.append(
            "Erf comes from an exact GELU exported below opset 20: re-export at opset 20 (`edgekd export "
            "--opset 20`, or [export] opset = 20), where Gelu stays one op and becomes builtin GELU"
        )
    approximable = [op for op in ops if op in PSEUDO_OPS]
    if approximable:
        fixes.append(
            f"set [tflite] pseudo_ops = {approximable!r} to replace them with builtin approximations "
            "(checked by the parity gate)"
        )
    fixes.append("change the model (e.g. GELU(approximate='tanh')), or use converter = \"litert_torch\"")
    return "; or ".join(fixes)


def missing_output_error(output: str, precision: str, file_name: str) -> ConversionError:
    """Why onnx2tf exited 0 without writing `precision`: it prints the converter's failure as a warning."""
    text = _ANSI.sub("", output)
    failures = [line.strip() for line in text.splitlines() if line.startswith("RuntimeError:")]
    flex = sorted(set(re.findall(r"\(Flex(\w+)\)", " ".join(failures))))
    if flex:
        why = "int8 calibration runs the model in LiteRT, which" if precision == "int8" else "LiteRT"
        return ConversionError(
            f"onnx2tf: no {precision} model was written: {why} has no builtin kernel for TensorFlow op(s) "
            f"{', '.join(flex)} (Flex)",
            hint=flex_hint(flex),
        )
    cause = f": {failures[0].removeprefix('RuntimeError:').strip()[:300]}" if failures else ""
    return ConversionError(
        f"onnx2tf: no {precision} model was written ({file_name} missing){cause}",
        hint='try another precision, or [tflite] converter = "litert_torch"',
    )


def _run_child(job: dict[str, Any], work: Path) -> str:
    """Run onnx2tf in a child process with cwd = `work`; raise ConversionError with its own words.
    Returns its output (stdout + stderr) for explaining files it did not write."""
    (work / "job.json").write_text(json.dumps(job))
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PYTHONWARNINGS": "ignore",
        "CUDA_VISIBLE_DEVICES": "",
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }  # onnxsim of this env
    try:
        done = subprocess.run(
            [sys.executable, "-m", "edgekd.converters.onnx_tflite", str(work / "job.json")],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ConversionError(
            f"onnx2tf did not finish within {TIMEOUT_S} s", hint="the model may be too large for this machine"
        ) from None
    if done.returncode != 0:
        raise ConversionError(
            describe_failure(done.stdout + "\n" + done.stderr),
            hint='onnx2tf could not convert this graph; simplify the model or try [tflite] converter = "litert_torch"',
        )
    return done.stdout + "\n" + done.stderr


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def describe_failure(output: str) -> str:
    """One message from onnx2tf's output: the failing ONNX op type/name when it printed them, and the error."""
    text = _ANSI.sub("", output)
    op_type = re.findall(r"onnx_op_type:\s*(\S+)", text)
    op_name = re.findall(r"onnx_op_name:\s*(\S+)", text)
    errors = [
        line.strip() for line in text.splitlines() if re.search(r"(ERROR|Error|error:)", line) and "INFO" not in line
    ]
    cause = errors[-1] if errors else (text.strip().splitlines() or ["no output"])[-1]
    where = f" at op {op_type[-1]} ({op_name[-1] if op_name else '?'})" if op_type else ""
    return f"onnx2tf failed{where}: {cause[:400]}"


def _child(job_path: str) -> int:
    """Child-process entry: convert as the job says. Never touches the network."""
    import numpy as np

    job = json.loads(Path(job_path).read_text())
    import onnx2tf
    import onnx2tf.onnx2tf as onnx2tf_main
    import onnx2tf.utils.common_functions as common

    def local_sample_images() -> np.ndarray:
        # Replaces onnx2tf's internet download of 20 sample RGB images (used for its own output checks).
        return np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32)

    common.download_test_image_data = local_sample_images
    onnx2tf_main.download_test_image_data = local_sample_images

    kwargs: dict[str, Any] = {
        "input_onnx_file_path": job["onnx"],
        "output_folder_path": job["out"],
        "copy_onnx_input_output_names_to_tflite": True,
        "output_dynamic_range_quantized_tflite": job["dynamic_range"],
        "output_integer_quantized_tflite": job["int8"],
        "quant_type": job.get("quant_type", "per-channel"),
        "input_quant_dtype": "int8",
        "output_quant_dtype": "int8",
        # "warn", not non_verbose: onnx2tf reports a precision it could not write (Flex op at int8 calibration)
        # only as a warning and still exits 0; the parent reads that warning to say why the file is missing.
        "verbosity": "warn",
    }
    kwargs["not_use_onnxsim"] = not job.get("onnxsim", True)
    if job["pseudo_ops"]:
        kwargs["replace_to_pseudo_operators"] = [op.lower() for op in job["pseudo_ops"]]  # onnx2tf matches lower case
    if job["keep_nchw"]:
        kwargs["keep_ncw_or_nchw_or_ncdhw_input_names"] = [job["input_name"]]
    if job["calibration"]:
        kwargs["custom_input_op_name_np_data_path"] = [[job["input_name"], job["calibration"], 0.0, 1.0]]
    onnx2tf.convert(**kwargs)
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1]))
