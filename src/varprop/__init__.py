"""varprop: exact variance-preserving initialization for any activation function.

The everyday names are here: an activation (``activation``, ``Activation``), its Gaussian moments
(``moments``, ``Moments``), the gain and the weight std it gives (``gain``, ``weight_std``), whether a deep
plain net keeps its variance (``stability``), and the errors. The topics live beside them:

- ``varprop.activations``: the activation registry (``registered_activations``);
- ``varprop.gaussian``: Gaussian moments (``monte_carlo_moments``, ``deriv_mean``, cross moments);

- ``varprop.dynamics``: depth dynamics (variance and correlation maps, fixed points, edge of chaos,
  criticality, drift and its simulation, Jacobian spectrum);
- ``varprop.selu``: self-normalizing networks (SELU's constants for any fixed point);
- ``varprop.literature``: published numbers reproduced live;
- ``varprop.gains``: gains, weight scales and the gain table;
- ``varprop.torch``: the PyTorch adapter (``init_model``); ``varprop.plotting``: figures (matplotlib).

Example:
    >>> import varprop
    >>> round(float(varprop.gain("relu")), 12)
    1.414213562373
    >>> varprop.dynamics.edge_of_chaos("tanh").weight_std
    1.0
"""

from __future__ import annotations

import warnings
from types import ModuleType
from typing import Any

from . import activations, dynamics, gains, gaussian, literature, selu
from ._errors import ConvergenceError, VarpropError, VarpropTypeError, VarpropValueError, VarpropWarning
from .activations import Activation, activation
from .dynamics import stability
from .gains import gain, weight_std
from .gaussian import Moments, moments

__all__ = [
    "Activation",
    "ConvergenceError",
    "Moments",
    "VarpropError",
    "VarpropTypeError",
    "VarpropValueError",
    "VarpropWarning",
    "activation",
    "gain",
    "moments",
    "stability",
    "weight_std",
]

__version__ = "0.1.0"

#: Root names of varprop 0.1 that moved to a subpackage: importable from here for one release, with a
#: DeprecationWarning that names the new place.
_MOVED: dict[str, ModuleType] = {
    **dict.fromkeys(
        (
            "NEUTRAL_TOLERANCE",
            "CorrelationMap",
            "CriticalPoint",
            "DriftPrediction",
            "EdgeOfChaos",
            "FixedPoint",
            "JacobianSpectrumPrediction",
            "MeanVarianceMap",
            "PhaseDiagram",
            "PlainNetworkSimulation",
            "Stability",
            "VarianceMap",
            "arccos_cross_moment",
            "correlation_map",
            "critical_point",
            "cross_moment",
            "edge_of_chaos",
            "edge_of_chaos_curve",
            "jacobian_moments",
            "mean_variance_map",
            "phase_diagram",
            "predict_jacobian_spectrum",
            "sample_jacobian_singular_values",
            "variance_map",
        ),
        dynamics,
    ),
    **dict.fromkeys(("fixed_point", "predict_drift", "simulate_plain_network"), dynamics),
    **dict.fromkeys(("MonteCarloMoments", "deriv_mean", "monte_carlo_moments"), gaussian),
    **dict.fromkeys(("registered_activations",), activations),
    **dict.fromkeys(("truncated_normal_scale", "uniform_bound"), gains),
    **dict.fromkeys(("selu_jacobian", "selu_moment_map", "selu_parameters"), selu),
    **dict.fromkeys(("ReproRow", "ReproTable", "reproduce_table"), literature),
}


def __getattr__(name: str) -> Any:
    """A name that moved (``varprop.edge_of_chaos`` -> ``varprop.dynamics.edge_of_chaos``), with a warning."""
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"varprop.{name} moved to {module.__name__}.{name}; the old name will be removed in the next release",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(module, name)
