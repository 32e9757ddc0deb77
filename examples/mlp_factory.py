"""A deep plain MLP for ``varprop inspect`` (and the README).

Eight ELU layers of width 64 under PyTorch's default init, whose signal fades with depth; compare
with varprop's exact initialization:

    varprop inspect examples/mlp_factory.py:make_model --input-shape 256,64 --init none
    varprop inspect examples/mlp_factory.py:make_model --input-shape 256,64 --init analytic --compare
"""

from __future__ import annotations

from torch import nn

DEPTH = 8
WIDTH = 64


def make_model() -> nn.Module:
    """``DEPTH`` blocks Linear(WIDTH, WIDTH) -> ELU, then a Linear head with 10 outputs.

    Example:
        >>> make_model()(__import__("torch").randn(4, WIDTH)).shape
        torch.Size([4, 10])
    """
    layers: list[nn.Module] = []
    for _ in range(DEPTH):
        layers += [nn.Linear(WIDTH, WIDTH), nn.ELU()]
    layers.append(nn.Linear(WIDTH, 10))
    return nn.Sequential(*layers)
