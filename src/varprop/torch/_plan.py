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
from ._distributed import rank_invariant_draw
from ._sharded_random import draw_region, name_seed
from ._stats import Stat, UnitMoments

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

    def draw_like(self, param: torch.Tensor, std: float, rows: slice | None = None) -> torch.Tensor:
        """New zero-mean weights of standard deviation ``std`` for ``param`` (or for its rows ``rows``): the
        rank-invariant draw of ``_sharded_random`` under a seed that depends only on ``seed`` and the parameter's
        qualified name (not on the order in which layers are reached); a DTensor gets this rank's elements."""
        seed = name_seed(self.seed, self.name_of(param))
        if rows is None:
            return rank_invariant_draw(param, std, self.distribution, seed)
        shape = tuple(param.shape)
        index: list[torch.Tensor | None] = [torch.arange(int(rows.start or 0), int(rows.stop))]
        index += [None] * (len(shape) - 1)
        return draw_region(
            shape, index, std, dtype=param.dtype, device=param.device, distribution=self.distribution, seed=seed
        )

    def new_value(self, param: torch.Tensor) -> torch.Tensor:
        """The new tensor of a handled parameter, created (as a copy of the current value) on first use."""
        entry = self.new.get(id(param))
        if entry is None:
            entry = (param, param.detach().clone())
            self.new[id(param)] = entry
        return entry[1]

    def set_new(self, param: torch.Tensor, value: torch.Tensor) -> None:
        self.new[id(param)] = (param, value)

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
