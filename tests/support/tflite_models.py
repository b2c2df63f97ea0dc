"""Small seeded .tflite models for the handoff tests, built with TensorFlow's own converter.

TensorFlow takes ~5 s to import, so every model is built in one call (`build_tflite_models`) that a
session fixture runs once. Models:
- cnn_fp32 / cnn_int8: 8x8x1 image -> conv 3x3 (4) -> relu -> maxpool -> dense 10 -> softmax; int8 is full
  integer (int8 input and output) from a representative dataset.
- multi_io_int8: two inputs ("audio" [1, 6], "meta" [1, 4]) and two outputs ("scores" [1, 3] from a dense
  layer over their concatenation, "gate" [1, 6] = relu(2 * audio)), full int8.
- gelu_fp32: uses GELU, a builtin TFLite has and TensorFlow Lite Micro does not.
- cnn_fp16: float16 weights with DEQUANTIZE ops (does not run on TFLite Micro).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

MODEL_NAMES = ("cnn_fp32", "cnn_int8", "multi_io_int8", "gelu_fp32", "cnn_fp16")


def build_tflite_models(out_dir: Path, seed: int = 0) -> dict[str, Path]:
    """Write every test model into out_dir; returns name -> path."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    out_dir.mkdir(parents=True, exist_ok=True)

    class TinyCnn(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = tf.constant(rng.normal(size=(3, 3, 1, 4)).astype(np.float32) * 0.5)
            self.dense = tf.constant(rng.normal(size=(64, 10)).astype(np.float32) * 0.3)

        @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 1], tf.float32, name="image")])
        def __call__(self, image: tf.Tensor) -> dict[str, tf.Tensor]:
            x = tf.nn.relu(tf.nn.conv2d(image, self.conv, 1, "SAME"))  # (1, 8, 8, 4)
            x = tf.reshape(tf.nn.max_pool2d(x, 2, 2, "VALID"), [1, 64])  # (1, 4, 4, 4) -> (1, 64)
            return {"probs": tf.nn.softmax(tf.matmul(x, self.dense))}

    class TwoInTwoOut(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.dense = tf.constant(rng.normal(size=(10, 3)).astype(np.float32) * 0.5)

        @tf.function(
            input_signature=[
                tf.TensorSpec([1, 6], tf.float32, name="audio"),
                tf.TensorSpec([1, 4], tf.float32, name="meta"),
            ]
        )
        def __call__(self, audio: tf.Tensor, meta: tf.Tensor) -> dict[str, tf.Tensor]:
            joined = tf.concat([audio, meta], axis=1)  # (1, 10)
            return {"scores": tf.matmul(joined, self.dense), "gate": tf.nn.relu(audio * 2.0)}

    class Gelu(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 16], tf.float32, name="x")])
        def __call__(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": tf.nn.gelu(x * 2.0)}

    def convert(module: tf.Module, *, int8_samples: list[list[np.ndarray]] | None = None, fp16: bool = False) -> bytes:
        converter = tf.lite.TFLiteConverter.from_concrete_functions([module.__call__.get_concrete_function()], module)
        if int8_samples is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: iter(int8_samples)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        elif fp16:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        return converter.convert()

    images = [[rng.uniform(0, 1, (1, 8, 8, 1)).astype(np.float32)] for _ in range(32)]
    pairs = [
        [rng.normal(size=(1, 6)).astype(np.float32), rng.normal(size=(1, 4)).astype(np.float32)] for _ in range(32)
    ]
    cnn, two, gelu = TinyCnn(), TwoInTwoOut(), Gelu()
    models = {
        "cnn_fp32": convert(cnn),
        "cnn_int8": convert(cnn, int8_samples=images),
        "multi_io_int8": convert(two, int8_samples=pairs),
        "gelu_fp32": convert(gelu),
        "cnn_fp16": convert(cnn, fp16=True),
    }
    paths = {}
    for name, data in models.items():
        path = out_dir / f"{name}.tflite"
        path.write_bytes(data)
        paths[name] = path
    return paths


def build_dense_int8(out_dir: Path, units: int, *, seed: int = 0) -> Path:
    """A full-int8 two-layer dense model of about 2 * units² bytes, for size scaling (bench suite)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    rng = np.random.default_rng(seed)

    class Dense(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w1 = tf.constant((rng.normal(size=(units, units)) / np.sqrt(units)).astype(np.float32))
            self.w2 = tf.constant((rng.normal(size=(units, units)) / np.sqrt(units)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([1, units], tf.float32, name="x")])
        def __call__(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": tf.matmul(tf.nn.relu(tf.matmul(x, self.w1)), self.w2)}

    module = Dense()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.__call__.get_concrete_function()], module)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    samples = [[rng.normal(size=(1, units)).astype(np.float32)] for _ in range(16)]
    converter.representative_dataset = lambda: iter(samples)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    path = out_dir / f"dense{units}_int8.tflite"
    path.write_bytes(converter.convert())
    return path
