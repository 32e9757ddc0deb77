"""Names and small conversions shared by the propagation rules: one canonical name per operation, argument access,
and the moments of constant and integer tensors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

import numpy as np

from ..graph.ir import Node, TensorMeta
from .stats import IndexStat, Stat, scalar_stat

__all__ = [
    "Unknown",
    "arg",
    "as_tuple",
    "canonical",
    "carries_signal",
    "constant_indices",
    "first_unknown",
    "index_values",
    "is_integer_constant",
    "kept_embedding",
    "output_stats",
    "tensor_stat",
]


@dataclass(frozen=True)
class Unknown:
    """A tensor whose moments varprop does not have: it depends on the input through an operation that could not be
    propagated (named in ``reason``). Everything computed from it is unknown too, but for a normalization's output;
    a weight layer fed by it is still initialized (as for E[x^2] = 1) and its row says that it has no prediction."""

    reason: str
    ndim: int | None = None


ALIASES = {
    "iadd": "add",
    "radd": "add",
    "add_": "add",
    "isub": "sub",
    "sub_": "sub",
    "imul": "mul",
    "rmul": "mul",
    "mul_": "mul",
    "truediv": "div",
    "itruediv": "div",
    "div_": "div",
    "true_divide": "div",
    "rtruediv": "rdiv",
    "concat": "cat",
    "concatenate": "cat",
    "subtract": "sub",
    "multiply": "mul",
    "divide": "div",
    "negative": "neg",
    "neg_": "neg",
    "flatten": "flatten",
    "reshape": "reshape",
    "pos": "identity",
}
AXIS_OPS = frozenset(
    {
        "view",
        "reshape",
        "flatten",
        "unflatten",
        "view_as",
        "reshape_as",
        "permute",
        "transpose",
        "t",
        "T",
        "mT",
        "swapaxes",
        "swapdims",
        "movedim",
        "squeeze",
        "unsqueeze",
    }
)
COLLAPSE_OPS = frozenset(
    {
        "expand",
        "expand_as",
        "repeat",
        "tile",
        "flip",
        "roll",
        "narrow",
        "select",
        "index_select",
        "interpolate",
        "upsample",
        "pixel_shuffle",
        "pixel_unshuffle",
        "masked_fill",
    }
)
SPLIT_OPS = frozenset({"chunk", "split", "unbind", "tensor_split"})
VALUE_OPS = frozenset({"size", "dim", "shape", "numel", "ndimension", "getattr", "device", "dtype"})
POOL_FUNCTIONS = {
    "avg_pool1d": "avg",
    "avg_pool2d": "avg",
    "avg_pool3d": "avg",
    "max_pool1d": "max",
    "max_pool2d": "max",
    "max_pool3d": "max",
    "adaptive_avg_pool1d": "avg",
    "adaptive_avg_pool2d": "avg",
    "adaptive_avg_pool3d": "avg",
    "adaptive_max_pool1d": "max",
    "adaptive_max_pool2d": "max",
    "adaptive_max_pool3d": "max",
}


def canonical(node: Node) -> str:
    """One name per operation whatever its spelling (``operator.add``, ``torch.add``, ``x.add_``, ``x.__add__``)."""
    if node.op == "method":
        name = str(node.target)
    elif node.op == "function":
        name = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", repr(node.target))
    else:
        return node.op
    if name.startswith("__") and name.endswith("__"):
        name = name[2:-2]
    return ALIASES.get(name, name)


def arg(args: Sequence[Any], kwargs: dict[str, Any], index: int, name: str, default: Any = None) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else default


def as_tuple(value: Any, dims: int) -> tuple[int, ...]:
    if isinstance(value, (tuple, list)):
        return tuple(int(v) for v in value)
    return (int(value),) * dims


CASTS = frozenset({"float", "double", "half", "bfloat16", "to", "type", "type_as"})


def index_values(stat: IndexStat, ndim: int | None) -> Stat:
    """An integer tensor cast to floats: the moments of its values, from the example's histogram."""
    counts = stat.counts
    if counts is None or counts.sum() == 0:
        return scalar_stat(0.0, 1.0, ndim)
    values = np.arange(counts.size, dtype=np.float64)
    weights = counts / counts.sum()
    return scalar_stat(float(values @ weights), float((values * values) @ weights), ndim)


def tensor_stat(meta: TensorMeta) -> Stat | IndexStat:
    """Moments of a parameter, buffer or constant tensor (constant over samples; its spread counts as variance)."""
    value = meta.value
    if value is None:
        return scalar_stat(0.0, 1.0, meta.ndim)
    if not value.is_floating_point():
        return IndexStat(None, meta.ndim)
    data = value.detach().double()
    mean = float(data.mean()) if data.numel() else 0.0
    return scalar_stat(mean, float((data * data).mean()) if data.numel() else 0.0, meta.ndim)


def carries_signal(value: Any) -> bool:
    """Whether a propagated value (or anything nested in it) depends on the model's input: a ``Stat`` or an
    ``IndexStat``. ``TensorMeta`` values (parameters, buffers, constants such as position ids) and plain Python values
    do not."""
    if isinstance(value, (Stat, IndexStat, Unknown)):
        return True
    if isinstance(value, (tuple, list)):
        return any(carries_signal(item) for item in value)
    if isinstance(value, dict):
        return any(carries_signal(item) for item in value.values())
    if isinstance(value, slice):
        return any(carries_signal(item) for item in (value.start, value.stop, value.step))
    return False


def first_unknown(value: Any) -> Unknown | None:
    """The first ``Unknown`` nested in a propagated value, or ``None``."""
    if isinstance(value, Unknown):
        return value
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (tuple, list)) else ()
    for item in items:
        found = first_unknown(item)
        if found is not None:
            return found
    return None


def is_integer_constant(value: Any) -> TypeGuard[TensorMeta]:
    """A constant integer or boolean tensor (position ids, cache positions, masks built from ``arange``)."""
    return isinstance(value, TensorMeta) and not value.dtype.is_floating_point and not value.dtype.is_complex


def constant_indices(meta: TensorMeta) -> IndexStat:
    """A constant integer tensor used as indices (``nn.Embedding(torch.arange(T))``): its histogram when its value
    was kept (a real forward pass), none otherwise (an embedding then weights its rows uniformly)."""
    value = meta.value
    if value is None or value.device.type == "meta" or not value.numel() or int(value.min()) < 0:
        return IndexStat(None, meta.ndim)
    return IndexStat(np.bincount(value.detach().reshape(-1).cpu().numpy()), meta.ndim)


def output_stats(value: Any) -> list[Stat]:
    """Flatten a model output (nested tuples/dicts of values) into its ``Stat`` entries."""
    found: list[Stat] = []
    if isinstance(value, Stat):
        found.append(value)
    elif isinstance(value, (tuple, list)):
        for item in value:
            found.extend(output_stats(item))
    elif isinstance(value, dict):
        for item in value.values():
            found.extend(output_stats(item))
    return found


def kept_embedding(indices: Any, weight: Any, out_meta: Any) -> Stat:
    """The output of an embedding whose table is kept (``init_model(keep=...)``): the per-dimension mean and
    variance of its rows, weighted by the index histogram (uniform without one)."""
    rows = weight.detach().double().cpu().numpy()
    counts = indices.counts if isinstance(indices, IndexStat) else None
    if counts is None and is_integer_constant(indices):
        counts = constant_indices(indices).counts
    if counts is not None and counts.size <= rows.shape[0] and counts.sum() > 0:
        weights = np.zeros(rows.shape[0])
        weights[: counts.size] = counts / counts.sum()
    else:
        weights = np.full(rows.shape[0], 1.0 / rows.shape[0])
    mean = weights @ rows
    var = np.maximum(weights @ (rows * rows) - mean * mean, 0.0)
    ndim = out_meta.ndim if isinstance(out_meta, TensorMeta) else None
    return Stat(mean, var, 0.0, None if ndim is None else ndim - 1, ndim)
