"""``init_model(..., objective="critical")``: the activation of a traced model and its point on the edge of chaos.

The core chooses the point (``varprop.dynamics.critical_point``: sigma_w, sigma_b, q* with chi1 = 1); here the
model's activations are read off the traced graph before anything is drawn, and the point's settings are what
``init_model`` applies: every weight layer aims at the pre-activation variance q*, a layer with a bias draws it from
N(0, sigma_b^2) (its weights then aim at q* - sigma_b^2), a layer without one aims its weights at q*.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .. import VarpropValueError
from ..activations import Activation
from ..dynamics import CriticalPoint, critical_point
from .graph.activations import activation_of_function, activation_of_method, activation_of_module
from .graph.ir import Graph

__all__ = ["OBJECTIVES", "critical_settings", "model_critical_point"]

OBJECTIVES: tuple[str, ...] = ("variance", "critical")


def _activations(graph: Graph, model: nn.Module) -> dict[str, Activation]:
    """The activations the graph applies, by spec, in order of first use."""
    found: dict[str, Activation] = {}
    for node in graph.nodes:
        act: Activation | None = None
        if node.op == "module":
            act = activation_of_module(model.get_submodule(str(node.target)) if node.target else model)
        elif node.op == "function" and not isinstance(node.target, str):
            act = activation_of_function(node.target, node.args[1:], node.kwargs)
        elif node.op == "method":
            act = activation_of_method(str(node.target))
        if act is not None:
            found.setdefault(act.spec, act)
    return found


def model_critical_point(graph: Graph, model: nn.Module) -> tuple[CriticalPoint | None, str | None]:
    """The edge-of-chaos point of the model's one activation, or ``(None, warning)`` for a positively homogeneous
    activation (ReLU: its only point is the variance-preserving gain, which ``objective="variance"`` already draws).

    Raises:
        VarpropValueError: no activation, or several different ones (one point per network), or an activation with
            no critical point (the core's message).
    """
    found = _activations(graph, model)
    if not found:
        raise VarpropValueError(
            "objective='critical' needs an activation between the layers, and the model applies none; "
            "use objective='variance'"
        )
    if len(found) > 1:
        raise VarpropValueError(
            f"objective='critical' chooses one (sigma_w, sigma_b, q*) per network, and this model applies "
            f"{len(found)} different activations ({', '.join(map(repr, found))}); use objective='variance', or "
            "initialize the parts separately"
        )
    act = next(iter(found.values()))
    try:
        return critical_point(act), None
    except VarpropValueError as error:
        if "no non-trivial edge of chaos" not in str(error):
            raise
        return None, f"objective='critical': {error}; drew the variance-preserving weights instead"


def critical_settings(point: CriticalPoint, depth: int) -> dict[str, Any]:
    """The report's entry for the point: sigma_w, sigma_b, q*, chi1, xi_q, xi_c and chi1^depth over ``depth``
    weight layers."""
    return {
        "activation": point.activation,
        "sigma_w": point.weight_std,
        "sigma_b": point.bias_std,
        "q*": point.q,
        "chi1": point.chi1,
        "slope": point.slope,
        "xi_q": point.depth_scale_q,
        "xi_c": point.depth_scale_c,
        "depth": depth,
        "gradient_factor": point.gradient_factor(depth),
        "rule": point.rule,
    }
