"""The MLPerf Tiny reference architectures equal mlcommons/tiny's Keras definitions.

The Keras models below are this test's own transcription of the reference definitions in mlcommons/tiny
(benchmark/training/image_classification/keras_model.py, keyword_spotting/keras_model.py,
visual_wake_words/vww_model.py, anomaly_detection/keras_model.py), minus regularisers and initialisers,
which change neither shapes nor outputs. Each torch model must match its Keras twin in parameters,
multiply-accumulates, and outputs once the Keras weights are copied in.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgekd.distill.flops import count_flops
from edgekd.distill.tiny_models import build_tiny, keras_same_padding
from edgekd.errors import ModelError

keras = pytest.importorskip("keras", reason="the Keras reference twins need TensorFlow/Keras")
L = keras.layers


def keras_resnet8(hwc: tuple[int, int, int], classes: int, width: int = 16) -> keras.Model:
    def stack(x, filters: int, stride: int):
        y = L.Activation("relu")(L.BatchNormalization()(L.Conv2D(filters, 3, strides=stride, padding="same")(x)))
        y = L.BatchNormalization()(L.Conv2D(filters, 3, padding="same")(y))
        if stride != 1:
            x = L.Conv2D(filters, 1, strides=stride, padding="same")(x)
        return L.Activation("relu")(L.add([x, y]))

    inputs = keras.Input(hwc)
    x = L.Activation("relu")(L.BatchNormalization()(L.Conv2D(width, 3, padding="same")(inputs)))
    x = stack(stack(stack(x, width, 1), 2 * width, 2), 4 * width, 2)
    x = L.AveragePooling2D(pool_size=int(min(x.shape[1:3])))(x)
    return keras.Model(inputs, L.Dense(classes, activation="softmax")(L.Flatten()(x)))


def _bn_relu(x):
    return L.Activation("relu")(L.BatchNormalization()(x))


def keras_dscnn(hwc: tuple[int, int, int], classes: int, filters: int = 64) -> keras.Model:
    inputs = keras.Input(hwc)
    x = L.Dropout(0.2)(_bn_relu(L.Conv2D(filters, (10, 4), strides=(2, 2), padding="same")(inputs)))
    for _ in range(4):
        x = _bn_relu(L.DepthwiseConv2D(3, padding="same")(x))
        x = _bn_relu(L.Conv2D(filters, 1, padding="same")(x))
    x = L.AveragePooling2D(pool_size=(hwc[0] // 2, hwc[1] // 2))(L.Dropout(0.4)(x))
    return keras.Model(inputs, L.Dense(classes, activation="softmax")(L.Flatten()(x)))


def keras_mobilenet_v1(hwc: tuple[int, int, int], classes: int) -> keras.Model:
    inputs = keras.Input(hwc)
    filters = 8  # the reference: 32 at alpha 0.25, doubled where the stride is 2 and after block 1
    x = _bn_relu(L.Conv2D(filters, 3, strides=2, padding="same")(inputs))
    for double, stride in [(1, 1), (1, 2), (0, 1), (1, 2), (0, 1), (1, 2)] + [(0, 1)] * 5 + [(1, 2), (0, 1)]:
        x = _bn_relu(L.DepthwiseConv2D(3, strides=stride, padding="same")(x))
        filters *= 2 if double else 1
        x = _bn_relu(L.Conv2D(filters, 1, padding="same")(x))
    x = L.AveragePooling2D(pool_size=tuple(x.shape[1:3]))(x)
    return keras.Model(inputs, L.Dense(classes, activation="softmax")(L.Flatten()(x)))


def keras_fc_autoencoder(features: int) -> keras.Model:
    inputs = keras.Input((features,))
    h = inputs
    for units in (128, 128, 128, 128, 8, 128, 128, 128, 128):
        h = _bn_relu(L.Dense(units)(h))
    return keras.Model(inputs, L.Dense(features)(h))


def keras_macs(model: keras.Model) -> int:
    """Multiply-accumulates of Conv2D, DepthwiseConv2D and Dense layers, from their output shapes."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, L.DepthwiseConv2D):
            kh, kw = layer.kernel_size
            total += int(np.prod(layer.output.shape[1:])) * kh * kw
        elif isinstance(layer, L.Conv2D):
            kh, kw = layer.kernel_size
            total += int(np.prod(layer.output.shape[1:])) * kh * kw * int(layer.input.shape[-1])
        elif isinstance(layer, L.Dense):
            total += int(layer.input.shape[-1]) * layer.units
    return total


# Reference figures at the MLPerf Tiny input sizes (params = Keras count_params(): trainable + BN moving stats).
# ResNet-8 MACs: stem 32*32*16*27 = 442,368; stack 1: 2 * 32*32*16*144 = 4,718,592; stack 2: 16*16*32*(144+288+16)
# = 3,670,016; stack 3: 8*8*64*(288+576+32) = 3,670,016; dense 64*10 = 640; total 12,501,632.
# DS-CNN MACs: conv 25*5*64*40 = 320,000; 4 * (25*5*64*9 + 25*5*64*64) = 2,336,000; dense 64*12 = 768: 2,656,768.
# DS-CNN params: 2,624 + 256 (BN) + 4 * (640 + 256 + 4,160 + 256) + 780 = 24,908.
# Autoencoder MACs: 2 * (640*128 + 3*128*128 + 128*8) = 264,192; params 265,864 (dense) + 9 * 4 * width (BN) = 269,992.
# MobileNetV1 0.25 MACs: stem 48*48*8*27 = 497,664 plus 13 separable blocks and dense 256*2 = 7,489,664.
CASES = {
    # name: (arch, torch input (C, H, W) or (F,), classes, keras twin, params, trainable, MACs)
    "resnet8": ("resnet8", (3, 32, 32), 10, lambda: keras_resnet8((32, 32, 3), 10), 78_666, 78_186, 12_501_632),
    "resnet8_fmnist": ("resnet8", (1, 28, 28), 10, lambda: keras_resnet8((28, 28, 1), 10), 78_378, 77_898, 9_345_920),
    "dscnn": ("dscnn", (1, 49, 10), 12, lambda: keras_dscnn((49, 10, 1), 12), 24_908, 23_756, 2_656_768),
    "mobilenet_v1": ("mobilenet_v1", (3, 96, 96), 2, lambda: keras_mobilenet_v1((96, 96, 3), 2), 221_794, 216_322, 7_489_664),
    "fc_autoencoder": ("fc_autoencoder", (640,), 0, lambda: keras_fc_autoencoder(640), 269_992, 267_928, 264_192),
}  # fmt: skip


@pytest.fixture(scope="module")
def twins() -> dict[str, tuple[torch.nn.Module, keras.Model]]:
    """Each case's torch model and its Keras twin, built once per module."""
    torch.manual_seed(0)
    keras.utils.set_random_seed(0)
    return {
        name: (build_tiny(arch, shape, classes).eval(), make())
        for name, (arch, shape, classes, make, *_) in CASES.items()
    }


def _torch_counts(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable parameters, BatchNorm moving mean + variance elements): Keras counts both as params."""
    trainable = sum(p.numel() for p in model.parameters())
    moving = sum(b.numel() for name, b in model.named_buffers() if name.endswith(("running_mean", "running_var")))
    return trainable, moving


@pytest.mark.parametrize("name", CASES)
def test_parameter_counts_equal_the_reference(twins, name: str) -> None:
    model, reference = twins[name]
    *_, params, trainable, _macs = CASES[name]
    ours_trainable, ours_moving = _torch_counts(model)
    reference_trainable = sum(int(np.prod(w.shape)) for w in reference.trainable_weights)
    assert (ours_trainable, ours_trainable + ours_moving) == (reference_trainable, reference.count_params())
    assert (ours_trainable, ours_trainable + ours_moving) == (trainable, params)


@pytest.mark.parametrize("name", CASES)
def test_macs_equal_the_reference(twins, name: str) -> None:
    model, reference = twins[name]
    _arch, shape, *_, macs = CASES[name]
    assert count_flops(model, shape) // 2 == keras_macs(reference) == macs


def _copy_keras_weights(reference: keras.Model, model: torch.nn.Module, x: np.ndarray) -> None:
    """Copy every Keras kernel, bias and BN vector into the torch layer at the same position in the graph.

    BN statistics are set near the real statistics of the activations `x` produces at that layer: arbitrary
    ones let the signal die after a few layers, so every input gives the same output and nothing is compared.
    """
    rng = np.random.default_rng(0)
    ours = [
        m
        for m in model.modules()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear, torch.nn.modules.batchnorm._BatchNorm))
    ]
    theirs = [layer for layer in reference.layers if layer.weights]
    assert len(ours) == len(theirs)
    for layer in theirs:
        weights = layer.get_weights()
        if isinstance(layer, L.BatchNormalization):
            seen = np.asarray(keras.Model(reference.input, layer.input)(x, training=False))
            axes = tuple(range(seen.ndim - 1))  # every axis but the channels (last in Keras)
            n = weights[0].shape
            mean = (seen.mean(axes) + rng.normal(0, 0.1, n) * seen.std(axes)).astype(np.float32)
            var = (seen.var(axes) * rng.uniform(0.8, 1.25, n) + 1e-3).astype(np.float32)
            gamma, beta = rng.uniform(0.8, 1.2, n).astype(np.float32), rng.normal(0, 0.2, n).astype(np.float32)
            layer.set_weights([gamma, beta, mean, var])
            tensors = {"weight": gamma, "bias": beta, "running_mean": mean, "running_var": var}
        elif isinstance(layer, L.DepthwiseConv2D):  # (kh, kw, C, 1) -> (C, 1, kh, kw)
            tensors = {"weight": weights[0].transpose(2, 3, 0, 1), "bias": weights[1]}
        elif isinstance(layer, L.Conv2D):  # (kh, kw, C_in, C_out) -> (C_out, C_in, kh, kw)
            tensors = {"weight": weights[0].transpose(3, 2, 0, 1), "bias": weights[1]}
        else:  # Dense (in, out) -> Linear (out, in)
            tensors = {"weight": weights[0].T, "bias": weights[1]}
        # Keras lists layers in graph order (a shortcut conv may come before the branch's BN): take the first
        # unused torch layer with the same kind and shapes; same-shaped layers keep their order in both.
        module = next(
            m
            for m in ours
            if all(tuple(getattr(m, k).shape) == v.shape for k, v in tensors.items())
            and isinstance(m, torch.nn.modules.batchnorm._BatchNorm) == isinstance(layer, L.BatchNormalization)
        )
        ours.remove(module)
        for key, value in tensors.items():
            getattr(module, key).data.copy_(torch.from_numpy(np.ascontiguousarray(value)))


@pytest.mark.parametrize("name", CASES)
def test_outputs_equal_the_reference_with_its_weights(twins, name: str) -> None:
    """Same weights, same outputs: proves the layer order, BN placement and Keras' asymmetric 'same' padding."""
    model, reference = twins[name]
    _arch, shape, classes, *_ = CASES[name]
    x = np.random.default_rng(1).normal(size=(8, *shape)).astype(np.float32)
    keras_in = x.transpose(0, 2, 3, 1) if len(shape) == 3 else x  # (B, C, H, W) -> (B, H, W, C)
    _copy_keras_weights(reference, model, keras_in)
    expected = np.asarray(reference(keras_in, training=False))
    with torch.no_grad():
        ours = model(torch.from_numpy(x))
    if classes:  # the reference ends in softmax, edgekd keeps logits: compare log-probabilities (near-uniform
        ours, expected = torch.log_softmax(ours, dim=1), np.log(expected)  # probabilities would hide a shift)
    assert np.ptp(expected, axis=0).max() > 0.05  # the outputs depend on the input: the comparison means something
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-4, atol=1e-4)


def test_keras_same_padding_puts_the_odd_pixel_after() -> None:
    assert keras_same_padding(32, 3, 2) == (0, 1)  # torch's padding=1 would be (1, 1)
    assert keras_same_padding(49, 10, 2) == (4, 5)  # DS-CNN's first conv over 49 frames
    assert keras_same_padding(10, 4, 2) == (1, 1)
    assert keras_same_padding(32, 1, 2) == (0, 0)
    assert keras_same_padding(7, 3, 1) == (1, 1)


def test_every_architecture_exports_to_onnx_and_runs_in_onnxruntime() -> None:
    import onnxruntime as ort

    from edgekd.converters.torch_onnx import check_onnx, export_module

    torch.manual_seed(0)
    for name in ("resnet8", "dscnn", "mobilenet_v1", "fc_autoencoder"):
        arch, shape, classes, *_ = CASES[name]
        model = build_tiny(arch, shape, classes).eval()
        proto = export_module(model, shape, opset=18, dynamic_batch=True)
        check_onnx(proto, name)
        session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        x = np.random.default_rng(2).normal(size=(2, *shape)).astype(np.float32)
        (out,) = session.run(None, {session.get_inputs()[0].name: x})
        assert out.shape == (2, classes or shape[0]), name
        with torch.no_grad():
            np.testing.assert_allclose(out, model(torch.from_numpy(x)).numpy(), rtol=1e-4, atol=1e-4, err_msg=name)


@pytest.mark.parametrize(
    ("arch", "shape", "kwargs", "message"),
    [
        ("resnet9", (3, 32, 32), {}, "unknown MLPerf Tiny architecture 'resnet9'"),
        ("resnet8", (3, 32, 32), {"alpha": 0.5}, "alpha applies to mobilenet_v1 only"),
        ("mobilenet_v1", (3, 96, 96), {"width": 8}, "mobilenet_v1 is sized by alpha"),
        ("mobilenet_v1", (3, 96, 96), {"alpha": 0.01}, "leaves no filters"),
        ("dscnn", (490,), {}, "dscnn needs image-like input (C, H, W)"),
        ("fc_autoencoder", (1, 64, 10), {}, "fc_autoencoder needs flat feature vectors"),
        ("dscnn", (1, 1, 10), {}, "at least 2x2 inputs"),
    ],
)
def test_build_tiny_refuses_what_it_cannot_build(arch: str, shape: tuple, kwargs: dict, message: str) -> None:
    with pytest.raises(ModelError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_tiny(arch, shape, 10, **kwargs)


def test_width_and_alpha_take_effect() -> None:
    assert _torch_counts(build_tiny("resnet8", (3, 32, 32), 10, width=26))[0] > 78_186  # the repo's newer 26 filters
    assert _torch_counts(build_tiny("mobilenet_v1", (3, 96, 96), 2, alpha=0.5))[0] > 216_322
    assert _torch_counts(build_tiny("fc_autoencoder", (640,), 0, width=64))[0] < 267_928
