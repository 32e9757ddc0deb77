"""Zero-mean draws of a given standard deviation (normal, truncated normal, uniform, orthogonal), the choices they
take, and what a tensor must be to be drawn into (not on the meta device; a ``DTensor`` is told apart without
importing ``torch.distributed``)."""

from __future__ import annotations

import math
import sys
from typing import Any

import torch
from torch import nn

from ... import VarpropTypeError, VarpropValueError
from ...gains import DISTRIBUTIONS, TRUNCATED_NORMAL_STD
from .orthogonal import ORTHOGONAL_DISTRIBUTIONS, orthogonal_unit

__all__ = [
    "LOW_PRECISION",
    "TORCH_DISTRIBUTIONS",
    "check_choice",
    "check_generator",
    "check_materialized",
    "draw",
    "fill",
    "is_dtensor",
    "is_sharded",
]

# A uniform distribution on (-a, a) has standard deviation a / sqrt(3).
_UNIFORM_BOUND_PER_STD = math.sqrt(3.0)
LOW_PRECISION = (torch.float16, torch.bfloat16)
# The core's distributions and the convolution-only delta-orthogonal kernel (its std is the normal's, too).
TORCH_DISTRIBUTIONS: tuple[str, ...] = (*DISTRIBUTIONS, "delta_orthogonal")


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    """Raise ``VarpropValueError`` naming ``value`` and the valid ``choices`` unless ``value`` is one of them."""
    if not isinstance(value, str) or value not in choices:
        raise VarpropValueError(f"unknown {name} {value!r}; valid choices: {', '.join(map(repr, choices))}")


def check_generator(generator: Any) -> torch.Generator | None:
    """``None`` or a ``torch.Generator``; anything else is a ``VarpropTypeError``."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise VarpropTypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    return generator


def draw(
    shape: torch.Size | tuple[int, ...],
    std: float,
    *,
    dtype: torch.dtype,
    device: torch.device,
    distribution: str = "normal",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A new tensor of zero-mean weights with standard deviation ``std`` (half precision sampled in float32).

    ``normal``: N(0, std^2). ``truncated_normal``: N(0, (std / 0.8796...)^2) cut at +-2 of its own std, whose realized
    std is ``std``. ``uniform``: U(-a, a) with a = sqrt(3) std. ``orthogonal``/``delta_orthogonal``: ``std`` times the
    unit tensor that ``varprop.torch.sampling.orthogonal.orthogonal_unit`` makes of a standard normal draw. float16 and
    bfloat16 draw in float32 and round once, so the realized std is right up to the format's rounding (torch's samplers
    for them are coarser).
    """
    work_dtype = torch.float32 if dtype in LOW_PRECISION else dtype
    out = torch.empty(shape, dtype=work_dtype, device=device)
    if out.numel() == 0:
        return out.to(dtype)
    fill(out, std, distribution, generator)
    return out if work_dtype == dtype else out.to(dtype)


def fill(out: torch.Tensor, std: float, distribution: str, generator: torch.Generator | None) -> None:
    """Fill ``out`` in place with zero-mean values of standard deviation ``std`` (see ``draw``)."""
    if distribution == "normal":
        out.normal_(0.0, std, generator=generator)
    elif distribution == "truncated_normal":
        base = std / TRUNCATED_NORMAL_STD
        torch.nn.init.trunc_normal_(out, 0.0, base, -2.0 * base, 2.0 * base, generator=generator)
    elif distribution == "uniform":
        bound = std * _UNIFORM_BOUND_PER_STD
        out.uniform_(-bound, bound, generator=generator)
    elif distribution in ORTHOGONAL_DISTRIBUTIONS:
        out.normal_(0.0, 1.0, generator=generator)
        out.copy_(orthogonal_unit(out, distribution)).mul_(std)
    else:  # pragma: no cover - callers validate
        check_choice("distribution", distribution, TORCH_DISTRIBUTIONS)


def is_dtensor(value: object) -> bool:
    """Whether ``value`` is a ``torch.distributed.tensor.DTensor`` (without importing torch.distributed)."""
    module = sys.modules.get("torch.distributed.tensor")
    dtensor = getattr(module, "DTensor", None)
    return dtensor is not None and isinstance(value, dtensor)


def check_materialized(tensor: torch.Tensor, what: str) -> None:
    """Raise ``VarpropValueError`` for a tensor on the meta device (it has a shape but no storage to fill)."""
    if tensor.device.type == "meta":
        raise VarpropValueError(
            f"{what} is on the meta device (shape {tuple(tensor.shape)}, no storage to initialize); allocate it "
            "first with model.to_empty(device=...) (after fully_shard for a sharded model), then initialize"
        )


def is_sharded(model: nn.Module) -> bool:
    """Whether ``model`` holds ``DTensor`` parameters or FSDP2 modules (a forward pass can leave an FSDP2 module's
    own parameters unsharded, plain tensors, until it is resharded); without importing ``torch.distributed``."""
    if any(is_dtensor(param) for param in model.parameters()):
        return True
    fsdp = sys.modules.get("torch.distributed.fsdp")
    module_type = getattr(fsdp, "FSDPModule", None)
    return module_type is not None and any(isinstance(module, module_type) for module in model.modules())
