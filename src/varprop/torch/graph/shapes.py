"""Output shapes of common modules and elementwise operations on ``meta`` tensors, from PyTorch's documented shape
formulas, without running PyTorch's meta kernels (which cost ~0.3-1 ms per call, more than the rest of a trace)."""

from __future__ import annotations

import math
import operator
from typing import Any

import torch
from torch import nn

from .activations import ACTIVATION_MODULE_TYPES
from .modules import DROPOUT_TYPES, NORM_TYPES

__all__ = ["elementwise_meta", "meta_output", "output_shape"]

# Modules whose output has the shape of their (floating) input.
_SHAPE_PRESERVING: tuple[type[nn.Module], ...] = (*ACTIVATION_MODULE_TYPES, *DROPOUT_TYPES, *NORM_TYPES, nn.Identity)


def meta_output(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor | None:
    """The output of a common leaf module on ``meta`` input without running it (elementwise modules, norms, Linear,
    convolutions): running PyTorch's meta kernels costs ~1 ms per call for activations (they go through the reference
    decompositions), more than all the rest of the analytic pass. ``None``: run the module."""
    if len(args) != 1 or kwargs or not isinstance(args[0], torch.Tensor) or args[0].device.type != "meta":
        return None
    x: torch.Tensor = args[0]
    if isinstance(module, nn.RNNBase):
        recurrent: Any = _recurrent_meta(module, x)  # (a tuple: the caller passes it on as the module's output)
        return recurrent  # type: ignore[no-any-return]
    shape = output_shape(module, tuple(x.shape), x.is_floating_point())
    # new_empty, not empty_like: on meta, empty_like imports sympy (0.3 s) on first use
    return None if shape is None else x.new_empty(shape)


def _recurrent_meta(module: nn.RNNBase, x: torch.Tensor) -> Any:
    """(output, h_n) -- (output, (h_n, c_n)) for an LSTM -- of a recurrent module on a ``meta`` input, by the shapes
    of torch's documentation (its meta kernels decompose the recurrence step by step: seconds for an LSTM)."""
    if x.dim() not in (2, 3) or x.shape[-1] != module.input_size:
        return None
    directions = 2 if module.bidirectional else 1
    projected = int(getattr(module, "proj_size", 0) or 0)
    out_size = projected or int(module.hidden_size)
    batch = () if x.dim() == 2 else (int(x.shape[0 if module.batch_first else 1]),)
    output = x.new_empty((*x.shape[:-1], directions * out_size))
    h_n = x.new_empty((directions * int(module.num_layers), *batch, out_size))
    if isinstance(module, nn.LSTM):
        return output, (h_n, x.new_empty((directions * int(module.num_layers), *batch, int(module.hidden_size))))
    return output, h_n


def output_shape(module: nn.Module, shape: tuple[int, ...], floating: bool) -> tuple[int, ...] | None:
    """The output shape of a Linear, ConvNd / ConvTransposeNd, elementwise or normalization module on an input of
    ``shape`` (``floating``: of a floating dtype), from PyTorch's documented shape formulas; ``None``: not known here
    (or an input the module would refuse)."""
    if type(module) is nn.Linear:
        features = int(module.in_features), int(module.out_features)
        if not shape or shape[-1] != features[0]:
            return None
        return (*shape[:-1], features[1])
    if isinstance(module, _SHAPE_PRESERVING) and floating:
        return shape
    if isinstance(module, nn.modules.conv._ConvNd):
        return _conv_output(module, shape)
    if isinstance(module, (nn.TransformerEncoder, nn.TransformerEncoderLayer)) and floating and shape:
        first = module.layers[0] if isinstance(module, nn.TransformerEncoder) else module
        return shape if shape[-1] == first.self_attn.embed_dim else None
    if type(module) is nn.Flatten and shape:
        start, end = module.start_dim % len(shape), module.end_dim % len(shape)
        if start <= end:
            return (*shape[:start], math.prod(shape[start : end + 1]), *shape[end + 1 :])
    return None


def _conv_output(module: nn.modules.conv._ConvNd, shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """A ConvNd / ConvTransposeNd output shape by PyTorch's documented formulas (the first meta convolution of a
    process would otherwise import PyTorch's decompositions: ~0.5 s)."""
    dims = len(module.kernel_size)
    ndim = len(shape)
    if ndim not in (dims + 1, dims + 2) or shape[-dims - 1] != module.in_channels:
        return None
    sizes = []
    for axis in range(dims):
        length, kernel, stride = int(shape[ndim - dims + axis]), module.kernel_size[axis], module.stride[axis]
        dilation, reach = module.dilation[axis], module.dilation[axis] * (module.kernel_size[axis] - 1)
        if module.transposed:
            if isinstance(module.padding, str):
                return None
            padding, extra = module.padding[axis], module.output_padding[axis]
            sizes.append((length - 1) * stride - 2 * padding + dilation * (kernel - 1) + extra + 1)
        elif module.padding == "same":
            sizes.append(length)
        else:
            padding = 0 if module.padding == "valid" else int(module.padding[axis])
            sizes.append((length + 2 * padding - reach - 1) // stride + 1)
    if any(size <= 0 for size in sizes):
        return None  # let PyTorch raise its own error
    return (*shape[: ndim - dims - 1], int(module.out_channels), *sizes)


_ELEMENTWISE_BINARY = frozenset(
    {operator.add, operator.sub, operator.mul, operator.truediv, torch.add, torch.sub, torch.mul, torch.div}
)


def elementwise_meta(target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor | None:
    """The output of ``a + b`` (-, *, /) on ``meta`` tensors of one floating dtype (and Python numbers) by the
    broadcasting rule, without PyTorch's meta kernels (~0.3 ms per call: a residual add per block). ``None``: run
    it."""
    try:
        if target not in _ELEMENTWISE_BINARY or kwargs or len(args) != 2:
            return None
    except TypeError:  # an unhashable target
        return None
    tensors = [arg for arg in args if isinstance(arg, torch.Tensor)]
    if not tensors or any(t.device.type != "meta" or t.dtype != tensors[0].dtype for t in tensors):
        return None
    if not tensors[0].is_floating_point() or any(
        not isinstance(arg, (torch.Tensor, int, float)) or isinstance(arg, bool) for arg in args
    ):
        return None
    shape = _broadcast_shape([tuple(t.shape) for t in tensors])
    return None if shape is None else tensors[0].new_empty(shape)


def _broadcast_shape(shapes: list[tuple[int, ...]]) -> tuple[int, ...] | None:
    """NumPy's broadcasting rule (aligned from the last dim; a size 1 stretches); ``None``: not broadcastable."""
    ndim = max(len(shape) for shape in shapes)
    result = []
    for axis in range(ndim):
        sizes = {shape[len(shape) - ndim + axis] for shape in shapes if len(shape) - ndim + axis >= 0} - {1}
        if len(sizes) > 1:
            return None  # let PyTorch raise its own error
        result.append(sizes.pop() if sizes else 1)
    return tuple(result)
