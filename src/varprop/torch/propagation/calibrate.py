"""One-pass calibration: a single forward pass in which each weight layer, as its output appears, is rescaled so that
the output's variance on the batch is exactly its target, before the output flows on (topological order for free).

LSUV (Mishkin & Matas 2016) reruns the network once per layer; here each layer's output is rescaled in its forward
hook (bias 0 makes the output linear in the weights: W -> sW gives y -> sy), so later layers already see the corrected
signal. Cost: one forward pass plus a variance per layer. A module called several times (shared weights) is calibrated
at its first call. Dropout is switched off during the pass (its inverted scaling would inflate the measurement by
1/(1 - p)); BatchNorm uses batch statistics in training mode and its buffers are restored afterwards.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 - torch's own convention
from torch.overrides import TorchFunctionMode

from ... import VarpropValueError
from ..graph.modules import CONV_LAYERS, CONV_TRANSPOSE_LAYERS
from ..graph.trace import quiet_forward
from .plan import Context, LayerPlan, qualify

__all__ = ["NoDropout", "calibrate", "measure_variances", "planned_stand_ins"]

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
    plan: LayerPlan,
    rescale: Callable[[float], None],
    measure: Callable[[torch.Tensor | None], float | None] = _variance,
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
        rescale(scale)
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


class _Deferred(torch.Tensor):
    """A stand-in for a planned parameter during the calibration pass: a tensor without storage (the parameter's
    shape, dtype and device) whose value is made from the plan by each operation that uses it (``_Arena``). So the
    pass holds the weights of one operation at a time, never a second copy of the model's; a layer used twice gets
    its value made twice, with the scale its first call found."""

    param: torch.Tensor
    arena: _Arena

    @staticmethod
    def __new__(cls, param: torch.Tensor, arena: _Arena) -> _Deferred:
        stand_in = torch.Tensor._make_wrapper_subclass(
            cls, param.shape, dtype=param.dtype, device=param.device, requires_grad=False
        )
        stand_in.param = param
        stand_in.arena = arena
        return stand_in

    @classmethod
    def __torch_function__(
        cls, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        kwargs = kwargs or {}
        if func in _METADATA:  # shape, dtype, device...: the stand-in's own
            with torch._C.DisableTorchFunctionSubclass():
                return func(*args, **kwargs)
        return _run(func, args, kwargs)

    @classmethod
    def __torch_dispatch__(  # type: ignore[override]  # (torch declares it as a plain function)
        cls, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        # (an operation reached below the Python API, e.g. from C++: the same, one level down)
        return _run(func, args, kwargs or {})


def _run(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``func`` on the made values of the stand-ins among its arguments."""
    leaves = torch.utils._pytree.tree_leaves((args, kwargs))
    stand_ins = list({id(leaf): leaf for leaf in leaves if isinstance(leaf, _Deferred)}.values())
    arena = stand_ins[0].arena
    made = arena.make(stand_ins)
    args, kwargs = torch.utils._pytree.tree_map(
        lambda leaf: made[id(leaf)] if isinstance(leaf, _Deferred) else leaf, (args, kwargs)
    )
    result = func(*args, **kwargs)
    arena.keep_if_viewed(result)
    return result


class _Arena:
    """Where the stand-ins' values are made: one buffer per (device, dtype), reused by every operation (fresh
    tensors of varying sizes, one per weight and operation, would stay in the process's heap after they are freed).
    Each value starts at a multiple of 64 elements (as aligned as a fresh tensor: the kernels that use it, and so
    the bits they give, do not depend on where it lies). An operation whose result is a view of the buffer (a
    weight's transpose, a slice) gets to keep it: the next operation makes its values in a new one."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.buffers: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    def make(self, stand_ins: list[_Deferred]) -> dict[int, torch.Tensor]:
        offsets: dict[int, int] = {}
        sizes: dict[tuple[torch.device, torch.dtype], int] = {}
        for stand_in in stand_ins:
            where = (stand_in.param.device, stand_in.param.dtype)
            offsets[id(stand_in)] = sizes.get(where, 0)
            sizes[where] = sizes.get(where, 0) + -(-stand_in.param.numel() // _ALIGN) * _ALIGN
        for where, size in sizes.items():
            buffer = self.buffers.get(where)
            if buffer is None or buffer.numel() < size:
                self.buffers.pop(where, None)
                largest = -(-self.ctx.largest.get(where, 0) // _ALIGN) * _ALIGN
                self.buffers[where] = torch.empty(max(size, largest), dtype=where[1], device=where[0])
        made = {}
        for stand_in in stand_ins:
            param = stand_in.param
            start = offsets[id(stand_in)]
            out = self.buffers[(param.device, param.dtype)][start : start + param.numel()].view(param.shape)
            made[id(stand_in)] = self.ctx.value(param, out)
        return made

    def keep_if_viewed(self, result: Any) -> None:
        held = {buffer.untyped_storage().data_ptr(): where for where, buffer in self.buffers.items()}
        for leaf in torch.utils._pytree.tree_leaves(result):
            if isinstance(leaf, torch.Tensor) and not isinstance(leaf, _Deferred) and leaf.layout == torch.strided:
                where = held.get(leaf.untyped_storage().data_ptr())
                if where is not None:
                    self.buffers.pop(where, None)


# Alignment of the values in an _Arena, in elements (64 bytes or more for every dtype, as torch's CPU allocator).
_ALIGN = 64


_METADATA = {
    torch.Tensor.shape.__get__,  # type: ignore[attr-defined]
    torch.Tensor.dtype.__get__,  # type: ignore[attr-defined]
    torch.Tensor.device.__get__,
    torch.Tensor.ndim.__get__,  # type: ignore[attr-defined]
    torch.Tensor.requires_grad.__get__,  # type: ignore[attr-defined]
    torch.Tensor.is_floating_point,
    torch.Tensor.size,
    torch.Tensor.dim,
    torch.Tensor.numel,
}


def planned_stand_ins(ctx: Context) -> dict[str, torch.Tensor]:
    """Stand-ins for every planned parameter, by qualified name, for ``torch.func.functional_call``: a forward pass
    through them computes with the planned values (made one operation at a time, see ``_Deferred``) and leaves the
    model's own parameters untouched."""
    arena = _Arena(ctx)
    return {
        ctx.param_names[key]: _Deferred(recipe.param, arena)
        for key, recipe in ctx.recipes.items()
        if key in ctx.param_names
    }


def calibrate(model: nn.Module, ctx: Context, batch: tuple[torch.Tensor, ...]) -> None:
    """Rescale the planned weights (``ctx.recipes``) so that each handled layer's output variance on ``batch`` is its
    target (each scale is recorded in the plan). The model's own parameters are not touched: they are swapped for
    stand-ins that make each planned value when an operation uses it (``_Deferred``, with
    ``torch.func.functional_call``); a small model (``ctx.keep_draws``) gets its values made once before the pass
    instead (and the write stores them); for a sharded model, the plan is written into the shards for the pass and
    the old values restored after.

    Sharded models (``ctx.sharding``): each rank passes its own part of the batch; every measured variance is that of
    the whole batch (count, sum and centred sum of squares all-reduced), so all ranks apply the same scale."""
    modules = dict(model.named_modules(remove_duplicate=False))
    plans = {plan.name: plan for plan in ctx.layers}
    handles = []
    # Sharded models: statistics pooled over the ranks' parts of the batch (see _distributed).
    measure = _variance if ctx.sharding is None else ctx.sharding.pooled_variance
    # Small models (``ctx.keep_draws``): every value made at once, before the pass (at most 64 MiB; a stand-in costs
    # ~0.1 ms per operation, as much as a small layer's whole forward); larger ones: stand-ins.
    made: dict[int, torch.Tensor] = {}
    if ctx.sharding is None and ctx.keep_draws:
        made = {
            key: ctx.value(recipe.param, keep=False) for key, recipe in ctx.recipes.items() if key in ctx.param_names
        }

    def rescaler(weight: torch.Tensor) -> Callable[[float], None]:
        def rescale(factor: float) -> None:
            ctx.scale(weight, factor)
            value = made.get(id(weight))
            if value is not None:  # (the made value is used by the rest of the pass: a module called again)
                value.mul_(factor)

        return rescale

    try:
        hooked: set[int] = set()  # (a tied weight is calibrated at its first use only: see _tied)
        for name, plan in plans.items():
            module = modules.get(name)
            weight = getattr(module, "weight", None)
            if (
                module is None
                or not isinstance(weight, torch.Tensor)
                or not ctx.is_planned(weight)
                or id(weight) in hooked
                or not _calibrated(module, plan)
            ):
                continue
            hooked.add(id(weight))
            hook = _make_hook(plan, rescaler(weight), measure)
            handles.append(module.register_forward_hook(hook))
        for attention_name, projection in ctx.calibrate_modules.items():
            attention, out_plan = modules.get(attention_name), plans.get(projection)
            out_proj = modules.get(projection)
            if attention is not None and out_plan is not None and isinstance(out_proj, nn.Linear):
                hook = _make_hook(out_plan, rescaler(out_proj.weight))
                handles.append(attention.register_forward_hook(hook))
        with quiet_forward(model), NoDropout():
            try:
                if made:
                    values = {ctx.param_names[key]: value for key, value in made.items()}
                    torch.func.functional_call(model, values, batch, strict=False)
                    ctx.final.update(made)  # (each made value has every scale of its recipe: the write stores it)
                elif ctx.sharding is None:
                    torch.func.functional_call(model, planned_stand_ins(ctx), batch, strict=False)
                else:  # FSDP gathers its own shards: write the plan into them for this pass
                    with ctx.sharding.planned_parameters(model, ctx):
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
