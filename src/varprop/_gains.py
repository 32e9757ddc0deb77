"""Gains and weight scales: from Gaussian moments to the standard deviation (or bound) of the weights."""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

from ._errors import ConvergenceError, VarpropValueError
from ._moments import Scalar, _unwrap, moments
from ._validation import as_real_array, check_positive_int

__all__ = ["DISTRIBUTIONS", "MODES", "TRUNCATED_NORMAL_STD", "gain", "weight_std"]

Mode = Literal["fan_in", "fan_out", "fan_avg"]
Distribution = Literal["normal", "truncated_normal", "uniform"]
MODES: tuple[str, ...] = ("fan_in", "fan_out", "fan_avg")
DISTRIBUTIONS: tuple[str, ...] = ("normal", "truncated_normal", "uniform")

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
    return _unwrap(forward), _unwrap(backward)


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
    return _unwrap(np.sqrt(2.0 / (1.0 / forward_a**2 + 1.0 / backward_a**2)))


def weight_std(
    act: Any,
    fan_in: int,
    fan_out: int | None = None,
    var: Any = 1.0,
    mode: Mode = "fan_in",
    distribution: Distribution = "normal",
) -> Scalar:
    """The scale of the weight distribution that preserves variance through a layer.

    Var[w] is gain^2 / fan_in (``fan_in``), gain_out^2 / fan_out (``fan_out``) or
    2 / (fan_in / g_in^2 + fan_out / g_out^2) (``fan_avg``); see ``gain``.

    Args:
        act: activation spec, ``Activation`` or callable.
        fan_in: inputs per output unit (in_features x kernel size).
        fan_out: outputs per input unit; required for ``fan_out`` and ``fan_avg``.
        var: pre-activation variance to preserve.
        mode: ``"fan_in"``, ``"fan_out"`` or ``"fan_avg"``.
        distribution: what the returned number parametrizes:
            ``"normal"``: the standard deviation sqrt(Var[w]);
            ``"truncated_normal"``: the std of the normal *before* truncation at +-2 of its std, so that
            the truncated weights have standard deviation sqrt(Var[w]) (divided by 0.87962566103423978);
            ``"uniform"``: the bound a of U(-a, a), a = sqrt(3 Var[w]).

    Returns:
        A float (or array for array ``var``).

    Example:
        >>> round(weight_std("elu", fan_in=512), 12)  # 1.24519830070071 / sqrt(512)
        0.055030510147
    """
    _check_choice("mode", mode, MODES)
    _check_choice("distribution", distribution, DISTRIBUTIONS)
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
    std = np.sqrt(variance)
    if distribution == "truncated_normal":
        std = std / TRUNCATED_NORMAL_STD
    elif distribution == "uniform":
        std = std * _UNIFORM_BOUND_PER_STD
    return _unwrap(std)
