"""varprop: exact variance-preserving initialization for any activation function.

The public API is re-exported here; the implementation lives in private modules.
"""

from __future__ import annotations

from ._activation import Activation
from ._deriv_mean import deriv_mean
from ._errors import ConvergenceError, VarpropError, VarpropTypeError, VarpropValueError, VarpropWarning
from ._moments import Moments, MonteCarloMoments, moments, monte_carlo_moments
from ._registry import activation, registered_activations
from .dynamics._correlation import CorrelationMap, arccos_cross_moment, correlation_map, cross_moment
from .dynamics._criticality import CriticalPoint, critical_point
from .dynamics._drift import DriftPrediction, PlainNetworkSimulation, predict_drift, simulate_plain_network
from .dynamics._edge_of_chaos import EdgeOfChaos, PhaseDiagram, edge_of_chaos, edge_of_chaos_curve, phase_diagram
from .dynamics._free_probability import (
    JacobianSpectrumPrediction,
    jacobian_moments,
    predict_jacobian_spectrum,
    sample_jacobian_singular_values,
)
from .dynamics._variance_map import (
    NEUTRAL_TOLERANCE,
    FixedPoint,
    MeanVarianceMap,
    Stability,
    VarianceMap,
    fixed_point,
    mean_variance_map,
    stability,
    variance_map,
)
from .gains._gain import gain, truncated_normal_scale, uniform_bound, weight_std
from .literature._reproduce import ReproRow, ReproTable, reproduce_table
from .selu._fixed_point import selu_jacobian, selu_moment_map, selu_parameters

__all__ = [
    "NEUTRAL_TOLERANCE",
    "Activation",
    "ConvergenceError",
    "CorrelationMap",
    "CriticalPoint",
    "DriftPrediction",
    "EdgeOfChaos",
    "FixedPoint",
    "JacobianSpectrumPrediction",
    "MeanVarianceMap",
    "Moments",
    "MonteCarloMoments",
    "PhaseDiagram",
    "PlainNetworkSimulation",
    "ReproRow",
    "ReproTable",
    "Stability",
    "VarianceMap",
    "VarpropError",
    "VarpropTypeError",
    "VarpropValueError",
    "VarpropWarning",
    "activation",
    "arccos_cross_moment",
    "correlation_map",
    "critical_point",
    "cross_moment",
    "deriv_mean",
    "edge_of_chaos",
    "edge_of_chaos_curve",
    "fixed_point",
    "gain",
    "jacobian_moments",
    "mean_variance_map",
    "moments",
    "monte_carlo_moments",
    "phase_diagram",
    "predict_drift",
    "predict_jacobian_spectrum",
    "registered_activations",
    "reproduce_table",
    "sample_jacobian_singular_values",
    "selu_jacobian",
    "selu_moment_map",
    "selu_parameters",
    "simulate_plain_network",
    "stability",
    "truncated_normal_scale",
    "uniform_bound",
    "variance_map",
    "weight_std",
]

__version__ = "0.1.0"
