"""Built-in model families sized by width and depth, and loading a torch artifact back into a module.

A torch artifact is a state dict (`.pt`, loaded with weights_only=True) plus, in its sidecar config,
the `model` spec, `input_shape` and `num_classes` needed to rebuild the module.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekd.errors import ModelError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from edgekd.artifacts import Artifact


def build_model(spec: dict[str, Any], input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Build a fresh module. `input_shape` excludes the batch: (C, H, W) for images, (F,) for tables."""
    from torch import nn

    arch = spec.get("arch", "cnn")
    width = int(spec.get("width", 16))
    depth = int(spec.get("depth", 2))
    if arch == "mlp":
        features = 1
        for dim in input_shape:
            features *= int(dim)
        layers: list[nn.Module] = [nn.Flatten()]
        for _ in range(depth):
            layers += [nn.Linear(features, width), nn.ReLU()]
            features = width
        layers.append(nn.Linear(features, num_classes))
        return nn.Sequential(*layers)
    if arch in ("cnn", "mobilenet") and len(input_shape) != 3:
        raise ModelError(f"a {arch} needs image input (C, H, W), the data has shape {tuple(input_shape)}",
                         hint="use arch = \"mlp\" for tabular data")  # fmt: skip
    if arch == "cnn":
        return __getattr__("SmallCNN")(input_shape[0], num_classes, width, depth)
    if arch == "mobilenet":
        return __getattr__("MobileNetLite")(input_shape[0], num_classes, width, depth)
    if arch == "custom":
        return _custom_model(spec.get("factory"), input_shape, num_classes)
    raise ModelError(f"unknown architecture {arch!r}", hint="use one of mlp, cnn, mobilenet, custom")


def _custom_model(factory: str | None, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Import `package.module:function` and call it. This executes the user's code, by design."""
    if not factory or ":" not in factory:
        raise ModelError(f"custom model factory {factory!r} must look like 'package.module:function'")
    module_name, attr = factory.split(":", 1)
    try:
        module = importlib.import_module(module_name)
        fn = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise ModelError(f"cannot import model factory {factory!r}: {exc}", hint="check PYTHONPATH and the name") from None
    return fn(input_shape=input_shape, num_classes=num_classes)


def _make_cnn_classes() -> tuple[type, type]:
    from torch import nn

    class SmallCNN(nn.Module):
        """Conv(3x3)-BN-ReLU blocks doubling width every block, global average pool, linear head."""

        def __init__(self, in_channels: int, num_classes: int, width: int = 16, depth: int = 2) -> None:
            super().__init__()
            blocks: list[nn.Module] = []
            channels = in_channels
            for i in range(depth):
                out = width * (2**i)
                blocks += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU()]
                if i < depth - 1:
                    blocks.append(nn.MaxPool2d(2))
                channels = out
            self.features = nn.Sequential(*blocks)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.head = nn.Linear(channels, num_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, classes)
            return self.head(self.pool(self.features(x)).flatten(1))

    class MobileNetLite(nn.Module):
        """MobileNet-style: depthwise-separable blocks with residual adds and hardswish."""

        def __init__(self, in_channels: int, num_classes: int, width: int = 16, depth: int = 2) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.Hardswish())
            self.blocks = nn.ModuleList(
                nn.Sequential(
                    nn.Conv2d(width, width, 3, padding=1, groups=width, bias=False),  # depthwise
                    nn.BatchNorm2d(width),
                    nn.Hardswish(),
                    nn.Conv2d(width, width, 1, bias=False),  # pointwise
                    nn.BatchNorm2d(width),
                )
                for _ in range(depth)
            )
            self.act = nn.Hardswish()
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.head = nn.Linear(width, num_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.stem(x)
            for block in self.blocks:
                x = self.act(x + block(x))  # residual add
            return self.head(self.pool(x).flatten(1))

    return SmallCNN, MobileNetLite


def __getattr__(name: str) -> Any:
    # Module classes are built on first use so importing this module does not import torch.
    if name in ("SmallCNN", "MobileNetLite"):
        if name in globals():
            return globals()[name]
        small, mobile = _make_cnn_classes()
        globals().update(SmallCNN=small, MobileNetLite=mobile)
        return globals()[name]
    raise AttributeError(name)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def save_state_dict(model: nn.Module, path: Path) -> None:
    import torch

    from edgekd.fileio import atomic_path

    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(model.state_dict(), tmp)


def load_torch_model(artifact: Artifact) -> nn.Module:
    """Rebuild the module described by a torch artifact's sidecar and load its weights safely."""
    import torch

    config = artifact.config
    try:
        spec = config["model"]
        input_shape = tuple(config["input_shape"])
        num_classes = int(config["num_classes"])
    except KeyError as exc:
        raise ModelError(f"{artifact.path}: sidecar lacks {exc.args[0]!r}; cannot rebuild the model") from None
    model = build_model(spec, input_shape, num_classes)
    try:
        state = torch.load(artifact.path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises UnpicklingError, RuntimeError, EOFError, OSError, ValueError
        raise torch_load_error(artifact.path, exc) from None
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError) as exc:
        raise ModelError(f"{artifact.path}: weights do not fit the {spec.get('arch')} model: {str(exc).splitlines()[0]}") from None
    return model.eval()


def torch_load_error(path: Path, exc: BaseException) -> ModelError:
    """The ModelError for a .pt that `torch.load(weights_only=True)` refused, without torch's advice to retry
    with weights_only=False (which would run whatever code the file holds)."""
    import pickle

    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    refused_global = next((line for line in lines if "GLOBAL" in line), None)
    advice = ("Weights only load failed", "Check the documentation", "Please file an issue", "(1)", "(2)")
    reason = refused_global or next((line for line in lines if not line.startswith(advice)), type(exc).__name__)
    reason = reason.removeprefix("WeightsUnpickler error: ").split(". ")[0].rstrip(".")
    if isinstance(exc, pickle.UnpicklingError) and refused_global:
        return ModelError(f"{path} holds more than tensors and was refused ({reason})",
                          hint="save only the state dict (torch.save(model.state_dict(), path)); edgekd never unpickles arbitrary objects")  # fmt: skip
    return ModelError(f"{path} is not a readable torch weights file ({reason})",
                      hint="the file is corrupt or truncated, or not a torch.save() state dict: save it again")  # fmt: skip
