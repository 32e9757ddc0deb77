"""The gain table: exact gains of every registered activation beside ``torch.nn.init.calculate_gain``.

Pure core (no torch import): PyTorch's recommended gains are kept here as data, with their source,
so that ``varprop table`` can show them without PyTorch installed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from .._validation import check_real
from ..activations import Activation, activation_definition, registered_activations
from ..activations import activation as resolve_activation
from ..gaussian import moments
from ._gain import gain

__all__ = ["TORCH_GAIN_SOURCE", "TableRow", "gain_table", "torch_gain"]

TORCH_GAIN_SOURCE = "torch.nn.init.calculate_gain (https://pytorch.org/docs/stable/nn.init.html)"

# torch.nn.init.calculate_gain, as documented and implemented in PyTorch 2.x:
#   linear / identity / conv{1,2,3}d / conv_transpose{1,2,3}d -> 1
#   sigmoid -> 1
#   tanh -> 5/3        (an empirical choice; PyTorch gives no derivation)
#   relu -> sqrt(2)    (He et al. 2015, exact for ReLU at any variance)
#   leaky_relu -> sqrt(2 / (1 + negative_slope^2)), negative_slope defaulting to 0.01
#   selu -> 3/4        ("Value found empirically", https://github.com/pytorch/pytorch/pull/50664)
_TORCH_CONSTANT_GAINS: dict[str, tuple[float, str]] = {
    "identity": (1.0, "torch 'linear'"),
    "sigmoid": (1.0, "torch 'sigmoid'"),
    "tanh": (5.0 / 3.0, "torch 'tanh': 5/3, empirical"),
    "relu": (math.sqrt(2.0), "torch 'relu': sqrt(2), He et al. 2015"),
    "selu": (3.0 / 4.0, "torch 'selu': 3/4, empirical (pytorch PR 50664)"),
}
_TORCH_LEAKY_DEFAULT_SLOPE = 0.01  # calculate_gain('leaky_relu') with param=None


def torch_gain(act: Any) -> tuple[float, str] | None:
    """PyTorch's recommended gain for an activation, or ``None`` where torch defines none.

    ``torch.nn.init.calculate_gain`` knows linear, sigmoid, tanh, relu, leaky_relu and selu. Only
    relu (and leaky_relu, the same argument) are derived; tanh's 5/3 and selu's 3/4 are empirical,
    and sigmoid's 1 ignores that sigmoid(0) = 1/2.

    Args:
        act: activation spec, ``Activation`` or callable.

    Returns:
        ``(gain, note)`` where ``note`` says which torch rule gave it, or ``None``.

    Example:
        >>> round(torch_gain("leaky_relu(negative_slope=0.2)")[0], 12)
        1.386750490563
    """
    activation = resolve_activation(act)
    if activation.name == "leaky_relu":
        slope = float(activation.param_dict.get("negative_slope", _TORCH_LEAKY_DEFAULT_SLOPE))
        return math.sqrt(2.0 / (1.0 + slope * slope)), "torch 'leaky_relu': sqrt(2/(1+slope^2))"
    return _TORCH_CONSTANT_GAINS.get(activation.name)


@dataclass(frozen=True)
class TableRow:
    """One activation in the gain table (all at pre-activation variance ``var``).

    Attributes:
        activation: canonical spec string.
        var: pre-activation variance q.
        second_moment: E[phi(y)^2], y ~ N(0, q).
        gain: forward (fan_in) gain sqrt(q / E[phi^2]); the weight std is gain / sqrt(fan_in).
        fan_var: n Var[w] = gain^2, the weight *variance* times the fan (the seed's "1.55" for ELU).
        backward_gain: fan_out gain 1 / sqrt(E[phi'^2]).
        torch_gain: ``torch.nn.init.calculate_gain`` where torch defines one, else ``None``.
        torch_note: which torch rule gave ``torch_gain`` (empty when none).
    """

    activation: str
    var: float
    second_moment: float
    gain: float
    fan_var: float
    backward_gain: float
    torch_gain: float | None
    torch_note: str

    def to_dict(self) -> dict[str, Any]:
        """The row as a JSON-ready dict."""
        return asdict(self)


def _registry_specs() -> list[str]:
    """Every registered activation with torch's defaults; parameters torch requires are set to 0.

    ``threshold(threshold, value)`` has no defaults in torch; it is listed as
    ``threshold(threshold=0.0, value=0.0)`` (which is ReLU).
    """
    specs = []
    for name in registered_activations():
        required = [param.name for param in activation_definition(name).params if param.default is None]
        specs.append(f"{name}({', '.join(f'{param}=0.0' for param in required)})" if required else name)
    return specs


def gain_table(activations: Iterable[str | Activation] | None = None, var: float = 1.0) -> list[TableRow]:
    """Exact gains of activations at one pre-activation variance, beside torch's recommendations.

    Args:
        activations: specs or ``Activation`` values; default: every registered activation with
            torch's default parameters (parameters without a torch default set to 0).
        var: pre-activation variance q > 0.

    Returns:
        One ``TableRow`` per activation, in the given (or registry) order.

    Raises:
        VarpropValueError: bad ``var``, or an activation with no finite gain at ``var``.

    Example:
        >>> row = gain_table(["elu"])[0]
        >>> round(row.fan_var, 12)
        1.550518808068
    """
    q = check_real("var", var, minimum=0.0, strict=True)
    if activations is None:
        activations = _registry_specs()
    rows = []
    for item in activations:
        activation = resolve_activation(item)
        result = moments(activation, var=q)
        forward = float(gain(activation, var=q, mode="fan_in"))
        backward = float(gain(activation, var=q, mode="fan_out"))
        torch_value = torch_gain(activation)
        rows.append(
            TableRow(
                activation=activation.spec,
                var=q,
                second_moment=float(result.second_moment),
                gain=forward,
                fan_var=forward * forward,
                backward_gain=backward,
                torch_gain=None if torch_value is None else torch_value[0],
                torch_note="" if torch_value is None else torch_value[1],
            )
        )
    return rows
