"""Gains and weight scales: from Gaussian moments to the standard deviation (or bound) of the weights."""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from .._errors import ConvergenceError, VarpropValueError
from .._validation import as_real_array, check_positive_int
from ..gaussian import Scalar, float_or_array, moments

__all__ = [
    "DISTRIBUTIONS",
    "MODES",
    "TRUNCATED_NORMAL_STD",
    "gain",
    "truncated_normal_scale",
    "uniform_bound",
    "weight_std",
]

FloatArray = NDArray[np.float64]
Mode = Literal["fan_in", "fan_out", "fan_avg"]
Distribution = Literal["normal", "truncated_normal", "uniform", "orthogonal"]
MODES: tuple[str, ...] = ("fan_in", "fan_out", "fan_avg")
DISTRIBUTIONS: tuple[str, ...] = ("normal", "truncated_normal", "uniform", "orthogonal")

# Standard deviation of a standard normal truncated to (-2, 2):
# sqrt(1 - 4 phi(2) / (Phi(2) - Phi(-2))) = 0.87962566103423978 (the constant JAX uses).
TRUNCATED_NORMAL_STD = 0.87962566103423978
# A uniform distribution on (-a, a) has standard deviation a / sqrt(3).
_UNIFORM_BOUND_PER_STD = math.sqrt(3.0)


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise VarpropValueError(f"unknown {name} {value!r}; valid choices: {', '.join(map(repr, choices))}")


def _gains(act: Any, var: Any, mode: str = "fan_avg") -> tuple[Scalar, Scalar]:
    """(forward, backward) gains; the one that ``mode`` does not use is nan and never refused."""
    result = moments(act, var=var)
    var_array = as_real_array("var", var, minimum=0.0)
    second, deriv = np.asarray(result.second_moment), np.asarray(result.deriv_second_moment)
    if mode != "fan_in" and np.isinf(deriv).any():
        raise ConvergenceError(
            f"E[phi'^2] of {act!r} diverges at var={var!r} (phi' has a non-integrable singularity): no "
            "fan_out or fan_avg gain exists; use mode='fan_in'"
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        forward = np.sqrt(var_array / second) if mode != "fan_out" else np.full(second.shape, np.nan)
        backward = 1.0 / np.sqrt(deriv) if mode != "fan_in" else np.full(deriv.shape, np.nan)
    used = [forward] if mode == "fan_in" else [backward] if mode == "fan_out" else [forward, backward]
    if not all(np.all(np.isfinite(gain_value)) for gain_value in used):
        raise VarpropValueError(
            f"no finite gain for {act!r} at var={var!r}: E[phi^2] or E[phi'^2] is zero there "
            "(the activation kills the signal; choose another target variance)"
        )
    return float_or_array(forward), float_or_array(backward)


def gain(act: Any, var: Any = 1.0, mode: Mode = "fan_in") -> Scalar:
    """The exact variance-preserving gain of an activation.

    He et al. (2015): a layer y' = W phi(y) with zero-mean weights of variance gain^2 / n keeps
    Var[y'] = Var[y] = var when gain^2 = var / E[phi(y)^2] (forward, ``fan_in``), and keeps the
    gradient's second moment when gain^2 = 1 / E[phi'(y)^2] (backward, ``fan_out``), y ~ N(0, var).
    ``fan_avg`` compromises as Glorot & Bengio (2010) do: Var[w] = 2 / (fan_in / g_in^2 +
    fan_out / g_out^2), whose gain at fan_in == fan_out is sqrt(2 / (1/g_in^2 + 1/g_out^2)), the
    harmonic mean of the two squared gains.

    Args:
        act: activation spec, ``Activation`` or callable.
        var: the pre-activation variance to preserve (scalar or array).
        mode: ``"fan_in"``, ``"fan_out"`` or ``"fan_avg"``.

    Returns:
        The gain (a float, or an array for array ``var``); weight std = gain / sqrt(fan).

    Example:
        >>> round(gain("relu"), 12)
        1.414213562373
        >>> round(gain("elu") ** 2, 12)  # n Var[w] for ELU at var 1 (the seed's "1.55")
        1.550518808068
    """
    _check_choice("mode", mode, MODES)
    forward, backward = _gains(act, var, mode)
    if mode == "fan_in":
        return forward
    if mode == "fan_out":
        return backward
    forward_a, backward_a = np.asarray(forward), np.asarray(backward)
    return float_or_array(np.sqrt(2.0 / (1.0 / forward_a**2 + 1.0 / backward_a**2)))


def _weight_std(act: Any, fan_in: int, fan_out: int | None, var: Any, mode: str) -> FloatArray:
    """sqrt(Var[w]) for the mode (see ``weight_std``), validated."""
    _check_choice("mode", mode, MODES)
    n_in = check_positive_int("fan_in", fan_in)
    forward, backward = _gains(act, var, mode)
    forward_a, backward_a = np.asarray(forward), np.asarray(backward)
    if mode == "fan_in":
        variance = forward_a**2 / n_in
    else:
        if fan_out is None:
            raise VarpropValueError(f"mode={mode!r} needs fan_out; pass fan_out=<outputs per input unit>")
        n_out = check_positive_int("fan_out", fan_out)
        if mode == "fan_out":
            variance = backward_a**2 / n_out
        else:
            variance = 2.0 / (n_in / forward_a**2 + n_out / backward_a**2)
    return np.asarray(np.sqrt(variance), dtype=np.float64)


def weight_std(
    act: Any,
    fan_in: int,
    fan_out: int | None = None,
    var: Any = 1.0,
    mode: Mode = "fan_in",
    distribution: Distribution = "normal",
) -> Scalar:
    """The standard deviation of the weights that preserves variance through a layer.

    Var[w] is gain^2 / fan_in (``fan_in``), gain_out^2 / fan_out (``fan_out``) or
    2 / (fan_in / g_in^2 + fan_out / g_out^2) (``fan_avg``); see ``gain``. The result is sqrt(Var[w]),
    the standard deviation of the weights whatever their distribution; the parameter that draws them
    is ``uniform_bound`` (a of U(-a, a)) or ``truncated_normal_scale`` (the normal's std before the cut).

    Args:
        act: activation spec, ``Activation`` or callable.
        fan_in: inputs per output unit (in_features x kernel size).
        fan_out: outputs per input unit; required for ``fan_out`` and ``fan_avg``.
        var: pre-activation variance to preserve.
        mode: ``"fan_in"``, ``"fan_out"`` or ``"fan_avg"``.
        distribution: ``"normal"`` (the default) and ``"orthogonal"`` give the standard deviation (for
            ``"orthogonal"`` the root mean square of the elements of sqrt(max(rows, cols)) sqrt(Var[w]) Q, Q Haar
            semi-orthogonal (Saxe et al. 2014), so that n Var[w] = gain^2 as for the normal); deprecated: the old
            ``"uniform"`` and ``"truncated_normal"`` returned ``uniform_bound`` and ``truncated_normal_scale``
            (not standard deviations) and still do, with a ``DeprecationWarning``.

    Returns:
        A float (or array for array ``var``).

    Example:
        >>> round(weight_std("elu", fan_in=512), 12)  # 1.24519830070071 / sqrt(512)
        0.055030510147
    """
    _check_choice("distribution", distribution, DISTRIBUTIONS)
    std = _weight_std(act, fan_in, fan_out, var, mode)
    if distribution not in ("normal", "orthogonal"):
        replacement = "uniform_bound" if distribution == "uniform" else "truncated_normal_scale"
        warnings.warn(
            f"weight_std(distribution={distribution!r}) returns {replacement}(...), which is not a standard "
            f"deviation; call {replacement}(...) instead (weight_std is the std of the weights for every "
            "distribution)",
            DeprecationWarning,
            stacklevel=2,
        )
        std = std / TRUNCATED_NORMAL_STD if distribution == "truncated_normal" else std * _UNIFORM_BOUND_PER_STD
    return float_or_array(std)


def uniform_bound(act: Any, fan_in: int, fan_out: int | None = None, var: Any = 1.0, mode: Mode = "fan_in") -> Scalar:
    """The bound a of U(-a, a) whose weights have the variance-preserving standard deviation.

    U(-a, a) has standard deviation a / sqrt(3), so a = sqrt(3) * weight_std (He et al. 2015 for ReLU:
    a = sqrt(6 / fan_in); ``torch.nn.init.kaiming_uniform_``'s bound).

    Args:
        act, fan_in, fan_out, var, mode: as in ``weight_std``.

    Returns:
        The bound a (a float, or an array for array ``var``).

    Example:
        >>> round(uniform_bound("relu", fan_in=6), 12)  # sqrt(6 / 6)
        1.0
    """
    return float_or_array(_weight_std(act, fan_in, fan_out, var, mode) * _UNIFORM_BOUND_PER_STD)


def truncated_normal_scale(
    act: Any, fan_in: int, fan_out: int | None = None, var: Any = 1.0, mode: Mode = "fan_in"
) -> Scalar:
    """The std of the normal, before truncation at +-2 of its std, whose truncated weights have weight_std.

    Truncating N(0, s^2) to (-2 s, 2 s) leaves standard deviation 0.87962566103423978 s (the constant
    JAX's ``variance_scaling`` uses), so s = weight_std / 0.87962566103423978.

    Args:
        act, fan_in, fan_out, var, mode: as in ``weight_std``.

    Returns:
        The scale s (a float, or an array for array ``var``).

    Example:
        >>> round(truncated_normal_scale("relu", fan_in=2) * 0.87962566103423978, 12)
        1.0
    """
    return float_or_array(_weight_std(act, fan_in, fan_out, var, mode) / TRUNCATED_NORMAL_STD)
