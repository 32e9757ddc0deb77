"""A small plain CNN for ``varprop inspect``: six 3x3 convolutions with SiLU, pooling and a linear head.

Inspect it with its default init, varprop's analytic init and the calibrated one side by side:

    varprop inspect examples/cnn_factory.py:make_model --input-shape 32,3,32,32 --compare
"""

from __future__ import annotations

from torch import nn

CHANNELS = 16


def make_model() -> nn.Module:
    """Conv(3 -> 16) and five Conv(16 -> 16), each followed by SiLU, average pooling after the second
    and fourth, then global average pooling and Linear(16, 10). Input: (N, 3, H, W), H, W >= 4.

    Example:
        >>> make_model()(__import__("torch").randn(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """
    layers: list[nn.Module] = []
    in_channels = 3
    for index in range(6):
        layers += [nn.Conv2d(in_channels, CHANNELS, kernel_size=3, padding=1), nn.SiLU()]
        in_channels = CHANNELS
        if index in (1, 3):
            layers.append(nn.AvgPool2d(2))
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(CHANNELS, 10)]
    return nn.Sequential(*layers)
