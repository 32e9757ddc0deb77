"""What ``init_model`` decides before it writes anything: new tensors for each handled parameter, one ``LayerPlan``
per weight layer (a row of the report), and the notes collected on the way."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .._activation import Activation
from ._distributed import is_dtensor, rank_invariant_draw
from ._sharded_random import draw_many, draw_region, name_seed
from ._stats import Stat, UnitMoments
from ._tensor_init import LOW_PRECISION

__all__ = ["ActivationUse", "Context", "LayerPlan", "qualify"]


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
    new: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
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
    # The propagated value of every graph node (for diagnostics and tests).
    env: dict[str, Any] = field(default_factory=dict)
    # The device mesh of a sharded model's parameters (see _distributed), None otherwise.
    mesh: Any = None
    # Unit-std draws of weights sampled ahead, all at once (see ``prefetch``), by id of the parameter.
    prefetched: dict[int, torch.Tensor] = field(default_factory=dict)
    # Scale factors of new values not yet applied (see ``scale_later``), by id of the parameter.
    pending_scale: dict[int, float] = field(default_factory=dict)
    # One float32 work buffer per device, reused by every layer (see ``scratch``).
    buffers: dict[torch.device, torch.Tensor] = field(default_factory=dict)
    # The LSTM forget gate's bias (init_model's forget_bias; see _recurrent).
    forget_bias: float = 1.0

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

    def scratch(self, numel: int, device: torch.device) -> torch.Tensor:
        """A float32 work buffer of ``numel`` elements on ``device`` (uninitialized; the same memory for every
        caller: valid until the next call)."""
        buffer = self.buffers.get(device)
        if buffer is None or buffer.numel() < numel:
            buffer = self.buffers[device] = torch.empty(numel, dtype=torch.float32, device=device)
        return buffer[:numel]

    def prefetch(self, params: list[torch.Tensor]) -> None:
        """Draw the unit-std weights of ``params`` now, all together: the blocks of the whole model go to the sampler
        threads in one job (layer by layer, each job would be a few blocks, and the threads would wait for one
        another at every layer). ``draw_like`` then returns them, scaled; DTensors are drawn when reached."""
        kept = list(
            {
                id(p): p
                for p in params
                if not is_dtensor(p) and p.dtype not in LOW_PRECISION and id(p) not in self.prefetched
            }.values()
        )
        requests = [(tuple(p.shape), p.dtype, p.device, name_seed(self.seed, self.name_of(p))) for p in kept]
        for param, value in zip(kept, draw_many(requests, 1.0, self.distribution), strict=True):
            self.prefetched[id(param)] = value

    def draw_like(self, param: torch.Tensor, std: float, rows: slice | None = None) -> torch.Tensor:
        """New zero-mean weights of standard deviation ``std`` for ``param`` (or for its rows ``rows``): ``std``
        times the unit-std rank-invariant draw of ``_sharded_random`` under a seed that depends only on ``seed`` and
        the parameter's qualified name (not on the order in which layers are reached, nor on whether it was sampled
        ahead); a DTensor gets this rank's elements."""
        # float16 / bfloat16: scaled in float32 before their one rounding (see _tensor_init.draw)
        scale, drawn_std = (1.0, std) if param.dtype in LOW_PRECISION else (std, 1.0)
        seed = name_seed(self.seed, self.name_of(param))
        if rows is None:
            unit = self.prefetched.pop(id(param), None)
            if unit is None:
                unit = rank_invariant_draw(param, drawn_std, self.distribution, seed)
        else:
            shape = tuple(param.shape)
            index: list[torch.Tensor | None] = [torch.arange(int(rows.start or 0), int(rows.stop))]
            index += [None] * (len(shape) - 1)
            unit = draw_region(
                shape,
                index,
                drawn_std,
                dtype=param.dtype,
                device=param.device,
                distribution=self.distribution,
                seed=seed,
            )
        return unit if scale == 1.0 else unit.mul_(scale)

    def new_value(self, param: torch.Tensor) -> torch.Tensor:
        """The new tensor of a handled parameter (its pending scale applied), created (as a copy of the current
        value) on first use."""
        entry = self.new.get(id(param))
        if entry is None:
            entry = (param, param.detach().clone())
            self.new[id(param)] = entry
        factor = self.pending_scale.pop(id(param), None)
        if factor is not None:
            entry[1].mul_(factor)
        return entry[1]

    def set_new(self, param: torch.Tensor, value: torch.Tensor) -> None:
        self.new[id(param)] = (param, value)
        self.pending_scale.pop(id(param), None)

    def scale_later(self, param: torch.Tensor, factor: float) -> None:
        """Multiply the new value of ``param`` by ``factor``, when it is next read or written (``write`` fuses it
        into the copy into the parameter: one pass over the weights instead of two)."""
        self.pending_scale[id(param)] = self.pending_scale.get(id(param), 1.0) * factor

    def settle(self) -> None:
        """Apply every pending scale (before anything reads ``new`` directly)."""
        for key, factor in self.pending_scale.items():
            self.new[key][1].mul_(factor)
        self.pending_scale.clear()

    def write(self) -> None:
        """Copy every new value into its parameter (its pending scale applied on the way)."""
        with torch.no_grad():
            for key, (param, value) in self.new.items():
                factor = self.pending_scale.pop(key, None)
                if factor is not None and is_dtensor(param):
                    value.mul_(factor)
                elif factor is not None:
                    torch.mul(value, factor, out=param)
                    continue
                param.copy_(value)

    def is_planned(self, param: torch.Tensor) -> bool:
        return id(param) in self.new

    def zero(self, param: torch.Tensor | None) -> None:
        if isinstance(param, torch.Tensor):
            self.set_new(param, torch.zeros_like(param))

    def fill(self, param: torch.Tensor | None, value: float) -> None:
        if isinstance(param, torch.Tensor):
            self.set_new(param, torch.full_like(param, value))


def std_for(target: float, fan: float, second_moment: float) -> float:
    """sqrt(target / (fan E[x^2])): He et al.'s rule Var[y] = fan Var[w] E[x^2] solved for the weights."""
    if target <= 0.0:
        return 0.0
    return math.sqrt(target / (fan * second_moment))


def as_numpy(tensor: torch.Tensor) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.asarray(tensor.detach().to("cpu", torch.float64).numpy(), dtype=np.float64)
