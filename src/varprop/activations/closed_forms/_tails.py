"""Gaussian tail moments P_k(u) = int_u^inf (z - u)^k phi_N(z) dz, u >= 0, fast and to a few ulps.

The closed forms of piecewise activations (``_piecewise``, ``_elu``) are sums
of these tails. P_k(u) = phi_N(u) I_k(u) with the Mills-ratio moments I_k(u) = int_0^inf t^k
exp(-u t - t^2/2) dt (phi_N the standard normal density). The textbook forward recurrence
P_k = (k - 1) P_{k-2} - u P_{k-1} cancels for u > 1 (relu's E = sigma P_1(-mean/sigma) at mean/sigma = -5
from two terms of 1.5e-6 whose difference is 5e-8), so instead:

* I_k is smooth in u with dI_k/du = -I_{k+1}; around the centres u_c of a grid of spacing 1/4 on
  [0, 40] it is the Taylor series I_k(u_c - x) = sum_j I_{k+j}(u_c) x^j / j!, |x| <= 1/8; 13 terms leave
  a remainder below 1e-17 (measured against 40-digit mpmath: at most 4 ulps for k <= 4, u <= 37).
* Only the two highest orders kmax - 1, kmax are expanded; the lower ones follow from the backward
  recurrence I_{k-1} = (I_{k+1} + u I_k) / k, whose terms are all positive (no cancellation).
* The table of I_j(u_c), j <= kmax + 12, is built once per kmax (~1 ms): by the forward recurrence from
  I_0 = sqrt(pi/2) erfcx(u/sqrt 2), I_1 = 1 - u I_0 for u_c < 1/2 (stable there) and by Miller's
  backward recurrence for the ratios I_k / I_{k-1} otherwise (error e^{-2 u sqrt(depth)} < 1e-20).
* phi_N(u) is evaluated with u^2 split exactly into two floats, so that exp(-u^2/2) keeps its accuracy;
  P_0 = ndtr(-u) for u <= 1.5 (exactly 1/2 at u = 0); for u <= 1/2 the forward recurrence above is
  stable (at most 3 ulps) and gives the exact values at u = 0.

Beyond u = 37.5 every P_k is set to 0: phi_N(37.5) = 1.6e-306 is the edge of the normal float64 range
(the quadrature engine truncates the Gaussian at the same point, ``_quadrature.Z_MAX``). Like any method
that starts from a rounded u, P_k(u) is conditioned like exp(-u^2/2): one ulp in u moves it by u^2 ulps.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numpy.typing import NDArray
from scipy import special

__all__ = ["Z_MAX", "normal_pdf", "tail_moments", "tail_moments_list"]

FloatArray = NDArray[np.float64]

_INV_SQRT_2PI = 0.3989422804014327  # 1/sqrt(2 pi)
_SQRT_HALF_PI = 1.2533141373155003  # sqrt(pi/2) = I_0(0): I_0(u) = sqrt(pi/2) erfcx(u/sqrt 2)
_SQRT_HALF = 0.7071067811865476  # 1/sqrt(2)
# The tails vanish (P_k = 0) beyond Z_MAX, as the quadrature engine's truncation (``_quadrature.Z_MAX``).
Z_MAX = 37.5
_SPACING = 0.25  # Taylor centres u_c = (i + 1/2)/4 on [0, 40]
_TERMS = 13  # Taylor terms: (1/8)^13/13! I_{k+13} / I_k < 1e-17 (12 terms leave 1e-13 at u = 0)
# P_0 = ndtr(-u) up to here (exactly 1/2 at 0; its error grows like u^2 ulps), phi_N(u) I_0(u) beyond.
_NDTR_LIMIT = 1.5
# Up to here the tails (and the table) come from the forward recurrence from P_0 = ndtr(-u) and
# P_1 = phi_N(u) - u P_0: at most 3 ulps for k <= 4 (error growth e^{2 u sqrt(j)} < 300 for the table's
# j <= 21), and the exact values at u = 0 (1/2, phi_N(0), 1/2, ...).
_FORWARD_LIMIT = 0.5
_POINTWISE = 8  # up to this many u, Python floats per u are faster than the array code


@functools.lru_cache(maxsize=8)
def _table(kmax: int) -> tuple[FloatArray, FloatArray]:
    """Centres u_c and the coefficients I_{k+j}(u_c) / j! for k = kmax - 1, kmax: shape (_TERMS, 2, centres)."""
    centres = np.arange(_SPACING / 2, 40.0, _SPACING)
    top = kmax + _TERMS
    values = np.empty((top + 1, centres.size))
    values[0] = _SQRT_HALF_PI * special.erfcx(centres * _SQRT_HALF)
    small = centres < _FORWARD_LIMIT
    near = centres[small]
    values[1, small] = 1.0 - near * values[0, small]
    for k in range(2, top + 1):
        values[k, small] = (k - 1) * values[k - 2, small] - near * values[k - 1, small]
    far = centres[~small]
    depth = top + 10 + math.ceil((25.0 / float(far[0])) ** 2)  # e^{-2 u sqrt(depth)} < e^{-50}
    ratio = 0.5 * (np.sqrt(far * far + 4.0 * depth) - far)  # r(u + r) = depth: the ratio I_depth / I_{depth-1}
    ratios: dict[int, FloatArray] = {}
    for k in range(depth, 1, -1):
        ratio = (k - 1) / (far + ratio)  # now r_{k-1} = I_{k-1} / I_{k-2}
        if k - 1 <= top:
            ratios[k - 1] = ratio
    for k in range(1, top + 1):
        values[k, ~small] = values[k - 1, ~small] * ratios[k]
    inverse_factorials = np.array([1.0 / math.factorial(j) for j in range(_TERMS)])
    orders = np.arange(_TERMS)
    table = np.stack([values[kmax - 1 + orders], values[kmax + orders]], axis=1) * inverse_factorials[:, None, None]
    return centres, np.ascontiguousarray(table)


def normal_pdf(z: FloatArray) -> FloatArray:
    """Standard normal density exp(-z^2/2)/sqrt(2 pi) (0 at +-inf)."""
    with np.errstate(over="ignore", under="ignore"):
        return np.asarray(_INV_SQRT_2PI * np.exp(-0.5 * np.square(z)), dtype=np.float64)


@functools.lru_cache(maxsize=8)
def _table_rows(kmax: int) -> list[list[list[float]]]:
    """``_table(kmax)`` as nested Python lists, highest order first (for Horner's rule on floats)."""
    return [[row[::-1] for row in centre] for centre in _table(kmax)[1].transpose(2, 1, 0).tolist()]


def _pdf_float(u: float) -> float:
    """``_pdf_exact`` for a Python float."""
    scaled = 134217729.0 * u
    high = scaled - (scaled - u)
    return _INV_SQRT_2PI * math.exp(-0.5 * high * high) * math.exp(-0.5 * (u - high) * (high + u))


def tail_moments_list(u: float, kmax: int) -> list[float]:
    """``tail_moments`` for one u >= 0 as a list of Python floats: the same arithmetic, no arrays.

    Example:
        >>> [round(p, 12) for p in tail_moments_list(0.0, 2)]
        [0.5, 0.398942280401, 0.5]
    """
    if not u < Z_MAX:
        return [0.0 if u >= Z_MAX else math.nan] * (kmax + 1)
    if u <= _FORWARD_LIMIT:
        tail = float(special.ndtr(-u))
        out = [tail, _pdf_float(u) - u * tail]
        for k in range(2, kmax + 1):
            out.append((k - 1) * out[k - 2] - u * out[k - 1])
        return out
    index = min(int(u * (1.0 / _SPACING)), 159)
    offset = (index + 0.5) * _SPACING - u
    lower_row, upper_row = _table_rows(kmax)[index]
    lower = upper = 0.0
    for lower_coefficient, upper_coefficient in zip(lower_row, upper_row, strict=True):
        lower = lower * offset + lower_coefficient
        upper = upper * offset + upper_coefficient
    out = [0.0] * (kmax + 1)
    out[kmax - 1], out[kmax] = lower, upper
    for k in range(kmax - 1, 0, -1):
        out[k - 1] = (out[k + 1] + u * out[k]) / k
    pdf = _pdf_float(u)
    out = [value * pdf for value in out]
    if u <= _NDTR_LIMIT:
        out[0] = float(special.ndtr(-u))
    return out


def _pdf_exact(u: FloatArray) -> FloatArray:
    """phi_N(u) with u^2 split exactly (Dekker): exp(-u^2/2) is then good to 2 ulps, not u^2 ulps."""
    scaled = 134217729.0 * u  # 2^27 + 1
    high = scaled - (scaled - u)  # u rounded to 26 bits: high^2 is exact
    low = u - high
    return np.asarray(_INV_SQRT_2PI * np.exp(-0.5 * high * high) * np.exp(-0.5 * low * (high + u)), dtype=np.float64)


def _tail_moments_array(flat: FloatArray, kmax: int) -> FloatArray:
    """``tail_moments`` for a 1-D array (shape (kmax + 1, n)); each u is computed on one of the paths."""
    out = np.zeros((kmax + 1, flat.size))  # u >= Z_MAX: 0
    out[:, np.isnan(flat)] = np.nan
    near = np.flatnonzero(flat <= _FORWARD_LIMIT)
    if near.size:
        out[:, near] = _forward(flat[near], kmax)
    middle = np.flatnonzero((flat > _FORWARD_LIMIT) & (flat < Z_MAX))
    if middle.size:
        out[:, middle] = _from_table(flat[middle], kmax)
    return out


def _forward(u: FloatArray, kmax: int) -> FloatArray:
    """The forward recurrence from P_0 = ndtr(-u), P_1 = phi_N(u) - u P_0 (0 <= u <= _FORWARD_LIMIT)."""
    out = np.empty((kmax + 1, u.size))
    out[0] = special.ndtr(-u)
    out[1] = _pdf_exact(u) - u * out[0]
    for k in range(2, kmax + 1):
        out[k] = (k - 1) * out[k - 2] - u * out[k - 1]
    return out


def _from_table(u: FloatArray, kmax: int) -> FloatArray:
    """Taylor series of I_{kmax-1}, I_kmax from the table, the backward recurrence, times phi_N(u)."""
    centres, table = _table(kmax)
    index = (u * (1.0 / _SPACING)).astype(np.intp)
    offset = centres[index] - u  # x = u_c - u
    coefficients = table[:, :, index]  # (_TERMS, 2, n)
    out = np.empty((kmax + 1, u.size))
    top = out[kmax - 1 :]
    top[...] = coefficients[-1]
    for j in range(_TERMS - 2, -1, -1):  # Horner's rule in x for I_{kmax-1}, I_kmax
        top *= offset
        top += coefficients[j]
    for k in range(kmax - 1, 0, -1):
        out[k - 1] = (out[k + 1] + u * out[k]) / k
    out *= _pdf_exact(u)
    small = np.flatnonzero(u <= _NDTR_LIMIT)
    if small.size:
        out[0, small] = special.ndtr(-u[small])
    return out


def tail_moments(u: FloatArray, kmax: int) -> FloatArray:
    """P_k(u) = int_u^inf (z - u)^k phi_N(z) dz for k = 0..kmax (1 <= kmax <= 8) and u >= 0 (inf allowed).

    P_0 is the upper normal tail Q(u) = ndtr(-u); P_1 = phi_N(u) - u Q(u); at u = 0 these are 1/2,
    phi_N(0), 1/2, 2 phi_N(0), 3/2. NaN propagates.

    Returns:
        array of shape ``(kmax + 1, *u.shape)``, relative error a few ulps (see the module docstring).

    Example:
        >>> [round(float(p), 12) for p in tail_moments(np.array(0.0), 2)]
        [0.5, 0.398942280401, 0.5]
    """
    u = np.asarray(u, dtype=np.float64)
    if u.size == 1:
        return np.array(tail_moments_list(float(u.reshape(-1)[0]), kmax)).reshape((kmax + 1, *u.shape))
    if u.size <= _POINTWISE:
        columns = [tail_moments_list(float(x), kmax) for x in u.reshape(-1)]
        return np.array(columns, dtype=np.float64).T.reshape((kmax + 1, *u.shape))
    with np.errstate(invalid="ignore", over="ignore", under="ignore"):
        out = _tail_moments_array(u.reshape(-1), kmax)
    return out.reshape((kmax + 1, *u.shape))
