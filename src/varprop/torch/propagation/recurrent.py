"""Recurrent layers: ``nn.RNN`` (tanh, relu), ``nn.LSTM`` and ``nn.GRU``, every layer and direction.

Each gate's pre-activation a = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh gets the variance ``target_var`` (T), half from
the input and half from the recurrence (``INPUT_SHARE``):

- **Input to hidden**, per gate: zero-mean weights with Var[w] = INPUT_SHARE T / (fan_in E[x^2]) (He et al. 2015
  on the exact moments of what feeds the layer: the example, or the previous layer's predicted hidden states);
  with realized weights each gate's block is rescaled so that its output's pooled second moment over the sequence
  is exactly INPUT_SHARE T for the drawn weights.
- **Hidden to hidden**, per gate: an orthogonal H x H block (Saxe, McClelland & Ganguli 2014; Haar measure: QR of a
  standard Gaussian with the signs of R's diagonal moved into Q) times a gain g, so that mean_i (g Q h)_i^2 =
  g^2 E[h^2] exactly: g^2 = (1 - INPUT_SHARE) T / E[h^2] with E[h^2] the stationary second moment of the hidden
  state, solved from the gates' exact moments at pre-activation variance T (``varprop``'s moment engine; the
  stationary point is self-consistent because every gate sits at variance T there):

  - RNN: E[h^2] = E[phi(a)^2], a ~ N(0, T).
  - LSTM (gates i, f, g, o; c' = f c + i g, h = o tanh(c)): E[c^2] = E[i^2] E[g^2] / (1 - E[f^2]) with f at
    N(forget_bias, T), then E[h^2] = E[o^2] E[tanh(c)^2], c ~ N(0, E[c^2]).
  - GRU (gates r, z, n; n = tanh(a_n + r (W_hn h + b_hn)), h' = (1 - z) n + z h):
    E[h^2] = E[(1 - z)^2] E[n^2] / (1 - E[z^2]); the candidate's recurrent block is scaled by
    1 / sqrt(E[r^2]) more, since the reset gate multiplies it.

- **Biases** zero, but the LSTM's forget gate: ``forget_bias`` (default 1.0, Jozefowicz, Zaremba & Sutskever 2015,
  "An empirical exploration of recurrent network architectures": the forget gate starts open), written into
  ``bias_ih``'s forget rows (``bias_hh`` stays 0: torch adds the two).

The prediction follows the drawn weights through the sequence, step by step, per unit (means and variances, units
and gates assumed independent, each pre-activation Gaussian): from h_0 = 0 (c_0 = 0), over the example's number of
steps, both directions, layer after layer. The output's predicted moments are those of all its entries (the
per-unit moments averaged over the steps); the predicted variance at each step is in the report
(``settings["step_variances"]``): from h_0 = 0 the first steps are far below the average (an LSTM's cell integrates
over ~1 / (1 - sigmoid(1)) steps, and a second layer's input starts small).

Example:
    >>> import torch
    >>> from varprop.torch import init_model
    >>> lstm = torch.nn.LSTM(8, 16, num_layers=2)
    >>> report = init_model(lstm, (20, 4, 8), generator=torch.Generator().manual_seed(0))
    >>> [row.param for row in report.layers[:4]]
    ['weight_ih_l0[0:16]', 'weight_ih_l0[16:32]', 'weight_ih_l0[32:48]', 'weight_ih_l0[48:64]']
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ... import activation
from ...activations import Activation
from ...dynamics import arccos_cross_moment
from ..graph.ir import TensorMeta
from ..sampling.sharded_random import draw_region, name_seed
from .plan import Context, LayerPlan, qualify
from .stats import Stat, UnitMoments, collapse, scalar_stat

__all__ = ["FORGET_BIAS", "INPUT_SHARE", "orthogonal_block", "recurrent"]

# Share of each gate's pre-activation variance that comes from the input (the rest from the recurrence).
INPUT_SHARE = 0.5
# Jozefowicz, Zaremba & Sutskever (2015), sec. 2.2: "setting the bias of the forget gate to a large value such as 1".
FORGET_BIAS = 1.0

_GATES = {"LSTM": ("i", "f", "g", "o"), "GRU": ("r", "z", "n")}

FloatArray = np.ndarray[Any, np.dtype[np.float64]]


def orthogonal_block(size: int, seed: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A ``size x size`` orthogonal matrix from the Haar measure (Mezzadri 2007): Q of the QR decomposition of a
    standard Gaussian matrix (seeded), each column times the sign of R's diagonal entry.

    Example:
        >>> q = orthogonal_block(4, 0, torch.float64, torch.device("cpu"))
        >>> bool(torch.allclose(q.T @ q, torch.eye(4, dtype=torch.float64)))
        True
    """
    gaussian = draw_region(
        (size, size),
        [None, None],
        1.0,
        dtype=torch.float64,
        device=torch.device("cpu"),
        distribution="normal",
        seed=seed,
    )
    q, r = torch.linalg.qr(gaussian)
    signs = torch.sign(torch.diagonal(r))
    signs[signs == 0] = 1.0
    result: torch.Tensor = (q * signs).to(dtype=dtype, device=device)
    return result


# ------------------------------------------------------------------------------------------------ two-time moments

# The outer integral of E[phi(u) phi(v)] by the trapezoidal rule in u's standard score z on [-_REACH, _REACH], step
# _STEP: for phi analytic in the strip |Im u| < pi / 2 (tanh; sigmoid: pi) its error is ~exp(-pi^2 / (sd _STEP)),
# ~1e-10 at var 1, 1e-6 at var 4 for tanh (Trefethen & Weideman 2014, "The exponentially convergent trapezoidal
# rule", sec. 5; the gates' pre-activations sit near var 1); the Gaussian beyond 8 sd weighs < 1e-14. The inner
# conditional expectation E[phi(v) | z] is a one-dimensional Gaussian expectation: varprop's moment engine.
_STEP = 0.25
_REACH = 8.0
_ENGINE = UnitMoments()


@functools.cache
def _trapezoid() -> tuple[FloatArray, FloatArray]:
    nodes = np.arange(-_REACH, _REACH + 0.5 * _STEP, _STEP)
    weights = np.exp(-0.5 * nodes * nodes)
    return nodes, weights / weights.sum()


@functools.cache
def _gate(name: str) -> Activation:
    return activation(name)


def _phi(name: str, values: FloatArray) -> FloatArray:
    if name == "sigmoid":
        return np.asarray(0.5 * (1.0 + np.tanh(0.5 * values)), dtype=np.float64)  # (overflow-free logistic)
    if name == "tanh":
        return np.asarray(np.tanh(values), dtype=np.float64)
    return np.asarray(np.maximum(values, 0.0), dtype=np.float64)


def _first_moment(name: str, mean: float, var: float) -> float:
    """E[phi(u)], u ~ N(mean, var): the trapezoidal rule of ``_cross`` (ReLU at mean 0: sqrt(var / (2 pi)))."""
    if name == "relu" and mean == 0.0:
        return math.sqrt(max(var, 0.0) / (2.0 * math.pi))
    nodes, weights = _trapezoid()
    return float(weights @ _phi(name, mean + math.sqrt(max(var, 0.0)) * nodes))


def _cross(name: str, mean: Any, var1: FloatArray, var2: FloatArray, cov: FloatArray) -> FloatArray:
    """E[phi(u) phi(v)] for (u, v) jointly Gaussian with means (mean, mean), variances (var1, var2) and covariance
    cov (arrays). ReLU (zero mean): the arc-cosine kernel (Cho & Saul 2009, ``varprop.dynamics.arccos_cross_moment``);
    sigmoid and tanh: E over z of phi(mean + sd1 z) E[phi(v) | z], v | z ~ N(mean + corr sd2 z, sd2^2 (1 - corr^2))
    (trapezoidal rule outside, the moment engine inside)."""
    var1, var2, cov = (np.asarray(a, dtype=np.float64) for a in (var1, var2, cov))
    mean = np.broadcast_to(np.asarray(mean, dtype=np.float64), var1.shape)[:, None]
    sd1, sd2 = np.sqrt(np.maximum(var1, 0.0)), np.sqrt(np.maximum(var2, 0.0))
    scale = sd1 * sd2
    corr = np.clip(np.divide(cov, scale, out=np.zeros_like(cov), where=scale > 0), -1.0, 1.0)
    if name == "relu":
        return np.asarray(arccos_cross_moment(corr, var1, var2), dtype=np.float64)
    nodes, weights = _trapezoid()
    outer = _phi(name, mean + sd1[:, None] * nodes[None, :])  # [L, n]
    inner_mean = mean + (corr * sd2)[:, None] * nodes[None, :]
    inner_var = np.broadcast_to((sd2 * sd2 * np.maximum(1.0 - corr * corr, 0.0))[:, None], inner_mean.shape)
    inner, _ = _ENGINE(_gate(name), inner_mean.ravel(), inner_var.ravel())
    return np.asarray((outer * inner.reshape(inner_mean.shape)) @ weights, dtype=np.float64)


# ------------------------------------------------------------------------------------------------ the recurrence


@dataclass
class _Run:
    """Pooled two-time moments of one layer and direction over ``n`` steps: ``second[t, s]`` = E[h_t . h_s] / H,
    ``mean[t]`` = E[h_t] pooled, ``recurrent[q][t]`` the second moment of gate q's hidden-to-hidden part."""

    second: FloatArray
    mean: FloatArray
    recurrent: list[FloatArray]
    cell: FloatArray | None = None  # E[c_t . c_s] / H (LSTM)
    unit_mean: FloatArray | None = None  # [T, H] per unit, for the drawn weights (plain RNN)
    unit_second: FloatArray | None = None

    def variance(self) -> FloatArray:
        return np.maximum(np.diagonal(self.second) - self.mean * self.mean, 0.0)


def _dynamics(kind: str, act: str, inputs: FloatArray, gains: Sequence[float], biases: Sequence[float]) -> _Run:
    """The gated recurrence's dynamic mean-field theory (Sompolinsky, Crisanti & Sommers 1988; for gated networks Can,
    Krishnamurthy & Schwab 2020), from h_0 = 0 (c_0 = 0): each unit's hidden-to-hidden input (W_hh h_{t-1})_i is a
    Gaussian process with E[r_t r_s] = g^2 E[h_{t-1} . h_{s-1}] / H (exact pooled over the units for g Q, Q
    orthogonal) independent of the unit's own past; the input part has ``inputs[t, s]``; gates are independent
    of one another; c (LSTM) and the candidate n (GRU) are Gaussian given their two-time moments. The integration of
    correlated terms over time (c_t = f c_{t-1} + i g; h' = (1 - z) n + z h) is what a step-by-step variance
    recursion would miss: it needs the cross moments D[a, b] = E[c_a u_b] (LSTM, u = i g) or E[h_a n_b] (GRU)."""
    n = inputs.shape[0]
    gates = len(gains)
    second = np.zeros((n, n))
    mean = np.zeros(n)
    pre = [np.zeros((n, n)) for _ in range(gates)]  # pre-activation covariances
    out = [np.zeros((n, n)) for _ in range(gates)]  # two-time moments of the gate outputs
    first = [np.zeros(n) for _ in range(gates)]
    cell = np.zeros((n, n))
    cross = np.zeros((n + 1, n))  # row a + 1 holds D[a, .]; row 0 is D[-1, .] = 0
    candidate = np.zeros((n, n))
    recurrent = [np.zeros(n) for _ in range(gates)]
    names = {"LSTM": ("sigmoid", "sigmoid", act, "sigmoid"), "GRU": ("sigmoid", "sigmoid", act)}.get(kind, (act,))
    for t in range(n):
        steps = np.arange(t + 1)
        previous = np.zeros(t + 1)
        if t > 0:
            previous[1:] = second[t - 1, :t]  # E[h_{t-1} h_{s-1}], 0 for s = 0

        def gate_moments(chosen: list[int], t: int = t, steps: Any = steps) -> None:
            """Two-time and first moments of the gates ``chosen`` at row t (one engine call per activation)."""
            for name in dict.fromkeys(names[q] for q in chosen):
                same = [q for q in chosen if names[q] == name]
                variances = [np.diagonal(pre[q])[steps] for q in same]
                values = _cross(
                    name,
                    np.concatenate([np.full(t + 1, biases[q]) for q in same]),
                    np.concatenate(variances),
                    np.concatenate([np.full(t + 1, v[-1]) for v in variances]),
                    np.concatenate([pre[q][t, steps] for q in same]),
                )
                for index, q in enumerate(same):
                    row = values[index * (t + 1) : (index + 1) * (t + 1)]
                    out[q][t, steps] = out[q][steps, t] = row
                    first[q][t] = _first_moment(name, biases[q], float(pre[q][t, t]))

        candidate_gate = 2 if kind == "GRU" else -1  # (driven through the reset gate: computed after it)
        for q in range(gates):
            recurrent[q][t] = gains[q] ** 2 * previous[-1]
            if q != candidate_gate:
                pre[q][t, steps] = pre[q][steps, t] = inputs[t, steps] + gains[q] ** 2 * previous
        gate_moments([q for q in range(gates) if q != candidate_gate])
        if candidate_gate >= 0:  # r_t (W_hn h_{t-1}) against r_s (W_hn h_{s-1})
            driven = out[0][t, steps] * gains[candidate_gate] ** 2 * previous
            pre[candidate_gate][t, steps] = pre[candidate_gate][steps, t] = inputs[t, steps] + driven
            gate_moments([candidate_gate])
        if kind == "LSTM":
            (i_out, f_out, g_out, o_out), f_mean = out, first[1]
            update = i_out * g_out  # E[u_a u_b], u = i g
            for a in range(t):  # D[a, t] = E[c_a u_t]
                cross[a + 1, t] = f_mean[a] * cross[a, t] + update[a, t]
            cross[t + 1, steps] = f_mean[t] * cross[t, steps] + update[t, steps]
            carried = np.zeros(t + 1)
            if t > 0:
                carried[1:] = cell[t - 1, :t]
            cell[t, steps] = cell[steps, t] = (
                f_out[t, steps] * carried
                + f_mean[t] * cross[t, steps]
                + f_mean[steps] * cross[steps, t]
                + update[t, steps]
            )
            cell_var = np.diagonal(cell)[steps]
            squashed = _cross(act, 0.0, cell_var, cell_var * 0 + cell_var[-1], cell[t, steps])
            second[t, steps] = second[steps, t] = o_out[t, steps] * squashed
        elif kind == "GRU":
            z_out, z_mean = out[1], first[1]
            candidate[t, steps] = candidate[steps, t] = out[2][t, steps]
            for a in range(t):  # D[a, t] = E[h_a n_t]
                cross[a + 1, t] = (1.0 - z_mean[a]) * candidate[a, t] + z_mean[a] * cross[a, t]
            cross[t + 1, steps] = (1.0 - z_mean[t]) * candidate[t, steps] + z_mean[t] * cross[t, steps]
            second[t, steps] = second[steps, t] = (
                (1.0 - z_mean[t] - z_mean[steps] + z_out[t, steps]) * candidate[t, steps]
                + z_out[t, steps] * previous
                + (z_mean[steps] - z_out[t, steps]) * cross[steps, t]
                + (z_mean[t] - z_out[t, steps]) * cross[t, steps]
            )
        else:
            second[t, steps] = second[steps, t] = out[0][t, steps]
            mean[t] = first[0][t]
    return _Run(second, mean, recurrent, cell if kind == "LSTM" else None)


def _stationary_gains(
    kind: str, act: str, inputs: FloatArray, target: float, forget_bias: float
) -> tuple[list[float], float]:
    """(hidden-to-hidden gain per gate, stationary E[h^2]): the gain g for which the pre-activations' variance is
    ``target`` once the recurrence is stationary, inputs + g^2 E[h^2] = target, E[h^2] from ``_dynamics`` over
    ``inputs`` (a long sequence): the secant method on log g (a few runs); the GRU candidate's gain is
    g / sqrt(E[r^2])."""
    biases = _biases(kind, forget_bias)
    gates = len(biases)
    drive = float(inputs[-1, -1])
    budget = max(target - drive, (1.0 - INPUT_SHARE) * target * 0.05)
    reset = [1.0]
    hidden = [0.0]

    def gains_for(gain: float) -> list[float]:
        values = [gain] * gates
        if kind == "GRU":
            values[2] = gain / math.sqrt(reset[0])
        return values

    def excess(log_gain: float) -> float:
        """log(stationary pre-activation variance / target) at gain exp(log_gain)."""
        gain = math.exp(log_gain)
        run = _dynamics(kind, act, inputs, gains_for(gain), biases)
        hidden[0] = float(run.second[-1, -1])
        if kind == "GRU":
            variance = np.array([drive + gain * gain * float(run.second[-2, -2])])
            reset[0] = float(_cross("sigmoid", 0.0, variance, variance, variance)[0])
        return math.log(max(drive + gain * gain * hidden[0], 1e-300) / target)

    low = 0.0
    low_excess = excess(low)
    high = 0.5 * math.log(budget / hidden[0]) if hidden[0] > 0 else 0.5
    high_excess = excess(high)
    for _ in range(_GAIN_ITERATIONS):
        if abs(high_excess) < 1e-5 or high_excess == low_excess:
            break
        low, high, low_excess = high, high - high_excess * (high - low) / (high_excess - low_excess), high_excess
        high_excess = excess(high)
    return gains_for(math.exp(high)), hidden[0]


def _biases(kind: str, forget_bias: float) -> list[float]:
    return {"LSTM": [0.0, forget_bias, 0.0, 0.0], "GRU": [0.0, 0.0, 0.0]}.get(kind, [0.0])


class _Layer:
    """One layer and direction: its parameters and the weights drawn for them."""

    def __init__(self, ctx: Context, key: str, module: nn.RNNBase, layer: int, reverse: bool) -> None:
        suffix = f"_l{layer}" + ("_reverse" if reverse else "")
        self.ctx, self.key, self.reverse = ctx, key, reverse
        self.kind = type(module).__name__
        self.hidden = int(module.hidden_size)
        self.weight_ih: torch.Tensor = getattr(module, f"weight_ih{suffix}")
        self.weight_hh: torch.Tensor = getattr(module, f"weight_hh{suffix}")
        self.bias_ih: torch.Tensor | None = getattr(module, f"bias_ih{suffix}", None)
        self.bias_hh: torch.Tensor | None = getattr(module, f"bias_hh{suffix}", None)
        self.gates = _GATES.get(self.kind, ("h",))
        self.act = str(getattr(module, "nonlinearity", "tanh")) if self.kind == "RNN" else "tanh"
        self.ih_plans: list[LayerPlan] = []

    def rows(self, gate: int) -> slice:
        return slice(gate * self.hidden, (gate + 1) * self.hidden)

    def draw_input(self, input_mean: FloatArray, input_second: FloatArray, input_stat: Stat) -> None:
        """Input-to-hidden weights per gate: Var[w] = INPUT_SHARE T / (fan_in E[x^2]); realized: each gate's block
        rescaled so that mean_i (m_i^2 + s_i) = INPUT_SHARE T for the drawn rows and the per-feature input moments
        (averaged over the steps)."""
        ctx = self.ctx
        target = ctx.target_var
        name = ctx.name_of(self.weight_ih)
        features = int(self.weight_ih.shape[1])
        second = float(input_second.mean())
        if second <= 0.0 or not math.isfinite(second):
            ctx.warn(f"{name}: its input has second moment {second:g}; std set as for E[x^2] = 1")
            second = 1.0
        std = math.sqrt(INPUT_SHARE * target / (features * second))
        var_in = np.maximum(input_second - input_mean * input_mean, 0.0)
        for gate, label in enumerate(self.gates):
            rows = self.rows(gate)
            ctx.plan_draw(self.weight_ih, std, rows)
            matrix = ctx.read(self.weight_ih, rows).double().cpu().numpy()
            mean_out, var_out = matrix @ input_mean, (matrix * matrix) @ var_in
            factor = 1.0
            pooled = float((mean_out * mean_out + var_out).mean())
            if ctx.realized and pooled > 0.0:
                factor = math.sqrt(INPUT_SHARE * target / pooled)
                ctx.scale(self.weight_ih, factor, rows)
                mean_out, var_out = mean_out * factor, var_out * factor * factor
            plan = LayerPlan(
                name=qualify(self.key, f"{name}[{label}]"),
                layer_type=self.kind,
                param_name=f"{name}[{rows.start}:{rows.stop}]",
                fan_in=float(features),
                effective_fan_in=float(features),
                target_var=INPUT_SHARE * target,
                std=std * factor,
                input=input_stat,
                output=Stat(mean_out, var_out, 0.0, None, None),
                realized_scale=factor,
                notes=[f"input to hidden, gate {label}: {INPUT_SHARE:g} of target_var"],
            )
            ctx.layers.append(plan)
            self.ih_plans.append(plan)

    def draw_recurrent(self, gains: Sequence[float], stationary: float, forget_bias: float) -> None:
        """Hidden-to-hidden blocks: orthogonal (Haar) times the gate's gain; the biases."""
        ctx = self.ctx
        name = ctx.name_of(self.weight_hh)
        weight = self.weight_hh
        for gate in range(len(self.gates)):
            rows = self.rows(gate)
            seed = name_seed(ctx.seed, f"{name}[{rows.start}:{rows.stop}]")
            block = orthogonal_block(self.hidden, seed, weight.dtype, weight.device) * gains[gate]
            ctx.set_value(weight, block, rows)
        for bias in (self.bias_ih, self.bias_hh):
            if isinstance(bias, torch.Tensor):
                ctx.zero(bias)
        if self.kind == "LSTM" and isinstance(self.bias_ih, torch.Tensor) and forget_bias != 0.0:
            rows = self.rows(1)
            ctx.fill(self.bias_ih, forget_bias, rows)
            self.ih_plans[1].notes.append(
                f"{ctx.name_of(self.bias_ih)}[{rows.start}:{rows.stop}] = {forget_bias:g}: the forget gate's bias "
                "(forget_bias, Jozefowicz et al. 2015)"
            )
        self.stationary = stationary

    def realized(self, unit_mean: FloatArray, unit_second: FloatArray) -> tuple[FloatArray, FloatArray]:
        """A plain RNN's per-unit hidden moments ``[T, H]`` (mean, second moment) for the drawn weights, step by step
        from h_0 = 0: a_i has mean sum_k W_ik mu_k + sum_j U_ij m_j and variance sum_k W_ik^2 v_k + sum_j U_ij^2 s_j
        (units independent given their means), then phi's exact moments per unit. An RNN's equal-time moments need
        no two-time ones, and the drawn matrices fix the units' means (a ReLU network's positive means through one
        orthogonal U vary from draw to draw at width 32, beyond what the pooled theory sees)."""
        # (copies: each read reuses the plan's one work buffer)
        weight_ih = np.array(self.ctx.read(self.weight_ih).double().cpu().numpy(), dtype=np.float64, copy=True)
        weight_hh = np.array(self.ctx.read(self.weight_hh).double().cpu().numpy(), dtype=np.float64, copy=True)
        squares_ih, squares_hh = weight_ih * weight_ih, weight_hh * weight_hh
        steps = unit_mean.shape[0]
        mean_in = unit_mean @ weight_ih.T
        var_in = np.maximum(unit_second - unit_mean * unit_mean, 0.0) @ squares_ih.T
        act = _gate(self.act)
        h_mean, h_var = np.zeros(self.hidden), np.zeros(self.hidden)
        out_mean, out_second = np.zeros((steps, self.hidden)), np.zeros((steps, self.hidden))
        for t in range(steps - 1, -1, -1) if self.reverse else range(steps):
            first, second = _ENGINE(act, mean_in[t] + weight_hh @ h_mean, var_in[t] + squares_hh @ h_var)
            h_mean, h_var = first, np.maximum(second - first * first, 0.0)
            out_mean[t], out_second[t] = first, second
        return out_mean, out_second

    def report_recurrent(self, gains: Sequence[float], run: _Run) -> None:
        ctx = self.ctx
        name = ctx.name_of(self.weight_hh)
        hidden_mean = float(run.mean.mean())
        hidden_second = float(np.diagonal(run.second).mean())
        hidden_stat = scalar_stat(hidden_mean, hidden_second)
        target = ctx.target_var
        for gate, label in enumerate(self.gates):
            rows = self.rows(gate)
            ctx.layers.append(
                LayerPlan(
                    name=qualify(self.key, f"{name}[{label}]"),
                    layer_type=self.kind,
                    param_name=f"{name}[{rows.start}:{rows.stop}]",
                    fan_in=float(self.hidden),
                    effective_fan_in=float(self.hidden),
                    target_var=(1.0 - INPUT_SHARE) * target,
                    std=gains[gate] / math.sqrt(self.hidden),
                    input=hidden_stat,
                    output=scalar_stat(0.0, float(run.recurrent[gate].mean())),
                    notes=[
                        f"hidden to hidden, gate {label}: orthogonal (Saxe et al. 2014) x {gains[gate]:.6g}, for the "
                        f"stationary E[h^2] = {self.stationary:.6g}"
                    ],
                )
            )


# Secant steps for the recurrent gain (each one run of the mean-field dynamics), and the steps of that run: enough
# for the stationary state (a forget gate at sigmoid(1) keeps ~1/(1 - 0.73) ~ 4 steps of memory).
_GAIN_ITERATIONS = 6
_LONG_STEPS = 24


def _input_matrix(second: FloatArray, steps: int, share: float) -> FloatArray:
    """The input part's two-time second moments: ``share`` x the input's, normalized by its mean over the steps
    (every gate's input block carries share x target_var on average)."""
    level = float(np.diagonal(second).mean())
    return second * (share / level) if level > 0 else np.zeros((steps, steps))


def _white(second: float, mean_square: float, steps: int) -> FloatArray:
    """Two-time second moments of an input independent over time: E[x_t . x_s] / F = mean^2 off the diagonal."""
    matrix = np.full((steps, steps), mean_square)
    np.fill_diagonal(matrix, second)
    return matrix


def _reversed(matrix: FloatArray) -> FloatArray:
    """A two-time matrix with its steps in the opposite order."""
    return np.ascontiguousarray(matrix[::-1, ::-1])


def _steps(module: nn.RNNBase, in_meta: object) -> int | None:
    if not isinstance(in_meta, TensorMeta) or in_meta.ndim not in (2, 3):
        return None
    if in_meta.ndim == 2:
        return int(in_meta.shape[0])
    return int(in_meta.shape[1] if module.batch_first else in_meta.shape[0])


def recurrent(ctx: Context, key: str, module: nn.Module, x: Stat, in_meta: object, out_meta: object) -> Any:
    """``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU``: draw every weight (see the module docstring) and return the predicted
    (output, h_n) -- (output, (h_n, c_n)) for an LSTM -- as the module returns them."""
    assert isinstance(module, nn.RNNBase)
    steps = _steps(module, in_meta)
    projected = int(module.proj_size) > 0 if isinstance(module, nn.LSTM) else False
    if steps is None or projected:
        what = "a projection (proj_size > 0)" if projected else "an input of unknown shape"
        for name, _ in module.named_parameters():
            ctx.warn(f"{qualify(key, name)}: {type(module).__name__} with {what} is not supported; left as it is")
        ctx.note_unknown(f"{key} ({type(module).__name__})", "treated as identity: output moments = its input's")
        return x
    kind = type(module).__name__
    directions = 2 if module.bidirectional else 1
    features = int(module.input_size)
    per_feature = x if x.channels == features and x.axis is not None else collapse(x)
    feature_mean = np.broadcast_to(per_feature.mean, (features,)).astype(np.float64)
    feature_second = np.broadcast_to(
        per_feature.mean * per_feature.mean + per_feature.var + per_feature.shared, (features,)
    ).astype(np.float64)
    mean_square = float(np.mean(feature_mean * feature_mean))
    second_now = _white(float(feature_second.mean()), mean_square, steps)
    long_steps = max(steps, _LONG_STEPS)
    second_long = _white(float(feature_second.mean()), mean_square, long_steps)
    input_stat: Stat = x
    target = ctx.target_var
    runs: list[_Run] = []
    unit_mean, unit_second = np.tile(feature_mean, (steps, 1)), np.tile(feature_second, (steps, 1))
    for layer in range(int(module.num_layers)):
        inputs_now = _input_matrix(second_now, steps, INPUT_SHARE * target)
        level = float(np.diagonal(second_now).mean())
        inputs_long = second_long * (INPUT_SHARE * target / level) if level > 0 else np.zeros_like(second_long)
        act = str(getattr(module, "nonlinearity", "tanh")) if kind == "RNN" else "tanh"
        gains, stationary = _stationary_gains(kind, act, inputs_long, target, ctx.forget_bias)
        biases = _biases(kind, ctx.forget_bias)
        layer_runs: list[_Run] = []
        for direction in range(directions):
            unit = _Layer(ctx, key, module, layer, reverse=direction == 1)
            unit.draw_input(feature_mean, feature_second, input_stat)
            unit.draw_recurrent(gains, stationary, ctx.forget_bias)
            run = _dynamics(kind, act, inputs_now if direction == 0 else _reversed(inputs_now), gains, biases)
            if direction == 1:  # (the reverse direction's steps, back in the sequence's order)
                run = _Run(
                    _reversed(run.second),
                    run.mean[::-1].copy(),
                    [r[::-1].copy() for r in run.recurrent],
                    None if run.cell is None else _reversed(run.cell),
                )
            if kind == "RNN":  # the equal-time moments of the drawn weights, per unit
                run.unit_mean, run.unit_second = unit.realized(unit_mean, unit_second)
                run.mean = run.unit_mean.mean(axis=1)
                np.fill_diagonal(run.second, run.unit_second.mean(axis=1))
            unit.report_recurrent(gains, run)
            layer_runs.append(run)
        runs = layer_runs
        # the next layer's input: both directions' hidden states (the long run: the same for both, stationary)
        second_now = np.mean(np.stack([run.second for run in layer_runs]), axis=0)
        second_long = _dynamics(kind, act, inputs_long, gains, biases).second
        layer_mean = np.mean(np.stack([run.mean for run in layer_runs]), axis=0)
        features = module.hidden_size * directions
        feature_mean = np.full(features, float(np.mean(layer_mean)))
        feature_second = np.full(features, float(np.diagonal(second_now).mean()))
        if kind == "RNN":  # (per unit: the drawn weights' means, as the next layer's input)
            unit_mean = np.concatenate([run.unit_mean for run in layer_runs], axis=1)
            unit_second = np.concatenate([run.unit_second for run in layer_runs], axis=1)
            feature_mean, feature_second = unit_mean.mean(axis=0), unit_second.mean(axis=0)
        input_stat = scalar_stat(float(np.mean(layer_mean)), float(np.diagonal(second_now).mean()))
    step_mean = np.mean(np.stack([run.mean for run in runs]), axis=0)
    step_second = np.mean(np.stack([np.diagonal(run.second) for run in runs]), axis=0)
    ctx.step_variances[key] = [float(v) for v in np.maximum(step_second - step_mean * step_mean, 0.0)]
    out_ndim = out_meta[0].ndim if isinstance(out_meta, tuple) and isinstance(out_meta[0], TensorMeta) else None
    mean = float(np.mean([run.mean.mean() for run in runs]))
    second = float(np.mean([np.diagonal(run.second).mean() for run in runs]))
    output = scalar_stat(mean, second, out_ndim)
    final = [0 if direction % 2 else -1 for direction in range(len(runs))]  # (a reverse direction ends at step 0)
    h_n = scalar_stat(
        float(np.mean([run.mean[at] for run, at in zip(runs, final, strict=True)])),
        float(np.mean([run.second[at, at] for run, at in zip(runs, final, strict=True)])),
        3,
    )
    if isinstance(module, nn.LSTM):
        cells = [run.cell[at, at] for run, at in zip(runs, final, strict=True) if run.cell is not None]
        return (output, (h_n, scalar_stat(0.0, float(np.mean(cells)), 3)))
    return (output, h_n)
