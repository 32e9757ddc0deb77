"""The ``Activation`` value: an elementwise function with what the moment engine needs to integrate it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["Activation", "ClosedForm", "ClosedMoments", "Param"]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
Param = float | str
# A closed form maps arrays (mean, var) of one shape, in one pass, to E[phi], E[phi^2], E[phi'^2] of
# phi(mean + sqrt(var) z) and the mask where those values are numerically trustworthy (elsewhere the
# engine uses quadrature).
ClosedMoments = tuple[FloatArray, FloatArray, FloatArray, BoolArray]
ClosedForm = Callable[[FloatArray, FloatArray], ClosedMoments]


@dataclass(frozen=True, eq=False)
class Activation:
    """An elementwise activation function as data.

    The moment engine integrates ``function`` and ``derivative`` against a Gaussian. It splits the
    real line exactly at ``kinks`` (points where the function or one of its derivatives jumps) and
    refines geometrically around ``features`` (smooth bends of the given width, such as tanh's
    transition near 0), which is what keeps quadrature exact to ~1e-15 at any mean and variance.

    Attributes:
        name: canonical registry name (``"elu"``) or a name for a custom function.
        params: ordered ``(name, value)`` pairs of the activation's parameters.
        function: vectorized numpy function ``x -> phi(x)``.
        derivative: vectorized numpy function ``x -> phi'(x)`` (almost everywhere).
        kinks: x-locations where ``function`` or its derivatives are not smooth (or jump).
        features: ``(x, width)`` pairs locating smooth bends of width ``width`` in x.
        closed_form: optional exact moments ``(mean, var) -> (E[phi], E[phi^2], E[phi'^2], valid)``,
            ``valid`` the boolean mask where the three values are numerically trustworthy (elsewhere
            the engine uses quadrature); one call computes all four.
        description: one line for tables and reports.

    Example:
        >>> import varprop
        >>> act = varprop.activation("elu")
        >>> float(act(np.array(-1.0)))
        -0.6321205588285577
    """

    name: str
    function: Callable[[FloatArray], FloatArray]
    derivative: Callable[[FloatArray], FloatArray]
    params: tuple[tuple[str, Param], ...] = ()
    kinks: tuple[float, ...] = ()
    features: tuple[tuple[float, float], ...] = ()
    closed_form: ClosedForm | None = None
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def __call__(self, x: Any) -> FloatArray:
        return self.function(np.asarray(x, dtype=np.float64))

    @property
    def spec(self) -> str:
        """Canonical spec string, e.g. ``"elu(alpha=1.0)"``; parsing it gives the same activation."""
        if not self.params:
            return self.name
        inner = ", ".join(f"{key}={value!r}" for key, value in self.params)
        return f"{self.name}({inner})"

    @property
    def param_dict(self) -> dict[str, Param]:
        return dict(self.params)

    @property
    def key(self) -> tuple[object, ...]:
        """Hashable identity used for caching: the spec for registered activations."""
        return (self.spec, id(self.function)) if self.extra.get("custom") else (self.spec,)

    def __repr__(self) -> str:
        return f"Activation({self.spec!r})"
