"""Built-in model families sized by width and depth, the MLPerf Tiny reference architectures (resnet8, dscnn,
mobilenet_v1; `tiny_models`), user factories, and loading a torch artifact back.

A torch artifact is a state dict (`.pt`, loaded with weights_only=True) plus, in its sidecar config,
the `model` spec, `input_shape` and `num_classes` needed to rebuild the module.

A user factory (`arch = "custom"`, `factory = "package.module:function"`) is called with the keywords
its signature declares among `input_shape` ((C, H, W) or (F,)), `num_classes` and `in_channels`
(C, or F for tables), must return a `torch.nn.Module`, and is dry-run once on a (2, *input_shape)
zero batch that must give (2, num_classes) logits. `check_factory` runs that check before training.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekd.errors import ModelError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from edgekd.artifacts import Artifact


FACTORY_KEYWORDS = ("input_shape", "num_classes", "in_channels")
FACTORY_SIGNATURE = "def factory(input_shape: tuple[int, ...], num_classes: int) -> torch.nn.Module (either keyword may be left out; in_channels is also offered)"


def check_factory(model_config: Any, input_shape: tuple[int, ...], num_classes: int) -> None:
    """Build the model a `[student|teacher] model` table describes and dry-run it on a zero batch.

    For the preflight: raises ModelError (one line naming cause and fix) for a factory that cannot be
    imported or called, returns no nn.Module, takes another channel count or gives the wrong logits.
    `model_config` is a ModelSpec or its dict.
    """
    spec = model_config.model_dump() if hasattr(model_config, "model_dump") else dict(model_config)
    build_model(spec, tuple(input_shape), num_classes)


def build_model(spec: dict[str, Any], input_shape: tuple[int, ...], num_classes: int, role: str = "model") -> nn.Module:
    """Build a fresh module. `input_shape` excludes the batch: (C, H, W) for images, (F,) for tables.

    A custom factory's module is dry-run on the input shape (see module doc); `role` names it in messages.
    """
    from torch import nn

    arch = resolve_spec(spec, input_shape).get("arch", "cnn")
    if arch in TINY_ARCHS:
        return _tiny_model(arch, spec, input_shape, num_classes)
    width = int(spec.get("width") or 16)  # None (unset) -> the family's default
    depth = int(spec.get("depth") or 2)
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
        factory = spec.get("factory")
        model = _custom_model(factory, input_shape, num_classes)
        dry_run(model, input_shape, num_classes, f"the {role} built by {factory}")
        return model
    raise ModelError(
        f"unknown architecture {arch!r}", hint=f"use one of mlp, cnn, mobilenet, custom, {', '.join(TINY_ARCHS)}"
    )


TINY_ARCHS = ("resnet8", "dscnn", "mobilenet_v1", "fc_autoencoder")  # edgekd.distill.tiny_models (imports torch)
AUTOENCODER_REFUSAL = ("fc_autoencoder is architecture only: its reconstruction objective (anomaly detection, AUC) is not "
                       "supported yet, so it cannot be trained as a classifier")  # fmt: skip


def _tiny_model(arch: str, spec: dict[str, Any], input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """An MLPerf Tiny reference architecture; width/alpha only when the spec sets them (None = the reference's)."""
    from edgekd.distill.tiny_models import build_tiny

    if arch == "fc_autoencoder":
        raise ModelError(AUTOENCODER_REFUSAL, hint="use build_tiny('fc_autoencoder', (640,), 0) from edgekd.distill.tiny_models "
                         "for the architecture, or a classifier arch (resnet8, dscnn, mobilenet_v1, cnn, mlp)")  # fmt: skip
    if spec.get("depth") is not None:
        raise ModelError(f"depth does not apply to {arch} (its depth is the reference's)", hint="remove depth")
    width = spec.get("width")
    alpha = spec.get("alpha")
    return build_tiny(arch, tuple(input_shape), num_classes, width=None if width is None else int(width),
                      alpha=None if alpha is None else float(alpha))  # fmt: skip


def resolve_spec(spec: dict[str, Any], input_shape: tuple[int, ...]) -> dict[str, Any]:
    """`spec` with arch "auto" resolved: "cnn" for (C, H, W) images, "mlp" for (F,) tables."""
    if spec.get("arch") != "auto":
        return spec
    return {**spec, "arch": "cnn" if len(input_shape) == 3 else "mlp"}


def _custom_model(factory: str | None, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Import `package.module:function` and call it with the keywords it declares. This runs the user's code, by design."""
    from torch import nn

    if not factory or ":" not in factory:
        raise ModelError(f"custom model factory {factory!r} must look like 'package.module:function'",
                         hint='e.g. factory = "mymodels:make_student" with mymodels.py importable (its folder on PYTHONPATH)')  # fmt: skip
    module_name, attr = factory.split(":", 1)
    try:
        module = importlib.import_module(module_name)
        fn = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise ModelError(
            f"cannot import model factory {factory!r}: {exc}", hint="check PYTHONPATH and the name"
        ) from None
    if not callable(fn):
        raise ModelError(
            f"model factory {factory!r} is a {type(fn).__name__}, not a function", hint=f"expected {FACTORY_SIGNATURE}"
        )
    offered = {"input_shape": tuple(input_shape), "num_classes": num_classes, "in_channels": int(input_shape[0])}
    kwargs = _factory_arguments(fn, factory, offered)
    try:
        model = fn(**kwargs)
    except Exception as exc:  # noqa: BLE001 - the user's factory can fail in any way: name it, no traceback
        raise ModelError(f"model factory {factory!r} raised {type(exc).__name__} when called as {attr}({_shown(kwargs)}): {one_line(exc)}",
                         hint=f"edgekd calls {FACTORY_SIGNATURE}")  # fmt: skip
    if not isinstance(model, nn.Module):
        what = "a class" if inspect.isclass(model) else f"a {type(model).__name__}"
        raise ModelError(f"model factory {factory!r} returned {what}, not a torch.nn.Module",
                         hint="return the model instance (e.g. `return MyNet(...)`), not its class, a tuple or a state dict")  # fmt: skip
    return model


def _factory_arguments(fn: Any, factory: str, offered: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments `fn`'s signature takes among `offered`; refuses required parameters edgekd cannot fill."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # a builtin or C callable without a signature: the documented call
        return {k: offered[k] for k in ("input_shape", "num_classes")}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return {k: offered[k] for k in ("input_shape", "num_classes")}
    unknown = [name for name, p in params.items() if name not in offered and p.default is inspect.Parameter.empty
               and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]  # fmt: skip
    positional_only = [
        name for name, p in params.items() if name in offered and p.kind is inspect.Parameter.POSITIONAL_ONLY
    ]
    if unknown or positional_only:
        shown = ", ".join(params)
        raise ModelError(f"model factory {factory!r} has the signature ({shown}); edgekd can only pass the keywords "
                         f"{', '.join(FACTORY_KEYWORDS)} (required parameter(s) {', '.join(unknown + positional_only)} cannot be filled)",
                         hint=f"expected {FACTORY_SIGNATURE}; give other parameters defaults, or wrap the function")  # fmt: skip
    return {name: offered[name] for name in params if name in offered}


def dry_run(model: nn.Module, input_shape: tuple[int, ...], num_classes: int, who: str) -> None:
    """Run a (2, *input_shape) zero batch through `model` (eval mode); ModelError if it fails or gives other logits."""
    import torch

    shape = (2, *input_shape)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(shape))
    except Exception as exc:  # noqa: BLE001 - a user's model can fail in any way: say why in one line
        raise ModelError(
            f"{who} fails on the data's input {list(shape)} (float32): {one_line(exc)}",
            hint=_input_hint(exc, input_shape),
        ) from None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelError(f"{who} returns {got} for a batch of 2; expected logits of shape (2, {num_classes})",
                         hint="return one (batch, num_classes) tensor of logits; use the num_classes the factory is given")  # fmt: skip


def _input_hint(exc: BaseException, input_shape: tuple[int, ...]) -> str:
    text = str(exc)
    channels = re.search(r"expected input\[[^\]]*\] to have (\d+) channels, but got (\d+)", text)
    if channels:
        return (
            f"the model's first layer takes {channels.group(1)} channels but the data has {channels.group(2)}: build it with "
            f"in_channels = input_shape[0] ({input_shape[0]}), or make the data match (e.g. grey vs RGB images)"
        )
    if "mat1 and mat2 shapes cannot be multiplied" in text:
        return f"a linear layer's input size does not match the data's {tuple(input_shape)}: size it from input_shape"
    return f"the model must accept a float32 (batch, {', '.join(str(d) for d in input_shape)}) tensor"


def _shown(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


def one_line(exc: BaseException) -> str:
    """An exception's whole message on one line (torch and ONNX Runtime spread theirs over several)."""
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__


def load_weights(model: nn.Module, state: dict[str, Any], what: str, hint: str) -> None:
    """`model.load_state_dict(state)`, or a ModelError listing missing/unexpected keys and shape mismatches."""
    problem = state_dict_mismatch(model, state)
    if problem is None:
        try:
            model.load_state_dict(state)
            return
        except (RuntimeError, TypeError) as exc:
            problem = one_line(exc)
    raise ModelError(f"{what}: {problem}", hint=hint)


def state_dict_mismatch(model: nn.Module, state: dict[str, Any], shown: int = 6) -> str | None:
    """None when `state` fits `model` key for key and shape for shape; else what differs, in one line."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} file {tuple(state[k].shape)} vs model {tuple(v.shape)}" for k, v in expected.items()
              if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(v.shape)]  # fmt: skip
    parts = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
        if items:
            more = f" … ({len(items)} in all)" if len(items) > shown else ""
            parts.append(f"{label} ({len(items)}): " + ", ".join(items[:shown]) + more)
    return "; ".join(parts) or None


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
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.Hardswish()
            )
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
    if not isinstance(state, dict):
        raise ModelError(
            f"{artifact.path} is not a state dict (got {type(state).__name__})",
            hint="save model.state_dict(), not the model object",
        )
    load_weights(model, state, f"{artifact.path}: the weights do not fit the {spec.get('arch')} model its sidecar describes",
                 hint="the file and its sidecar (.json) belong together: rewrite both, or restore the model spec the weights were saved with")  # fmt: skip
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
