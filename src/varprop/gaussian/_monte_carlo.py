"""Monte Carlo estimates of an activation's Gaussian moments, with standard errors: a check for ``moments``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import check_positive_int, check_real
from ..activations import activation as resolve_activation

__all__ = ["MonteCarloMoments", "monte_carlo_moments"]


@dataclass(frozen=True)
class MonteCarloMoments:
    """Monte Carlo estimates of the moments with their standard errors (``*_se`` fields)."""

    mean: float
    second_moment: float
    variance: float
    deriv_second_moment: float
    mean_se: float
    second_moment_se: float
    variance_se: float
    deriv_second_moment_se: float
    samples: int


def monte_carlo_moments(
    act: Any,
    var: Any = 1.0,
    mean: Any = 0.0,
    *,
    samples: int = 1_000_000,
    seed: int | None = 0,
    chunk: int = 1_000_000,
) -> MonteCarloMoments:
    """Estimate the moments by sampling y ~ N(mean, var), as the seed answer did (with standard errors).

    The standard errors are sample standard deviation / sqrt(samples) (the variance's by the delta
    method). Use this as a cross-check or for black-box callables; ``moments`` is exact.

    Example:
        >>> mc = monte_carlo_moments("elu", samples=10**6, seed=1)
        >>> abs(mc.second_moment - 0.644945417492924) < 5 * mc.second_moment_se
        True
    """
    activation = resolve_activation(act)
    var_value = check_real("var", var, minimum=0.0)
    mean_value = check_real("mean", mean)
    total = check_positive_int("samples", samples)
    chunk = check_positive_int("chunk", chunk)
    rng = np.random.default_rng(seed)
    sigma = math.sqrt(var_value)
    sums = np.zeros(5)  # sums of phi, phi^2, phi'^2, phi^4, phi'^4
    cross = 0.0
    done = 0
    while done < total:
        size = min(chunk, total - done)
        y = mean_value + sigma * rng.standard_normal(size)
        value = activation.function(y)
        slope_sq = activation.derivative(y) ** 2
        value_sq = value * value
        sums += [value.sum(), value_sq.sum(), slope_sq.sum(), (value_sq * value_sq).sum(), (slope_sq * slope_sq).sum()]
        cross += float((value_sq * value).sum())
        done += size
    m1, m2, d2, m4, d4 = sums / total
    m3 = cross / total
    variance = m2 - m1 * m1
    var_m1 = max(m2 - m1 * m1, 0.0)
    var_m2 = max(m4 - m2 * m2, 0.0)
    var_d2 = max(d4 - d2 * d2, 0.0)
    # Delta method for v = m2 - m1^2: gradient (-2 m1, 1) against the covariance of (phi, phi^2).
    cov_12 = m3 - m1 * m2
    var_variance = max(4 * m1 * m1 * var_m1 - 4 * m1 * cov_12 + var_m2, 0.0)
    root = math.sqrt(total)
    return MonteCarloMoments(
        mean=float(m1),
        second_moment=float(m2),
        variance=float(variance),
        deriv_second_moment=float(d2),
        mean_se=math.sqrt(var_m1) / root,
        second_moment_se=math.sqrt(var_m2) / root,
        variance_se=math.sqrt(var_variance) / root,
        deriv_second_moment_se=math.sqrt(var_d2) / root,
        samples=total,
    )
