"""Issue 10, item 3: ``nn.RNN`` (tanh, relu), ``nn.LSTM`` and ``nn.GRU`` -- two layers, batch first both ways, one
or two directions -- initialized, not skipped: rows per weight in the report, hidden-to-hidden blocks orthogonal
(Saxe et al. 2014) times a scale, and the predicted hidden-state variance against the one measured at each of 32
steps of a fresh sequence."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
import numpy as np  # noqa: E402
from torch import nn  # noqa: E402

import varprop  # noqa: E402
import varprop.torch as vt  # noqa: E402
from varprop import VarpropValueError  # noqa: E402
from varprop.torch.propagation import recurrent as _recurrent  # noqa: E402
from zoo.oracle import ANALYTIC_BAND, run_case  # noqa: E402
from zoo.recurrent import RECURRENT, STEPS, gate_blocks, recurrent_case, step_variances  # noqa: E402

pytestmark = pytest.mark.usefixtures("no_network")

STEP_BAND = (0.5, 2.0)  # every single step against its own prediction, beside the pooled band


@pytest.mark.parametrize("name", RECURRENT)
def test_recurrent_layer(name: str) -> None:
    case = recurrent_case(name)
    outcome = run_case(case)
    assert outcome.error is None, outcome.summary()
    assert not outcome.untouched, outcome.summary()
    report = outcome.report
    assert report is not None
    weights = [n for n, _ in case.model.named_parameters() if n.startswith("weight")]
    rows = {row.param.split("[", 1)[0] for row in report.layers}
    assert set(weights) <= rows, (weights, sorted(rows))
    for param, blocks in gate_blocks(case.model).items():
        for index, block in enumerate(blocks):
            gram = (block.T @ block).double()
            scale = float(gram.diagonal().mean())
            assert scale > 0 and torch.allclose(gram / scale, torch.eye(len(gram), dtype=torch.float64), atol=1e-5), (
                f"{param} gate {index} is not a multiple of an orthogonal matrix"
            )
    predicted = report.outputs[0][1]
    measured = step_variances(case.model, case.fresh(torch.Generator().manual_seed(7)))
    assert len(measured) == STEPS
    pooled = sum(measured) / len(measured)
    assert ANALYTIC_BAND[0] <= pooled / predicted <= ANALYTIC_BAND[1], (predicted, measured)
    (per_step,) = report.settings["step_variances"].values()
    assert len(per_step) == STEPS
    ratios = [value / step for value, step in zip(measured, per_step, strict=True)]
    assert all(STEP_BAND[0] <= r <= STEP_BAND[1] for r in ratios), ratios


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_recurrent_first_steps_predicted_from_zero_state(name: str) -> None:
    """(regression, issue 10) from h0 = c0 = 0 an LSTM's or GRU's first steps measure 0.08-0.13 of the pooled
    prediction (the cell integrates over time, the second layer's input starts small): the report predicts each
    step (settings["step_variances"]), the first one within STEP_BAND of its measurement, and says in its text
    that the output's prediction is pooled over the steps."""
    case = recurrent_case(name)
    report = vt.init_model(case.model, case.example, generator=torch.Generator().manual_seed(0))
    (per_step,) = report.settings["step_variances"].values()
    pooled = report.outputs[0][1]
    assert per_step[0] < 0.3 * pooled < 0.3 * per_step[-1], (per_step, pooled)
    measured = step_variances(case.model, case.fresh(torch.Generator().manual_seed(7)))
    assert measured[0] < 0.3 * pooled, (measured[0], pooled)  # (the effect the per-step prediction is for)
    assert STEP_BAND[0] <= measured[0] / per_step[0] <= STEP_BAND[1], (measured[0], per_step[0])
    assert "output pooled over 32 steps (from h0 = 0); predicted variance at each step: " in str(report)


def test_orthogonal_block_is_haar_orthogonal() -> None:
    """QR of a seeded Gaussian with R's diagonal signs moved into Q: orthogonal to float64 rounding, the same for
    the same seed, and R's diagonal positive (the sign fix that makes the distribution Haar, Mezzadri 2007)."""
    q = _recurrent.orthogonal_block(48, 5, torch.float64, torch.device("cpu"))
    assert torch.allclose(q.T @ q, torch.eye(48, dtype=torch.float64), rtol=0, atol=1e-13)
    assert torch.equal(q, _recurrent.orthogonal_block(48, 5, torch.float64, torch.device("cpu")))
    _, r = torch.linalg.qr(q)
    assert not torch.equal(q, _recurrent.orthogonal_block(48, 6, torch.float64, torch.device("cpu")))
    assert bool((torch.diagonal(r).abs() - 1.0).abs().max() < 1e-12)


def test_tanh_rnn_gain_from_the_exact_moments() -> None:
    """tanh RNN: the stationary E[h^2] is E[tanh(a)^2] at pre-activation variance target_var (varprop.moments), so
    each hidden-to-hidden block is g Q with g^2 = (1 - INPUT_SHARE) target_var / E[tanh^2] exactly."""
    torch.manual_seed(0)
    rnn = nn.RNN(16, 32, nonlinearity="tanh")
    vt.init_model(rnn, (32, 8, 16), target_var=1.5, generator=torch.Generator().manual_seed(0))
    expected = (1 - _recurrent.INPUT_SHARE) * 1.5 / varprop.moments("tanh", var=1.5).second_moment
    gram = (rnn.weight_hh_l0.detach().double().T @ rnn.weight_hh_l0.detach().double()).numpy()
    np.testing.assert_allclose(gram, expected * np.eye(32), rtol=0, atol=1e-5 * expected)


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_two_time_moments_against_varprop_cross_moment(name: str) -> None:
    """The Gauss-Hermite product rule of the recurrence's two-time moments against varprop.dynamics.cross_moment (nested
    adaptive quadrature, ~1e-14 against mpmath)."""
    variances = np.array([0.3, 1.0, 2.5])
    others = np.array([1.2, 1.0, 0.4])
    correlations = np.array([0.9, -0.35, 0.6])
    cov = correlations * np.sqrt(variances * others)
    for mean in (0.0, 1.0):
        got = _recurrent._cross(name, mean, variances, others, cov)
        want = [
            varprop.dynamics.cross_moment(name, c, v, var2=w, mean=mean)
            for c, v, w in zip(correlations, variances, others, strict=True)
        ]
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=0)  # (the moment engine inside: ~1e-10)


def test_lstm_forget_bias_option() -> None:
    """forget_bias (Jozefowicz et al. 2015): the forget rows of every bias_ih, everything else zero; 0 gives zero
    biases; a bad value names itself."""
    for forget_bias in (1.0, 0.0, 2.5):
        torch.manual_seed(0)
        lstm = nn.LSTM(8, 16, bidirectional=True)
        vt.init_model(lstm, (6, 4, 8), forget_bias=forget_bias, generator=torch.Generator().manual_seed(0))
        for name, value in lstm.named_parameters():
            if not name.startswith("bias"):
                continue
            expected = torch.zeros(64)
            if name.startswith("bias_ih"):
                expected[16:32] = forget_bias
            assert torch.equal(value.detach(), expected), (name, forget_bias)
    with pytest.raises(VarpropValueError, match="forget_bias"):
        vt.init_model(nn.LSTM(8, 16), (6, 4, 8), forget_bias=float("nan"))
