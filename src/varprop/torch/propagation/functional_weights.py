"""Weight layers written as functions (``F.linear``, ``F.conv*``, ``matmul``, ``torch.addmm`` as Hugging Face's
``Conv1D``, ``F.embedding``) and weights computed by a parametrization (``weight_norm``): the rules of
``_Propagation`` (``_propagate``) for them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..graph.ir import Node, TensorMeta
from ..sampling.fans import coverage
from .layers import embedding, module_weight_layer, weight_layer
from .names import arg, as_tuple
from .ops import matmul_stats
from .plan import Context, qualify
from .stats import Stat

__all__ = ["FunctionalWeightRules"]


class FunctionalWeightRules:
    """The ``_Propagation`` rules for functional and parametrized weights (a mixin: the dispatcher is
    ``_propagate``'s)."""

    ctx: Context
    modules: dict[str, nn.Module]

    def param(self, ref: Any) -> torch.Tensor | None:  # pragma: no cover - defined by _Propagation
        raise NotImplementedError

    def stat(self, value: Any, where: str) -> Stat:  # pragma: no cover - defined by _Propagation
        raise NotImplementedError

    def in_meta(self, node: Node, index: int = 0) -> Any:  # pragma: no cover - defined by _Propagation
        raise NotImplementedError

    def unknown(self, what: str, node: Node, args: Sequence[Any]) -> Any:  # pragma: no cover - see _unknown
        raise NotImplementedError

    def parametrized(self, node: Node, key: str, module: nn.Module, x: Stat) -> Any:
        """A weight layer whose weight is computed by a parametrization (``weight_norm``: wav2vec2's positional
        convolution; ``orthogonal``, ...): the weight is planned like any other, then written through the
        parametrization's ``right_inverse`` into its originals (weight norm: g = the norm of the new weight, v = the
        new weight), so that the module computes exactly the planned weight."""
        ctx = self.ctx
        chain: Any = getattr(module, "parametrizations")["weight"]  # noqa: B009 - (a ParametrizationList)
        if len(chain) != 1 or not hasattr(chain[0], "right_inverse"):
            return self.unknown(f"{key} ({type(module).__name__}: a chain of {len(chain)} parametrizations)", node, [x])
        with parametrize.cached():  # (module.weight: one tensor for the whole rule)
            weight = module.weight
            assert isinstance(weight, torch.Tensor)
            ctx.param_names[id(weight)] = qualify(key, "weight")
            out = module_weight_layer(ctx, key, module, x, self.in_meta(node), node.meta)
            value = ctx.value(weight)  # (a tensor of its own: the computed weight is no parameter to write)
            del ctx.recipes[id(weight)]
        inverse = chain[0].right_inverse(value)
        values = inverse if isinstance(inverse, (tuple, list)) else (inverse,)
        names = ["original"] if len(values) == 1 else [f"original{i}" for i in range(len(values))]
        for name, new in zip(names, values, strict=True):
            original = getattr(chain, name)
            ctx.set_value(original, new.detach().to(original.dtype).reshape(original.shape).clone())
        return out

    def addmm(self, node: Node, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        """``torch.addmm(bias, x, weight)`` on a weight of shape (in, out): Hugging Face's ``Conv1D`` (GPT-2), a
        Linear with its weight transposed (fan_in = its dim 0). The row is named for the module that owns the weight,
        and takes the residual policy's target when the product ends a branch."""
        weight = self.param(arg(node.args, node.kwargs, 2, "mat2"))
        assert weight is not None  # (checked by the caller)
        if (
            weight.dim() != 2
            or float(arg(args, kwargs, 3, "beta", 1.0)) != 1.0
            or arg(args, kwargs, 4, "alpha", 1.0) != 1.0
        ):
            return self.unknown("addmm() with a non-matrix weight or scaling (beta, alpha)", node, args)
        param_name = self.ctx.name_of(weight)
        key = param_name.rsplit(".", 1)[0] if "." in param_name else param_name
        if node.name in self.ctx.branch_target:  # (_residual names a functional branch end by its node)
            self.ctx.branch_target.setdefault(key, self.ctx.branch_target[node.name])
            self.ctx.branch_label.setdefault(key, self.ctx.branch_label.get(node.name, ""))
        owner = self.modules.get(key)
        in_ndim = getattr(self.in_meta(node, 1), "ndim", None)
        out_ndim = getattr(node.meta, "ndim", None)
        return weight_layer(
            self.ctx,
            key,
            type(owner).__name__ if owner is not None else "addmm",
            weight,
            self.stat(args[1], "addmm"),
            layout="matmul",
            fan_in=float(weight.shape[0]),
            in_channels=int(weight.shape[0]),
            in_axis=None if in_ndim is None else in_ndim - 1,
            out_axis=None if out_ndim is None else out_ndim - 1,
            out_ndim=out_ndim,
            bias=self.param(arg(node.args, node.kwargs, 0, "input")),
        )

    def functional_weight(self, node: Node, name: str, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        weight = self.param(node.args[1] if len(node.args) > 1 else node.kwargs.get("weight"))
        if name == "embedding":
            if weight is None:
                return self.unknown("embedding() with a non-parameter weight", node, args)
            holder = nn.Module()
            holder.register_parameter("weight", weight if isinstance(weight, nn.Parameter) else None)
            return embedding(self.ctx, self.ctx.name_of(weight), holder, args[0], node.meta)
        x = self.stat(args[0], name)
        out_ndim = getattr(node.meta, "ndim", None)
        in_ndim = getattr(self.in_meta(node), "ndim", None)
        if weight is None or weight.dim() < 2:
            if name in ("matmul", "mm", "bmm") and len(args) > 1:
                inner = self.in_meta(node)
                size = inner.shape[-1] if isinstance(inner, TensorMeta) else 1
                return matmul_stats(x, self.stat(args[1], name), size)
            return self.unknown(f"{name}() with a weight that is not a parameter", node, args)
        key = self.ctx.name_of(weight)
        last = None if in_ndim is None else in_ndim - 1
        out_last = None if out_ndim is None else out_ndim - 1
        bias = self.param(node.args[2] if len(node.args) > 2 else node.kwargs.get("bias"))
        if name in ("matmul", "mm", "bmm"):
            return weight_layer(
                self.ctx,
                key,
                "matmul",
                weight,
                x,
                layout="matmul",
                fan_in=float(weight.shape[-2]),
                in_channels=int(weight.shape[-2]),
                in_axis=last,
                out_axis=out_last,
                out_ndim=out_ndim,
            )
        if name == "linear":
            return weight_layer(
                self.ctx,
                key,
                "linear",
                weight,
                x,
                layout="linear",
                fan_in=float(weight.shape[1]),
                in_channels=int(weight.shape[1]),
                in_axis=last,
                out_axis=out_last,
                out_ndim=out_ndim,
                bias=bias,
            )
        dims = weight.dim() - 2
        groups = int(arg(args, kwargs, 6, "groups", 1))
        kernel = tuple(int(k) for k in weight.shape[2:])
        in_meta = self.in_meta(node)
        taps = math.prod(kernel)
        covered = float(taps)
        if isinstance(in_meta, TensorMeta):
            covered = coverage(
                kernel,
                in_meta.shape,
                stride=as_tuple(arg(args, kwargs, 3, "stride", 1), dims),
                padding=arg(args, kwargs, 4, "padding", 0),
                dilation=as_tuple(arg(args, kwargs, 5, "dilation", 1), dims),
            )
        axis = None if in_ndim is None else (0 if in_ndim == dims + 1 else 1)
        return weight_layer(
            self.ctx,
            key,
            name,
            weight,
            x,
            layout="conv",
            fan_in=float(weight.shape[1] * taps),
            in_channels=int(weight.shape[1]) * groups,
            in_axis=axis,
            out_axis=axis,
            out_ndim=out_ndim,
            groups=groups,
            fraction=covered / taps,
            bias=bias,
        )
