"""Tiny seeded models for harness tests: ONNX MatMul chains (built with onnx.helper, no torch) and TFLite
files converted by TensorFlow from a small tf.function (fp32 and full int8)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

RUNNER = Path(__file__).resolve().parents[2] / "edgekd" / "targets" / "runner" / "edgekd_runner.py"


def make_matmul_onnx(path: Path, layers: int = 1, size: int = 64, seed: int = 0) -> Path:
    """x (1, size) float32 -> `layers` MatMuls with ReLU between -> y (1, size). More layers = slower."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, weights = [], []
    previous = "x"
    for layer in range(layers):
        weight = (rng.standard_normal((size, size)) * 0.1).astype(np.float32)
        weights.append(numpy_helper.from_array(weight, f"w{layer}"))
        product = f"m{layer}"
        nodes.append(helper.make_node("MatMul", [previous, f"w{layer}"], [product]))
        previous = "y" if layer == layers - 1 else f"h{layer}"
        nodes.append(helper.make_node("Relu", [product], [previous]))
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, size])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


def make_tflite(path: Path, precision: str = "fp32", size: int = 16, hidden: int = 32, layers: int = 1) -> Path:
    """Dense+ReLU layers then a Dense to 4 outputs, (1, size) -> (1, 4); `int8` is full-integer with int8
    input/output. More `layers` of width `hidden` make it slower."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    widths = [size] + [hidden] * layers
    weights = [
        tf.constant(rng.standard_normal((a, b)).astype(np.float32) * (2 / a) ** 0.5)
        for a, b in itertools.pairwise(widths)
    ]
    head = tf.constant(rng.standard_normal((hidden, 4)).astype(np.float32) * 0.2)

    @tf.function(input_signature=[tf.TensorSpec([1, size], tf.float32, name="x")])
    def model(x: tf.Tensor) -> tf.Tensor:
        for weight in weights:
            x = tf.nn.relu(tf.matmul(x, weight))
        return tf.matmul(x, head)

    converter = tf.lite.TFLiteConverter.from_concrete_functions([model.get_concrete_function()], model)
    if precision == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        samples = [rng.standard_normal((1, size)).astype(np.float32) for _ in range(20)]
        converter.representative_dataset = lambda: ([sample] for sample in samples)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    path.write_bytes(converter.convert())
    return path
