"""Gains and weight scales: from Gaussian moments to the standard deviation (or bound) of the weights.

``gain`` is sqrt(1 / E[phi(x)^2]) at the target variance (He et al. 2015, exact for any activation);
``weight_std``, ``uniform_bound`` and ``truncated_normal_scale`` turn it into a distribution's parameter for a
fan-in; ``gain_table`` lists the gain of every registered activation beside ``torch.nn.init.calculate_gain``.
The everyday names are also at the package root (``varprop.gain``).
"""

from __future__ import annotations

from ._gain import DISTRIBUTIONS, MODES, TRUNCATED_NORMAL_STD, gain, truncated_normal_scale, uniform_bound, weight_std
from ._table import TORCH_GAIN_SOURCE, TableRow, gain_table, torch_gain

__all__ = [
    "DISTRIBUTIONS",
    "MODES",
    "TORCH_GAIN_SOURCE",
    "TRUNCATED_NORMAL_STD",
    "TableRow",
    "gain",
    "gain_table",
    "torch_gain",
    "truncated_normal_scale",
    "uniform_bound",
    "weight_std",
]
