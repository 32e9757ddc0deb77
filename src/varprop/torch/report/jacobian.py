"""The singular values of a model's input-output Jacobian at a few inputs (dynamical isometry, measured).

``jacobian_spectrum(model, batch)`` takes the first ``inputs`` rows of the batch, calls the model on
each alone (a batch of one) and measures the singular values of J = d model(x) / dx:

* **exact** when the smaller side of J has at most ``exact_max_width`` entries: J from
  ``torch.func.jacrev`` (or ``jacfwd`` when the input is the smaller side), then
  ``torch.linalg.svdvals`` in float64;
* **Lanczos** otherwise: stochastic Lanczos quadrature (Golub & Meurant 1994; Ubaru, Chen & Saad
  2017) on J^T J (or J J^T, the smaller side), applied as a Jacobian-vector product followed by a
  vector-Jacobian product (``torch.func.jvp``/``vjp``), ``iterations`` steps with full
  reorthogonalization from each of ``probes`` random unit vectors. The Ritz values with the squared
  first components of the eigenvectors of the tridiagonal matrix are a Gauss quadrature of the
  spectral measure seen from the start vector.

Accuracy of the Lanczos path, stated as ``cdf_error``: by the Chebyshev-Markov-Stieltjes inequalities
the step distribution of a Gauss quadrature differs from the start vector's spectral measure by at
most its largest weight, at every point; a uniform random unit start vector sees the uniform
spectral measure with a standard deviation of at most 1 / (2 sqrt(n/2 + 1)) in the distribution
function (a Beta law), averaged over probes and inputs. ``cdf_error`` = mean largest weight + 3 of
those standard deviations: the measured distribution function is within it of the exact one (with
the 3-sigma probability), so the exact p-th percentile lies between the measured (p - cdf_error)-th
and (p + cdf_error)-th ones.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from ... import VarpropTypeError, VarpropValueError
from ...validation import check_positive_int

__all__ = ["DEFAULT_INPUTS", "PERCENTILES", "JacobianSpectrum", "jacobian_spectrum", "weighted_percentile"]

FloatArray = NDArray[np.float64]
#: The percentiles a ``JacobianSpectrum`` reports.
PERCENTILES: tuple[int, ...] = (10, 50, 90)
#: Inputs measured by default (the Jacobian differs from input to input; a few show how much).
DEFAULT_INPUTS = 4
_BREAKDOWN = 1e-12  # a Lanczos beta below this times the largest Ritz value: the Krylov space is exhausted


@dataclass(frozen=True)
class JacobianSpectrum:
    """Singular values of a model's input-output Jacobian at a few inputs.

    Attributes:
        singular_values: per input, the singular values (exact: all min(n_in, n_out) of them; Lanczos:
            the square roots of the Ritz values of every probe), increasing.
        weights: per input, the probability weight of each value (exact: 1/n each; Lanczos: the Gauss
            quadrature weights divided by the number of probes); each input's weights sum to 1.
        percentiles: {10, 50, 90: value} of the singular values pooled over the inputs (the smallest
            value where the pooled weighted distribution reaches the level).
        spread: percentiles[90] / percentiles[10] (``inf`` when p10 is 0).
        method: ``"exact"`` or ``"lanczos"``.
        input_dim: entries of one input (J has this many columns).
        output_dim: entries of one output (J's rows).
        iterations: Lanczos steps per probe (``None`` for exact).
        probes: random start vectors per input (0 for exact).
        cdf_error: the stated accuracy of the pooled distribution function (0 for exact; see the module).
        dtype: the dtype the Jacobian was computed in (the model's): singular values below about its
            machine epsilon times the largest one are rounding noise.
        notes: anything the reader should know.
    """

    singular_values: tuple[FloatArray, ...]
    weights: tuple[FloatArray, ...]
    percentiles: dict[int, float]
    spread: float
    method: Literal["exact", "lanczos"]
    input_dim: int
    output_dim: int
    iterations: int | None
    probes: int
    cdf_error: float
    dtype: str
    notes: tuple[str, ...] = field(default=())

    def pooled(self) -> tuple[FloatArray, FloatArray]:
        """(values, weights) of all inputs together, sorted, the weights summing to 1."""
        values = np.concatenate(self.singular_values)
        weights = np.concatenate(self.weights) / len(self.weights)
        order = np.argsort(values, kind="stable")
        return values[order], weights[order]

    def percentile(self, level: float) -> float:
        """The pooled ``level``-th percentile (0 < level < 100) of the singular values."""
        values, weights = self.pooled()
        return weighted_percentile(values, weights, level)

    def to_dict(self) -> dict[str, Any]:
        """The summary as a JSON-ready dict (percentiles, spread, method, sizes, accuracy; no per-value arrays)."""
        return {
            "percentiles": {str(level): value for level, value in self.percentiles.items()},
            "spread": self.spread,
            "method": self.method,
            "inputs": len(self.singular_values),
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "iterations": self.iterations,
            "probes": self.probes,
            "cdf_error": self.cdf_error,
            "dtype": self.dtype,
            "notes": list(self.notes),
        }

    def __str__(self) -> str:
        p10, p50, p90 = (self.percentiles[level] for level in PERCENTILES)
        accuracy = "" if self.method == "exact" else f", distribution function within {self.cdf_error:.3f}"
        where = f"{self.output_dim}x{self.input_dim} at {len(self.singular_values)} inputs"
        return (
            f"Jacobian {where} ({self.method}{accuracy}): "
            f"singular values p10 {p10:.4g}, p50 {p50:.4g}, p90 {p90:.4g}, spread p90/p10 {self.spread:.4g}"
        )


def weighted_percentile(values: FloatArray, weights: FloatArray, level: float) -> float:
    """The smallest value v with sum(weights[values <= v]) >= level / 100 (values sorted, weights summing to 1)."""
    cumulative = np.cumsum(weights)
    index = int(np.searchsorted(cumulative, level / 100.0 * cumulative[-1] * (1.0 - 1e-12)))
    return float(values[min(index, values.shape[0] - 1)])


def _single(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """x -> model(x[None]) flattened, the function whose Jacobian is measured."""

    def function(x: torch.Tensor) -> torch.Tensor:
        output = model(x.unsqueeze(0))
        if not isinstance(output, torch.Tensor):
            raise VarpropTypeError(
                f"jacobian_spectrum needs a model that returns a tensor; {type(model).__name__} returned "
                f"{type(output).__name__} (wrap it so that it returns the output tensor)"
            )
        return output.reshape(-1)

    return function


def _exact(function: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, output_dim: int) -> FloatArray:
    flat = x.reshape(-1)

    def flat_function(v: torch.Tensor) -> torch.Tensor:
        return function(v.reshape(x.shape))

    jacobian_of = torch.func.jacfwd if flat.numel() < output_dim else torch.func.jacrev
    jacobian = jacobian_of(flat_function)(flat).detach()
    values = torch.linalg.svdvals(jacobian.to(torch.float64)).cpu().numpy()
    return np.sort(np.asarray(values, dtype=np.float64))


def _lanczos(
    apply: Callable[[torch.Tensor], torch.Tensor],
    start: torch.Tensor,
    iterations: int,
) -> tuple[FloatArray, FloatArray]:
    """Ritz values and Gauss weights of the symmetric operator ``apply`` from ``start`` (full reorthogonalization)."""
    basis = [start / torch.linalg.vector_norm(start)]
    alphas: list[float] = []
    betas: list[float] = []
    for step in range(iterations):
        w = apply(basis[-1])
        alpha = float(torch.dot(w, basis[-1]))
        alphas.append(alpha)
        stacked = torch.stack(basis)
        for _ in range(2):  # twice is enough (Kahan-Parlett "twice is enough")
            w = w - stacked.T @ (stacked @ w)
        beta = float(torch.linalg.vector_norm(w))
        if step == iterations - 1 or beta <= _BREAKDOWN * max(abs(a) for a in alphas):
            break
        betas.append(beta)
        basis.append(w / beta)
    tridiagonal = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
    ritz, vectors = np.linalg.eigh(tridiagonal)
    return np.clip(ritz, 0.0, None), vectors[0, :] ** 2


def _lanczos_values(
    function: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    input_dim: int,
    output_dim: int,
    iterations: int,
    probes: int,
    generator: torch.Generator | None,
) -> tuple[FloatArray, FloatArray, float]:
    """(singular values, weights, mean largest weight) of one input by stochastic Lanczos quadrature."""
    vjp_function = torch.func.vjp(function, x)[1]

    def forward(v: torch.Tensor) -> torch.Tensor:  # J v
        tangent: torch.Tensor = torch.func.jvp(function, (x,), (v.reshape(x.shape).to(x.dtype),))[1]
        return tangent.reshape(-1).to(torch.float64)

    def backward(u: torch.Tensor) -> torch.Tensor:  # J^T u
        cotangent: torch.Tensor = vjp_function(u.to(x.dtype))[0]
        return cotangent.reshape(-1).to(torch.float64)

    use_columns = input_dim <= output_dim
    size = input_dim if use_columns else output_dim

    def apply(v: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return backward(forward(v)) if use_columns else forward(backward(v))

    values, weights, largest = [], [], []
    for _ in range(probes):
        start = torch.randn(size, generator=generator, dtype=torch.float64).to(x.device)
        ritz, gauss = _lanczos(apply, start, iterations)
        values.append(np.sqrt(ritz))
        weights.append(gauss / probes)
        largest.append(float(gauss.max()))
    merged = np.concatenate(values)
    order = np.argsort(merged, kind="stable")
    return merged[order], np.concatenate(weights)[order], float(np.mean(largest))


def jacobian_spectrum(
    model: nn.Module,
    batch: torch.Tensor,
    *,
    inputs: int | None = None,
    exact_max_width: int = 1024,
    iterations: int = 100,
    probes: int = 2,
    generator: torch.Generator | None = None,
) -> JacobianSpectrum:
    """Measure the singular values of the input-output Jacobian of ``model`` at the first inputs of ``batch``.

    Dynamical isometry (Saxe et al. 2014; Pennington, Schoenholz & Ganguli 2017): a deep net whose
    Jacobian J = d y / d x has all singular values near 1 passes signals and gradients through every
    depth undistorted; the spread p90/p10 of the singular values measures how far a net is from it.
    The prediction for plain nets is ``varprop.dynamics.predict_jacobian_spectrum``. Each input is passed
    alone (a batch of one) in the model's current mode; the model and its gradients are not changed.

    Args:
        model: the network.
        batch: a tensor with the batch dimension first; its first ``inputs`` rows are used.
        inputs: how many inputs to measure at (default ``DEFAULT_INPUTS``, or the whole batch if smaller).
        exact_max_width: the largest min(n_in, n_out) for which J is formed and its SVD taken; above
            it, stochastic Lanczos quadrature.
        iterations: Lanczos steps per probe (at most the smaller side of J).
        probes: random start vectors per input for Lanczos.
        generator: ``torch.Generator`` of the Lanczos start vectors (the exact path draws nothing).

    Returns:
        ``JacobianSpectrum`` (singular values per input, percentiles, spread, method, accuracy).

    Raises:
        VarpropTypeError: the model is not an ``nn.Module``, ``batch`` is not a floating tensor, or
            the model does not return a tensor.
        VarpropValueError: ``inputs`` larger than the batch, a non-positive count, or a model that fails on
            one input alone (e.g. batch norm in training mode).

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(8, 8, bias=False))
        >>> generator = torch.Generator().manual_seed(0)
        >>> _ = torch.nn.init.orthogonal_(net[0].weight, generator=generator)
        >>> spectrum = jacobian_spectrum(net, torch.randn(2, 8, generator=generator))
        >>> round(spectrum.spread, 4)  # every singular value is 1, to float32 rounding (~1e-7)
        1.0
    """
    if not isinstance(model, nn.Module):
        raise VarpropTypeError(f"jacobian_spectrum takes a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(batch, torch.Tensor) or not batch.is_floating_point() or batch.dim() < 1:
        kind = type(batch).__name__ if not isinstance(batch, torch.Tensor) else f"tensor of dtype {batch.dtype}"
        raise VarpropTypeError(f"batch must be a floating-point tensor with the batch dimension first, got {kind}")
    count = min(DEFAULT_INPUTS, batch.shape[0]) if inputs is None else check_positive_int("inputs", inputs)
    width_limit = check_positive_int("exact_max_width", exact_max_width)
    steps = check_positive_int("iterations", iterations)
    starts = check_positive_int("probes", probes)
    if count > batch.shape[0]:
        raise VarpropValueError(
            f"inputs={count} but the batch has only {batch.shape[0]} rows; pass inputs <= {batch.shape[0]}"
        )
    rows = batch[:count].detach()
    function = _single(model)
    try:
        with torch.no_grad():
            output_dim = int(function(rows[0]).numel())
    except (ValueError, RuntimeError) as exc:  # torch's errors, e.g. batch norm's "more than 1 value per channel"
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise VarpropValueError(
            f"{type(model).__name__} failed on one input of shape {tuple(rows[0].shape)} passed alone (a batch of "
            f"one): {first_line}; jacobian_spectrum differentiates each input separately, so layers that use "
            "batch statistics must be in eval mode (model.eval())"
        ) from exc
    input_dim = int(rows[0].numel())
    smaller = min(input_dim, output_dim)
    values: list[FloatArray] = []
    weights: list[FloatArray] = []
    notes: list[str] = []
    if smaller <= width_limit:
        for row in rows:
            singular = _exact(function, row, output_dim)
            values.append(singular)
            weights.append(np.full(singular.shape[0], 1.0 / singular.shape[0]))
        method: Literal["exact", "lanczos"] = "exact"
        cdf_error, used_steps, used_probes = 0.0, None, 0
    else:
        used_steps = min(steps, smaller)
        largest = []
        for row in rows:
            singular, weight, top = _lanczos_values(function, row, input_dim, output_dim, used_steps, starts, generator)
            values.append(singular)
            weights.append(weight)
            largest.append(top)
        # Chebyshev-Markov-Stieltjes (largest Gauss weight) + 3 standard deviations of a random start vector.
        sampling = 0.5 / math.sqrt((smaller / 2.0 + 1.0) * starts * count)
        cdf_error = float(np.mean(largest)) + 3.0 * sampling
        method, used_probes = "lanczos", starts
    if input_dim != output_dim:
        notes.append(f"J is {output_dim}x{input_dim}: its {smaller} singular values are measured")
    result = JacobianSpectrum(
        singular_values=tuple(values),
        weights=tuple(weights),
        percentiles={},
        spread=math.nan,
        method=method,
        input_dim=input_dim,
        output_dim=output_dim,
        iterations=used_steps,
        probes=used_probes,
        cdf_error=cdf_error,
        dtype=str(rows.dtype).removeprefix("torch."),
        notes=tuple(notes),
    )
    percentiles = {level: result.percentile(level) for level in PERCENTILES}
    spread = percentiles[90] / percentiles[10] if percentiles[10] > 0 else math.inf
    return dataclasses.replace(result, percentiles=percentiles, spread=spread)
