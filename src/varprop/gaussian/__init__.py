"""Gaussian moments of activations: E[phi(y)], E[phi(y)^2], E[phi'(y)^2] and E[phi'(y)] for y ~ N(mean, var).

``moments(act, var, mean)`` is the entry point: closed forms where an activation has them, the precomputed
tables for array input, and the graded Gauss-Legendre quadrature otherwise (with a tanh-sinh transform near
the singular points of formulas). ``deriv_mean`` gives E[phi'(y)]; ``monte_carlo_moments`` a sampling check.

Implementation: ``_engine`` (the dispatch), ``_quadrature`` (Gaussian expectations of any function),
``_singular`` (integrating through the poles of formulas), ``_moment_tables`` with ``_tables/`` (the
precomputed tables and their generator), ``_roots`` (root scans of moment maps) and ``_deriv_mean``. The closed
forms are part of each activation's definition: ``varprop.activations.closed_forms``.
"""

from __future__ import annotations

from ._deriv_mean import deriv_mean
from ._engine import Moments, MonteCarloMoments, moments, monte_carlo_moments
from ._quadrature import QuadratureResult, gaussian_expectation

__all__ = [
    "Moments",
    "MonteCarloMoments",
    "QuadratureResult",
    "deriv_mean",
    "gaussian_expectation",
    "moments",
    "monte_carlo_moments",
]
