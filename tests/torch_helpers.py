"""Shared test helpers: measured layer variances with their standard errors, and the tolerance budget.

Tolerance of a predicted pooled output variance v_pred against the measured one, relative:

    tol = 5 * SE / v + MODEL / sqrt(width)

- SE is the standard error of the measured pooled variance, estimated from the data itself: the batch is split
  into CHUNKS independent sub-batches and SE = std(chunk variances) / sqrt(CHUNKS). Five standard errors make a
  false failure a ~1e-6 event per comparison (Gaussian tail), whatever the correlation between units.
- The prediction treats the units of a layer as independent given their means (mean-field with realized weights).
  Units of width n that share inputs are correlated at O(1/sqrt(n)) (their weight rows overlap at random), which
  moves a pooled variance by O(1/sqrt(n)) relative; MODEL = 2.5 bounds the constant measured over the models of
  test_torch_model_layers.py (at most 1.5 over seeds 0-4, after removing 5 standard errors; the failure message
  prints the measured ratio).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

import varprop.torch as vt

CHUNKS = 16
SIGMAS = 5.0
MODEL = 2.5


def chunked_variances(
    model: nn.Module, make_batch: Callable[[torch.Generator], torch.Tensor], seed: int = 123
) -> dict[str, tuple[float, float]]:
    """{layer: (mean over chunks of the measured variance at its first call, standard error)}."""
    generator = torch.Generator().manual_seed(seed)
    runs: dict[str, list[float]] = {}
    for _ in range(CHUNKS):
        for name, values in vt.measure_variances(model, make_batch(generator)).items():
            runs.setdefault(name, []).append(values[0])
    summary = {}
    for name, values in runs.items():
        mean = sum(values) / len(values)
        spread = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
        summary[name] = (mean, spread / math.sqrt(len(values)))
    return summary


def tolerance(measured: float, standard_error: float, width: float) -> float:
    return SIGMAS * standard_error / measured + MODEL / math.sqrt(max(width, 1.0))


def check_predictions(
    report: vt.InitReport,
    measured: dict[str, tuple[float, float]],
    skip: tuple[str, ...] = (),
) -> list[str]:
    """Compare every predicted output variance with its measurement; return the failures (with the numbers)."""
    failures = []
    for row in report.layers:
        if row.name in skip or row.name not in measured or row.predicted_output_var is None:
            continue
        value, error = measured[row.name]
        predicted = row.predicted_output_var
        allowed = tolerance(value, error, row.effective_fan_in or 1.0)
        ratio = predicted / value
        if abs(ratio - 1.0) > allowed:
            failures.append(
                f"{row.name}: predicted {predicted:.4f}, measured {value:.4f} +- {error:.4f} "
                f"(ratio {ratio:.4f}, allowed +-{allowed:.4f})"
            )
    return failures
