"""Count a model's forward FLOPs for one sample by tracing its convolution and linear layers.

FLOPs here are 2 × multiply-accumulates of Conv/Linear layers (the layers that dominate cost on
edge CPUs); normalisation, activations and pooling are not counted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs of one forward pass on a single sample of `input_shape` (without the batch dimension)."""
    import torch
    from torch import nn

    macs = 0

    def conv_hook(module: nn.Conv2d, _inputs: tuple, output: torch.Tensor) -> None:
        nonlocal macs
        per_output = (module.in_channels // module.groups) * int(torch.tensor(module.kernel_size).prod())
        macs += int(output[0].numel()) * per_output  # (C_out, H, W) outputs, each a dot product

    def linear_hook(module: nn.Linear, _inputs: tuple, output: torch.Tensor) -> None:
        nonlocal macs
        macs += int(output[0].numel()) * module.in_features

    handles = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros((1, *input_shape)))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return 2 * macs
