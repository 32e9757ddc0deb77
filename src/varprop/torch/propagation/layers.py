"""Propagation rules of the weight layers: Linear, ConvNd, ConvTransposeNd and Embedding.

Weight layers (He et al. 2015): with zero-mean weights of variance sigma^2 and bias 0, the output's pooled second
moment is fan * sigma^2 * E[x^2], so sigma^2 = target / (fan * E[x^2]). ``fan`` counts the inputs that really reach an
output: in/groups * (mean number of kernel taps inside the zero-padded input, ``conv_coverage``).

Realized weights (``realized=True``): the mean-field value holds on average over weight draws; once W is drawn, unit i
has mean m_i = sum_j W_ij mu_j and variance s_i = sum_j W_ij^2 v_j given the input's per-unit means mu_j and variances
v_j (units assumed independent). The layer is rescaled so that mean_i(m_i^2 + s_i) = target exactly, and the per-unit
(m_i, s_i) flow on to the next activation. This removes most of the finite-width drift of deep networks (measured in
docs/benchmarks.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 - torch's own convention

from ..graph.ir import shape_of
from ..graph.modules import CONV_TRANSPOSE_LAYERS
from ..sampling.fans import conv_coverage
from .plan import Context, LayerPlan, Spatial, SpatialMap, as_numpy, std_for
from .stats import IndexStat, Stat, as_array, channel_view, collapse, scalar_stat

__all__ = [
    "embedding",
    "input_maps",
    "module_weight_layer",
    "weight_layer",
]


def _sums_over_taps(
    weight: torch.Tensor, layout: str, groups: int
) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """The sum over kernel taps of W as an ``[out, in/groups]`` matrix, and the function that turns a tensor shaped
    like W (its squares) into the same matrix layout."""
    if layout == "linear":
        return weight, lambda values: values
    if layout == "matmul":  # x @ W with W [in, out]
        return weight.t(), lambda values: values.t()
    taps = tuple(range(2, weight.dim()))

    def matrix(values: torch.Tensor) -> torch.Tensor:
        total = values.sum(dim=taps) if taps else values
        if layout == "conv":
            return total
        # conv_transpose: [in, out/groups] per group -> [out, in/groups]
        in_channels, out_per_group = total.shape
        in_per_group = in_channels // groups
        return total.reshape(groups, in_per_group, out_per_group).transpose(1, 2).reshape(-1, in_per_group)

    return matrix(weight), matrix


def _per_unit_input(x: Stat, in_channels: int, axis: int | None, spatial: tuple[int, ...] = ()) -> Stat:
    """The input's per-unit Stat along the contracted axis, or its collapse (broadcast) when channels do not match;
    spatial maps are kept only when the consumer works on that map shape (a convolution)."""
    if x.spatial and x.spatial != spatial:
        x = channel_view(x)
    if x.channels == in_channels and x.axis is not None and x.axis == axis:
        return x
    return collapse(x)


_FLOAT32_TINY = float(np.finfo(np.float32).tiny)  # the smallest normal float32


def _realized_output(
    x: Stat, weight: torch.Tensor, layout: str, groups: int, fraction: float, squares_into: torch.Tensor | None = None
) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-unit output means and variances, and the unknown-offset variance, for the drawn weights. ``weight`` is a
    work buffer (``Context.read``): a float32 one is squared in place (no second weight-sized tensor), unless
    ``squares_into`` (a buffer of its size) is given for the squares (``weight`` is then only read)."""
    w = weight.detach().float()
    total, as_matrix = _sums_over_taps(w, layout, groups)
    out_units, in_per_group = total.shape
    in_channels = in_per_group * groups
    inputs = np.empty((2, in_channels), dtype=np.float32)
    inputs[0], inputs[1] = x.mean, x.var  # (broadcast when the input's channels are collapsed)
    # float32 subnormals (dead units of deep ReLU networks) make the products below ~10x slower on x86
    inputs[np.abs(inputs) < _FLOAT32_TINY] = 0.0
    both = torch.from_numpy(inputs).to(total.device)
    mean_in, var_in = both[0], both[1]
    shape_w = (groups, out_units // groups, in_per_group)

    def product(matrix: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
        if groups == 1:
            return torch.mv(matrix, vector)
        return torch.bmm(matrix.reshape(shape_w), vector.reshape(groups, in_per_group, 1)).reshape(-1)

    mean_out = product(total, mean_in)
    # (of W summed over taps: for a Linear the squares below, for a convolution a small matrix of its own)
    total_squares = None if layout in ("linear", "matmul") or x.shared <= 0.0 else total * total
    if squares_into is None or weight.dtype != torch.float32:  # (other dtypes: w is a float32 copy)
        squares = w.mul_(w)  # W is no longer needed: its squares in its place
    else:
        squares = torch.mul(w, w, out=squares_into.view(w.shape))
    total_sq = as_matrix(squares)
    var_out = product(total_sq, var_in)
    mean_np, var_np = torch.stack([mean_out, var_out]).cpu().numpy().astype(np.float64)
    shared = 0.0
    if x.shared > 0.0:
        row_squares = (total_sq if total_squares is None else total_squares).sum(dim=1)
        shared = float(x.shared * fraction * fraction * float(row_squares.double().mean()))
    if fraction == 1.0:
        return mean_np, var_np, shared
    # Zero padding: a fraction f of the taps reaches an output on average; the mean term's spread between border and
    # interior positions, (f - f^2) m^2, counts as variance over positions.
    within = fraction * var_np + (fraction - fraction * fraction) * mean_np * mean_np
    return fraction * mean_np, within, shared


def input_maps(
    x: Stat, in_channels: int, spatial: tuple[int, ...], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ones, mean map, variance map) of a convolution's input as float64 ``[1, C, *spatial]`` tensors: the input's
    own maps when it has them (the output of a previous convolution), else its per-channel values at every position."""
    ones = torch.ones((1, in_channels, *spatial), dtype=torch.float64, device=device)
    if x.spatial == spatial and x.mean.size == ones.numel():
        mean_in = torch.as_tensor(x.mean, device=device).reshape(ones.shape)
        var_in = torch.as_tensor(x.var, device=device).reshape(ones.shape)
    else:
        view = (1, in_channels) + (1,) * len(spatial)
        mean_in = ones * torch.as_tensor(np.broadcast_to(x.mean, (in_channels,)).copy(), device=device).reshape(view)
        var_in = ones * torch.as_tensor(np.broadcast_to(x.var, (in_channels,)).copy(), device=device).reshape(view)
    return ones, mean_in, var_in


def _spatial_output(
    x: Stat, weight: torch.Tensor, in_channels: int, apply: SpatialMap, spatial: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray, float]:
    """Output mean and variance maps (channel-major, flattened) of a convolution for the drawn weights.

    The mean map is the convolution of the input's mean map (or of its per-channel means, constant over positions),
    the variance map the convolution of its variance map with the squared weights (inputs independent given their
    means); both include zero padding and, for transposed convolutions, which taps reach which output phase. Keeping
    the maps lets the lower means at the borders propagate exactly: a 50-layer ReLU CNN on 16x16 inputs otherwise
    drifts to 5x its target (the per-channel version treats the border pattern as noise).
    """
    w = weight.detach().double()
    ones, mean_in, var_in = input_maps(x, in_channels, spatial, w.device)
    mean_map = apply(mean_in, w)[0]
    var_map = apply(var_in, w * w)[0]
    shared = 0.0
    if x.shared > 0.0:  # unknown per-channel offsets, constant over positions: like means of unknown sign
        shared = float(apply(ones * x.shared, w * w)[0].mean())
    return mean_map.reshape(-1).cpu().numpy(), var_map.reshape(-1).cpu().numpy(), shared


def weight_layer(
    ctx: Context,
    key: str,
    layer_type: str,
    weight: torch.Tensor,
    x: Stat,
    *,
    layout: str,
    fan_in: float,
    in_channels: int,
    in_axis: int | None,
    out_axis: int | None,
    out_ndim: int | None,
    groups: int = 1,
    fraction: float = 1.0,
    rows: slice | None = None,
    bias: torch.Tensor | None = None,
    spatial: Spatial | None = None,
) -> Stat:
    """Choose the std of one weight tensor (or a block of rows of it) and return the output Stat.

    A second call with the same weights (a shared module) reuses the weights chosen at the first call.
    """
    plan_key = (id(weight), 0 if rows is None else int(rows.start or 0))
    x_in = _per_unit_input(x, in_channels, in_axis, spatial[1] if spatial is not None else ())
    out_spatial = spatial[2] if spatial is not None else ()

    def realized(block: torch.Tensor) -> tuple[np.ndarray, np.ndarray, float]:
        sharding = ctx.sharding_of(block)
        if sharding is not None:
            return sharding.realized_output(x_in, block, layout, groups, fraction, spatial)
        if spatial is not None:
            return _spatial_output(x_in, block, in_channels, spatial[0], spatial[1])
        return _realized_output(x_in, block, layout, groups, fraction)

    def realized_drawn() -> tuple[np.ndarray, np.ndarray, float]:
        """``realized`` of the weights as planned (a kept draw read where it is, its squares in the work buffer)."""
        block, writable = ctx.read_shared(weight, rows)
        if writable or spatial is not None or ctx.sharding_of(block) is not None:
            return realized(block)
        squares = ctx.scratch(block.numel(), block.device, block.dtype, "work")
        return _realized_output(x_in, block, layout, groups, fraction, squares)

    effective_fan = fan_in * fraction
    plan = ctx.plan_of.get(plan_key)
    if plan is not None:
        plan.calls += 1
        mean, within, shared = realized_drawn()
        return Stat(mean, within, shared, out_axis, out_ndim, out_spatial)
    target = ctx.target_for(key)
    second = x_in.second_moment
    if second <= 0.0 or not math.isfinite(second):
        ctx.warn(
            f"{key}: its input has second moment {second:g} (a dead or diverging signal); std set as for E[x^2] = 1"
        )
        second = 1.0
    # objective="critical": a bias of variance sigma_b^2 takes its share of the target (Poole et al. 2016)
    bias_var = ctx.bias_std**2 if bias is not None and rows is None else 0.0
    std = std_for(target - bias_var, effective_fan, second)
    # Realized weights: draw a unit-std sample and scale it once, by the factor that its own statistics call for.
    drawn_std = 1.0 if ctx.realized and std > 0.0 else std
    ctx.plan_draw(weight, drawn_std, rows)
    bias_values = None
    if bias is not None:
        if bias_var > 0.0:
            ctx.plan_bias_draw(bias, ctx.bias_std)
            # (a copy: read returns a work buffer that the next read reuses, and float64 converts without copying)
            bias_values = as_numpy(ctx.read(bias)).copy()
        else:
            ctx.zero(bias, rows)
    plan = LayerPlan(
        name=key,
        layer_type=layer_type,
        param_name=ctx.name_of(weight) + ("" if rows is None else f"[{rows.start}:{rows.stop}]"),
        fan_in=fan_in,
        effective_fan_in=effective_fan,
        target_var=target,
        std=std,
        input=x,
        branch=ctx.branch_label.get(key, ""),
    )
    ctx.plan_of[plan_key] = plan
    ctx.layers.append(plan)
    if std == 0.0:
        out = Stat(np.zeros(1), np.zeros(1), 0.0, None, out_ndim)
    elif ctx.realized:
        mean, within, shared = realized_drawn()
        pooled = (float(mean @ mean) + float(within.sum())) / mean.size + shared
        factor = math.sqrt((target - bias_var) / pooled) if pooled > 0.0 else std
        ctx.scale(weight, factor, rows)
        plan.std = factor
        plan.realized_scale = factor / std
        out_mean = mean * factor
        if bias_values is not None:  # the drawn biases, per channel (repeated over positions of a spatial map)
            out_mean = out_mean + np.repeat(bias_values, out_mean.size // bias_values.size)
        out = Stat(out_mean, within * factor**2, shared * factor**2, out_axis, out_ndim, out_spatial)
    else:
        variance = std * std * effective_fan
        out = Stat(
            np.zeros(1),
            np.array([variance * float(np.mean(x_in.var))]),
            variance * (float(np.mean(x_in.mean * x_in.mean)) + x_in.shared) + bias_var,  # biases: unknown offsets
            None,
            out_ndim,
        )
    plan.output = out
    # (with_axis drops the axis of a single channel; out already has its ndim)
    return out if out.axis is None or out.channels != 1 else out.with_axis(out.axis, out_ndim)


def tensor_attr(module: nn.Module, name: str) -> torch.Tensor | None:
    """``module.<name>`` when it is a tensor (a parameter or buffer), else ``None``."""
    value = getattr(module, name, None)
    return value if isinstance(value, torch.Tensor) else None


def module_weight_layer(ctx: Context, key: str, module: nn.Module, x: Stat, in_meta: object, out_meta: object) -> Stat:
    """Linear, ConvNd and ConvTransposeNd modules."""
    in_shape, out_shape = shape_of(in_meta), shape_of(out_meta)
    out_ndim = len(out_shape) if out_shape is not None else None
    in_ndim = len(in_shape) if in_shape is not None else x.ndim
    bias = tensor_attr(module, "bias")
    weight = tensor_attr(module, "weight")
    if weight is None:  # pragma: no cover - all three module types own a weight tensor
        return x
    if isinstance(module, nn.Linear):
        return weight_layer(
            ctx,
            key,
            type(module).__name__,
            weight,
            x,
            layout="linear",
            fan_in=float(module.in_features),
            in_channels=module.in_features,
            in_axis=None if in_ndim is None else in_ndim - 1,
            out_axis=None if out_ndim is None else out_ndim - 1,
            out_ndim=out_ndim,
            bias=bias,
        )
    kernel = math.prod(weight.shape[2:])
    spatial_dims = weight.dim() - 2
    channel_axis = None if in_ndim is None else (0 if in_ndim == spatial_dims + 1 else 1)
    coverage = conv_coverage(module, in_shape) if in_shape is not None else float(kernel)
    groups = int(module.groups)  # type: ignore[arg-type]
    in_channels = int(module.in_channels)  # type: ignore[arg-type]
    layout = "conv_transpose" if isinstance(module, CONV_TRANSPOSE_LAYERS) else "conv"
    spatial = None
    if in_shape is not None and out_shape is not None:
        spatial = (
            _conv_map(module),
            tuple(int(v) for v in in_shape[-spatial_dims:]),
            tuple(int(v) for v in out_shape[-spatial_dims:]),
        )
    if ctx.distribution == "delta_orthogonal" and kernel > 1:
        _warn_expanding_delta(ctx, key, weight, layout == "conv_transpose")
    return weight_layer(
        ctx,
        key,
        type(module).__name__,
        weight,
        x,
        layout=layout,
        fan_in=float(in_channels // groups * kernel),
        in_channels=in_channels,
        in_axis=channel_axis,
        out_axis=channel_axis,
        out_ndim=out_ndim,
        groups=groups,
        fraction=1.0 if _centre_only(ctx, module) else coverage / kernel,
        bias=bias,
        spatial=spatial,
    )


def _warn_expanding_delta(ctx: Context, key: str, weight: torch.Tensor, transposed: bool) -> None:
    """A delta-orthogonal kernel that maps fewer input channels to more outputs makes its output channels at each
    position combinations of the inputs (rank in), correlated, which the propagation (independent units) ignores."""
    outputs, inputs = (int(weight.shape[1]), int(weight.shape[0])) if transposed else tuple(weight.shape[:2])
    if outputs > inputs:
        ctx.warn(
            f"{key}: distribution='delta_orthogonal' maps {inputs} input channels (per group) to {outputs} at each "
            f"position (rank {inputs}), so its output channels are correlated; the predictions after it assume "
            "independent channels and can be off; use distribution='orthogonal' for a model whose convolutions "
            "expand channels"
        )


def _centre_only(ctx: Context, module: nn.Module) -> bool:
    """A delta-orthogonal convolution whose only non-zero tap, the centre, never lands on zero padding (padding at
    most k // 2 dilated taps on every side): all its fan reaches every output."""
    if ctx.distribution != "delta_orthogonal" or isinstance(module, CONV_TRANSPOSE_LAYERS):
        return False
    padding = module.padding
    if isinstance(padding, str):  # "valid" or "same"
        return True
    sizes, dilations = tuple(module.kernel_size), tuple(module.dilation)  # type: ignore[arg-type]
    return all(int(p) <= (k // 2) * d for p, k, d in zip(padding, sizes, dilations, strict=True))  # type: ignore[arg-type]


def _conv_map(module: nn.Module) -> SpatialMap:
    """The module's convolution (same geometry and padding mode) as a function of (input, weight), no bias."""
    if isinstance(module, CONV_TRANSPOSE_LAYERS):
        functions = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)
        geometry = {key: getattr(module, key) for key in ("stride", "padding", "output_padding", "groups", "dilation")}
        function = functions[len(geometry["stride"]) - 1]

        def transposed(inputs: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
            return function(inputs, weight, None, **geometry)

        return transposed

    def forward(inputs: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return module._conv_forward(inputs, weight, None)  # type: ignore[operator, no-any-return]

    return forward


def embedding(ctx: Context, key: str, module: nn.Module, x: object, out_meta: object) -> Stat:
    """Embedding rows ~ N(0, target): each output entry is one weight. Realized: the per-dimension mean and variance
    over rows weighted by the example's index histogram (uniform without one), then rescaled to the target."""
    weight = module.weight
    assert isinstance(weight, torch.Tensor)
    out_shape = shape_of(out_meta)
    out_ndim = len(out_shape) if out_shape is not None else None
    plan_key = (id(weight), 0)
    plan = ctx.plan_of.get(plan_key)
    if plan is None:
        target = ctx.target_for(key)
        std = math.sqrt(target)
        ctx.plan_draw(weight, std)
        padding = getattr(module, "padding_idx", None)
        if padding is not None:
            ctx.zero_row(weight, padding)
        plan = LayerPlan(key, type(module).__name__, ctx.name_of(weight), 1.0, 1.0, target, std, input=None)
        ctx.plan_of[plan_key] = plan
        ctx.layers.append(plan)
    else:
        plan.calls += 1
    rows = ctx.read(weight).detach().double()
    counts = x.counts if isinstance(x, IndexStat) else None
    if counts is not None and counts.size == rows.shape[0] and counts.sum() > 0:
        weights = torch.as_tensor(counts / counts.sum(), dtype=torch.float64, device=rows.device)
    else:
        weights = torch.full((rows.shape[0],), 1.0 / rows.shape[0], dtype=torch.float64, device=rows.device)
    sharding = ctx.sharding_of(rows)
    if sharding is not None:
        mean, var = sharding.embedding_moments(rows, weights)
    else:
        mean = (weights[:, None] * rows).sum(0)
        var = (weights[:, None] * rows * rows).sum(0) - mean * mean
    mean_np, var_np = mean.cpu().numpy(), np.maximum(var.cpu().numpy(), 0.0)
    if ctx.realized and plan.calls == 1 and plan.target_var > 0:
        pooled = float(np.mean(mean_np * mean_np + var_np))
        scale = math.sqrt(plan.target_var / pooled) if pooled > 0 else 1.0
        ctx.scale(weight, scale)
        plan.std *= scale
        plan.realized_scale = scale
        mean_np, var_np = mean_np * scale, var_np * scale * scale
    out = Stat(mean_np, var_np, 0.0, None if out_ndim is None else out_ndim - 1, out_ndim)
    if not ctx.realized:
        out = collapse(out)
    plan.output = out
    return out


def input_stat(value: torch.Tensor, input_var: float | None) -> Stat | IndexStat:
    """Moments of an example input (measured), or its index histogram for integer tensors."""
    if not value.is_floating_point():
        if value.dtype in (torch.bool, torch.complex64, torch.complex128):
            return IndexStat(None, value.dim())
        flat = value.detach().reshape(-1).cpu()
        counts = torch.bincount(flat.clamp(min=0)).numpy() if flat.numel() and int(flat.min()) >= 0 else None
        return IndexStat(counts, value.dim())
    data = value.detach().double()
    mean = float(data.mean()) if data.numel() else 0.0
    variance = float(data.var(unbiased=False)) if data.numel() > 1 else 1.0
    if input_var is not None:
        variance = input_var
    return replace(scalar_stat(mean, mean * mean + variance, value.dim()), mean=as_array(mean))
