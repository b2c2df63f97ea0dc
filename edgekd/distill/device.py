"""Where training runs and at which precision: the device choice, autocast, a GradScaler for fp16 on CUDA."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from edgekd.config.distill import TrainConfig
from edgekd.errors import RecipeError

if TYPE_CHECKING:
    import torch

__all__ = ["Precision", "check_device", "resolve_device", "to_device"]


def resolve_device(choice: str) -> torch.device:
    """The torch device for `device` = "auto" | "cpu" | "cuda"; "cuda" without a visible GPU is refused."""
    import torch

    if choice == "cuda" and not torch.cuda.is_available():
        raise RecipeError('train.device = "cuda" but torch sees no CUDA GPU (torch.cuda.is_available() is false)',
                          hint='use device = "auto" or "cpu", or install a CUDA build of torch on a GPU machine')  # fmt: skip
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda":
        import torch.distributed as dist

        ranked = dist.is_available() and dist.is_initialized()
        return torch.device("cuda", torch.cuda.current_device() if ranked else 0)
    return torch.device("cpu")


def check_device(config: TrainConfig) -> None:
    """Refuse a device or precision this machine cannot honour, before any training starts."""
    Precision(config.amp, resolve_device(config.device))


class Precision:
    """Automatic mixed precision for one run: the autocast context, and a GradScaler for fp16 on CUDA."""

    def __init__(self, amp: str, device: torch.device) -> None:
        import torch

        if amp == "fp16" and device.type != "cuda":
            raise RecipeError('train.amp = "fp16" needs a CUDA device (fp16 autocast on the CPU is not supported here)',
                              hint='use amp = "bf16" on the CPU, or "off"')  # fmt: skip
        self.name = amp
        self.device_type = device.type
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
        self.scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        import torch

        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)  # skips the step when the scaled gradients overflowed
        self.scaler.update()


def to_device(tensor: torch.Tensor, device: Any) -> torch.Tensor:
    if device is None or tensor.device == device:
        return tensor
    return tensor.to(device, non_blocking=True)
