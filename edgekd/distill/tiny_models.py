"""The four MLPerf Tiny reference architectures as torch modules, layer for layer.

Read from mlcommons/tiny (commit 1afd2c9, benchmark/training/...):
- ResNet-8, CIFAR-10 32x32x3:      image_classification/keras_model.py  `resnet_v1_eembc`
- DS-CNN, keyword spotting 49x10x1: keyword_spotting/keras_model.py     `get_model`, model 'ds_cnn'
- MobileNetV1 alpha 0.25, VWW 96x96x3: visual_wake_words/vww_model.py   `mobilenet_v1`
- FC autoencoder, anomaly detection 640: anomaly_detection/keras_model.py `get_model`

What is kept exactly: every Conv2D/DepthwiseConv2D/Dense with its bias (Keras' default use_bias=True, even
before a BatchNormalization), BatchNormalization where the reference has it (with Keras' eps 1e-3 and
momentum 0.99), Dropout, pooling windows, and Keras' 'same' padding, which pads the extra row/column of a
stride-2 window at the bottom/right only (torch's symmetric padding would shift every output pixel).
What differs by design: the reference's final softmax is left out (edgekd trains on logits; argmax is
unchanged), and Flatten runs over (C, H, W) instead of Keras' (H, W, C): identical when the pooled map is
1x1, which it is at every reference input size.

ResNet-8's first-stack width: the published MLPerf Tiny v0.5-v1.3 reference used 16 filters (78k params);
the repository's train.py builds 26 since March 2026. `width` selects it; the default is the published 16.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from edgekd.errors import ModelError

TINY_ARCHS = ("resnet8", "dscnn", "mobilenet_v1", "fc_autoencoder")
KERAS_BN_EPS = 1e-3  # keras.layers.BatchNormalization default epsilon
KERAS_BN_MOMENTUM = 0.01  # torch momentum = 1 - Keras momentum (0.99)
RESNET8_WIDTH = 16  # filters of the first stack in the published reference (x2, x4 in stacks 2 and 3)
DSCNN_WIDTH = 64  # filters of every DS-CNN layer
AUTOENCODER_WIDTH = 128  # hidden units of the autoencoder (its bottleneck is 8)
AUTOENCODER_BOTTLENECK = 8
# MobileNetV1 at alpha = 1: (pointwise filters, depthwise stride) of the 13 separable blocks after the
# 32-filter stem. The reference hard-codes alpha 0.25 (8, 16, 32, ... 256 by doubling), which is exactly
# int(filters * 0.25) here, the Keras applications rule for other alphas.
MOBILENET_V1_STEM = 32
MOBILENET_V1_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                       (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))  # fmt: skip

Size = tuple[int, int]  # (H, W) of a feature map


def keras_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of TF/Keras 'same': output ceil(size / stride), the odd pad goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def same_conv(in_channels: int, out_channels: int, kernel: int | Size, stride: int | Size, size: Size,
              groups: int = 1) -> tuple[nn.Module, Size]:  # fmt: skip
    """A Conv2d with Keras 'same' padding for a `size` (H, W) input, and its output size.

    Symmetric padding stays inside the Conv2d; asymmetric padding (stride 2 on an even size) becomes a
    ZeroPad2d in front of it, so the module holds exactly the reference's weights and computes its outputs.
    """
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    top, bottom = keras_same_padding(size[0], kh, sh)
    left, right = keras_same_padding(size[1], kw, sw)
    out_size = (-(-size[0] // sh), -(-size[1] // sw))
    if top == bottom and left == right:
        conv = nn.Conv2d(in_channels, out_channels, (kh, kw), (sh, sw), padding=(top, left), groups=groups)
        return conv, out_size
    conv = nn.Conv2d(in_channels, out_channels, (kh, kw), (sh, sw), padding=0, groups=groups)
    return nn.Sequential(nn.ZeroPad2d((left, right, top, bottom)), conv), out_size


def keras_bn2d(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=KERAS_BN_EPS, momentum=KERAS_BN_MOMENTUM)


def keras_bn1d(features: int) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(features, eps=KERAS_BN_EPS, momentum=KERAS_BN_MOMENTUM)


def pooled_size(size: Size, window: Size) -> Size:
    """Output (H, W) of Keras AveragePooling2D(pool_size=window): stride = window, 'valid' padding."""
    return ((size[0] - window[0]) // window[0] + 1, (size[1] - window[1]) // window[1] + 1)


class ResidualStack(nn.Module):
    """conv3x3(stride)-BN-ReLU-conv3x3-BN, plus the input (through a 1x1 strided conv when strided), ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, size: Size) -> None:
        super().__init__()
        self.conv1, self.out_size = same_conv(in_channels, out_channels, 3, stride, size)
        self.bn1 = keras_bn2d(out_channels)
        self.conv2, _ = same_conv(out_channels, out_channels, 3, 1, self.out_size)
        self.bn2 = keras_bn2d(out_channels)
        # The reference's first stack adds its input unchanged; stacks 2 and 3 project it (no BN there).
        self.shortcut = same_conv(in_channels, out_channels, 1, stride, size)[0] if stride != 1 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W) -> (B, C_out, H/s, W/s)
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(self.shortcut(x) + y)


class ResNet8(nn.Module):
    """MLPerf Tiny image classification: stem conv, three residual stacks (w, 2w, 4w), average pool, dense."""

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, width: int = RESNET8_WIDTH) -> None:
        super().__init__()
        channels, height, width_px = input_shape
        self.stem, size = same_conv(channels, width, 3, 1, (height, width_px))
        self.stem_bn = keras_bn2d(width)
        self.stack1 = ResidualStack(width, width, 1, size)
        self.stack2 = ResidualStack(width, 2 * width, 2, self.stack1.out_size)
        self.stack3 = ResidualStack(2 * width, 4 * width, 2, self.stack2.out_size)
        size = self.stack3.out_size
        window = (min(size), min(size))  # reference: pool_size = min(H, W) of the last map
        self.pool = nn.AvgPool2d(window)
        out = pooled_size(size, window)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(4 * width * out[0] * out[1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, classes) logits
        x = torch.relu(self.stem_bn(self.stem(x)))
        x = self.stack3(self.stack2(self.stack1(x)))
        return self.fc(self.flatten(self.pool(x)))


class DSCNN(nn.Module):
    """MLPerf Tiny keyword spotting: conv 10x4/2, four depthwise-separable blocks, dropout, pool, dense."""

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, width: int = DSCNN_WIDTH) -> None:
        super().__init__()
        channels, height, width_px = input_shape
        conv, size = same_conv(channels, width, (10, 4), (2, 2), (height, width_px))
        layers: list[nn.Module] = [conv, keras_bn2d(width), nn.ReLU(), nn.Dropout(0.2)]
        for _ in range(4):
            depthwise, size = same_conv(width, width, 3, 1, size, groups=width)
            layers += [depthwise, keras_bn2d(width), nn.ReLU(),
                       nn.Conv2d(width, width, 1), keras_bn2d(width), nn.ReLU()]  # fmt: skip
        # The reference pools over (int(H/2), int(W/2)) of the *input* size: for 49x10 that is 24x5 of the
        # 25x5 map, so the last time step is dropped; kept as is.
        window = (height // 2, width_px // 2)
        out = pooled_size(size, window)
        layers += [nn.Dropout(0.4), nn.AvgPool2d(window), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(width * out[0] * out[1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, frames, coefficients) -> (B, classes)
        return self.fc(self.features(x))


class MobileNetV1(nn.Module):
    """MLPerf Tiny visual wake words: MobileNetV1 (ReLU, not ReLU6) at width multiplier `alpha`."""

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, alpha: float = 0.25) -> None:
        super().__init__()
        channels, height, width_px = input_shape
        filters = int(MOBILENET_V1_STEM * alpha)
        conv, size = same_conv(channels, filters, 3, 2, (height, width_px))
        layers: list[nn.Module] = [conv, keras_bn2d(filters), nn.ReLU()]
        for pointwise, stride in MOBILENET_V1_BLOCKS:
            depthwise, size = same_conv(filters, filters, 3, stride, size, groups=filters)
            out_filters = int(pointwise * alpha)
            layers += [depthwise, keras_bn2d(filters), nn.ReLU(),
                       nn.Conv2d(filters, out_filters, 1), keras_bn2d(out_filters), nn.ReLU()]  # fmt: skip
            filters = out_filters
        layers += [nn.AvgPool2d(size), nn.Flatten()]  # reference: pool over the whole last map
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(filters, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, 96, 96) -> (B, classes)
        return self.fc(self.features(x))


class FCAutoencoder(nn.Module):
    """MLPerf Tiny anomaly detection: dense 128 x4, bottleneck 8, dense 128 x4, each with BN and ReLU."""

    def __init__(self, features: int, width: int = AUTOENCODER_WIDTH) -> None:
        super().__init__()
        sizes = [features] + [width] * 4 + [AUTOENCODER_BOTTLENECK] + [width] * 4
        layers: list[nn.Module] = []
        for n_in, n_out in itertools.pairwise(sizes):
            layers += [nn.Linear(n_in, n_out), keras_bn1d(n_out), nn.ReLU()]
        layers.append(nn.Linear(width, features))  # the reconstruction: no BN, no activation
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 640) -> (B, 640) reconstruction
        return self.layers(x)


def build_tiny(arch: str, input_shape: tuple[int, ...], num_classes: int, *, width: int | None = None,
               alpha: float | None = None) -> nn.Module:  # fmt: skip
    """Build one reference architecture for `input_shape` (without batch: (C, H, W), or (F,) for the autoencoder).

    `width` sets resnet8's first-stack filters (16), dscnn's filters (64) or the autoencoder's hidden
    units (128); `alpha` is mobilenet_v1's width multiplier (0.25). The autoencoder reconstructs its
    input, so its output size is the input's and `num_classes` does not shape it.
    """
    if arch not in TINY_ARCHS:
        raise ModelError(f"unknown MLPerf Tiny architecture {arch!r}", hint=f"use one of {', '.join(TINY_ARCHS)}")
    if alpha is not None and arch != "mobilenet_v1":
        raise ModelError(f"alpha applies to mobilenet_v1 only, not {arch}", hint="remove alpha or use width")
    if width is not None and arch == "mobilenet_v1":
        raise ModelError("mobilenet_v1 is sized by alpha, not width", hint="set alpha = 0.25 (the reference)")
    if width is not None and width < 1:
        raise ModelError(f"width must be at least 1, got {width}")
    shape = tuple(int(d) for d in input_shape)
    if arch == "fc_autoencoder":
        if len(shape) != 1:
            raise ModelError(f"fc_autoencoder needs flat feature vectors (F,), the data has shape {shape}",
                             hint="the reference takes 640 features: 5 frames x 128 log-mel bands")  # fmt: skip
        return FCAutoencoder(shape[0], width or AUTOENCODER_WIDTH)
    if len(shape) != 3:
        raise ModelError(f"{arch} needs image-like input (C, H, W), the data has shape {shape}",
                         hint="dscnn takes (1, frames, coefficients), e.g. (1, 49, 10) MFCCs")  # fmt: skip
    if num_classes < 1:
        raise ModelError(f"{arch} needs at least one class, got {num_classes}")
    if arch == "resnet8":
        return ResNet8(shape, num_classes, width or RESNET8_WIDTH)
    if arch == "dscnn":
        if shape[1] < 2 or shape[2] < 2:
            raise ModelError(f"dscnn pools over half the input size, so it needs at least 2x2 inputs, got {shape[1:]}")
        return DSCNN(shape, num_classes, width or DSCNN_WIDTH)
    alpha = 0.25 if alpha is None else float(alpha)
    if not alpha > 0 or int(MOBILENET_V1_STEM * alpha) < 1:
        raise ModelError(f"mobilenet_v1 alpha {alpha} leaves no filters in the first layer",
                         hint="use alpha >= 1/32; the reference uses 0.25")  # fmt: skip
    return MobileNetV1(shape, num_classes, alpha)
