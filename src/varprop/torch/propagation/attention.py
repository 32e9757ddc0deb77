"""Attention at initialization: ``F.scaled_dot_product_attention``, ``nn.MultiheadAttention``,
``nn.TransformerEncoderLayer`` (norm first and norm last) and ``nn.TransformerEncoder``.

Assumption (documented and checked in tests): tokens are independent given the features. A query's logits over its n
visible keys, z_j = scale * q . k_j, then vary over j with variance v_z = scale^2 * sum_d q_d^2 Var_j[k_jd]
(per-feature key means shift all logits alike and drop out of the softmax), so v_z = scale^2 D E[q^2] Var_within[k].
The output keeps the values' per-feature means and multiplies their within-token variance by
E[sum_j p_j^2] (the softmax collision probability, ``_ops.collision``), between 1/n (uniform attention) and 1.
Real text has correlated tokens, which makes the attention output larger than this; calibration measures it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from ..graph.activations import activation_of_function, activation_of_module
from ..graph.ir import TensorMeta
from .layers import weight_layer
from .normalization import normalization
from .ops import add_stats, collision
from .plan import ActivationUse, Context, qualify
from .stats import Stat, apply_activation, collapse

__all__ = [
    "attention_output",
    "attention_token_correlation",
    "multihead_attention",
    "row_counts",
    "transformer_encoder",
    "transformer_layer",
]


def row_counts(queries: int, keys: int, mask: Any, causal: bool, true_means_masked: bool) -> np.ndarray:
    """Number of keys each query attends to, from a causal flag and/or a mask's recorded value."""
    counts = np.full(queries, float(keys))
    if causal:
        counts = np.minimum(np.arange(1, queries + 1, dtype=np.float64) + max(keys - queries, 0), keys)
    value = mask.value if isinstance(mask, TensorMeta) else None
    if value is not None and value.dim() >= 2 and value.shape[-1] == keys:
        if value.dtype == torch.bool:
            allowed = ~value if true_means_masked else value
        else:
            allowed = torch.isfinite(value) & (value > -1e30)
        per_row = allowed.reshape(-1, value.shape[-2], keys).double().sum(-1).mean(0).cpu().numpy()
        if per_row.size == queries:
            counts = np.minimum(counts, per_row)
    return np.asarray(np.maximum(counts, 1.0))


def _padding_fraction(mask: Any, keys: int) -> float:
    value = mask.value if isinstance(mask, TensorMeta) else None
    if value is None or value.shape[-1] != keys:
        return 1.0
    masked = value if value.dtype == torch.bool else ~torch.isfinite(value)
    return float(1.0 - masked.double().mean())


def attention_output(
    query: Stat,
    key: Stat,
    value: Stat,
    head_dim: int,
    scale: float,
    counts: np.ndarray,
    tilt: Any = 0.0,
    token_corr: float = 0.0,
) -> Stat:
    """Softmax attention of ``value`` with logits from ``query`` and ``key`` (see the module docstring); ``tilt`` is
    the extra variance when keys and values are projections of the same tokens (``tilt_variance``).

    ``token_corr``: the correlation rho between the values of two different tokens of one sequence (an earlier
    attention layer's output added to the stream makes it positive). Writing v_j = c + u_j with a part c common to
    the sequence (variance rho v) and independent parts u_j, sum_j p_j v_j = c + sum_j p_j u_j has variance
    v (rho + (1 - rho) E[sum_j p_j^2]): the common part is not averaged away."""
    concentration = _concentration(query, key, head_dim, scale, counts)
    factor = token_corr + (1.0 - token_corr) * concentration
    return Stat(value.mean.copy(), value.var * factor + tilt, value.shared, value.axis, value.ndim)


def _concentration(query: Stat, key: Stat, head_dim: int, scale: float, counts: np.ndarray) -> float:
    """E[sum_j p_j^2] over the queries (each attending to ``counts`` keys)."""
    rounded = round(scale * scale * head_dim * query.second_moment * float(np.mean(key.var)), 9)
    unique, frequency = np.unique(np.round(counts).astype(np.int64), return_counts=True)
    return float(np.average([collision(int(n), rounded) for n in unique], weights=frequency))


# Queries sampled (evenly) for the mean pairwise correlation of an attention output: the pairs of 256 queries estimate
# the mean over all pairs of a smooth function of (n_t, n_s) to well under 1% (exact up to 256 queries).
_CORRELATION_QUERIES = 256


def attention_token_correlation(
    query: Stat, key: Stat, head_dim: int, scale: float, counts: np.ndarray, token_corr: float
) -> float:
    """The mean correlation between the attention outputs of two different queries of one sequence.

    With v_j = c + u_j as in ``attention_output`` and query t attending to the first n_t keys (all of them without a
    mask), Cov(o_t, o_s) = v (rho + (1 - rho) E[sum_j p_tj p_sj]) with E[sum_j p_tj p_sj] ~ 1 / max(n_t, n_s) (two
    queries' weights independent given the keys, uniform in mean over their common keys) and
    Var(o_t) = v (rho + (1 - rho) C_t), C_t = E[sum_j p_tj^2]. Averaged over the pairs t != s: 1 for an average over
    the whole sequence at small logits (every output nearly the sequence's mean value), less for causal attention."""
    n = np.round(np.asarray(counts, dtype=np.float64))
    if n.size < 2:
        return token_corr
    if n.size > _CORRELATION_QUERIES:
        n = n[np.linspace(0, n.size - 1, _CORRELATION_QUERIES).round().astype(np.int64)]
    rounded = round(scale * scale * head_dim * query.second_moment * float(np.mean(key.var)), 9)
    cache = {int(count): collision(int(count), rounded) for count in np.unique(n)}
    variance = token_corr + (1.0 - token_corr) * np.array([cache[int(count)] for count in n])
    covariance = token_corr + (1.0 - token_corr) / np.maximum(n[:, None], n[None, :])
    correlation = covariance / np.sqrt(variance[:, None] * variance[None, :])
    off = ~np.eye(n.size, dtype=bool)
    return float(np.clip(correlation[off].mean(), 0.0, 1.0))


def tilt_variance(
    query_second: float, key_var: float, value_var: float, head_dim: int, scale: float, fan: int
) -> float:
    """Mean-field extra variance of attention when keys and values come from the same tokens x.

    Softmax weights proportional to exp(a . x_j) with a = scale * Wk^T q tilt the tokens' distribution: the weighted
    average of x_j moves by Cov[x] a (exactly, for Gaussian x), so the output gains the term Wv Cov[x] Wk^T q * scale,
    of variance scale^2 * head_dim * E[q^2] * Var[k] * Var[v] / fan over zero-mean weights (fan = the projections'
    input width). Measured: +0.0154 for head_dim 16, fan 64 at unit variances; this formula gives 1/64 = 0.0156.
    """
    return scale * scale * head_dim * query_second * key_var * value_var / fan


# Weights per batch of heads in ``_realized_tilt`` (float64: 1 MB each for the key and value weights).
_TILT_ELEMENTS = 1 << 17


def _realized_tilt(
    ctx: Context,
    query: Stat,
    source: Stat,
    key_weight: torch.Tensor,
    value_weight: torch.Tensor,
    heads: int,
    scale: float,
) -> np.ndarray:
    """``tilt_variance`` for drawn weights: per value feature f of head h, scale^2 sum_d B[f, d]^2 E[q_d^2] with
    B = Wv_h diag(Var[x]) Wk_h^T (per-unit variances of the shared input x). The float64 copies of each batch of
    heads go into two work buffers of the context, the same for every batch and layer (fresh ones, freed batch by
    batch, would stay in the process's heap: ~20 MB for a 100M-parameter transformer)."""
    embed = key_weight.shape[0]
    head_dim = embed // heads
    fan = key_weight.shape[1]
    x_var = np.broadcast_to(source.var if source.channels == fan else collapse(source).var, (fan,))
    x_var_t = torch.as_tensor(x_var.copy(), dtype=torch.float64)
    q_second = np.broadcast_to(query.mean**2 + query.var + query.shared, (embed,)).copy()
    # Memory: a few heads at a time in float64 (a whole projection would be 2x its float32 size, twice). Batches of
    # at least 2 heads: torch's batched einsum then gives the same bits as on all heads at once (one head alone
    # takes another kernel).
    step = max(2, _TILT_ELEMENTS // max(head_dim * fan, 1))
    starts = list(range(0, heads, step))
    if len(starts) > 1 and heads - starts[-1] < 2:
        starts.pop()
    parts = []
    for index, first in enumerate(starts):
        last = starts[index + 1] if index + 1 < len(starts) else heads
        rows = slice(first * head_dim, last * head_dim)
        count = (last - first) * head_dim * fan
        wk = ctx.scratch(count, torch.device("cpu"), torch.float64, "tilt keys", False).view(
            last - first, head_dim, fan
        )
        wv = ctx.scratch(count, torch.device("cpu"), torch.float64, "tilt values", False).view(
            last - first, head_dim, fan
        )
        wk.copy_(key_weight[rows].detach().reshape(wk.shape))
        wv.copy_(value_weight[rows].detach().reshape(wv.shape))
        parts.append(torch.einsum("hfe,e,hde->hfd", wv, x_var_t, wk))  # (heads, value feature, query feature)
    product = parts[0] if len(parts) == 1 else torch.cat(parts)
    weights = torch.as_tensor(q_second.reshape(heads, 1, head_dim), dtype=torch.float64)
    return np.asarray((scale * scale * (product**2 * weights).sum(-1)).reshape(-1).numpy())


def _seq_len(meta: Any, batch_first: bool) -> int | None:
    if not isinstance(meta, TensorMeta):
        return None
    if len(meta.shape) == 2:
        return meta.shape[0]
    return meta.shape[1] if batch_first else meta.shape[0]


def multihead_attention(
    ctx: Context,
    key: str,
    module: nn.MultiheadAttention,
    query: Stat,
    key_stat: Stat,
    value: Stat,
    metas: tuple[Any, Any, Any],
    *,
    attn_mask: Any = None,
    key_padding_mask: Any = None,
    is_causal: bool = False,
    same_key_value: bool = False,
) -> Stat:
    """``nn.MultiheadAttention``: q/k/v projections (blocks of ``in_proj_weight`` or separate weights), attention,
    ``out_proj``. Each projection's std makes its output variance the target; ``out_proj`` is the branch end."""
    embed = module.embed_dim
    ndim = metas[0].ndim if isinstance(metas[0], TensorMeta) else query.ndim
    axis = None if ndim is None else ndim - 1
    bias = module.in_proj_bias
    projections = []
    inputs = (query, key_stat, value)
    labels = ("q", "k", "v")
    for index, (label, stat) in enumerate(zip(labels, inputs, strict=False)):
        if module._qkv_same_embed_dim:
            weight, rows = module.in_proj_weight, slice(index * embed, (index + 1) * embed)
            fan = embed
        else:
            weight = (module.q_proj_weight, module.k_proj_weight, module.v_proj_weight)[index]
            rows, fan = None, int(weight.shape[1])
            if isinstance(bias, torch.Tensor):
                ctx.zero(bias, slice(index * embed, (index + 1) * embed))
        projections.append(
            weight_layer(
                ctx,
                qualify(key, f"{label}_proj"),
                "MultiheadAttention",
                weight,
                stat,
                layout="linear",
                fan_in=float(fan),
                in_channels=fan,
                in_axis=axis,
                out_axis=axis,
                out_ndim=ndim,
                rows=rows,
                bias=bias if rows is not None else None,
            )
        )
    queries = _seq_len(metas[0], module.batch_first) or 1
    keys = _seq_len(metas[1], module.batch_first) or 1
    extra = int(module.bias_k is not None) + int(module.add_zero_attn)
    counts = row_counts(queries, keys + extra, attn_mask, is_causal, true_means_masked=True)
    counts = np.maximum(counts * _padding_fraction(key_padding_mask, keys), 1.0)
    q, k, v = projections
    scale = 1.0 / math.sqrt(module.head_dim)
    tilt: Any = 0.0
    if same_key_value:
        if ctx.realized and module._qkv_same_embed_dim:
            drawn = ctx.read(module.in_proj_weight)
            tilt = _realized_tilt(
                ctx, q, key_stat, drawn[embed : 2 * embed], drawn[2 * embed :], module.num_heads, scale
            )
        else:
            tilt = tilt_variance(q.second_moment, k.variance, v.variance, module.head_dim, scale, embed)
    attended = attention_output(q, k, v, module.head_dim, scale, counts, tilt)
    out_proj = module.out_proj
    ctx.calibrate_modules[key] = qualify(key, "out_proj")
    return weight_layer(
        ctx,
        qualify(key, "out_proj"),
        "MultiheadAttention.out_proj",
        out_proj.weight,
        attended,
        layout="linear",
        fan_in=float(embed),
        in_channels=embed,
        in_axis=axis,
        out_axis=axis,
        out_ndim=ndim,
        bias=out_proj.bias if isinstance(out_proj.bias, torch.Tensor) else None,
    )


def _linear(ctx: Context, key: str, module: nn.Linear, x: Stat, ndim: int | None) -> Stat:
    axis = None if ndim is None else ndim - 1
    return weight_layer(
        ctx,
        key,
        "Linear",
        module.weight,
        x,
        layout="linear",
        fan_in=float(module.in_features),
        in_channels=module.in_features,
        in_axis=axis,
        out_axis=axis,
        out_ndim=ndim,
        bias=module.bias if isinstance(module.bias, torch.Tensor) else None,
    )


def _layer_activation(layer: nn.TransformerEncoderLayer) -> Any:
    act = layer.activation
    found = activation_of_module(act) if isinstance(act, nn.Module) else activation_of_function(act, (), {})
    return found


def transformer_layer(
    ctx: Context,
    key: str,
    layer: nn.TransformerEncoderLayer,
    x: Stat,
    meta: Any,
    *,
    mask: Any = None,
    key_padding_mask: Any = None,
    is_causal: bool = False,
    branch_rule: Callable[[Context, str, Stat], None] | None = None,
) -> Stat:
    """``nn.TransformerEncoderLayer``: x + SA(LN(x)), x + FF(LN(x)) (norm first) or LN(x + SA(x)), LN(x + FF(x))."""
    ndim = meta.ndim if isinstance(meta, TensorMeta) else x.ndim
    metas = (meta, meta, meta)
    act = _layer_activation(layer)
    attention_key, feedforward_key = qualify(key, "self_attn.out_proj"), qualify(key, "linear2")

    def attention(h: Stat) -> Stat:
        return multihead_attention(
            ctx,
            qualify(key, "self_attn"),
            layer.self_attn,
            h,
            h,
            h,
            metas,
            attn_mask=mask,
            key_padding_mask=key_padding_mask,
            is_causal=is_causal,
            same_key_value=True,
        )

    def feedforward(h: Stat) -> Stat:
        hidden = _linear(ctx, qualify(key, "linear1"), layer.linear1, h, ndim)
        if act is None:
            ctx.note_unknown(qualify(key, "activation"), "activation not recognized; treated as identity")
            activated = hidden
        else:
            ctx.activations.append(ActivationUse(qualify(key, "activation"), act, hidden.variance, hidden.pooled_mean))
            activated = apply_activation(act, hidden, ctx.unit_moments)
        return _linear(ctx, qualify(key, "linear2"), layer.linear2, activated, ndim)

    if layer.norm_first:
        if branch_rule is not None:
            branch_rule(ctx, attention_key, x)
        x = add_stats(x, attention(normalization(ctx, qualify(key, "norm1"), layer.norm1, x, meta)))
        if branch_rule is not None:
            branch_rule(ctx, feedforward_key, x)
        return add_stats(x, feedforward(normalization(ctx, qualify(key, "norm2"), layer.norm2, x, meta)))
    if branch_rule is not None:
        branch_rule(ctx, attention_key, x)
    x = normalization(ctx, qualify(key, "norm1"), layer.norm1, add_stats(x, attention(x)), meta)
    if branch_rule is not None:
        branch_rule(ctx, feedforward_key, x)
    return normalization(ctx, qualify(key, "norm2"), layer.norm2, add_stats(x, feedforward(x)), meta)


def transformer_encoder(
    ctx: Context,
    key: str,
    encoder: nn.TransformerEncoder,
    x: Stat,
    meta: Any,
    *,
    mask: Any = None,
    key_padding_mask: Any = None,
    is_causal: bool = False,
    branch_rule: Callable[[Context, str, Stat], None] | None = None,
) -> Stat:
    """``nn.TransformerEncoder``: its layers in order, then its optional final norm."""
    for index, layer in enumerate(encoder.layers):
        assert isinstance(layer, nn.TransformerEncoderLayer)
        x = transformer_layer(
            ctx,
            qualify(key, f"layers.{index}"),
            layer,
            x,
            meta,
            mask=mask,
            key_padding_mask=key_padding_mask,
            is_causal=is_causal,
            branch_rule=branch_rule,
        )
    if encoder.norm is not None:
        x = normalization(ctx, qualify(key, "norm"), encoder.norm, x, meta)
    return collapse(x) if x.axis is None else x
