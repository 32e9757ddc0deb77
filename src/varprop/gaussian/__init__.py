"""Gaussian moments of activations: E[phi(y)], E[phi(y)^2], E[phi'(y)^2] and E[phi'(y)] for y ~ N(mean, var).

``moments(act, var, mean)`` is the entry point: closed forms where an activation has them, the precomputed
tables for array input, and the graded Gauss-Legendre quadrature otherwise (with a tanh-sinh transform near
the singular points of formulas). ``expectations(act, mean, var, need)`` is the same engine for many units at
once, the moments asked for as arrays (what ``varprop.torch`` and the depth dynamics call);
``closed_form_expectations`` the closed form alone where it holds at every unit. ``deriv_mean`` gives E[phi'(y)];
``monte_carlo_moments`` a sampling check; ``gaussian_expectation`` E[g(y)] of any vectorized g.

For the other core packages: ``scan_roots`` (roots of a moment map over a grid, ``ROOT_NOISE``),
``refuse_singular`` (the error for computations that do not integrate through poles), ``Scalar`` and
``float_or_array`` (the return convention: a float for scalar input).

Implementation: ``_engine`` (the dispatch), ``_quadrature`` (Gaussian expectations of any function),
``_singular`` (integrating through the poles of formulas), ``_moment_tables`` with ``_tables/`` (the
precomputed tables and their generator), ``_roots`` (root scans of moment maps), ``_deriv_mean`` and
``_monte_carlo``. The closed forms are part of each activation's definition: ``varprop.activations.closed_forms``.
"""

from __future__ import annotations

from ._deriv_mean import deriv_mean
from ._engine import (
    MOMENT_NAMES,
    Moments,
    Scalar,
    closed_form_expectations,
    expectations,
    float_or_array,
    moments,
)
from ._monte_carlo import MonteCarloMoments, monte_carlo_moments
from ._quadrature import QuadratureResult, gaussian_expectation
from ._roots import ROOT_NOISE, scan_roots
from ._singular import refuse_singular

__all__ = [
    "MOMENT_NAMES",
    "ROOT_NOISE",
    "Moments",
    "MonteCarloMoments",
    "QuadratureResult",
    "Scalar",
    "closed_form_expectations",
    "deriv_mean",
    "expectations",
    "float_or_array",
    "gaussian_expectation",
    "moments",
    "monte_carlo_moments",
    "refuse_singular",
    "scan_roots",
]
