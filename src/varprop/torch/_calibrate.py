"""One-pass calibration: a single forward pass in which each weight layer, as its output appears, is rescaled so that
the output's variance on the batch is exactly its target, before the output flows on (topological order for free).

LSUV (Mishkin & Matas 2016) reruns the network once per layer; here each layer's output is rescaled in its forward
hook (bias 0 makes the output linear in the weights: W -> sW gives y -> sy), so later layers already see the corrected
signal. Cost: one forward pass plus a variance per layer. A module called several times (shared weights) is calibrated
at its first call. Dropout is switched off during the pass (its inverted scaling would inflate the measurement by
1/(1 - p)); BatchNorm uses batch statistics in training mode and its buffers are restored afterwards.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 - torch's own convention
from torch.overrides import TorchFunctionMode

from .._errors import VarpropValueError
from ._distributed import planned_parameters, pooled_variance
from ._fans import CONV_LAYERS, CONV_TRANSPOSE_LAYERS
from ._graph import quiet_forward
from ._plan import Context, LayerPlan, qualify

__all__ = ["calibrate", "measure_variances"]

_DROPOUTS = {
    F.dropout,
    F.dropout1d,
    F.dropout2d,
    F.dropout3d,
    F.alpha_dropout,
    F.feature_alpha_dropout,
    torch.dropout,
    torch.alpha_dropout,
    torch.feature_dropout,
    torch.feature_alpha_dropout,
}
_CALIBRATED: tuple[type[nn.Module], ...] = (nn.Linear, nn.Embedding, *CONV_LAYERS, *CONV_TRANSPOSE_LAYERS)


class NoDropout(TorchFunctionMode):
    """Makes every dropout the identity (functional calls, ``nn.Dropout``, attention dropout)."""

    def __torch_function__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        kwargs = dict(kwargs or {})
        if func in _DROPOUTS:
            return args[0] if args else kwargs["input"]
        if func is F.scaled_dot_product_attention:
            if len(args) > 4:
                args = (*args[:4], 0.0, *args[5:])
            else:
                kwargs["dropout_p"] = 0.0
        elif func is F.multi_head_attention_forward:
            kwargs["training"] = False
        return func(*args, **kwargs)


def _first_tensor(output: Any) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return None


def _variance(tensor: torch.Tensor | None) -> float | None:
    """Unbiased variance of all entries; ``None`` when there is nothing to measure."""
    if tensor is None or tensor.numel() < 2:
        return None
    values = tensor.detach()
    # float32 accumulation (torch's Welford reduction) is accurate to ~1e-6 here, far below the batch's own sampling
    # error; half precision is widened first.
    return float((values if values.dtype in (torch.float32, torch.float64) else values.float()).var())


def _make_hook(
    plan: LayerPlan, weight: torch.Tensor, measure: Callable[[torch.Tensor | None], float | None] = _variance
) -> Callable[..., Any]:
    seen = [0]

    def hook(module: nn.Module, args: Any, output: Any) -> Any:
        tensor = _first_tensor(output)
        measured = measure(tensor)
        if tensor is None or measured is None:
            return None
        seen[0] += 1
        if seen[0] > 1:
            plan.notes.append(f"call {seen[0]}: measured variance {measured:.4g} (weights from the first call)")
            return None
        plan.measured_var = measured
        if not (measured > 0.0 and math.isfinite(measured)) or plan.target_var <= 0.0:
            return None
        scale = math.sqrt(plan.target_var / measured)
        weight.mul_(scale)
        plan.calibration_scale = scale
        plan.std *= scale
        tensor.mul_(scale)  # a fresh output of a weight layer, under no_grad: rescaled in place
        return output

    return hook


def _calibrated(module: nn.Module, plan: LayerPlan) -> bool:
    """Layers rescaled by calibration: torch's weight modules, and modules of other libraries whose own weight makes
    the row's output (Hugging Face's ``Conv1D``: ``addmm`` on its weight, the row named for the module)."""
    if isinstance(module, _CALIBRATED):
        return True
    foreign = not type(module).__module__.startswith("torch.")
    return foreign and plan.fan_in > 0 and plan.param_name == qualify(plan.name, "weight")


def calibrate(model: nn.Module, ctx: Context, batch: tuple[torch.Tensor, ...]) -> None:
    """Rescale the planned weights (``ctx.new``) in place so that each handled layer's output variance on ``batch``
    is its target. The model's own parameters are not touched (they are swapped for the plan's tensors with
    ``torch.func.functional_call``; for a sharded model, written into the shards for the pass and restored after).

    Sharded models (``ctx.mesh``): each rank passes its own part of the batch; every measured variance is that of
    the whole batch (count, sum and centred sum of squares all-reduced), so all ranks apply the same scale."""
    ctx.settle()
    modules = dict(model.named_modules(remove_duplicate=False))
    plans = {plan.name: plan for plan in ctx.layers}
    handles = []
    # Sharded models: statistics pooled over the ranks' parts of the batch (see _distributed).
    measure = _variance if ctx.mesh is None else functools.partial(pooled_variance, mesh=ctx.mesh)
    try:
        hooked: set[int] = set()  # (a tied weight is calibrated at its first use only: see _tied)
        for name, plan in plans.items():
            module = modules.get(name)
            weight = getattr(module, "weight", None)
            if module is None or id(weight) not in ctx.new or id(weight) in hooked or not _calibrated(module, plan):
                continue
            hooked.add(id(weight))
            handles.append(module.register_forward_hook(_make_hook(plan, ctx.new[id(weight)][1], measure)))
        for attention_name, projection in ctx.calibrate_modules.items():
            attention, out_plan = modules.get(attention_name), plans.get(projection)
            out_proj = modules.get(projection)
            if attention is not None and out_plan is not None and isinstance(out_proj, nn.Linear):
                new_weight = ctx.new[id(out_proj.weight)][1]
                handles.append(attention.register_forward_hook(_make_hook(out_plan, new_weight)))
        parameters = {ctx.param_names[key]: value for key, (_param, value) in ctx.new.items() if key in ctx.param_names}
        with quiet_forward(model), NoDropout():
            try:
                if ctx.mesh is None:
                    torch.func.functional_call(model, parameters, batch, strict=False)
                else:  # FSDP gathers its own shards: write the plan into them for this pass
                    with planned_parameters(model, ctx):
                        model(*batch)
            except Exception as error:
                shapes = ", ".join(f"{tuple(t.shape)} {t.dtype}" for t in batch)
                raise VarpropValueError(
                    f"the calibration batch ({shapes}) does not fit the model: its forward pass raised "
                    f"{type(error).__name__}: {error}"
                ) from error
    finally:
        for handle in handles:
            handle.remove()


def measure_variances(
    model: nn.Module, batch: tuple[torch.Tensor, ...] | torch.Tensor, types: tuple[type[nn.Module], ...] = _CALIBRATED
) -> dict[str, list[float]]:
    """Variance of every output of the given module types on ``batch`` (one forward pass, dropout off, buffers kept).

    Returns:
        ``{qualified name: [variance at each call]}`` in call order (``nn.MultiheadAttention`` outputs under the name
        of its ``out_proj``, which produces them).

    Example:
        >>> net = nn.Sequential(nn.Linear(8, 8), nn.ELU(), nn.Linear(8, 8))
        >>> sorted(measure_variances(net, torch.randn(64, 8)))
        ['0', '2']
    """
    args = batch if isinstance(batch, tuple) else (batch,)
    found: dict[str, list[float]] = {}
    handles = []

    def record(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, hook_args: Any, output: Any) -> None:
            tensor = _first_tensor(output)
            if tensor is not None and tensor.numel() > 1:
                found.setdefault(name, []).append(float(tensor.detach().double().var()))

        return hook

    for name, module in model.named_modules():
        if isinstance(module, nn.MultiheadAttention) and nn.Linear in types:
            # its out_proj is applied inside F.multi_head_attention_forward: the module's output is out_proj's
            handles.append(module.register_forward_hook(record(qualify(name, "out_proj"))))
        elif isinstance(module, types):
            handles.append(module.register_forward_hook(record(name)))
    try:
        with quiet_forward(model), NoDropout():
            model(*args)
    finally:
        for handle in handles:
            handle.remove()
    return found
