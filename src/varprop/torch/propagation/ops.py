"""Propagation rules of parameter-free operations: shape changes, arithmetic, concatenation, pooling, softmax.

Assumptions (checked against measurement in tests/test_torch_model_layers.py):

- Sums and products of two different tensors treat them as independent given their means; a residual branch and its
  skip are uncorrelated at initialization because the branch's last weights have zero mean.
- Positions (pixels, tokens) are independent given the channel: a channel holds its mean plus an unknown per-channel
  offset (both constant over positions) plus a part that is independent from position to position. Average pooling of
  n positions divides that last part's variance by n and keeps the rest; exact for white-noise inputs through
  convolutions at initialization, an underestimate for spatially smooth inputs (natural images).
- Max pooling of a non-decreasing activation phi(y) is phi(max of y): exact order statistics of n independent Gaussians
  (grid quadrature of phi against n pdf(z) cdf(z)^(n-1)); otherwise the input is treated as Gaussian per channel.
- Softmax over n entries whose logits have variance v: E[sum_j p_j^2] by Monte Carlo with a fixed seed
  (2^18 logits in all), standard error < 0.5%.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from ...activations import Activation
from ..graph.ir import TensorMeta
from .plan import Context
from .stats import Stat, channel_view, collapse, scalar_stat

__all__ = ["add_stats", "cat_stats", "collision", "move_axis", "mul_stats", "pool", "reshape_stat", "softmax_stat"]

_Z_GRID = np.linspace(-9.0, 9.0, 3601)  # standard-normal grid for order statistics (tails below 1e-18)


def _norm_dim(dim: int, ndim: int) -> int:
    return dim + ndim if dim < 0 else dim


def move_axis(stat: Stat, name: str, args: Sequence[Any], in_meta: Any, out_meta: Any) -> Stat:
    """Track the channel axis through permute/transpose/unsqueeze/squeeze/flatten/view; collapse when it is lost."""
    out_ndim = out_meta.ndim if isinstance(out_meta, TensorMeta) else None
    if stat.axis is None or not isinstance(in_meta, TensorMeta) or not isinstance(out_meta, TensorMeta):
        return replace(collapse(stat), ndim=out_ndim)
    axis, ndim = stat.axis, in_meta.ndim
    if stat.spatial:
        flat = (*in_meta.shape[:axis], math.prod(in_meta.shape[axis:]))
        if tuple(out_meta.shape) == flat and tuple(in_meta.shape[axis + 1 :]) == stat.spatial:
            # flatten(1) of (N, C, *S): feature c * prod(S) + p, the maps' own channel-major order
            return Stat(stat.mean, stat.var, stat.shared, axis, out_ndim)
        stat = channel_view(stat)
    if name == "permute":
        dims = args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else args
        order = [_norm_dim(int(d), ndim) for d in dims]
        return replace(stat, axis=order.index(axis), ndim=out_ndim)
    if name in ("transpose", "swapaxes", "swapdims"):
        first, second = (_norm_dim(int(d), ndim) for d in args[:2])
        new_axis = second if axis == first else first if axis == second else axis
        return replace(stat, axis=new_axis, ndim=out_ndim)
    if name in ("t", "T", "mT") and ndim >= 2:
        new_axis = {ndim - 1: ndim - 2, ndim - 2: ndim - 1}.get(axis, axis)
        return replace(stat, axis=new_axis, ndim=out_ndim)
    return reshape_stat(stat, in_meta.shape, out_meta.shape)


def reshape_stat(stat: Stat, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> Stat:
    """A reshape keeps the channels when the channel axis survives whole or merges with neighbours (flatten)."""
    if stat.axis is None or stat.axis >= len(in_shape):
        return replace(collapse(stat), ndim=len(out_shape))
    outer = math.prod(in_shape[: stat.axis])
    channels = in_shape[stat.axis]
    if channels != stat.channels:
        return replace(collapse(stat), ndim=len(out_shape))
    running = 1
    for position, size in enumerate(out_shape):
        before, after = running, running * size
        if outer % before == 0 and after % (outer * channels) == 0 and after >= outer * channels:
            repeat_before = outer // before
            repeat_after = after // (outer * channels)
            if repeat_before * repeat_after * channels > 1 << 22:
                break
            mean = np.tile(np.repeat(stat.mean, repeat_after), repeat_before)
            var = np.tile(np.repeat(stat.var, repeat_after), repeat_before)
            return Stat(mean, var, stat.shared, position, len(out_shape))
        running = after
        if running > outer * channels:
            break
    return replace(collapse(stat), ndim=len(out_shape))


def _broadcast(stat: Stat, like: Stat) -> Stat:
    """A channel-less Stat repeated over the channels (and positions) of ``like``."""
    count = like.mean.size
    return Stat(
        np.full(count, stat.mean[0]), np.full(count, stat.var[0]), stat.shared, like.axis, like.ndim, like.spatial
    )


def _aligned(first: Stat, second: Stat) -> tuple[Stat, Stat]:
    if first.mean.size == 1 and second.axis is not None:
        return _broadcast(first, second), second
    if second.mean.size == 1 and first.axis is not None:
        return first, _broadcast(second, first)
    if first.spatial or second.spatial:
        if first.spatial == second.spatial and first.axis == second.axis and first.mean.size == second.mean.size:
            return first, second
        first, second = channel_view(first), channel_view(second)
    if first.axis is not None and first.axis == second.axis and first.channels == second.channels:
        return first, second
    return collapse(first), collapse(second)


def add_stats(first: Stat, second: Stat, sign: float = 1.0) -> Stat:
    """first + sign * second, the two independent given their means (a zero-mean branch and its skip)."""
    a, b = _aligned(first, second)
    if a.channels != b.channels:
        a, b = collapse(a), collapse(b)
    axis = a.axis if a.axis is not None else b.axis
    return Stat(a.mean + sign * b.mean, a.var + b.var, a.shared + b.shared, axis, a.ndim or b.ndim, a.spatial)


def shift(stat: Stat, constant: float) -> Stat:
    return replace(stat, mean=stat.mean + constant)


def mul_stats(first: Stat, second: Stat) -> Stat:
    """Product of independent tensors: E[ab] = E[a]E[b], E[a^2 b^2] = E[a^2]E[b^2] (gating, masks), per channel when
    both track the same channels (a squeeze-excitation gate ``(N, C, 1, 1)`` times its ``(N, C, H, W)`` input: each
    channel's gate multiplies that channel, so the pooled second moment is the mean over channels of the products,
    not the product of the means), else pooled."""
    a, b = channel_view(first), channel_view(second)
    if a.axis is not None and a.axis == b.axis and a.channels == b.channels > 1 and a.shared == b.shared == 0.0:
        means = a.mean * b.mean
        second_moments = (a.mean * a.mean + a.var) * (b.mean * b.mean + b.var)
        return Stat(means, np.maximum(second_moments - means * means, 0.0), 0.0, a.axis, a.ndim or b.ndim)
    a, b = collapse(first), collapse(second)
    mean = a.pooled_mean * b.pooled_mean
    return scalar_stat(mean, a.second_moment * b.second_moment, a.ndim or b.ndim)


def square_stat(stat: Stat) -> Stat:
    """x * x for Gaussian x: E[x^2] and E[x^4] = mu^4 + 6 mu^2 v + 3 v^2."""
    a = collapse(stat)
    mu, v = a.pooled_mean, a.variance
    return scalar_stat(mu * mu + v, mu**4 + 6 * mu * mu * v + 3 * v * v, a.ndim)


def matmul_stats(first: Stat, second: Stat, inner: int) -> Stat:
    """sum over d of a_d b_d with independent entries: mean D mu_a mu_b, E[.^2] = D q_a q_b + D(D-1) (mu_a mu_b)^2."""
    a, b = collapse(first), collapse(second)
    product_mean = a.pooled_mean * b.pooled_mean
    second_moment = inner * a.second_moment * b.second_moment + inner * (inner - 1) * product_mean**2
    return scalar_stat(inner * product_mean, second_moment, a.ndim)


def cat_stats(stats: Sequence[Stat], sizes: Sequence[int], dim: int, ndim: int | None) -> Stat:
    """Concatenation: exact per-channel when joining along the channel axis, else a size-weighted mixture."""
    along_channels = all(s.axis is not None and s.axis == dim for s in stats)
    if along_channels and all(s.channels == n for s, n in zip(stats, sizes, strict=True)):
        return Stat(
            np.concatenate([s.mean for s in stats]),
            np.concatenate([s.var for s in stats]),
            float(np.average([s.shared for s in stats], weights=sizes)),
            dim,
            ndim,
        )
    total = float(sum(sizes))
    weights = [n / total for n in sizes]
    mean = sum(w * s.pooled_mean for w, s in zip(weights, stats, strict=False))
    second = sum(w * s.second_moment for w, s in zip(weights, stats, strict=False))
    return scalar_stat(mean, second, ndim)


def _window_counts(
    spatial: Sequence[int],
    out_spatial: Sequence[int],
    kernel: Sequence[int] | None,
    stride: Sequence[int] | None,
    padding: Sequence[int],
    ceil_mode: bool,
) -> np.ndarray:
    """Number of real (not padded) inputs in each output window, flattened over output positions."""
    dims = len(spatial)
    if kernel is None:  # adaptive pooling: window i covers [floor(i In / Out), ceil((i+1) In / Out))
        per_dim = []
        for size_in, size_out in zip(spatial, out_spatial, strict=False):
            index = np.arange(size_out)
            start = np.floor(index * size_in / size_out)
            stop = np.ceil((index + 1) * size_in / size_out)
            per_dim.append(stop - start)
        grids = np.meshgrid(*per_dim, indexing="ij")
        return np.asarray(np.prod(np.stack(grids), axis=0).ravel())
    pools = (torch.nn.functional.avg_pool1d, torch.nn.functional.avg_pool2d, torch.nn.functional.avg_pool3d)
    ones = torch.ones((1, 1, *spatial), dtype=torch.float64)
    counts = pools[dims - 1](
        ones,
        tuple(kernel),
        tuple(stride or kernel),
        tuple(padding),
        ceil_mode,
        False,  # count_include_pad=False: the average of ones is 1; times the window size below
    )
    valid = pools[dims - 1](ones, tuple(kernel), tuple(stride or kernel), tuple(padding), ceil_mode, True)
    # valid = n / K (padding counted as zeros), counts = 1 where any input: n = valid * K.
    size = math.prod(kernel)
    return np.asarray((valid * size).reshape(-1).numpy() * (counts.reshape(-1).numpy() > 0))


@functools.lru_cache(maxsize=256)
def _max_moments(count: int) -> tuple[float, float]:
    """E[M], E[M^2] for the maximum M of ``count`` independent standard normals (grid quadrature)."""
    density = _max_density(count)
    return float(np.trapezoid(_Z_GRID * density, _Z_GRID)), float(np.trapezoid(_Z_GRID**2 * density, _Z_GRID))


@functools.lru_cache(maxsize=256)
def _max_density(count: int) -> np.ndarray:
    from scipy.special import ndtr

    pdf = np.exp(-0.5 * _Z_GRID**2) / math.sqrt(2 * math.pi)
    return np.asarray(count * pdf * ndtr(_Z_GRID) ** (count - 1))


@functools.lru_cache(maxsize=64)
def _is_monotone_cached(key: tuple[object, ...], act: Activation) -> bool:
    grid = np.linspace(-50.0, 50.0, 200001)
    values = act.function(grid)
    return bool(np.all(np.diff(values) >= -1e-12 * np.maximum(1.0, np.abs(values[1:]))))


def pool(
    ctx: Context,
    kind: str,
    x: Stat,
    in_meta: Any,
    out_meta: Any,
    *,
    kernel: Sequence[int] | None,
    stride: Sequence[int] | None = None,
    padding: Sequence[int] = (),
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    pre_activation: tuple[Activation, Stat] | None = None,
) -> Stat:
    """Average (``kind="avg"``) or max (``"max"``) pooling over spatial positions; ``kernel=None`` for adaptive."""
    if not isinstance(in_meta, TensorMeta) or not isinstance(out_meta, TensorMeta):
        return x
    in_shape, out_shape = in_meta.shape, out_meta.shape
    dims = len(kernel) if kernel is not None else None
    if dims is None:
        dims = len(out_shape) - (2 if len(out_shape) >= 3 else 1)
    dims = max(1, min(dims, len(in_shape) - 1))
    spatial, out_spatial = in_shape[-dims:], out_shape[-dims:]
    padding = tuple(padding) if padding else (0,) * dims
    counts = _window_counts(spatial, out_spatial, kernel, stride, padding, ceil_mode)
    if kind == "avg" and x.spatial and x.spatial == tuple(spatial) and x.axis is not None:
        return _pool_maps(x, spatial, out_spatial, counts, kernel, stride, padding, ceil_mode, count_include_pad)
    x = channel_view(x)
    if pre_activation is not None:
        pre_activation = (pre_activation[0], channel_view(pre_activation[1]))
    counts = counts[counts > 0] if np.any(counts > 0) else np.ones(1)
    size = float(math.prod(kernel)) if kernel is not None else 1.0
    stat = x if x.axis is not None and x.axis < len(in_shape) - dims else collapse(x)
    ndim = len(out_shape)
    if kind == "avg":
        if kernel is not None and count_include_pad:
            scale, var_factor = counts / size, counts / size**2
        else:
            scale, var_factor = np.ones_like(counts), 1.0 / counts
        mean_scale = float(scale.mean())
        spread = float(scale.var())
        return Stat(
            stat.mean * mean_scale,
            stat.var * float(var_factor.mean()) + stat.mean**2 * spread + stat.shared * spread,
            stat.shared * mean_scale**2,
            stat.axis,
            ndim,
        )
    values, frequency = np.unique(counts.astype(np.int64), return_counts=True)
    weights = frequency / frequency.sum()
    if pre_activation is not None and pre_activation[1].shared == 0.0:
        act, pre = pre_activation
        if _is_monotone_cached(act.key, act) and (pre.axis == stat.axis or pre.channels == 1):
            first = np.zeros_like(pre.mean)
            second = np.zeros_like(pre.mean)
            points = pre.mean[:, None] + np.sqrt(pre.var)[:, None] * _Z_GRID[None, :]
            phi = act.function(points.ravel()).reshape(points.shape)
            for count, weight in zip(values, weights, strict=False):
                density = _max_density(int(count))
                first += weight * np.trapezoid(phi * density, _Z_GRID, axis=1)
                second += weight * np.trapezoid(phi * phi * density, _Z_GRID, axis=1)
            return Stat(first, np.maximum(second - first * first, 0.0), 0.0, pre.axis, ndim)
    ctx.note_unknown("max pooling of a non-monotone or non-activation input", "input treated as Gaussian per channel")
    e1 = sum(w * _max_moments(int(c))[0] for c, w in zip(values, weights, strict=False))
    e2 = sum(w * _max_moments(int(c))[1] for c, w in zip(values, weights, strict=False))
    root = np.sqrt(stat.var)
    mean = stat.mean + root * e1
    second = stat.mean**2 + 2 * stat.mean * root * e1 + stat.var * e2
    return Stat(mean, np.maximum(second - mean * mean, 0.0), stat.shared, stat.axis, ndim)


def _pool_maps(
    x: Stat,
    spatial: Sequence[int],
    out_spatial: Sequence[int],
    counts: np.ndarray,
    kernel: Sequence[int] | None,
    stride: Sequence[int] | None,
    padding: Sequence[int],
    ceil_mode: bool,
    count_include_pad: bool,
) -> Stat:
    """Average pooling of mean and variance maps: the mean map is pooled like the tensor; the variance map sums
    independent positions, Var = sum(v) / divisor^2 with divisor = window size K (padding counted) or n (not)."""
    dims = len(spatial)
    shape = (1, x.channels, *spatial)
    means = torch.as_tensor(x.mean, dtype=torch.float64).reshape(shape)
    variances = torch.as_tensor(x.var, dtype=torch.float64).reshape(shape)
    functional = torch.nn.functional
    if kernel is None:
        adaptive = (functional.adaptive_avg_pool1d, functional.adaptive_avg_pool2d, functional.adaptive_avg_pool3d)
        size: Any = tuple(out_spatial)
        pool_mean = adaptive[dims - 1](means, size)
        divisor = torch.as_tensor(counts, dtype=torch.float64).reshape(1, 1, *out_spatial)
        pool_var = adaptive[dims - 1](variances, size) / divisor
    else:
        pools = (functional.avg_pool1d, functional.avg_pool2d, functional.avg_pool3d)
        arguments = (tuple(kernel), tuple(stride or kernel), tuple(padding), ceil_mode, count_include_pad)
        pool_mean = pools[dims - 1](means, *arguments)
        divisor = (
            torch.full_like(pool_mean, float(math.prod(kernel)))
            if count_include_pad
            else torch.as_tensor(np.maximum(counts, 1.0), dtype=torch.float64).reshape(1, 1, *pool_mean.shape[2:])
        )
        pool_var = pools[dims - 1](variances, *arguments) / divisor
    out = tuple(int(v) for v in pool_mean.shape[2:])
    keep = out if math.prod(out) > 1 else ()
    return Stat(pool_mean.reshape(-1).numpy(), pool_var.reshape(-1).numpy(), x.shared, x.axis, len(out) + 2, keep)


def reduce_mean(stat: Stat, in_meta: Any, dims: Sequence[int] | None, keepdim: bool, out_meta: Any) -> Stat:
    """x.mean(dims): positions average out their independent part; channels average everything."""
    if not isinstance(in_meta, TensorMeta):
        return collapse(stat)
    ndim = in_meta.ndim
    reduced = list(range(ndim)) if dims is None else [_norm_dim(int(d), ndim) for d in dims]
    if stat.spatial and stat.axis is not None:
        positions = list(range(stat.axis + 1, ndim))
        if sorted(reduced) == positions:  # global average of the maps: exact, fluctuations independent
            count = math.prod(stat.spatial)
            out_ndim = out_meta.ndim if isinstance(out_meta, TensorMeta) else None
            return Stat(
                stat.mean.reshape(-1, count).mean(axis=1),
                stat.var.reshape(-1, count).mean(axis=1) / count,
                stat.shared,
                stat.axis,
                out_ndim,
            )
        stat = channel_view(stat)
    count = math.prod(in_meta.shape[d] for d in reduced) if reduced else 1
    out_ndim = out_meta.ndim if isinstance(out_meta, TensorMeta) else None
    if stat.axis is not None and stat.axis not in reduced:
        new_axis = stat.axis if keepdim else stat.axis - sum(1 for d in reduced if d < stat.axis)
        return Stat(stat.mean, stat.var / count, stat.shared, new_axis, out_ndim)
    flat = collapse(stat)
    if stat.axis is not None:  # channels averaged: channel means and offsets average out as independent values
        channels = in_meta.shape[stat.axis]
        return Stat(flat.mean, np.array([float(np.mean(stat.var)) / count]), flat.shared / channels, None, out_ndim)
    return Stat(flat.mean, flat.var / count, flat.shared, None, out_ndim)


@functools.lru_cache(maxsize=8)
def _standard_logits(count: int) -> np.ndarray:
    """The standard normal draws behind ``collision`` for ``count`` keys (seed 0; kept: the layers of a transformer
    ask for the same count at slightly different variances, and drawing them is half the cost), in float32: the
    softmax on them is then 3x faster, and its rounding (~1e-7) is far below the Monte Carlo error (~0.5%)."""
    rows = max(64, (1 << 18) // count)
    # (drawn in float64 a block of rows at a time: the same stream, without a float64 copy of the whole table)
    generator = np.random.default_rng(0)
    draws = np.empty((rows, count), dtype=np.float32)
    step = max(1, (1 << 14) // count)
    for start in range(0, rows, step):
        draws[start : start + step] = generator.standard_normal((min(step, rows - start), count))
    draws.flags.writeable = False
    return draws


@functools.lru_cache(maxsize=8)
def _standard_logits_max(count: int) -> np.ndarray:
    """The row maxima of ``_standard_logits(count)``, as a column: for s >= 0 the maximum of the rounded products
    s * x_j is s times the maximum (rounding is monotone), so ``collision`` need not search each row again."""
    maxima: np.ndarray = _standard_logits(count).max(axis=1, keepdims=True)
    maxima.flags.writeable = False
    return maxima


@functools.lru_cache(maxsize=512)
def collision(count: int, logit_var: float) -> float:
    """E[sum_j p_j^2] for p = softmax of ``count`` i.i.d. N(0, logit_var) logits (Monte Carlo, seed 0, the same
    standard normal draws for every variance: a smooth function of ``logit_var``)."""
    if count <= 1:
        return 1.0
    scale = np.float32(math.sqrt(max(logit_var, 0.0)))
    weights = _standard_logits(count) * scale
    weights -= _standard_logits_max(count) * scale  # (= weights.max(axis=1, keepdims=True), bit for bit)
    np.exp(weights, out=weights)
    weights /= weights.sum(axis=1, keepdims=True)
    return float(np.mean(np.einsum("ij,ij->i", weights, weights), dtype=np.float64))


def softmax_stat(stat: Stat, count: int, ndim: int | None) -> Stat:
    """softmax over ``count`` entries: mean 1/count, E[p^2] = E[sum p^2] / count."""
    flat = collapse(stat)
    logit_var = float(flat.var[0])
    return scalar_stat(1.0 / count, collision(count, round(logit_var, 9)) / count, ndim)
