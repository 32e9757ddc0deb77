"""Tied weights: one tensor used by two layers (``b.weight = a.weight``; Hugging Face's ``tie_word_embeddings``, where
the output head uses the input embedding's matrix).

One tensor gets one value. The rule: **the first use in the forward pass chooses it** (for a language model, the
input embedding, which sets the variance of everything after it). The later uses' output variances then follow from
that value: predicted, not aimed at (their rows' ``target_var`` is that prediction, and calibration leaves them).
Each later use by another layer gets its own report row, with a note naming the tensor and the layer whose value was
kept; the first use's row notes the later uses. Every bias of every use is written (zero), as for an untied layer.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ._plan import Context, LayerPlan
from ._stats import Stat

__all__ = ["first_use", "record_tied_use"]


def first_use(ctx: Context, key: str, weight: torch.Tensor | None) -> LayerPlan | None:
    """The plan of the layer that first used ``weight``, when that is another layer than ``key`` (a tied weight);
    ``None`` for a weight not planned yet or planned by ``key`` itself (a shared module called again)."""
    if not isinstance(weight, torch.Tensor):
        return None
    plan = ctx.plan_of.get((id(weight), 0))
    return plan if plan is not None and plan.name != key else None


def _fan_in(module: nn.Module, weight: torch.Tensor) -> float:
    if isinstance(module, nn.Embedding):
        return 1.0
    if isinstance(module, nn.Linear):
        return float(module.in_features)
    groups = int(getattr(module, "groups", 1))
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return float(weight.shape[0] // groups * math.prod(weight.shape[2:]))
    return float(weight.shape[1] * math.prod(weight.shape[2:]))


def record_tied_use(
    ctx: Context, key: str, module: nn.Module, first: LayerPlan, x: Stat | None, out: Stat | None
) -> None:
    """After the rule of ``module`` (named ``key``) ran on a weight that ``first`` planned: its own row and notes
    (see the module docstring), and its bias written."""
    weight = module.weight
    assert isinstance(weight, torch.Tensor)
    first.calls -= 1  # (the rule counted this use as a second call of the first layer)
    tensor = ctx.name_of(weight)
    first.notes.append(f"tied: {tensor} is also the weight of {key}; this layer's value is kept for both")
    fan = _fan_in(module, weight)
    ctx.layers.append(
        LayerPlan(
            name=key,
            layer_type=type(module).__name__,
            param_name=tensor,
            fan_in=fan,
            effective_fan_in=fan,
            # (nothing is aimed at: the variance this use gets from the kept value, which calibration does not touch)
            target_var=out.variance if out is not None else ctx.target_for(key),
            std=first.std,
            input=x,
            output=out,
            branch=ctx.branch_label.get(key, ""),
            notes=[
                f"tied to {first.name}: one tensor ({tensor}); the value chosen for {first.name}, its first use, is "
                "kept: the prediction is for that value, not the target"
            ],
        )
    )
    bias = getattr(module, "bias", None)
    if isinstance(bias, torch.Tensor) and not ctx.is_planned(bias):
        ctx.zero(bias)
