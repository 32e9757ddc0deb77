"""Meta-device and sharded (DTensor, FSDP2) models: what ``init_`` and ``init_model`` do differently there.

The flow this supports: build the model under ``torch.device("meta")``, shard it with
``torch.distributed.fsdp.fully_shard`` (or hold ``DTensor`` parameters some other way), ``model.to_empty(device=...)``,
then initialize. Nothing here gathers a weight:

- Fans come from the global (logical) shape (``DTensor.shape``).
- Values: each rank draws only the elements it holds with the rank-invariant scheme of ``_sharded_random``. The seed
  comes from the generator (the global RNG when ``None``) of the mesh's first rank and is broadcast, so the global
  tensor is the same for any number of ranks and any placement, and ranks never draw identical shards.
- ``init_model``'s graph is traced with the parameters replaced by ``meta`` tensors of their global shape and FSDP's
  hooks suspended; the propagated statistics of the example (each rank passes its own part of the batch, as in data
  parallel training) are pooled over the mesh.
- Realized weights: the per-unit output statistics of a layer (sum_j W_ij mu_j, sum_j W_ij^2 v_j) are sums over the
  elements a rank holds, scattered into vectors over the output units and all-reduced (one all-reduce of three
  vectors per layer); every rank then applies the same scale.
- Calibration: the planned values are written into the shards for the one forward pass (FSDP all-gathers them as in
  any forward) and restored afterwards; each layer's output count, sum and centred sum of squares are all-reduced.

Collectives run over every dimension of the parameters' device mesh, which must be the data-parallel mesh (FSDP2,
HSDP). Tensor-parallel activations are not handled by ``init_model``; ``init_`` works for any ``Shard``/``Replicate``
placement.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn

from ... import VarpropError, VarpropValueError
from ..graph.trace import build_graph as build_plain_graph
from ..propagation.layers import input_maps
from ..propagation.plan import Context, Recipe, Spatial
from ..propagation.stats import IndexStat, Stat, as_array, scalar_stat
from ..sampling.draws import LOW_PRECISION, check_materialized, is_dtensor
from ..sampling.sharded_random import draw_region, fresh_seed

__all__ = [
    "MeshSharding",
    "agreed_seed",
    "build_graph",
    "embedding_moments",
    "local_index",
    "plain_type_names",
    "planned_parameters",
    "pooled_input_stat",
    "pooled_variance",
    "prepare_model",
    "rank_invariant_draw",
    "rank_invariant_value",
    "realized_output",
    "zero_row_",
]


# --- meshes and collectives -------------------------------------------------------------------------------------


def _comm_device(mesh: Any) -> torch.device:
    return torch.device(mesh.device_type)


def _all_reduce(tensor: torch.Tensor, mesh: Any, op: Any = None) -> torch.Tensor:
    """Reduce ``tensor`` in place over every rank of ``mesh`` (one collective per mesh dimension)."""
    import torch.distributed as dist

    for dim in range(mesh.ndim):
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM if op is None else op, group=mesh.get_group(dim))
    return tensor


def _broadcast_first(tensor: torch.Tensor, mesh: Any) -> torch.Tensor:
    """The value of the mesh's first rank (coordinate 0 on every mesh dimension), in place on every rank."""
    import torch.distributed as dist

    for dim in range(mesh.ndim):
        dist.broadcast(tensor, group=mesh.get_group(dim), group_src=0)
    return tensor


def _sum_on_mesh(tensor: torch.Tensor, weight: Any) -> torch.Tensor:
    """Sum of per-rank contributions over the mesh of the DTensor ``weight``; ranks that hold a copy of the same
    elements (a ``Replicate`` placement) contribute once (the copy at coordinate 0)."""
    mesh = weight.device_mesh
    coordinate = mesh.get_coordinate() or [0] * mesh.ndim
    if any(place.is_replicate() and coord != 0 for place, coord in zip(weight.placements, coordinate, strict=True)):
        tensor = torch.zeros_like(tensor)
    device = tensor.device
    return _all_reduce(tensor.to(_comm_device(mesh)), mesh).to(device)


def agreed_seed(generator: torch.Generator | None, mesh: Any) -> int:
    """One seed drawn from ``generator`` (the global RNG when ``None``) on every rank, replaced by the first rank's."""
    seed = torch.tensor([fresh_seed(generator)], dtype=torch.int64, device=_comm_device(mesh))
    return int(_broadcast_first(seed, mesh).item())


# --- which elements a rank holds, and drawing them --------------------------------------------------------------


def local_index(tensor: Any) -> list[torch.Tensor | None]:
    """For each dim of the DTensor ``tensor``: the global indices of the elements this rank holds (``None`` when it
    holds the whole dim), computed by torch's own sharding rule (uneven and strided shards included), no
    communication."""
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor
    from torch.distributed.tensor.placement_types import _StridedShard

    mesh, placements = tensor.device_mesh, tensor.placements
    for place in placements:
        if place.is_partial():
            raise VarpropValueError(
                f"a DTensor with a Partial placement ({placements}) holds pending sums, not values; "
                "redistribute it to Shard or Replicate placements before initializing"
            )
    index: list[torch.Tensor | None] = []
    for dim, size in enumerate(tensor.shape):
        mapped: list[Any] = []
        for place in placements:
            if isinstance(place, _StridedShard) and place.dim == dim:
                mapped.append(_StridedShard(0, split_factor=place.split_factor))
            elif place.is_shard(dim):
                mapped.append(Shard(0))
            else:
                mapped.append(Replicate())
        if all(place.is_replicate() for place in mapped):
            index.append(None)
            continue
        positions = torch.arange(size, device=_comm_device(mesh))
        index.append(distribute_tensor(positions, mesh, mapped, src_data_rank=None).to_local().cpu())
    local_shape = tuple(size if kept is None else kept.numel() for size, kept in zip(tensor.shape, index, strict=True))
    if local_shape != tuple(tensor.to_local().shape):  # pragma: no cover - a placement torch added later
        raise VarpropValueError(
            f"can not tell which elements of a DTensor of shape {tuple(tensor.shape)} with placements {placements} "
            f"this rank holds (expected a local shape {local_shape}, found {tuple(tensor.to_local().shape)})"
        )
    return index


def rank_invariant_draw(param: torch.Tensor, std: float, distribution: str, seed: int) -> torch.Tensor:
    """Weights of standard deviation ``std`` like the DTensor ``param`` (a DTensor with the same placements, holding
    this rank's elements), drawn with ``sampling.sharded_random``'s scheme under ``seed``."""
    from torch.distributed.tensor import DTensor

    assert isinstance(param, DTensor)
    local = param.to_local()
    values = draw_region(
        tuple(param.shape),
        local_index(param),
        std,
        dtype=param.dtype,
        device=local.device,
        distribution=distribution,
        seed=seed,
    )
    return DTensor.from_local(
        values, param.device_mesh, param.placements, run_check=False, shape=param.shape, stride=param.stride()
    )


def rank_invariant_value(
    tensor: torch.Tensor, std: float, distribution: str, generator: torch.Generator | None
) -> torch.Tensor:
    """``init_``'s new value of a DTensor: one seed from ``generator`` agreed over the mesh, then the draw."""
    held: Any = tensor
    return rank_invariant_draw(tensor, std, distribution, agreed_seed(generator, held.device_mesh))


def zero_row_(tensor: torch.Tensor, row: int) -> None:
    """``tensor[row].zero_()`` for the DTensor ``tensor`` (an embedding's padding row), on the rank(s) holding it."""
    held: Any = tensor
    row = row % tensor.shape[0]
    kept = local_index(held)[0]
    local = held.to_local()
    with torch.no_grad():
        if kept is None:
            local[row].zero_()
        else:
            for position in (kept == row).nonzero().flatten().tolist():
                local[position].zero_()


# --- models -----------------------------------------------------------------------------------------------------


def _fsdp_modules(model: nn.Module) -> list[Any]:
    if "torch.distributed.fsdp" not in sys.modules:
        return []
    from torch.distributed.fsdp import FSDPModule

    return [module for module in model.modules() if isinstance(module, FSDPModule)]


def reshard(model: nn.Module) -> None:
    """Put FSDP2 modules back in their sharded state (a forward pass leaves the root's parameters unsharded)."""
    for module in _fsdp_modules(model):
        module.reshard()


def prepare_model(model: nn.Module) -> Any:
    """Check ``model`` for ``init_model`` and return the device mesh of its DTensor parameters (``None`` without any).

    Raises ``VarpropValueError`` for meta parameters, DTensors on different meshes, and ``nn.MultiheadAttention``
    with DTensor parameters (its packed q/k/v blocks do not follow shard boundaries).
    """
    for name, param in model.named_parameters():
        check_materialized(param, f"parameter {name!r}")
    reshard(model)
    mesh = None
    for name, param in model.named_parameters():
        held: Any = param
        if not is_dtensor(held):
            continue
        if mesh is None:
            mesh = held.device_mesh
        elif held.device_mesh != mesh:
            raise VarpropValueError(
                f"parameter {name!r} lives on device mesh {held.device_mesh} and others on {mesh}; init_model "
                "needs one (data-parallel) mesh: initialize each part with init_ instead"
            )
    if mesh is not None:
        for name, module in model.named_modules():
            if isinstance(module, nn.MultiheadAttention) and any(is_dtensor(p) for p in module.parameters()):
                raise VarpropValueError(
                    f"module {name!r} is an nn.MultiheadAttention with sharded parameters: its packed q/k/v "
                    "projection rows do not follow shard boundaries; use attention with separate nn.Linear "
                    "projections, or run init_model before sharding"
                )
    return mesh


def plain_type_names(model: nn.Module, ctx: Context) -> None:
    """Report rows name FSDP2-wrapped modules by their own class (``Linear``, not FSDP's subclass ``FSDPLinear``), so
    that a sharded model's report reads like the unsharded model's."""
    from torch.distributed.fsdp import FSDPModule

    names = {}
    for module in _fsdp_modules(model):
        original = next(cls for cls in type(module).__mro__[1:] if not issubclass(cls, FSDPModule))
        names[type(module).__name__] = original.__name__
    for plan in ctx.layers:
        plan.layer_type = names.get(plan.layer_type, plan.layer_type)
        plan.follows = ", ".join(names.get(part, part) for part in plan.follows.split(", ")) if plan.follows else ""


@contextlib.contextmanager
def _fsdp_hooks_suspended(model: nn.Module) -> Iterator[None]:
    """Remove FSDP's forward hooks (they all-gather) for the duration; users' own hooks stay."""
    saved: list[tuple[dict[int, Any], list[tuple[int, Any]]]] = []
    try:
        for module in _fsdp_modules(model):
            for hooks in (module._forward_pre_hooks, module._forward_hooks):
                items = list(hooks.items())
                if any(getattr(hook, "__module__", "").startswith("torch.distributed.fsdp") for _, hook in items):
                    saved.append((hooks, items))
                    for key, hook in items:
                        if getattr(hook, "__module__", "").startswith("torch.distributed.fsdp"):
                            del hooks[key]
        yield
    finally:
        for hooks, items in saved:
            hooks.clear()
            hooks.update(items)


@contextlib.contextmanager
def _shapes_only(model: nn.Module) -> Iterator[None]:
    """DTensor parameters replaced by ``meta`` tensors of their global shape, FSDP hooks suspended."""
    from torch.nn.utils.stateless import _reparametrize_module

    state = {
        name: torch.empty(param.shape, dtype=param.dtype, device="meta")
        for name, param in model.named_parameters(remove_duplicate=False)
        if is_dtensor(param)
    }
    with _fsdp_hooks_suspended(model), _reparametrize_module(model, state):
        yield


def build_graph(model: nn.Module, example: tuple[torch.Tensor, ...]) -> Any:
    """``graph.trace.build_graph`` on the parameters' global shapes (no weight is gathered); when that fails (a model
    fx can not trace, whose recorded forward needs real weights), one real forward pass, in which FSDP gathers each
    unit's weights as in training, then frees them."""
    try:
        with _shapes_only(model):
            return build_plain_graph(model, example)
    except VarpropError:
        pass
    try:
        return build_plain_graph(model, example)
    finally:
        reshard(model)


@contextlib.contextmanager
def planned_parameters(model: nn.Module, ctx: Context) -> Iterator[None]:
    """The planned values written into the parameters (their shards) for a forward pass, the old ones restored after
    (also on error). Costs one copy of this rank's shards of the planned parameters."""
    saved: list[tuple[torch.Tensor, torch.Tensor]] = []
    with torch.no_grad():
        try:
            for recipe in ctx.recipes.values():
                saved.append((recipe.param, recipe.param.detach().clone()))
                recipe.param.copy_(ctx.value(recipe.param))
            yield
        finally:
            reshard(model)
            for param, old in saved:
                param.copy_(old)


# --- statistics pooled over ranks -------------------------------------------------------------------------------


def pooled_input_stat(value: torch.Tensor, input_var: float | None, mesh: Any) -> Stat | IndexStat:
    """``_layers.input_stat`` of the batch made of every rank's ``value`` (the same result as on the whole batch)."""
    device = _comm_device(mesh)
    if not value.is_floating_point():
        if value.dtype in (torch.bool, torch.complex64, torch.complex128):
            return IndexStat(None, value.dim())
        flat = value.detach().reshape(-1).to(device, torch.int64)
        # [-min, max]: one MAX reduction gives the smallest and the largest index over all ranks
        bounds = torch.tensor([-int(flat.min()), int(flat.max())] if flat.numel() else [0, -1], device=device)
        _all_reduce(bounds, mesh, _max_op())
        if int(bounds[1]) < 0 or -int(bounds[0]) < 0:
            return IndexStat(None, value.dim())
        counts = torch.bincount(flat, minlength=int(bounds[1]) + 1) if flat.numel() else flat.new_zeros(0)
        counts = torch.nn.functional.pad(counts, (0, int(bounds[1]) + 1 - counts.numel()))
        return IndexStat(_all_reduce(counts, mesh).cpu().numpy(), value.dim())
    data = value.detach().to(device, torch.float64).reshape(-1)
    count, total = _count_and_sum(data, mesh)
    mean = total / count if count else 0.0
    centred = float(_all_reduce(((data - mean) ** 2).sum(), mesh))
    variance = centred / count if count > 1 else 1.0
    if input_var is not None:
        variance = input_var
    return replace(scalar_stat(mean, mean * mean + variance, value.dim()), mean=as_array(mean))


def _count_and_sum(data: torch.Tensor, mesh: Any) -> tuple[float, float]:
    """Number and sum of the entries of every rank's 1-D float64 ``data`` (one all-reduce)."""
    head = torch.stack([torch.tensor(float(data.numel()), dtype=torch.float64, device=data.device), data.sum()])
    count, total = _all_reduce(head, mesh).tolist()
    return float(count), float(total)


def _max_op() -> Any:
    import torch.distributed as dist

    return dist.ReduceOp.MAX


def pooled_variance(tensor: torch.Tensor | None, mesh: Any) -> float | None:
    """Unbiased variance of all entries of every rank's ``tensor`` (``None`` below 2 entries): two passes, the mean
    first, so the result matches ``torch.var`` on the concatenated tensors up to summation order."""
    device = _comm_device(mesh)
    data = (
        torch.zeros(0, dtype=torch.float64, device=device)
        if tensor is None
        else tensor.detach().to(device, torch.float64).reshape(-1)
    )
    count, total = _count_and_sum(data, mesh)
    if count < 2:
        return None
    mean = total / count
    return float(_all_reduce(((data - mean) ** 2).sum(), mesh)) / (count - 1.0)


# --- realized weights -------------------------------------------------------------------------------------------


def _whole(index: torch.Tensor | None, size: int) -> torch.Tensor:
    return torch.arange(size) if index is None else index


def realized_output(
    x: Stat,
    weight: Any,
    layout: str,
    groups: int,
    fraction: float,
    spatial: Spatial | None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """``_layers._realized_output`` / ``_spatial_output`` for a DTensor weight: the same per-unit output means and
    variances (and unknown-offset variance), from this rank's elements and one all-reduce."""
    if spatial is not None:
        return _spatial_output(x, weight, layout, groups, spatial)
    index = local_index(weight)
    shape = tuple(weight.shape)
    if any(kept is not None for kept in index[2:]):
        raise VarpropValueError(
            f"a weight of shape {shape} sharded along its kernel dimensions ({weight.placements}) is not supported "
            "with realized=True; shard dims 0 or 1, or pass realized=False"
        )
    local = weight.to_local().detach().float()
    device = local.device
    taps = tuple(range(2, local.dim()))
    total = local.sum(dim=taps) if taps else local
    total_sq = (local * local).sum(dim=taps) if taps else local * local
    rows = _whole(index[0], shape[0]).to(device)
    cols = _whole(index[1], shape[1]).to(device)
    rows_out = layout in ("linear", "conv")  # [out, in/groups]; else [in, out/groups] ("matmul", "conv_transpose")
    in_channels = shape[1] * groups if rows_out else shape[0]
    out_units = shape[0] if rows_out else shape[1] * groups
    per_group_rows = shape[0] // groups
    mean_in = torch.as_tensor(np.broadcast_to(x.mean, (in_channels,)).copy(), dtype=torch.float32, device=device)
    var_in = torch.as_tensor(np.broadcast_to(x.var, (in_channels,)).copy(), dtype=torch.float32, device=device)
    sums = torch.zeros(3, out_units, dtype=torch.float64, device=device)
    group_of_row = rows // per_group_rows
    for group in torch.unique(group_of_row).tolist():
        selected = (group_of_row == group).nonzero().flatten()
        block, block_sq = total[selected], total_sq[selected]
        if rows_out:  # unit i = global row: sum_j W_ij mu_j over this rank's columns j of the row's group
            inputs = group * shape[1] + cols
            parts = torch.stack([block @ mean_in[inputs], block_sq @ var_in[inputs], (block * block).sum(1)])
            sums.index_add_(1, rows[selected], parts.double())
        else:  # unit = global column of the row's group: sum over this rank's rows (inputs) i
            inputs = rows[selected]
            parts = torch.stack([mean_in[inputs] @ block, var_in[inputs] @ block_sq, (block * block).sum(0)])
            sums.index_add_(1, group * shape[1] + cols, parts.double())
    mean, var, squares = _sum_on_mesh(sums, weight).cpu().numpy()
    within = fraction * var + (fraction - fraction * fraction) * mean * mean
    shared = float(x.shared * fraction * fraction * float(squares.mean())) if x.shared > 0.0 else 0.0
    return fraction * mean, within, shared


def _spatial_output(
    x: Stat, weight: Any, layout: str, groups: int, spatial: Spatial
) -> tuple[np.ndarray, np.ndarray, float]:
    """Mean and variance maps of a convolution with a DTensor weight sharded along dim 0 (``groups == 1``)."""
    apply, in_spatial, out_spatial = spatial
    index = local_index(weight)
    shape = tuple(weight.shape)
    if groups != 1 or any(kept is not None for kept in index[1:]):
        raise VarpropValueError(
            f"realized=True on a sharded {'grouped ' if groups != 1 else ''}convolution weight of shape {shape} "
            f"({weight.placements}) is supported for groups=1 sharded along dim 0 only; pass realized=False"
        )
    w = weight.to_local().detach().double()
    rows = _whole(index[0], shape[0]).to(w.device)
    in_channels = shape[1] if layout == "conv" else shape[0]
    ones, mean_in, var_in = input_maps(x, in_channels, in_spatial, w.device)
    maps = [mean_in, var_in] + ([ones * x.shared] if x.shared > 0.0 else [])
    kernels = [w, w * w, w * w]
    if layout == "conv":  # this rank's output channels, placed at their global rows
        parts = [apply(source, kernel)[0] for source, kernel in zip(maps, kernels, strict=False)]
        out_channels = shape[0]
        sums = torch.zeros((len(parts), out_channels, *out_spatial), dtype=torch.float64, device=w.device)
        for position, part in enumerate(parts):
            sums[position].index_copy_(0, rows, part)
    else:  # conv_transpose: the contribution of this rank's input channels to every output channel
        parts = [apply(source[:, rows], kernel)[0] for source, kernel in zip(maps, kernels, strict=False)]
        sums = torch.stack(parts)
    sums = _sum_on_mesh(sums, weight)
    shared = float(sums[2].mean()) if x.shared > 0.0 else 0.0
    return sums[0].reshape(-1).cpu().numpy(), sums[1].reshape(-1).cpu().numpy(), shared


def embedding_moments(drawn: Any, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and variance over the rows of a DTensor embedding table, rows weighted by ``weights``."""
    index = local_index(drawn)
    num, dim = tuple(drawn.shape)
    local = drawn.to_local().detach().double().cpu()
    rows, cols = _whole(index[0], num), _whole(index[1], dim)
    row_weights = weights.cpu()[rows][:, None]
    parts = torch.stack([(row_weights * local).sum(0), (row_weights * local * local).sum(0)])
    sums = torch.zeros(2, dim, dtype=torch.float64).index_add_(1, cols, parts)
    mean, second = _sum_on_mesh(sums, drawn)
    return mean.to(weights.device), (second - mean * mean).to(weights.device)


# --- the sharded side of a plan (Context.sharding) ----------------------------------------------------------------


class MeshSharding:
    """``propagation.plan.Sharding`` for the DTensor parameters of a model on one device ``mesh``: what the plan and
    the rules call for those parameters (``init_model`` makes one only when the model has DTensor parameters)."""

    def __init__(self, mesh: Any) -> None:
        self.mesh = mesh

    def make(self, ctx: Context, recipe: Recipe) -> torch.Tensor:
        """A DTensor parameter's new value (this rank's elements; whole-tensor segments only)."""
        param = recipe.param
        value = param.detach().clone() if not recipe.covers_all() else None
        for segment in recipe.segments:
            if segment.rows is not None:  # pragma: no cover - init_model refuses row blocks of DTensors
                raise VarpropError(f"a block of rows of the DTensor {ctx.name_of(param)} can not be planned alone")
            if segment.kind == "draw":
                low = param.dtype in LOW_PRECISION
                value = rank_invariant_draw(param, segment.value if low else 1.0, ctx.distribution, recipe.seed)
                if not low and segment.value != 1.0:
                    value.mul_(segment.value)
            elif segment.kind == "zero":
                value = torch.zeros_like(param)
            elif segment.kind == "value" and segment.tensor is not None:
                value = segment.tensor.clone()
            elif segment.kind == "bias":
                value = rank_invariant_draw(param, segment.value, "normal", recipe.seed)
            else:
                value = torch.full_like(param, segment.value)
            for factor in segment.factors:
                value.mul_(factor)
        assert value is not None
        for row in recipe.zero_rows:
            zero_row_(value, row)
        return value

    def realized_output(
        self, x: Stat, weight: Any, layout: str, groups: int, fraction: float, spatial: Spatial | None
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """``realized_output`` (this rank's elements and one all-reduce)."""
        return realized_output(x, weight, layout, groups, fraction, spatial)

    def embedding_moments(self, drawn: Any, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``embedding_moments``."""
        return embedding_moments(drawn, weights)

    def pooled_variance(self, tensor: torch.Tensor | None) -> float | None:
        """``pooled_variance`` over this sharding's mesh."""
        return pooled_variance(tensor, self.mesh)

    def planned_parameters(self, model: nn.Module, ctx: Context) -> contextlib.AbstractContextManager[None]:
        """``planned_parameters``."""
        return planned_parameters(model, ctx)
