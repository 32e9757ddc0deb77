"""Depth dynamics of plain deep networks in the mean-field picture.

The variance map q -> sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2, its fixed points and their stability
(Poole et al. 2016; Schoenholz et al. 2017), the correlation map and the edge of chaos, critical
initializations, the finite-width drift of a deep net, and the free-probability prediction of its
input-output Jacobian's singular values (Pennington et al. 2017, 2018). Pure core: numpy and scipy,
no framework import.

Example:
    >>> import varprop.dynamics as dyn
    >>> round(dyn.edge_of_chaos("tanh").weight_std, 6)
    1.0
"""

from __future__ import annotations

from ._correlation import CorrelationMap, arccos_cross_moment, correlation_map, cross_moment
from ._criticality import ODD_FIXED_POINT, CriticalPoint, critical_point
from ._drift import DriftPrediction, PlainNetworkSimulation, escape_layers, predict_drift, simulate_plain_network
from ._edge_of_chaos import EdgeOfChaos, PhaseDiagram, edge_of_chaos, edge_of_chaos_curve, phase_diagram
from ._free_probability import (
    JacobianSpectrumPrediction,
    jacobian_moments,
    predict_jacobian_spectrum,
    sample_jacobian_singular_values,
    singular_value_percentiles,
)
from ._qcurve import QCurve, q_curve, q_limits, stability_slopes
from ._variance_map import (
    NEUTRAL_TOLERANCE,
    FixedPoint,
    MeanVarianceMap,
    Stability,
    VarianceMap,
    classify,
    depth_scale,
    fixed_point,
    mean_variance_map,
    stability,
    variance_map,
)
from ._verdicts import PHASES, phase, stability_verdict

__all__ = [
    "NEUTRAL_TOLERANCE",
    "ODD_FIXED_POINT",
    "PHASES",
    "CorrelationMap",
    "CriticalPoint",
    "DriftPrediction",
    "EdgeOfChaos",
    "FixedPoint",
    "JacobianSpectrumPrediction",
    "MeanVarianceMap",
    "PhaseDiagram",
    "PlainNetworkSimulation",
    "QCurve",
    "Stability",
    "VarianceMap",
    "arccos_cross_moment",
    "classify",
    "correlation_map",
    "critical_point",
    "cross_moment",
    "depth_scale",
    "edge_of_chaos",
    "edge_of_chaos_curve",
    "escape_layers",
    "fixed_point",
    "jacobian_moments",
    "mean_variance_map",
    "phase",
    "phase_diagram",
    "predict_drift",
    "predict_jacobian_spectrum",
    "q_curve",
    "q_limits",
    "sample_jacobian_singular_values",
    "simulate_plain_network",
    "singular_value_percentiles",
    "stability",
    "stability_slopes",
    "stability_verdict",
    "variance_map",
]
