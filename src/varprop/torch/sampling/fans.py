"""Fans of weight tensors, aware of the module that owns them, and the exact zero-padding coverage of convolutions."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ... import VarpropTypeError, VarpropValueError
from ..graph.modules import CONV_LAYERS, CONV_TRANSPOSE_LAYERS

__all__ = ["WEIGHT_LAYERS", "Fans", "conv_coverage", "coverage", "fans"]

WEIGHT_LAYERS: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.Bilinear,
    *CONV_LAYERS,
    *CONV_TRANSPOSE_LAYERS,
    nn.Embedding,
)


class Fans(tuple[float, float]):
    """``(fan_in, fan_out)``: inputs summed into one output, outputs one input feeds (floats: strided averages)."""

    __slots__ = ()

    def __new__(cls, fan_in: float, fan_out: float) -> Fans:
        return super().__new__(cls, (float(fan_in), float(fan_out)))

    @property
    def fan_in(self) -> float:
        return self[0]

    @property
    def fan_out(self) -> float:
        return self[1]


def _torch_rule(shape: Sequence[int]) -> Fans:
    # torch.nn.init._calculate_fan_in_and_fan_out: dims 0 and 1 times the receptive field.
    receptive = math.prod(shape[2:])
    return Fans(shape[1] * receptive, shape[0] * receptive)


def fans(tensor: torch.Tensor, module: nn.Module | None = None) -> Fans:
    """Fan-in and fan-out of a weight tensor, using the owning module's geometry when it is given.

    Without ``module`` this is torch's rule (``[out, in, *kernel]``). With a module:

    - ``Linear`` ``[out, in]``: ``(in, out)``.
    - ``ConvNd`` ``[out, in/groups, *k]``: fan_in = in/groups * prod(k); fan_out = out/groups * prod(k) / prod(stride)
      (each input feeds out/groups channels at prod(k)/prod(stride) positions on average; torch uses out * prod(k)).
    - ``ConvTransposeNd`` ``[in, out/groups, *k]``: fan_in = in/groups * prod(k) / prod(stride) (the average number
      of taps that reach one output position), fan_out = out/groups * prod(k). torch's rule reads the dims as if this
      were a convolution and swaps the two (Dumoulin & Visin 2016, "A guide to convolution arithmetic", sec. 4).
    - ``Embedding`` ``[num, dim]``: ``(1, dim)``: each output element is one weight.

    Zero padding lowers the number of taps at the borders; ``conv_coverage`` gives that exactly for a known input size.

    Args:
        tensor: the weight, at least 2-D.
        module: the module that owns it (optional).

    Returns:
        ``Fans(fan_in, fan_out)``.

    Raises:
        VarpropValueError: a tensor with fewer than 2 dimensions (no fan without a module saying what it is).

    Example:
        >>> up = nn.ConvTranspose2d(8, 4, kernel_size=4, stride=2)
        >>> fans(up.weight, up)  # torch's rule gives (64, 128)
        (32.0, 64.0)
    """
    if not isinstance(tensor, torch.Tensor):
        raise VarpropTypeError(f"tensor must be a torch.Tensor, got {type(tensor).__name__}")
    shape = tuple(tensor.shape)
    if isinstance(module, nn.Embedding):
        return Fans(1, shape[-1] if shape else 1)
    if len(shape) < 2:
        raise VarpropValueError(
            f"fan in and fan out can not be computed for a tensor with {len(shape)} dimension(s) (shape {shape}); "
            "pass a weight of at least 2 dimensions"
        )
    if isinstance(module, CONV_TRANSPOSE_LAYERS):
        kernel = math.prod(shape[2:])
        stride = math.prod(module.stride)  # type: ignore[arg-type]  # ConvTranspose stride is a tuple of ints
        groups = int(module.groups)  # type: ignore[arg-type]
        return Fans(shape[0] / groups * kernel / stride, shape[1] * kernel)
    if isinstance(module, CONV_LAYERS):
        kernel = math.prod(shape[2:])
        stride = math.prod(module.stride)  # type: ignore[arg-type]  # Conv stride is a tuple of ints
        groups = int(module.groups)  # type: ignore[arg-type]
        return Fans(shape[1] * kernel, shape[0] / groups * kernel / stride)
    return _torch_rule(shape)


def conv_coverage(module: nn.Module, input_shape: Sequence[int]) -> float:
    """Average number of kernel taps that land inside the input, per output position (zero padding only).

    A convolution with zero padding sums fewer than prod(k) inputs at the borders, so the pooled second moment of its
    output is (in/groups) * coverage * Var[w] * E[x^2] with coverage = mean over output positions of the number of
    valid taps. Computed exactly by convolving a one-channel tensor of ones with a kernel of ones (same stride, padding,
    dilation; transposed for ``ConvTranspose``). Other padding modes (reflect, replicate, circular) cover all taps.

    Args:
        module: a ``ConvNd`` or ``ConvTransposeNd``.
        input_shape: shape of the module's input, ``[batch, channels, *spatial]`` or ``[channels, *spatial]``.

    Returns:
        Mean number of taps per output position (prod(k) for an interior position of a convolution).

    Example:
        >>> conv = nn.Conv2d(1, 1, 3, padding=1)
        >>> round(conv_coverage(conv, (1, 1, 4, 4)), 6)  # borders see 6 or 4 of 9 taps
        6.25
    """
    if not isinstance(module, (*CONV_LAYERS, *CONV_TRANSPOSE_LAYERS)):
        raise VarpropTypeError(f"conv_coverage needs a ConvNd or ConvTransposeNd module, got {type(module).__name__}")
    transposed = isinstance(module, CONV_TRANSPOSE_LAYERS)
    if not transposed and getattr(module, "padding_mode", "zeros") != "zeros":
        return float(math.prod(module.kernel_size))  # type: ignore[arg-type]
    return coverage(
        tuple(module.kernel_size),  # type: ignore[arg-type]
        input_shape,
        stride=tuple(module.stride),  # type: ignore[arg-type]
        padding=module.padding,
        dilation=tuple(module.dilation),  # type: ignore[arg-type]
        output_padding=tuple(module.output_padding) if transposed else None,  # type: ignore[arg-type]
    )


def coverage(
    kernel: tuple[int, ...],
    input_shape: Sequence[int],
    *,
    stride: tuple[int, ...] | int = 1,
    padding: Any = 0,
    dilation: tuple[int, ...] | int = 1,
    output_padding: tuple[int, ...] | None = None,
) -> float:
    """``conv_coverage`` for explicit geometry (``output_padding`` not None means a transposed convolution)."""
    spatial = tuple(int(s) for s in input_shape[-len(kernel) :])
    return _coverage(
        tuple(kernel),
        spatial,
        stride,
        padding if isinstance(padding, (str, int)) else tuple(padding),
        dilation,
        output_padding,
    )


@functools.lru_cache(maxsize=1024)
def _coverage(
    kernel: tuple[int, ...],
    spatial: tuple[int, ...],
    stride: tuple[int, ...] | int,
    padding: Any,
    dilation: tuple[int, ...] | int,
    output_padding: tuple[int, ...] | None,
) -> float:
    dims = len(kernel)
    ones = torch.ones((1, 1, *spatial), dtype=torch.float64)
    weight = torch.ones((1, 1, *kernel), dtype=torch.float64)
    conv_fns = (torch.nn.functional.conv1d, torch.nn.functional.conv2d, torch.nn.functional.conv3d)
    transposed_fns = (
        torch.nn.functional.conv_transpose1d,
        torch.nn.functional.conv_transpose2d,
        torch.nn.functional.conv_transpose3d,
    )
    with torch.no_grad():
        if output_padding is not None:
            counts = transposed_fns[dims - 1](
                ones, weight, stride=stride, padding=padding, output_padding=output_padding, dilation=dilation
            )
        else:
            counts = conv_fns[dims - 1](ones, weight, stride=stride, padding=padding, dilation=dilation)
    if counts.numel() == 0:
        return float(math.prod(kernel))
    return float(counts.mean())
