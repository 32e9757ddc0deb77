"""Gaussian moments of an activation: ``expectations`` (per-unit arrays) and ``moments`` (exact, with the variance
and error estimates); the sampling check is ``_monte_carlo``.

One dispatcher serves both exact entries (``_closed_then_quadrature``): an activation's closed form wherever it is
trusted, the graded quadrature elsewhere (only the rows asked for); ``moments`` adds the precomputed tables for
arrays of registered activations without closed forms, and the cancellation-free variance.

A scalar ``moments`` call takes the same path with 0-d arrays (``_scalar_moments`` adds only a result cache). The
one scalar path is underneath, in the two rules that would otherwise pay numpy's per-call overhead on 1-element
arrays: the closed forms' point functions (``PiecewisePolynomial.point``, ``ExponentialLinear.point``, with
``_tails.tail_moments_list``) and the quadrature's one-point rule (``_quadrature._scalar_expectation``), each the
same arithmetic as its array code on Python floats. Without them a scalar call would be several times slower; with
them it stays within 2x of the engine's former scalar copies (removed in issue 9) and gives the same bits (``python
benchmarks/moments.py --scalar c3d4775 3838eb2``, docs/benchmarks.md).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from .._errors import ConvergenceError, VarpropValueError
from .._validation import as_real_array, check_real
from ..activations import activation as resolve_activation
from ..activations._activation import Activation
from ..activations.expression._singular_points import NearFunction, SingularPoint, SingularSearch
from ..activations.expression._singular_search import REACH_STD as _REACH_STD
from ._moment_tables import TableMoments, table_moments
from ._quadrature import gaussian_expectation
from ._singular import DIVERGENT_EXPONENT, singular_expectation

__all__ = [
    "MOMENT_NAMES",
    "Moments",
    "Scalar",
    "closed_form_expectations",
    "expectations",
    "float_or_array",
    "moments",
]

FloatArray = NDArray[np.float64]
#: What the engine returns for one point (a float) or for an array of them.
Scalar = float | FloatArray
Method = Literal["auto", "closed_form", "quadrature"]
_METHODS = ("auto", "closed_form", "quadrature")
#: The moments the engine computes, in its row order: E[phi], E[phi^2], E[phi'^2] (``Moments``'s field names).
MOMENT_NAMES = ("mean", "second_moment", "deriv_second_moment")
# A closed form's rounding: 128 ulps of the value (tail formulas lose up to ~60 on the 40-digit reference grid).
_CLOSED_ROUNDING = 128 * float(np.finfo(np.float64).eps)


def float_or_array(array: FloatArray) -> Scalar:
    """The engine's return convention: a Python float for a 0-d array, the array itself otherwise.

    Example:
        >>> float_or_array(np.array(2.0)), float_or_array(np.array([2.0]))
        (2.0, array([2.]))
    """
    return float(array) if array.ndim == 0 else array


@dataclass(frozen=True)
class Moments:
    """Moments of phi(y) for y ~ N(mean, var).

    Attributes:
        mean: E[phi(y)].
        second_moment: E[phi(y)^2], the quantity He et al.'s argument needs.
        variance: Var[phi(y)] = E[phi^2] - E[phi]^2, computed without cancellation.
        deriv_second_moment: E[phi'(y)^2] (almost-everywhere derivative), for the backward pass; ``inf``
            for a formula whose derivative has a non-integrable singularity (``sqrt(abs(x))``).
        error: absolute error estimates of the four fields in the same order, or ``None`` when not
            requested; each bounds the true error (checked over the 40-digit reference grid:
            tests/test_error_estimates.py). Closed-form values get 128 ulps of rounding (of E[|phi|]
            for E[phi], whose terms may cancel).
        method: ``"closed form"``, ``"quadrature"``, ``"table"`` (array input served by the precomputed tables of
            ``varprop.gaussian._moment_tables``) or ``"mixed"`` (array input using several).
    """

    mean: Scalar
    second_moment: Scalar
    variance: Scalar
    deriv_second_moment: Scalar
    error: tuple[Scalar, Scalar, Scalar, Scalar] | None = None
    method: str = "quadrature"


def _quadrature_rows(
    act: Activation, mean: FloatArray, var: FloatArray, rows: Sequence[int], with_error: bool
) -> tuple[FloatArray, FloatArray]:
    """The moment rows ``rows`` (0: E[phi], 1: E[phi^2], 2: E[phi'^2], ascending) by quadrature; (values, abserr).

    Each row is summed on its own, so a row's value does not depend on which other rows are computed with it."""
    function, derivative = act.function, act.derivative

    def integrand(y: FloatArray, point: NDArray[np.intp]) -> list[FloatArray]:
        columns: list[FloatArray] = []
        if 0 in rows or 1 in rows:
            value = function(y)
            columns += [value] if 0 in rows else []
            columns += [value * value] if 1 in rows else []
        if 2 in rows:
            slope = derivative(y)
            columns.append(slope * slope)
        return columns

    result = gaussian_expectation(integrand, mean, var, kinks=act.kinks, features=act.features, with_error=with_error)
    return result.value, result.abserr


def _closed_then_quadrature(
    act: Activation,
    mean: FloatArray,
    var: FloatArray,
    rows: Sequence[int],
    method: Method,
    with_error: bool,
    values: FloatArray,
    errors: FloatArray,
) -> NDArray[np.bool_]:
    """The dispatch: the moment rows ``rows`` at each broadcast (mean, var) from the closed form where it is trusted
    (everywhere for ``method="closed_form"``), by quadrature elsewhere (everywhere for ``method="quadrature"``).

    Writes ``values`` and, with ``with_error``, ``errors`` (``len(rows)`` x points, flattened; a closed form's error
    is 128 ulps of its value) and returns where the closed form was used.
    """
    mean_f, var_f = mean.ravel(), var.ravel()
    use_closed = np.zeros(mean_f.size, dtype=bool)
    if method != "quadrature" and act.closed_form is not None:
        # One pass: the three moments and where they are trusted.
        *closed, valid = act.closed_form(mean_f, var_f)
        if method == "auto":
            use_closed = np.asarray(valid, dtype=bool).reshape(-1)
        else:
            use_closed[:] = True
        every = bool(use_closed.all())  # (the common case, and a scalar call's: no masked copies)
        for index, row in enumerate(rows):
            column = np.asarray(closed[row], dtype=np.float64).reshape(-1)
            values[index, use_closed] = column if every else column[use_closed]
        if with_error:
            errors[:, use_closed] = _CLOSED_ROUNDING * np.abs(values[:, use_closed])
        if every:
            return use_closed
    elif method == "closed_form":
        raise VarpropValueError(f"activation {act.spec!r} has no closed form; use method='auto' or 'quadrature'")
    if not use_closed.any():
        # Whole arrays (0-d for scalar input) keep the engine's single-point fast path.
        quad_values, quad_errors = _quadrature_rows(act, mean, var, rows, with_error)
        values[:], errors[:] = quad_values.reshape(len(rows), -1), quad_errors.reshape(len(rows), -1)
        return use_closed
    elif not use_closed.all():
        quadrature = ~use_closed
        values[:, quadrature], errors[:, quadrature] = _quadrature_rows(
            act, mean_f[quadrature], var_f[quadrature], rows, with_error
        )
    return use_closed


def _rows_of(need: Sequence[str]) -> list[int]:
    """The engine rows of the moment names in ``need`` (checked)."""
    if isinstance(need, str) or not need:
        names = ", ".join(map(repr, MOMENT_NAMES))
        raise VarpropValueError(f"need must be a non-empty sequence of {names}, got {need!r}")
    unknown = [name for name in need if name not in MOMENT_NAMES]
    if unknown:
        raise VarpropValueError(
            f"unknown moment {unknown[0]!r} in need; valid choices: {', '.join(map(repr, MOMENT_NAMES))}"
        )
    return [MOMENT_NAMES.index(name) for name in need]


def expectations(
    act: Any,
    mean: Any,
    var: Any,
    need: Sequence[str] = MOMENT_NAMES,
    *,
    method: Method = "auto",
) -> tuple[FloatArray, ...]:
    """The Gaussian moments ``need`` of an activation at each unit y_i ~ N(mean_i, var_i), as arrays.

    The per-unit entry of the engine, for callers that evaluate many units at once (``varprop.torch``'s
    propagation, the depth dynamics): E[phi(y)] (``"mean"``), E[phi(y)^2] (``"second_moment"``) and
    E[phi'(y)^2] (``"deriv_second_moment"``), only those asked for, in the order asked. Each comes from the
    activation's closed form where it is trusted and from the graded Gauss-Legendre quadrature elsewhere (only the
    rows asked for are integrated; formulas with poles through ``varprop.gaussian._singular``), the same values
    ``moments`` gives with ``method``; no precomputed tables, no cancellation-free variance and no error
    estimates (``moments`` has those). Cost: a closed form 0.1-1.5 us per unit; the quadrature ~1,000 function
    evaluations per unit.

    Args:
        act: activation spec, ``Activation`` or numpy callable (see ``varprop.activation``).
        mean: means of y (array or scalar, broadcast with ``var``).
        var: variances of y (>= 0, not checked: validated input is assumed, as from ``varprop.torch``).
        need: moment names out of ``MOMENT_NAMES``.
        method: ``"auto"`` (closed form where trusted, else quadrature), ``"closed_form"`` or ``"quadrature"``.

    Returns:
        One float64 array of the broadcast shape per name in ``need``.

    Raises:
        VarpropValueError: unknown name in ``need`` or unknown ``method``; ``"closed_form"`` for an activation
            without one.
        ConvergenceError: the moments diverge (a non-integrable pole, growth faster than the Gaussian decays).

    Example:
        >>> first, second = expectations("relu", np.zeros(2), np.array([1.0, 4.0]), ("mean", "second_moment"))
        >>> second.tolist()
        [0.5, 2.0]
    """
    if method not in _METHODS:
        raise VarpropValueError(f"unknown method {method!r}; valid choices: {', '.join(map(repr, _METHODS))}")
    rows = _rows_of(need)
    activation = resolve_activation(act)
    mean_b, var_b = np.broadcast_arrays(np.asarray(mean, dtype=np.float64), np.asarray(var, dtype=np.float64))
    if activation.extra.get("singular_points") or activation.extra.get("singular_search"):  # poles: exact transform
        exact = _singular_moments(activation, mean_b, var_b, False)
        columns = (exact.mean, exact.second_moment, exact.deriv_second_moment)
        return tuple(np.asarray(columns[row], dtype=np.float64).reshape(mean_b.shape) for row in rows)
    ordered = sorted(set(rows))
    values = np.empty((len(ordered), mean_b.size))
    _closed_then_quadrature(activation, mean_b, var_b, ordered, method, False, values, np.empty_like(values))
    return tuple(values[ordered.index(row)].reshape(mean_b.shape) for row in rows)


def closed_form_expectations(
    act: Any, mean: Any, var: Any, need: Sequence[str] = MOMENT_NAMES
) -> tuple[FloatArray, ...] | None:
    """``expectations`` from the activation's closed form when it is trusted at every unit, else ``None``.

    For callers that choose between the exact closed form (0.1-1.5 us per unit, cheaper than a table lookup) and
    their own interpolation.

    Example:
        >>> closed_form_expectations("tanh", np.zeros(1), np.ones(1)) is None  # tanh has no closed form
        True
        >>> closed_form_expectations("relu", np.zeros(1), np.ones(1), ("second_moment",))
        (array([0.5]),)
    """
    rows = _rows_of(need)
    activation = resolve_activation(act)
    if activation.closed_form is None:
        return None
    mean_a, var_a = np.asarray(mean, dtype=np.float64), np.asarray(var, dtype=np.float64)
    *closed, trusted = activation.closed_form(mean_a, var_a)
    if not bool(np.all(trusted)):
        return None
    shape = np.broadcast_shapes(mean_a.shape, var_a.shape)
    return tuple(np.broadcast_to(np.asarray(closed[row], dtype=np.float64), shape).copy() for row in rows)


def _centred_variance(
    act: Activation, mean: FloatArray, var: FloatArray, with_error: bool
) -> tuple[FloatArray, FloatArray]:
    """Var[phi] = E[s^2] - E[s]^2 with s = phi(y) - phi(mean), which does not cancel when E[phi]^2 ~ E[phi^2]."""
    centre = np.atleast_1d(act.function(mean)).reshape(-1)  # by flattened point (0-d: the one point)

    def integrand(y: FloatArray, point: NDArray[np.intp]) -> list[FloatArray]:
        shifted = act.function(y) - centre[point]
        return [shifted, shifted * shifted]

    result = gaussian_expectation(integrand, mean, var, kinks=act.kinks, features=act.features, with_error=with_error)
    shift, shifted_second = result.value
    variance = np.maximum(shifted_second - shift * shift, 0.0)
    return variance, result.abserr[1] + 2 * np.abs(shift) * result.abserr[0]


def moments(
    act: Any,
    var: Any = 1.0,
    mean: Any = 0.0,
    *,
    with_error: bool = False,
    method: Method = "auto",
) -> Moments:
    """Exact Gaussian moments of an activation: E[phi(y)], E[phi(y)^2], Var[phi(y)], E[phi'(y)^2].

    For y ~ N(mean, var). He et al. (2015) show that a layer y' = W phi(y) with zero-mean weights
    has Var[y'] = n Var[w] E[phi(y)^2]; ``second_moment`` is that E[phi(y)^2]. Closed forms are used
    where they exist and are well conditioned; elsewhere a graded composite Gauss-Legendre rule split
    at the activation's kinks (relative error ~1e-15; see ``varprop.gaussian._quadrature``). Formulas with poles
    or other unbounded points (``1/abs(x)**0.4``, ``log(abs(x))``) are split there and integrated by a
    tanh-sinh transform in the distance to the point (``varprop.gaussian._singular``); where E[phi^2] diverges
    (``1/x``: |phi| ~ |x|^-b with b >= 1/2) ``ConvergenceError`` names the point. Array calls with
    ``method="auto"`` for the registered activations without closed forms (at their default parameters) use
    precomputed Chebyshev tables inside |mean| <= 6, 1e-4 <= var <= 1e3 (<= 1e-13 relative, well under a
    microsecond per point; ``varprop.gaussian._moment_tables``, ``Moments.method == "table"``); scalar calls, user
    formulas and callables always integrate.

    Args:
        act: activation spec (``"elu"``, ``"elu(alpha=0.5)"``), ``Activation`` or numpy callable.
        var: variance of y, >= 0; scalar or array (broadcast with ``mean``).
        mean: mean of y; scalar or array.
        with_error: attach absolute error estimates (``Moments.error``).
        method: ``"auto"`` (closed form where valid, else a table or quadrature), ``"closed_form"`` (raise
            if the activation has none) or ``"quadrature"``.

    Returns:
        Moments with floats for scalar input, arrays of the broadcast shape otherwise.

    Raises:
        VarpropValueError: bad variance or mean (negative, NaN, infinite), unknown method.
        VarpropTypeError: non-numeric input.
        ConvergenceError: the moments diverge (a non-integrable pole, growth faster than the Gaussian
            decays) or overflow float64 (``exp(x)`` at mean 1000).

    Example:
        >>> m = moments("elu", var=1.0)
        >>> round(m.second_moment, 15)
        0.644945417492924
    """
    if method not in _METHODS:
        raise VarpropValueError(f"unknown method {method!r}; valid choices: {', '.join(map(repr, _METHODS))}")
    activation = resolve_activation(act)
    if method == "closed_form" and activation.closed_form is None:
        raise VarpropValueError(f"activation {activation.spec!r} has no closed form; use method='auto' or 'quadrature'")
    if activation.extra.get("singular_points") or activation.extra.get("singular_search"):
        return _singular_moments(
            activation, as_real_array("mean", mean), as_real_array("var", var, minimum=0.0), with_error
        )
    if not with_error and isinstance(var, (float, int)) and isinstance(mean, (float, int)):
        return _scalar_moments(activation, check_real("mean", mean), check_real("var", var, minimum=0.0), method)
    var_array = as_real_array("var", var, minimum=0.0)
    mean_array = as_real_array("mean", mean)
    if var_array.ndim == 0 and mean_array.ndim == 0 and not with_error:
        return _scalar_moments(activation, float(mean_array), float(var_array), method)
    return _array_moments(activation, mean_array, var_array, method, with_error)


# E[phi^2] - E[phi]^2 loses log2(E[phi^2] / Var) bits of E[phi^2]'s ~1e-16 relative accuracy. Up to
# 6 bits (a factor 64: variance accurate to ~1.4e-14) the difference is kept; beyond, the variance is
# recomputed by quadrature around phi(mean), which does not cancel.
_CANCELLATION_LIMIT = 64.0


def _cancels(first: Any, second: Any) -> Any:
    """Where computing Var = E[phi^2] - E[phi]^2 would lose more than 6 bits (scalars or arrays)."""
    return second > _CANCELLATION_LIMIT * (second - first * first)


# Scalar results by (activation key, mean, var, method): initializing a model asks for the same
# few (activation, variance) pairs once per layer. Bounded; values are immutable.
_SCALAR_CACHE: OrderedDict[tuple[object, ...], Moments] = OrderedDict()
_SCALAR_CACHE_SIZE = 4096


def _scalar_moments(activation: Activation, mean: float, var: float, method: Method) -> Moments:
    """``moments`` at one point, through the same dispatch as arrays (0-d arrays, no tables: a scalar call
    integrates), with a result cache. The single-point speed comes from the two rules underneath, which take one
    point with Python floats: the closed forms' point functions and ``gaussian_expectation``'s one-point rule."""
    key = (*activation.key, mean, var, method)
    cached = _SCALAR_CACHE.get(key)
    if cached is not None:
        _SCALAR_CACHE.move_to_end(key)
        return cached
    result = _array_moments(activation, np.asarray(mean), np.asarray(var), method, False, tables=False)
    _SCALAR_CACHE[key] = result
    if len(_SCALAR_CACHE) > _SCALAR_CACHE_SIZE:
        _SCALAR_CACHE.popitem(last=False)
    return result


def _check_finite(activation: Activation, mean: FloatArray, var: FloatArray, values: FloatArray) -> None:
    """Refuse moments beyond the float64 range (exp(x) at mean 1000 gave mean=inf, variance=nan)."""
    bad = ~np.isfinite(values)
    if bad.any():
        row, index = (int(axis[0]) for axis in np.nonzero(bad))
        name = ("E[phi]", "E[phi^2]", "E[phi'^2]")[row]
        raise ConvergenceError(
            f"{name} of {activation.spec!r} at mean={float(mean[index])!r}, var={float(var[index])!r} is "
            f"{float(values[row, index])!r}: it overflows the float64 range (or is undefined there); use a "
            "smaller mean or variance"
        )


def _array_moments(
    activation: Activation,
    mean_array: FloatArray,
    var_array: FloatArray,
    method: Method,
    with_error: bool,
    tables: bool = True,
) -> Moments:
    same = mean_array.shape == var_array.shape
    mean_b, var_b = (mean_array, var_array) if same else np.broadcast_arrays(mean_array, var_array)
    shape = mean_b.shape
    mean_f, var_f = mean_b.ravel(), var_b.ravel()
    if tables and method == "auto" and activation.closed_form is None and mean_f.size:
        # Registered activations without closed forms: precomputed tables where they hold (_moment_tables).
        tabled = table_moments(activation, mean_f, var_f)
        if tabled is not None and tabled.inside.any():
            return _table_merged(activation, tabled, mean_f, var_f, shape, with_error)
    values = np.empty((4, mean_f.size))  # rows: E[phi], E[phi^2], E[phi'^2], Var[phi]
    errors = np.zeros((4, mean_f.size))
    moment_rows = (values[:3], errors[:3])  # views: the dispatcher writes E[phi], E[phi^2], E[phi'^2] in place
    use_closed = _closed_then_quadrature(activation, mean_b, var_b, (0, 1, 2), method, with_error, *moment_rows)
    closed_all = bool(use_closed.all())
    closed_any = closed_all or bool(use_closed.any())
    if with_error and closed_any:
        # The rounding of a closed-form E[phi] is taken of E[|phi|], since its terms cancel where E[phi] << E[|phi|]
        # (ELU at var 1e-6 loses 1e-13 of E[phi], SELU's E[phi] = 0 at var 1 is 1e-16); E[|phi|] by quadrature.
        function = activation.function
        absolute = gaussian_expectation(
            lambda y, _: np.abs(function(y)),
            mean_f[use_closed],
            var_f[use_closed],
            kinks=activation.kinks,
            features=activation.features,
        ).value[0]
        errors[0, use_closed] = _CLOSED_ROUNDING * np.maximum(np.abs(values[0, use_closed]), absolute)
    _check_finite(activation, mean_f, var_f, values[:3])
    first, second = values[0], values[1]
    values[3] = np.maximum(second - first * first, 0.0)
    if with_error:
        errors[3] = errors[1] + 2 * np.abs(first) * errors[0]
    cancelling = _cancels(first, second)
    if cancelling.any():
        # A scalar call's point stays 0-d, so that the quadrature takes its one-point rule (as it did before).
        one_point = not shape and not tables
        at_mean, at_var = (mean_b, var_b) if one_point else (mean_f[cancelling], var_f[cancelling])
        values[3, cancelling], errors[3, cancelling] = _cancelling_variance(
            activation, at_mean, at_var, with_error, tables and method == "auto"
        )
    method_name = "closed form" if closed_all else "mixed" if closed_any else "quadrature"
    return _from_rows(values, errors, shape, with_error, method_name)


def _from_rows(
    values: FloatArray, errors: FloatArray, shape: tuple[int, ...], with_error: bool, method: str
) -> Moments:
    """``Moments`` of rows E[phi], E[phi^2], E[phi'^2], Var[phi] (``values``, ``errors``: 4 x points), each reshaped
    to ``shape``; ``Moments`` orders the variance third."""
    order = (0, 1, 3, 2)
    if not shape:  # one point: Python floats
        first, second, variance, deriv = (float(values[i, 0]) for i in order)
    else:
        first, second, variance, deriv = (values[i].reshape(shape) for i in order)
    error = tuple(float_or_array(errors[i].reshape(shape)) for i in order) if with_error else None
    return Moments(
        mean=first,
        second_moment=second,
        variance=variance,
        deriv_second_moment=deriv,
        error=error,  # type: ignore[arg-type]
        method=method,
    )


def _cancelling_variance(
    activation: Activation, mean: FloatArray, var: FloatArray, with_error: bool, tables: bool
) -> tuple[FloatArray, FloatArray]:
    """Var[phi] where E[phi^2] - E[phi]^2 cancels: from the activation's table where it holds, else by quadrature
    around phi(mean) (``_centred_variance``)."""
    tabled = table_moments(activation, mean, var) if tables else None
    if tabled is None or not tabled.inside.any():
        return _centred_variance(activation, mean, var, with_error)
    variance, error = np.empty(mean.size), np.empty(mean.size)
    inside = tabled.inside
    variance[inside], error[inside] = tabled.values[3], tabled.error[3]
    if not inside.all():
        variance[~inside], error[~inside] = _centred_variance(activation, mean[~inside], var[~inside], with_error)
    return variance, error


def _table_merged(
    activation: Activation,
    tabled: TableMoments,
    mean_f: FloatArray,
    var_f: FloatArray,
    shape: tuple[int, ...],
    with_error: bool,
) -> Moments:
    """``Moments`` from table values where the table holds and the exact path (``_array_moments``) elsewhere."""
    inside = tabled.inside
    values, errors = np.empty((4, mean_f.size)), np.empty((4, mean_f.size))  # rows as in _array_moments
    values[:, inside], errors[:, inside] = tabled.values, tabled.error
    method_name = "table"
    if not inside.all():
        rest = _array_moments(activation, mean_f[~inside], var_f[~inside], "auto", with_error, tables=False)
        values[:, ~inside] = [rest.mean, rest.second_moment, rest.deriv_second_moment, rest.variance]
        if rest.error is not None:
            errors[:, ~inside] = [rest.error[0], rest.error[1], rest.error[3], rest.error[2]]
        method_name = "mixed"
    return _from_rows(values, errors, shape, with_error, method_name)


def _singular_moments(activation: Activation, mean: FloatArray, var: FloatArray, with_error: bool) -> Moments:
    """Moments of an activation that is unbounded somewhere (``_singular``): split, transform, or raise.

    E[phi^2] must converge (|phi| ~ d^-b with 2 b < 1 at every singular point), else the moments are
    undefined and ``ConvergenceError`` says where; a divergent E[phi'^2] alone is returned as inf. Formulas
    with non-affine denominators, log or sqrt arguments (``1/(x**2 - 1)``) carry ``extra["singular_search"]``:
    their singular points are found anew over each Gaussian's reach
    (``varprop.activations.expression._singular_search``), and a formula that is not real there (``log(x)`` at
    mean 0) raises ``VarpropValueError``.
    """
    search: SingularSearch | None = activation.extra.get("singular_search")
    static: tuple[SingularPoint, ...] = activation.extra.get("singular_points", ())
    mean_b, var_b = np.broadcast_arrays(mean, var)
    values = np.empty((4, mean_b.size))  # rows: E[phi], E[phi^2], E[phi'^2], Var[phi]
    errors = np.empty((4, mean_b.size))
    deriv_diverges = np.zeros(mean_b.size, dtype=bool)
    for index, (centre, variance) in enumerate(zip(mean_b.ravel(), var_b.ravel(), strict=True)):
        centre, variance = float(centre), float(variance)
        if search is not None:
            reach = _REACH_STD * math.sqrt(variance)
            points, approximate = search(centre - reach, centre + reach, (centre,))
        else:
            points, approximate = static, ()
        if variance > 0.0:
            values[:3, index], errors[:3, index], deriv_diverges[index] = _singular_point_moments(
                activation, points, approximate, centre, variance
            )
        else:
            with np.errstate(all="ignore"):
                at = np.array([centre])
                values[:3, index] = [activation.function(at)[0], activation.function(at)[0] ** 2, 0.0]
                values[2, index] = activation.derivative(at)[0] ** 2
            if not np.isfinite(values[:3, index]).all():
                raise ConvergenceError(f"{activation.spec!r} is not finite at mean={centre!r} (var=0)")
            errors[:3, index] = 0.0
    values[2, deriv_diverges], errors[2, deriv_diverges] = np.inf, np.inf
    first, second = values[0], values[1]
    values[3] = np.maximum(second - first * first, 0.0)
    errors[3] = errors[1] + 2 * np.abs(first) * errors[0] + 4 * np.finfo(np.float64).eps * second
    return _from_rows(values, errors, mean_b.shape, with_error, "quadrature")


def _singular_point_moments(
    activation: Activation,
    points: tuple[SingularPoint, ...],
    approximate: tuple[float, ...],
    mean: float,
    var: float,
) -> tuple[FloatArray, FloatArray, bool]:
    """Rows E[phi], E[phi^2], E[phi'^2] at one (mean, var > 0) through ``points``; (values, errors, E[phi'^2] = inf)."""
    where = [point for point, phi_exponent, _ in points if 2.0 * phi_exponent >= DIVERGENT_EXPONENT]
    if where:
        exponent = max(phi_exponent for _, phi_exponent, _ in points)
        many = f" (and {len(where) - 1} more within 40 std of the mean)" if len(where) > 1 else ""
        raise ConvergenceError(
            f"E[phi^2] of {activation.spec!r} diverges: non-integrable singularity at x={where[0]!r}{many} "
            f"(|phi| grows like |x - {where[0]!r}|^-{exponent:.6g}; E[phi^2] needs an exponent < 1/2). "
            "No variance-preserving scale exists; use a formula that stays bounded or grows more slowly"
        )
    locations = [point for point, _, _ in points]
    phi_exponent = max((exponent for _, exponent, _ in points), default=0.0)
    deriv_exponent = max((exponent for _, _, exponent in points), default=0.0)
    deriv_converges = 2.0 * deriv_exponent < DIVERGENT_EXPONENT
    function, derivative = activation.function, activation.derivative

    def integrand(y: FloatArray, point: NDArray[np.intp]) -> list[FloatArray]:
        value = function(y)
        slope = derivative(y) if deriv_converges else np.zeros_like(y)
        return [value, value * value, slope * slope]

    exponents = [phi_exponent, 2.0 * phi_exponent, 2.0 * deriv_exponent if deriv_converges else 0.0]
    near_pair: tuple[NearFunction, NearFunction] | None = activation.extra.get("near")  # formulas: exact offsets

    def near(point: float, offset: FloatArray) -> list[FloatArray]:
        assert near_pair is not None  # only passed on when there is one
        near_function, near_derivative = near_pair
        value = near_function(point, offset)
        slope = near_derivative(point, offset) if deriv_converges else np.zeros_like(offset)
        return [value, value * value, slope * slope]

    values, errors = singular_expectation(
        integrand,
        mean,
        var,
        locations,
        exponents,
        kinks=activation.kinks,
        features=activation.features,
        near=near if near_pair is not None else None,
        approximate=approximate,
    )
    return values, errors, not deriv_converges
