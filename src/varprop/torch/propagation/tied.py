"""Tied weights: one tensor used by two layers (``b.weight = a.weight``; Hugging Face's ``tie_word_embeddings``, where
the output head uses the input embedding's matrix).

One tensor gets one value. The rule: **the first use in the forward pass chooses it** (for a language model, the
input embedding, which sets the variance of everything after it). The later uses' output variances then follow from
that value: predicted, not aimed at (their rows' ``target_var`` is that prediction, and calibration leaves them).
Each later use by another layer gets its own report row, with a note naming the tensor and the layer whose value was
kept; the first use's row notes the later uses. Every bias of every use is written (zero), as for an untied layer.

A later use's input may hold the very rows it multiplies (a language model's head sees the residual stream, which
carries the token's own input embedding: the logit of the input token gets |e|^2), which the propagation's
independence assumption misses (Qwen2 with 16 tokens of 64 dims: 65 predicted, 82 measured). So the later uses'
output variances are measured after the weights are chosen: one forward pass with the planned weights, on the
calibration batch when there is one, else on the example (``measure_tied_uses``); their rows say so.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..graph.trace import quiet_forward
from .calibrate import NoDropout, planned_stand_ins
from .plan import Context, LayerPlan
from .stats import Stat, scalar_stat

__all__ = ["first_use", "measure_tied_uses", "record_tied_use"]


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
                "kept: this use's output variance follows from it (not aimed at the target)"
            ],
        )
    )
    bias = getattr(module, "bias", None)
    if isinstance(bias, torch.Tensor) and not ctx.is_planned(bias):
        ctx.zero(bias)


def _later_uses(ctx: Context) -> list[LayerPlan]:
    """The rows of tied weights' later uses: a row whose parameter an earlier row of another layer planned."""
    first: dict[str, str] = {}
    found = []
    for plan in ctx.layers:
        owner = first.setdefault(plan.param_name, plan.name)
        if owner != plan.name:
            found.append(plan)
    return found


def measure_tied_uses(model: nn.Module, ctx: Context, batch: tuple[torch.Tensor, ...]) -> dict[int, Stat]:
    """The output variance of every tied weight's later use, measured with the planned weights on ``batch`` (one
    forward pass; see the module docstring): it becomes the row's prediction and target. Returns the measured Stat
    by id of the propagated one it replaces (a model output that is such a use's output is replaced too)."""
    uses = _later_uses(ctx) if ctx.sharding is None else []
    modules = dict(model.named_modules(remove_duplicate=False))
    uses = [plan for plan in uses if plan.name in modules]
    if not uses:
        return {}
    measured: dict[str, tuple[float, float]] = {}

    def record(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if isinstance(output, torch.Tensor) and output.numel() > 1 and name not in measured:
                data = output.detach().double()
                measured[name] = (float(data.mean()), float(data.var()))

        return hook

    handles = [modules[plan.name].register_forward_hook(record(plan.name)) for plan in uses]
    parameters = planned_stand_ins(ctx)
    try:
        with quiet_forward(model), NoDropout():
            torch.func.functional_call(model, parameters, batch, strict=False)
    finally:
        for handle in handles:
            handle.remove()
    replaced: dict[int, Stat] = {}
    for plan in uses:
        if plan.name in measured:
            mean, variance = measured[plan.name]
            new = scalar_stat(mean, mean * mean + variance, plan.output.ndim if plan.output else None)
            if plan.output is not None:
                replaced[id(plan.output)] = new
            plan.output = new
            plan.target_var = variance
            plan.notes.append(
                "its output variance measured with the planned weights (one forward pass): its input may hold the "
                "tied rows themselves"
            )
    return replaced
