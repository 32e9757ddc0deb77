"""PyTorch adapter: variance-preserving ``init_`` for tensors and ``init_model`` for whole models.

Imported as ``varprop.torch`` (the numerics core, ``varprop``, does not import torch).

Example:
    >>> import torch
    >>> from torch import nn
    >>> import varprop.torch as vt
    >>> net = nn.Sequential(nn.Linear(32, 64), nn.ELU(), nn.Linear(64, 64), nn.GELU(), nn.Linear(64, 1))
    >>> report = vt.init_model(net, (128, 32), generator=torch.Generator().manual_seed(0))
    >>> [round(row.target_var, 3) for row in report.layers]
    [1.0, 1.0, 1.0]
    >>> w = vt.init_(torch.empty(64, 32), "elu")  # torch.nn.init style, in place
"""

from __future__ import annotations

import warnings
from typing import Any

from ..plotting import signal as _plotting_signal
from ._model_init import init_model
from ._tensor_init import calculate_gain, init_, init_module_
from .propagation.calibrate import measure_variances
from .propagation.plan import InitWriteError
from .propagation.residual import RESIDUAL_POLICIES
from .report.init_report import ActivationRow, InitReport, LayerRow
from .report.jacobian import JacobianSpectrum, jacobian_spectrum
from .report.signal import LayerSignal, SignalStats, signal_stats
from .sampling.fans import Fans, conv_coverage, fans

__all__ = [
    "RESIDUAL_POLICIES",
    "ActivationRow",
    "Fans",
    "InitReport",
    "InitWriteError",
    "JacobianSpectrum",
    "LayerRow",
    "LayerSignal",
    "SignalStats",
    "calculate_gain",
    "conv_coverage",
    "fans",
    "init_",
    "init_model",
    "init_module_",
    "jacobian_spectrum",
    "measure_variances",
    "signal_stats",
]


def __getattr__(name: str) -> Any:
    """``varprop.torch.plot_signal`` moved to ``varprop.plotting.plot_signal`` (kept importable, with a warning)."""
    if name == "plot_signal":
        warnings.warn(
            "varprop.torch.plot_signal moved to varprop.plotting.plot_signal; the old name will be removed",
            DeprecationWarning,
            stacklevel=2,
        )
        return _plotting_signal.plot_signal
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
