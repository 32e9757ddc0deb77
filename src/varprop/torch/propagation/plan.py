"""What ``init_model`` decides before it writes anything: a recipe for the new value of each handled parameter, one
``LayerPlan`` per weight layer (a row of the report), and the notes collected on the way; and the write itself.

Memory: a plan holds no weights. A recipe says how to make a parameter's new value (the seeded rank-invariant draw of
``_sharded_random`` at a std, zeros or a constant, per block of rows, then the scale factors found for it, in order),
and every value is made again from it when needed: the realized-weight statistics of a layer read its draw into one
reused buffer, the calibration pass makes each weight when an operation uses it, and the write makes each parameter
in turn. Peak: the model plus O(largest parameter), whatever the model's size.

Atomicity: every decision (scale, statistic, calibration factor) and every check comes before the first write, and
the plan reads no parameter's value, so an error during planning leaves the model untouched. The write makes each
parameter's whole new value in a work buffer first and then stores it with one tensor operation, so no parameter is
left half-written; an error during the write (out of memory, an interrupt) raises ``InitWriteError`` naming the
parameters already written, and rerunning ``init_model`` with the same seed writes the same values.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from ... import VarpropError
from ...activations import Activation
from ..sampling.draws import LOW_PRECISION, is_dtensor
from ..sampling.orthogonal import ORTHOGONAL_DISTRIBUTIONS
from ..sampling.sharded_random import block_seed, draw_region, draw_rows_into, name_seed
from .stats import Stat, UnitMoments

__all__ = [
    "ActivationUse",
    "Context",
    "InitWriteError",
    "LayerPlan",
    "Recipe",
    "Sharding",
    "Spatial",
    "SpatialMap",
    "keeps_draws",
    "qualify",
]

# A convolution applied to (input map, kernel), and (that map, input spatial shape, output spatial shape).
SpatialMap = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Spatial = tuple[SpatialMap, tuple[int, ...], tuple[int, ...]]


def qualify(prefix: str, name: str) -> str:
    """``prefix.name``, or ``name`` for the root module (whose qualified name is ``""``)."""
    return f"{prefix}.{name}" if prefix else name


@dataclass
class LayerPlan:
    """One weight layer (or one projection of an attention layer): what was assumed and chosen."""

    name: str
    layer_type: str
    param_name: str
    fan_in: float
    effective_fan_in: float
    target_var: float
    std: float
    input: Stat | None = None
    output: Stat | None = None
    follows: str = ""
    calls: int = 1
    realized_scale: float = 1.0
    measured_var: float | None = None
    calibration_scale: float | None = None
    branch: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass
class ActivationUse:
    name: str
    act: Activation
    input_var: float
    input_mean: float


class InitWriteError(VarpropError, RuntimeError):
    """``init_model`` failed while writing the model (after every check passed): ``written`` holds the qualified
    names of the parameters that already have their new values, ``pending`` those that still have their old ones
    (none is half-written). Rerunning ``init_model`` with the same seed writes the same values."""

    def __init__(self, message: str, written: list[str], pending: list[str]) -> None:
        super().__init__(message)
        self.written = written
        self.pending = pending


@dataclass
class _Segment:
    """Rows ``[start, stop)`` of dim 0 (``None``: the whole tensor) made one way: ``kind`` ``"draw"`` (the parameter's
    rank-invariant draw at std ``value``), ``"zero"``, ``"fill"`` (the constant ``value``), ``"bias"`` (a normal draw of
    std ``value`` whatever the weights' distribution: objective="critical"'s sigma_b) or ``"value"`` (the whole new
    value, ``tensor``); then multiplied by each
    of ``factors`` in turn (the order of the roundings is part of the promise "same seed, same bits")."""

    rows: tuple[int, int] | None
    kind: str
    value: float
    factors: list[float] = field(default_factory=list)
    # kind "value": the new value itself (made from another planned value: a parametrization's originals)
    tensor: torch.Tensor | None = None


@dataclass
class Recipe:
    """How to make the new value of one parameter: segments applied in order (a later one overrides an earlier one
    where they overlap), rows with no segment kept at their current value, then the ``zero_rows`` set to 0."""

    param: torch.Tensor
    seed: int
    segments: list[_Segment] = field(default_factory=list)
    zero_rows: list[int] = field(default_factory=list)

    def covers_all(self) -> bool:
        """Whether every element is made by a segment (so the current value is not read)."""
        if any(segment.rows is None for segment in self.segments):
            return True
        reached = 0
        for start, stop in sorted(segment.rows for segment in self.segments if segment.rows is not None):
            if start > reached:
                return False
            reached = max(reached, stop)
        return reached >= (int(self.param.shape[0]) if self.param.dim() else 1)


class Sharding(Protocol):
    """What a sharded model's ``DTensor`` parameters need beyond the plain path, where the plan and the rules reach
    them: ``Context.sharding``, set by ``init_model`` for a model with DTensor parameters only (implemented by
    ``varprop.torch.distributed.sharding.MeshSharding``; nothing on the plain path imports it)."""

    def make(self, ctx: Context, recipe: Recipe) -> torch.Tensor:
        """A DTensor parameter's new value as planned so far (this rank's elements)."""
        ...

    def realized_output(
        self, x: Stat, weight: Any, layout: str, groups: int, fraction: float, spatial: Spatial | None
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """Per-unit output means and variances (and unknown-offset variance) of a layer with a DTensor weight."""
        ...

    def embedding_moments(self, drawn: Any, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-dimension mean and variance over the rows of a DTensor embedding table, rows weighted by ``weights``."""
        ...

    def pooled_variance(self, tensor: torch.Tensor | None) -> float | None:
        """Unbiased variance of all entries of every rank's ``tensor``."""
        ...

    def planned_parameters(self, model: nn.Module, ctx: Context) -> contextlib.AbstractContextManager[None]:
        """The planned values written into the parameters' shards for one forward pass, the old ones restored."""
        ...


def _store(param: torch.Tensor, value: torch.Tensor | float, factor: float | None) -> None:
    """The one operation that writes ``param``: ``value`` (times ``factor``) copied into it; a float ``value``: that
    constant in every element."""
    if isinstance(value, float):
        param.fill_(value)
    elif factor is None:
        param.copy_(value)
    else:
        torch.mul(value, factor, out=param)


@dataclass
class Context:
    """Settings and state shared by the propagation rules."""

    target_var: float
    distribution: str
    realized: bool
    residual: str
    param_names: dict[int, str]
    # One seed per init_model call (agreed over the mesh); each parameter's draw derives its own from it.
    seed: int
    unit_moments: UnitMoments = field(default_factory=UnitMoments)
    # The recipe of every handled parameter, by id, in the order the plan reached them (the write order).
    recipes: dict[int, Recipe] = field(default_factory=dict)
    layers: list[LayerPlan] = field(default_factory=list)
    plan_of: dict[tuple[int, int], LayerPlan] = field(default_factory=dict)
    unknown: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    activations: list[ActivationUse] = field(default_factory=list)
    # Residual policy: target variance of a branch end, as a function of the skip stream's Stat (see _residual).
    branch_target: dict[str, Callable[[], float]] = field(default_factory=dict)
    branch_label: dict[str, str] = field(default_factory=dict)
    # Pre-activation Stat of activation nodes (for max pooling of monotone activations).
    pre_activation: dict[str, tuple[Activation, Stat]] = field(default_factory=dict)
    calibrate_modules: dict[str, str] = field(default_factory=dict)
    # Recurrent modules: the predicted variance of the output's entries at each step of the sequence, by module.
    step_variances: dict[str, list[float]] = field(default_factory=dict)
    # The propagated value of every graph node (for diagnostics and tests).
    env: dict[str, Any] = field(default_factory=dict)
    # A sharded model's DTensor parameters (see ``Sharding``), None otherwise.
    sharding: Sharding | None = None
    # Work buffers reused by every layer (see ``scratch``), by (purpose, device, dtype), and the size each is given
    # at once (the largest parameter of that device and dtype: one allocation, not one per larger layer, each of
    # which would stay in the process's heap).
    buffers: dict[tuple[str, torch.device, torch.dtype], torch.Tensor] = field(default_factory=dict)
    largest: dict[tuple[torch.device, torch.dtype], int] = field(default_factory=dict)
    # Small models (see ``keeps_draws``): draws kept between planning and writing, by (id of the parameter, first
    # row, rows), with the std they were drawn at (not made twice: sampling costs more than the rest of a layer).
    keep_draws: bool = False
    kept: dict[tuple[int, int, int, tuple[int, int] | None], tuple[float, torch.Tensor]] = field(default_factory=dict)
    # New values already made whole and final (the calibration pass of a small model), by id: stored as they are.
    final: dict[int, torch.Tensor] = field(default_factory=dict)
    # sigma_b of objective="critical": biases drawn from N(0, bias_std^2) (0: biases are zeroed).
    bias_std: float = 0.0
    # The LSTM forget gate's bias (init_model's forget_bias; see _recurrent).
    forget_bias: float = 1.0

    def sharding_of(self, param: torch.Tensor) -> Sharding | None:
        """The ``Sharding`` that makes ``param``'s values when it is a DTensor, ``None`` for a plain tensor."""
        if not is_dtensor(param):
            return None
        if self.sharding is None:
            raise VarpropError(f"{self.name_of(param)} is a DTensor, but the plan was made for an unsharded model")
        return self.sharding

    def name_of(self, param: torch.Tensor) -> str:
        return self.param_names.get(id(param), "<parameter>")

    def target_for(self, key: str) -> float:
        """Target output variance of the layer called ``key`` (residual branch ends get the policy's value)."""
        rule = self.branch_target.get(key)
        return self.target_var if rule is None else rule()

    def note_unknown(self, what: str, assumption: str) -> None:
        self.unknown.setdefault(what, assumption)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def scratch(
        self,
        numel: int,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
        purpose: str = "squares",
        parameter_sized: bool = True,
    ) -> torch.Tensor:
        """A work buffer of ``numel`` elements (uninitialized; the same memory for every caller with the same
        ``purpose``: valid until the next call). It grows to the largest request: O(largest parameter); with
        ``parameter_sized`` it is given the size of the largest parameter of its device and dtype at once."""
        key = (purpose, device, dtype)
        buffer = self.buffers.get(key)
        if buffer is None or buffer.numel() < numel:
            self.buffers.pop(key, None)  # (freed before the larger one is allocated)
            size = max(numel, self.largest.get((device, dtype), 0) if parameter_sized else 0)
            buffer = self.buffers[key] = torch.empty(size, dtype=dtype, device=device)
        return buffer[:numel]

    # --- planning: recipes --------------------------------------------------------------------------------------

    def _recipe(self, param: torch.Tensor) -> Recipe:
        recipe = self.recipes.get(id(param))
        if recipe is None:
            recipe = self.recipes[id(param)] = Recipe(param, name_seed(self.seed, self.name_of(param)))
        return recipe

    def _add(self, param: torch.Tensor, segment: _Segment) -> None:
        recipe = self._recipe(param)
        if segment.rows is None:  # replaces the whole value
            recipe.segments.clear()
            recipe.zero_rows.clear()
        recipe.segments.append(segment)

    def plan_draw(self, param: torch.Tensor, std: float, rows: slice | None = None) -> None:
        """New zero-mean weights of standard deviation ``std`` for ``param`` (or for its rows ``rows``): ``std`` times
        the unit-std rank-invariant draw of ``_sharded_random`` under a seed that depends only on ``seed`` and the
        parameter's qualified name (not on the order in which layers are reached); a DTensor gets this rank's
        elements. Nothing is drawn now (see ``read`` and ``write``)."""
        self._add(param, _Segment(None if rows is None else _bounds(rows), "draw", std))

    def zero(self, param: torch.Tensor | None, rows: slice | None = None) -> None:
        if isinstance(param, torch.Tensor):
            self._add(param, _Segment(None if rows is None else _bounds(rows), "zero", 0.0))

    def fill(self, param: torch.Tensor | None, value: float, rows: slice | None = None) -> None:
        if isinstance(param, torch.Tensor):
            self._add(param, _Segment(None if rows is None else _bounds(rows), "fill", value))

    def plan_bias_draw(self, param: torch.Tensor, std: float) -> None:
        """N(0, std^2) values for the bias ``param`` (always normal), seeded by ``seed`` and the parameter's name."""
        self._add(param, _Segment(None, "bias", std))

    def set_value(self, param: torch.Tensor, value: torch.Tensor, rows: slice | None = None) -> None:
        """The new value of ``param`` (or of its rows ``rows``), given (held until the write: only for values that
        are not a seeded draw times scales, such as the originals of a weight-norm parametrization or a recurrent
        layer's per-gate orthogonal blocks)."""
        self._add(param, _Segment(None if rows is None else _bounds(rows), "value", 0.0, tensor=value))

    def zero_row(self, param: torch.Tensor, row: int) -> None:
        """Row ``row`` of the new value set to 0 (an embedding's padding row), after everything else."""
        self._recipe(param).zero_rows.append(row)

    def scale(self, param: torch.Tensor, factor: float, rows: slice | None = None) -> None:
        """Multiply the new value of ``param`` (or of its rows ``rows``, which a segment of their own must cover) by
        ``factor``."""
        recipe = self.recipes[id(param)]
        wanted = None if rows is None else _bounds(rows)
        for segment in recipe.segments:
            if wanted is None or segment.rows == wanted:
                segment.factors.append(factor)

    def is_planned(self, param: torch.Tensor) -> bool:
        return id(param) in self.recipes

    # --- making values ------------------------------------------------------------------------------------------

    def read(self, param: torch.Tensor, rows: slice | None = None) -> torch.Tensor:
        """The new value of ``param`` (or of its rows ``rows``) as planned so far, in a work buffer that the next
        ``read`` reuses (a DTensor: a fresh one): copy what must outlive it (a float64 CPU tensor's ``.numpy()`` is
        a view of the buffer). For statistics; the model is not touched."""
        recipe = self.recipes[id(param)]
        sharding = self.sharding_of(param)
        if sharding is not None:
            value = sharding.make(self, recipe)
            return value if rows is None else value[rows]
        start, stop = (0, _rows_of(param)) if rows is None else _bounds(rows)
        shape = tuple(param.shape) if rows is None else (stop - start, *param.shape[1:])
        out = self.scratch(math.prod(shape), param.device, param.dtype, "work").view(shape)
        self._make(recipe, out, start, stop)
        return out

    def read_shared(self, param: torch.Tensor, rows: slice | None = None) -> tuple[torch.Tensor, bool]:
        """``read``, but without the copy into the work buffer where the value is a draw kept as it is (a small
        model's unit-std draw with no scale yet: the realized-weight statistics of a layer): ``(value, writable)``,
        where a value that is not ``writable`` is the kept draw itself, to be read and not modified."""
        recipe = self.recipes[id(param)]
        wanted = None if rows is None else _bounds(rows)
        segment = recipe.segments[-1] if recipe.segments else None
        if (
            not self.keep_draws
            or segment is None
            or param.dim() == 0
            or is_dtensor(param)
            or segment.kind != "draw"
            or segment.factors
            or recipe.zero_rows
            or (segment.value != 1.0 and param.dtype not in LOW_PRECISION)
            or segment.rows != wanted
            or any(other.rows is None or _overlap(other.rows, wanted) for other in recipe.segments[:-1])
        ):
            return self.read(param, rows), True
        start, stop = (0, _rows_of(param)) if wanted is None else wanted
        shape = (stop - start, *param.shape[1:])
        key = (id(param), start, stop - start, segment.rows)
        kept = self.kept.get(key)
        if kept is None or kept[0] != segment.value:
            value = torch.empty(shape, dtype=param.dtype, device=param.device)
            operations = self._draw_fresh(value, param, segment, start, recipe.seed)
            assert not operations  # (a unit-std draw, or one of a low precision drawn at its std)
            self.kept[key] = kept = (segment.value, value)
        return kept[1], False

    def value(self, param: torch.Tensor, out: torch.Tensor | None = None, keep: bool = True) -> torch.Tensor:
        """The new value of ``param`` as planned so far, in ``out`` (contiguous, its shape and dtype) or a tensor of
        its own; with ``keep=False`` a draw not kept yet is made straight into it (and not kept: for a value that is
        made once)."""
        recipe = self.recipes[id(param)]
        sharding = self.sharding_of(param)
        if sharding is not None:
            return sharding.make(self, recipe)
        if out is None:
            out = torch.empty(param.shape, dtype=param.dtype, device=param.device)
        self._make(recipe, out, 0, _rows_of(param), keep=keep)
        return out

    def _make(
        self, recipe: Recipe, out: torch.Tensor, start: int, stop: int, defer: bool = False, keep: bool = True
    ) -> float | None:
        """Make rows ``[start, stop)`` of the recipe's value in ``out`` (contiguous, those rows' shape). With
        ``defer``, the last multiplication of a single whole-tensor segment is not done but returned (for ``_store``
        to fuse it into the copy into the parameter: one pass over the weights instead of two). Without ``keep``, a
        draw that is not kept is made in ``out`` directly (and not kept)."""
        param = recipe.param
        if not recipe.covers_all():
            out.copy_(_rows_view(param.detach(), start, stop))
        pending: float | None = None
        for segment in recipe.segments:
            low, high = segment.rows if segment.rows is not None else (0, _rows_of(param))
            low, high = max(low, start), min(high, stop)
            if low >= high:
                continue
            target = _rows_view(out, low - start, high - start)
            factors = list(segment.factors)
            if segment.kind == "draw":
                operations, applied = self._draw_into(target, param, segment, low, recipe.seed, keep)
                factors = operations + factors[applied:]
            elif segment.kind == "zero":
                target.zero_()
            elif segment.kind == "value" and segment.tensor is not None:
                offset = segment.rows[0] if segment.rows is not None else 0
                target.copy_(_rows_view(segment.tensor, low - offset, high - offset))
            elif segment.kind == "bias":
                bias = draw_region(
                    tuple(param.shape),
                    [None] * param.dim(),
                    segment.value,
                    dtype=param.dtype,
                    device=param.device,
                    distribution="normal",
                    seed=recipe.seed,
                )
                target.copy_(_rows_view(bias, low, high))
            else:
                target.fill_(segment.value)
            if defer and factors and segment.rows is None and len(recipe.segments) == 1 and not recipe.zero_rows:
                pending = factors.pop()
            for factor in factors:
                target.mul_(factor)
        for row in recipe.zero_rows:
            row %= _rows_of(param)
            if start <= row < stop:
                out[row - start].zero_()
        return pending

    def _draw_into(
        self, target: torch.Tensor, param: torch.Tensor, segment: _Segment, first: int, seed: int, keep: bool = True
    ) -> tuple[list[float], int]:
        """Rows ``first...`` of the parameter's draw at ``std`` into ``target``; returns the multiplications still to
        do before the segment's factors, and how many of those factors were applied already (a kept draw is copied
        and scaled by the first in one pass). float32/float64: the unit-std draw, then times ``std``;
        float16/bfloat16: drawn at ``std`` in float32 before their one rounding (see _tensor_init.draw)."""
        std = segment.value
        if self.keep_draws and param.dim():
            # (a block of rows: MultiheadAttention's q, k, v; the segment too: an orthogonal block is its own draw)
            key = (id(param), first, int(target.shape[0]), segment.rows)
            kept = self.kept.get(key)
            if (kept is None or kept[0] != std) and not keep:
                return self._draw_fresh(target, param, segment, first, seed), 0
            if kept is None or kept[0] != std:
                value = torch.empty(target.shape, dtype=param.dtype, device=param.device)
                self.kept[key] = kept = (std, value)
                operations = self._draw_fresh(value, param, segment, first, seed)
            else:
                operations = [] if param.dtype in LOW_PRECISION or std == 1.0 else [std]
            # (the copy and the first multiplication as one pass: the same bits as the copy, then the product)
            if operations:
                torch.mul(kept[1], operations[0], out=target)
                return operations[1:], 0
            if segment.factors:
                torch.mul(kept[1], segment.factors[0], out=target)
                return [], 1
            target.copy_(kept[1])
            return operations, 0
        return self._draw_fresh(target, param, segment, first, seed), 0

    def _draw_fresh(
        self, target: torch.Tensor, param: torch.Tensor, segment: _Segment, first: int, seed: int
    ) -> list[float]:
        std = segment.value
        if self.distribution in ORTHOGONAL_DISTRIBUTIONS:
            return self._draw_orthogonal(target, param, segment, first, seed)
        shape = tuple(param.shape)
        if param.dim() == 0:
            value = draw_region(
                shape, [], std, dtype=param.dtype, device=param.device, distribution=self.distribution, seed=seed
            )
            target.copy_(value)
            return []
        if param.dtype in LOW_PRECISION:
            index: list[torch.Tensor | None] = [torch.arange(first, first + int(target.shape[0]))]
            index += [None] * (len(shape) - 1)
            target.copy_(
                draw_region(
                    shape, index, std, dtype=param.dtype, device=param.device, distribution=self.distribution, seed=seed
                )
            )
            return []
        draw_rows_into(target, shape, first, 1.0, self.distribution, seed)
        return [] if std == 1.0 else [std]

    def _draw_orthogonal(
        self, target: torch.Tensor, param: torch.Tensor, segment: _Segment, first: int, seed: int
    ) -> list[float]:
        """Rows ``first...`` of a (delta-)orthogonal draw into ``target``. A QR needs the whole matrix: a whole-tensor
        segment draws the whole tensor (then keeps its rows); a block of rows (q, k or v of a fused projection) is
        orthogonal by itself, seeded by its first row."""
        low_precision = param.dtype in LOW_PRECISION
        drawn_std = segment.value if low_precision else 1.0
        if segment.rows is None:
            shape, offset, block = tuple(param.shape), 0, seed
        else:
            start, stop = segment.rows
            shape, offset, block = (stop - start, *param.shape[1:]), start, block_seed(seed, start)
        index: list[torch.Tensor | None] = [None] * len(shape)
        if (first - offset, int(target.shape[0])) != (0, shape[0]):
            index[0] = torch.arange(first - offset, first - offset + int(target.shape[0]))
        target.copy_(
            draw_region(
                shape,
                index,
                drawn_std,
                dtype=param.dtype,
                device=param.device,
                distribution=self.distribution,
                seed=block,
            )
        )
        return [] if low_precision or segment.value == 1.0 else [segment.value]

    # --- the write ----------------------------------------------------------------------------------------------

    def write(self) -> None:
        """Write every planned parameter, one at a time: its new value made whole in a work buffer, then stored by
        one operation (``_store``). Raises ``InitWriteError`` (naming what was written) if that fails midway."""
        written: list[str] = []
        order = list(self.recipes.values())
        with torch.no_grad():
            for position, recipe in enumerate(order):
                try:
                    self._write_one(recipe)
                except BaseException as error:
                    pending = [self.name_of(r.param) for r in order[position:]]
                    raise InitWriteError(
                        f"init_model failed while writing {self.name_of(recipe.param)}: {type(error).__name__}: "
                        f"{error}. Written ({len(written)}): {', '.join(written) or 'none'}; not written, old values "
                        f"kept ({len(pending)}): {', '.join(pending)}. No parameter is half-written; rerun init_model "
                        "with the same seed (generator state) to finish: it writes the same values.",
                        written,
                        pending,
                    ) from error
                written.append(self.name_of(recipe.param))
        self.buffers.clear()
        self.kept.clear()
        self.final.clear()

    def _write_one(self, recipe: Recipe) -> None:
        param = recipe.param
        sharding = self.sharding_of(param)
        if sharding is not None:
            _store(param, sharding.make(self, recipe), None)
            return
        final = self.final.pop(id(param), None)
        if final is not None:
            _store(param, final, None)
            return
        only = recipe.segments[0] if len(recipe.segments) == 1 else None
        if (
            only is not None
            and only.kind in ("zero", "fill")
            and only.rows is None
            and not only.factors
            and not recipe.zero_rows
        ):  # (a bias, a norm's gamma: no work buffer)
            _store(param, float(only.value), None)
            return
        whole = (id(param), 0, _rows_of(param), None)
        kept = self.kept.get(whole)
        segment = recipe.segments[0] if len(recipe.segments) == 1 else None
        if (
            kept is not None
            and segment is not None
            and segment.rows is None
            and segment.kind == "draw"
            and segment.value == kept[0]
            and not recipe.zero_rows
        ):  # straight from the kept draw
            del self.kept[whole]
            low = param.dtype in LOW_PRECISION
            operations = ([] if low or segment.value == 1.0 else [segment.value]) + segment.factors
            for earlier in operations[:-1]:
                kept[1].mul_(earlier)
            _store(param, kept[1], operations[-1] if operations else None)
            return
        value = self.scratch(param.numel(), param.device, param.dtype, "work").view(param.shape)
        factor = self._make(recipe, value, 0, _rows_of(param), defer=True, keep=False)
        _store(param, value, factor)


# Models with at most this many bytes of parameters keep their draws between planning and writing (a copy of at
# most 64 MiB, small next to the process itself: ~300 MB with torch); larger ones make each draw again when needed,
# so that init_model's peak stays the model plus O(largest parameter).
KEEP_DRAWS_BYTES = 64 << 20


def keeps_draws(params: list[torch.Tensor]) -> bool:
    """Whether a model with these parameters keeps its draws (``KEEP_DRAWS_BYTES``; never a sharded one)."""
    if any(is_dtensor(param) for param in params):
        return False
    return sum(param.numel() * param.element_size() for param in params) <= KEEP_DRAWS_BYTES


def _bounds(rows: slice) -> tuple[int, int]:
    return int(rows.start or 0), int(rows.stop)


def _overlap(rows: tuple[int, int], other: tuple[int, int] | None) -> bool:
    """Whether the row ranges ``rows`` and ``other`` (``None``: every row) share a row."""
    return other is None or (rows[0] < other[1] and other[0] < rows[1])


def _rows_of(tensor: torch.Tensor) -> int:
    return int(tensor.shape[0]) if tensor.dim() else 1


def _rows_view(tensor: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Rows ``[start, stop)`` of ``tensor`` (a 0-d tensor: itself)."""
    return tensor[start:stop] if tensor.dim() else tensor


def std_for(target: float, fan: float, second_moment: float) -> float:
    """sqrt(target / (fan E[x^2])): He et al.'s rule Var[y] = fan Var[w] E[x^2] solved for the weights."""
    if target <= 0.0:
        return 0.0
    return math.sqrt(target / (fan * second_moment))


def as_numpy(tensor: torch.Tensor) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.asarray(tensor.detach().to("cpu", torch.float64).numpy(), dtype=np.float64)
