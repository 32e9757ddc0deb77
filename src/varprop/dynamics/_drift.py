"""Finite-width drift of the per-layer variance in a plain deep network: prediction and simulation.

The network (what ``simulate_plain_network`` builds and ``predict_drift`` predicts)::

    x ~ N(0, input_var I_width)                        one input (a batch holds several)
    y_1 = W_1 x + b_1,              W_1 ~ N(0, input_weight_std^2 / width)
    y_l = W_l phi(y_{l-1}) + b_l,   W_l ~ N(0, weight_std^2 / width),   b_l ~ N(0, bias_std^2)

and the measured quantity is, for each input and layer, the pre-activation variance
q^_l = mean_i y_{l,i}^2 over the width units.

Exact reduction (Gaussian weights). Given layer l - 1, the units of y_l are i.i.d. N(0, K_l) with
K_l = weight_std^2 mean_j phi(y_{l-1,j})^2 + bias_std^2, so each input follows a scalar Markov chain

    K_{l+1} = F(K_l) + noise,   F = the variance map,   Var[noise | K_l] = weight_std^4 Var[phi(sqrt(K_l) z)^2] / width,

and q^_l = K_l chi^2_width / width. In the infinite-width limit K_l follows F deterministically; at
finite width the log-variance performs a random walk whose steps (relative size
eta = weight_std^2 sd[phi^2] / (F sqrt(width)), ~ sqrt(5 / width) for ReLU) are amplified at every
layer by the slope of the map: they die out (stable), accumulate (neutral: spread ~ eta sqrt(L)) or
grow geometrically (unstable). A first layer that does not land on the fixed point (input_var or
input_weight_std off) adds a deterministic drift along F.

Prediction (``predict_drift``): the distribution of ln K_l is carried as its values at the Gaussian
scores -1, 0, +1 (the 16%, 50%, 84% quantiles). Each step maps every quantile through the exact map
(quantiles of a monotone function are the function of the quantiles), shifts it by the noise's
log-bias -eta^2/2 and widens it by the noise in quadrature. For small spreads this is the linearized
random walk Var_{l+1} = slope^2 Var_l + eta^2; for large ones (unstable activations, where runs either
explode or collapse) the quantiles follow the nonlinear map. The measured q^_l adds chi^2 noise
(log-variance 2 / width). Layer 1 is exact: K_1 = input_weight_std^2 input_var chi^2_width / width + bias_std^2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from scipy.stats import chi2

from .._errors import VarpropValueError
from .._validation import check_positive_int, check_real
from ..activations import activation as resolve_activation
from ..activations._activation import Activation
from ._variance_map import check_std, gaussian_rows, variance_map

__all__ = ["DriftPrediction", "PlainNetworkSimulation", "escape_layers", "predict_drift", "simulate_plain_network"]

FloatArray = NDArray[np.float64]
# Gaussian scores of the tracked quantiles; Phi(-1) = 0.158655..., Phi(1) = 0.841344...
_SCORES = np.array([-1.0, 0.0, 1.0])
_LOWER_P, _UPPER_P = 0.15865525393145707, 0.8413447460685429  # Phi(-1), Phi(1)
_LOG_LIMIT = 300.0  # clip ln K to +-300 (K ~ 1e130): phi(sqrt(K) z)^4 must stay inside the float64 range


def _log_quantile_spread(log_values: FloatArray, axis: int = -1) -> tuple[FloatArray, FloatArray, FloatArray]:
    lower, median, upper = np.quantile(log_values, [_LOWER_P, 0.5, _UPPER_P], axis=axis)
    return lower, median, upper


@dataclass(frozen=True)
class PlainNetworkSimulation:
    """Measured per-layer pre-activation variances of simulated plain networks.

    Attributes:
        activation: canonical spec of the activation.
        variances: shape ``(depth, samples)``: mean_i y_{l,i}^2 for layer l = 1..depth (row l - 1) and
            each input of each network (samples = networks x batch).
        batch_mean: shape ``(depth, networks)``: the variance of each layer over the whole batch
            (mean over inputs and units), per network.
        width: units per layer.
        weight_std: sigma_w of the hidden layers.
        bias_std: sigma_b.
        input_var: variance of the inputs.
        input_weight_std: sigma of the first layer.
    """

    activation: str
    variances: FloatArray
    batch_mean: FloatArray
    width: int
    weight_std: float
    bias_std: float
    input_var: float
    input_weight_std: float

    @property
    def median(self) -> FloatArray:
        """Median over samples of the variance at each layer."""
        return np.asarray(np.median(self.variances, axis=1), dtype=np.float64)

    @property
    def lower(self) -> FloatArray:
        """16% quantile (Phi(-1)) over samples at each layer."""
        return np.asarray(np.quantile(self.variances, _LOWER_P, axis=1), dtype=np.float64)

    @property
    def upper(self) -> FloatArray:
        """84% quantile (Phi(1)) over samples at each layer."""
        return np.asarray(np.quantile(self.variances, _UPPER_P, axis=1), dtype=np.float64)

    @property
    def log_spread(self) -> FloatArray:
        """Half the 16%-84% range of ln(variance) at each layer (the standard deviation if log-normal)."""
        with np.errstate(divide="ignore"):
            lower, _, upper = _log_quantile_spread(np.log(self.variances), axis=1)
        return np.asarray(0.5 * (upper - lower), dtype=np.float64)


def _check_network_args(
    depth: Any, width: Any, weight_std: Any, bias_std: Any, input_var: Any, input_weight_std: Any
) -> tuple[int, int, float, float, float, float]:
    return (
        check_positive_int("depth", depth),
        check_positive_int("width", width),
        check_std("weight_std", weight_std),
        check_std("bias_std", bias_std),
        check_real("input_var", input_var, minimum=0.0),
        check_std("input_weight_std", input_weight_std),
    )


def _layer_weights(
    rng: np.random.Generator, inputs: FloatArray, std: float, bias_std: float, method: str
) -> FloatArray:
    """Pre-activations y = inputs W^T + b for a fresh Gaussian layer; inputs has shape (batch, width)."""
    batch, width = inputs.shape
    if method == "weights":
        weights = rng.standard_normal((width, width)) * (std / math.sqrt(width))
        bias = rng.standard_normal(width) * bias_std
        return np.asarray(inputs @ weights.T + bias, dtype=np.float64)
    # "kernel": the columns y_{:, i} are i.i.d. N(0, G) with G = std^2 X X^T / width + bias_std^2.
    gram = (std * std / width) * (inputs @ inputs.T) + bias_std * bias_std
    eigenvalues, eigenvectors = np.linalg.eigh(gram)
    root = eigenvectors * np.sqrt(np.maximum(eigenvalues, 0.0))
    return np.asarray(root @ rng.standard_normal((batch, width)), dtype=np.float64)


def simulate_plain_network(
    act: Any,
    depth: int,
    width: int,
    weight_std: float,
    bias_std: float = 0.0,
    input_var: float = 1.0,
    *,
    input_weight_std: float = 1.0,
    batch: int = 64,
    networks: int = 1,
    seed: int | None = 0,
    method: Literal["weights", "kernel"] = "weights",
) -> PlainNetworkSimulation:
    """Simulate plain deep networks in numpy and record every layer's pre-activation variance per input.

    The network is y_1 = W_1 x + b_1, y_l = W_l phi(y_{l-1}) + b_l (l = 2..depth), all layers
    ``width`` wide, W_l ~ N(0, weight_std^2 / width), W_1 ~ N(0, input_weight_std^2 / width),
    b_l ~ N(0, bias_std^2), fresh inputs x ~ N(0, input_var I). A new network is drawn for each of
    ``networks`` repetitions and fed ``batch`` inputs.

    Args:
        act: activation spec, ``Activation`` or callable.
        depth: number of layers L.
        width: units per layer n (also the input dimension).
        weight_std: sigma_w of layers 2..L (e.g. ``varprop.gain(act, var)``).
        bias_std: sigma_b.
        input_var: variance of the input entries.
        input_weight_std: sigma of the first layer; 1.0 keeps the input variance (the input is not an
            activation's output), ``weight_std`` reproduces the common mismatch q_1 = gain^2 input_var.
        batch: inputs per network.
        networks: independent networks.
        seed: seed of ``numpy.random.default_rng``.
        method: ``"weights"`` draws the weight matrices (cost ~ depth width^2 (batch + 1));
            ``"kernel"`` samples each layer's pre-activations directly from their exact conditional law
            N(0, weight_std^2 X X^T / width + bias_std^2) given the previous layer's outputs X (same
            distribution, cost ~ depth batch width (batch + 1)).

    Returns:
        ``PlainNetworkSimulation`` with ``variances`` of shape (depth, networks x batch).

    Raises:
        VarpropValueError: bad sizes, negative or NaN standard deviations, unknown method.

    Example:
        >>> sim = simulate_plain_network("relu", depth=5, width=64, weight_std=2**0.5, batch=8)
        >>> sim.variances.shape
        (5, 8)
    """
    activation: Activation = resolve_activation(act)
    depth, width, sigma_w, sigma_b, variance, sigma_in = _check_network_args(
        depth, width, weight_std, bias_std, input_var, input_weight_std
    )
    batch = check_positive_int("batch", batch)
    networks = check_positive_int("networks", networks)
    if method not in ("weights", "kernel"):
        raise VarpropValueError(f"unknown method {method!r}; valid choices: 'weights', 'kernel'")
    rng = np.random.default_rng(seed)
    variances = np.empty((depth, networks, batch))
    for network in range(networks):
        inputs = rng.standard_normal((batch, width)) * math.sqrt(variance)
        pre = _layer_weights(rng, inputs, sigma_in, sigma_b, method)
        variances[0, network] = np.mean(pre * pre, axis=1)
        for layer in range(1, depth):
            with np.errstate(over="ignore", invalid="ignore"):
                pre = _layer_weights(rng, activation.function(pre), sigma_w, sigma_b, method)
            variances[layer, network] = np.mean(pre * pre, axis=1)
    return PlainNetworkSimulation(
        activation=activation.spec,
        variances=variances.reshape(depth, networks * batch),
        batch_mean=variances.mean(axis=2),
        width=width,
        weight_std=sigma_w,
        bias_std=sigma_b,
        input_var=variance,
        input_weight_std=sigma_in,
    )


@dataclass(frozen=True)
class DriftPrediction:
    """Predicted distribution of the per-input pre-activation variance q^_l at each layer l = 1..depth.

    Attributes:
        activation: canonical spec.
        median: shape ``(depth,)``: predicted median of q^_l.
        lower: predicted 16% quantile (Phi(-1)).
        upper: predicted 84% quantile (Phi(1)).
        log_spread: half the 16%-84% range of ln q^_l (its standard deviation when log-normal).
        mean_field: the infinite-width trajectory q_1 = input_weight_std^2 input_var + bias_std^2,
            q_{l+1} = F(q_l).
        slope: slope of the variance map along ``mean_field`` (the per-layer amplification of deviations).
        step_noise: eta_l, the relative size of the finite-width step from layer l to l + 1 at ``mean_field``.
    """

    activation: str
    median: FloatArray
    lower: FloatArray
    upper: FloatArray
    log_spread: FloatArray
    mean_field: FloatArray
    slope: FloatArray
    step_noise: FloatArray


def _step_terms(
    act: Activation, sigma_w: float, sigma_b: float, width: int, log_k: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """The next layer's log-median and log-variance of one step from K = exp(log_k) (log-normal step)."""
    k = np.exp(log_k)
    second, fourth = gaussian_rows(act, 0.0, k, ["second", "fourth"])
    mapped = sigma_w**2 * second + sigma_b**2
    noise_var = sigma_w**4 * np.maximum(fourth - second * second, 0.0) / width
    with np.errstate(divide="ignore", invalid="ignore"):
        eta_sq = np.where(mapped > 0, noise_var / (mapped * mapped), 0.0)
        log_mapped = np.log(np.maximum(mapped, np.exp(-_LOG_LIMIT)))
    # A log-normal step with mean F and relative variance eta^2: ln-variance ln(1 + eta^2), median F / sqrt(1 + eta^2).
    log_var = np.log1p(eta_sq)
    return log_mapped - 0.5 * log_var, log_var


def predict_drift(
    act: Any,
    depth: int,
    width: int,
    weight_std: float,
    bias_std: float = 0.0,
    input_var: float = 1.0,
    *,
    input_weight_std: float = 1.0,
) -> DriftPrediction:
    """Predict the spread of per-layer variance of a plain network of finite width (no simulation).

    See the module docstring for the network and the method: the exact per-input Markov chain
    K_{l+1} = F(K_l) + noise of relative size eta = weight_std^2 sd[phi(sqrt(K) z)^2] / (F(K) sqrt(width)),
    with the 16/50/84% quantiles of ln K carried through the variance map F, shifted by the noise's
    log-bias and widened by it in quadrature, plus the chi^2 noise of measuring q^_l from ``width`` units.
    Agrees with ``simulate_plain_network`` within a factor of 2 in both the median and the log-spread for
    stable (ELU, tanh), neutral (ReLU) and unstable (SiLU, GELU) activations (tests/test_drift.py,
    benchmarks/dynamics.py). The log-bias of the noise is second-order (eta^2 per layer) and
    approximate: it uses ln E[K] - ln median[K] ~ eta^2/2 of a log-normal step.

    Args:
        act, depth, width, weight_std, bias_std, input_var, input_weight_std: the network, as in
            ``simulate_plain_network``.

    Returns:
        ``DriftPrediction`` (arrays over layers 1..L).

    Example:
        >>> pred = predict_drift("relu", depth=50, width=256, weight_std=2**0.5)
        >>> round(float(pred.log_spread[-1]), 1)  # ~ sqrt((5 (L - 1) + 4) / n): a neutral random walk
        1.0
    """
    activation = resolve_activation(act)
    depth, width, sigma_w, sigma_b, variance, sigma_in = _check_network_args(
        depth, width, weight_std, bias_std, input_var, input_weight_std
    )
    # Layer 1, exactly: K_1 = sigma_in^2 input_var chi^2_n / n + sigma_b^2 at the tracked quantiles.
    probabilities = np.array([_LOWER_P, 0.5, _UPPER_P])
    first = sigma_in**2 * variance * chi2.ppf(probabilities, width) / width + sigma_b**2
    if not np.all(first > 0):
        raise VarpropValueError(
            "the first layer's variance is 0 (input_var, input_weight_std and bias_std are all 0): nothing propagates"
        )
    log_k = np.log(first)
    vmap = variance_map(activation, sigma_w, sigma_b)
    mean_field = np.empty(depth)
    mean_field[0] = sigma_in**2 * variance + sigma_b**2
    for layer in range(1, depth):  # the wide-limit trajectory, kept inside the float64 range
        mean_field[layer] = min(float(vmap(mean_field[layer - 1])), math.exp(_LOG_LIMIT))
    slope = np.asarray(vmap.slope(mean_field), dtype=np.float64)
    step_noise = np.zeros(depth)
    log_quantiles = np.empty((depth, 3))
    log_quantiles[0] = log_k
    for layer in range(1, depth):
        shifted, eta_sq = _step_terms(activation, sigma_w, sigma_b, width, log_k)
        centre = shifted[1]
        deviation = shifted - centre
        spread = np.sqrt(deviation * deviation + _SCORES * _SCORES * eta_sq)
        log_k = np.clip(centre + np.sign(_SCORES) * spread, -_LOG_LIMIT, _LOG_LIMIT)
        log_k = np.sort(log_k)  # a non-monotone map may swap quantiles
        log_quantiles[layer] = log_k
        step_noise[layer - 1] = math.sqrt(float(eta_sq[1]))
    step_noise[-1] = math.sqrt(float(_step_terms(activation, sigma_w, sigma_b, width, log_k[1:2])[1][0]))
    # Measuring q^_l = K_l chi^2_n / n: ln chi^2_n / n has median ~ -2/(3n) and variance ~ 2/n.
    measure_var = 2.0 / width
    centre = log_quantiles[:, 1] + math.log(chi2.ppf(0.5, width) / width)
    deviation = log_quantiles - log_quantiles[:, 1:2]
    measured = centre[:, None] + np.sign(_SCORES) * np.sqrt(deviation * deviation + _SCORES * _SCORES * measure_var)
    return DriftPrediction(
        activation=activation.spec,
        median=np.exp(measured[:, 1]),
        lower=np.exp(measured[:, 0]),
        upper=np.exp(measured[:, 2]),
        log_spread=0.5 * (measured[:, 2] - measured[:, 0]),
        mean_field=mean_field,
        slope=slope,
        step_noise=step_noise,
    )


def escape_layers(
    act: Activation, variances: FloatArray, slopes: FloatArray, depth: int, width: int, band: float = 2.0
) -> list[int | None]:
    """For each fixed point (variance, slope of the map there): the first layer (1..depth) at which the 16-84% band
    of one input's variance leaves [1/band, band] x the target, or ``None`` if it stays inside.

    ``predict_drift`` linearized around the fixed point (its small-spread limit; O(depth) float operations instead
    of an engine call per layer): ln q_l is centred at c_l with spread s_l,

        c_1 = w,  s_1^2 = 2 / n                      (layer 1: chi^2_n / n; w = ln median = 3 ln(1 - 2 / (9 n)),
        c_{l+1} = slope c_l - eta^2 / 2                Wilson & Hilferty 1931)
        s_{l+1}^2 = slope^2 s_l^2 + eta^2              (eta^2 = the step log-variance of ``predict_drift``)

    and the measured band is c_l + w +- sqrt(s_l^2 + 2 / n). Against ``predict_drift``, for SiLU, GELU and Mish at
    var 0.25-16 and widths 16-2048, the layer agrees within 15% of the depth (+- 1 layer) (tests/test_torch_report.py).
    """
    # The weight std cancels in eta^2: take 1 (and no bias).
    step_log_var = _step_terms(act, 1.0, 0.0, width, np.log(np.asarray(variances, dtype=np.float64)))[1]
    wilson = 3.0 * math.log1p(-2.0 / (9.0 * width))
    limit = math.log(band)
    found: list[int | None] = []
    for slope, step in zip(np.asarray(slopes, dtype=np.float64), step_log_var, strict=True):
        centre, log_var, layer_out = wilson, 2.0 / width, None
        for layer in range(1, depth + 1):
            if abs(centre + wilson) + math.sqrt(log_var + 2.0 / width) > limit:
                layer_out = layer
                break
            centre = slope * centre - 0.5 * step
            log_var = slope * slope * log_var + step
        found.append(layer_out)
    return found
