"""Edge inputs answered with the right value or a VarpropError naming the input (issue 12)."""

from __future__ import annotations

import math
import warnings

import mpmath as mp
import pytest

import varprop
from varprop import ConvergenceError, VarpropValueError


def test_exp_at_a_huge_mean_raises_overflow() -> None:
    """moments("exp(x)", var=0, mean=1000) returned mean=inf, variance=nan silently."""
    with pytest.raises(ConvergenceError, match=r"E\[phi\] of 'expr:exp\(x\)' at mean=1000\.0, var=0\.0 is inf"):
        varprop.moments("exp(x)", var=0.0, mean=1000.0)
    with pytest.raises(ConvergenceError, match="float64"):
        varprop.moments("exp(x)", var=1.0, mean=1000.0)


def test_exp_at_a_representable_mean_is_right() -> None:
    """E[e^y] = e^(m + q/2), E[e^2y] = e^(2m + 2q) (log-normal), at m = 300 where e^600 is representable."""
    result = varprop.moments("exp(x)", var=0.5, mean=300.0)
    with mp.workdps(30):
        assert result.mean == pytest.approx(float(mp.exp(mp.mpf(300.25))), rel=1e-13)
        assert result.second_moment == pytest.approx(float(mp.exp(mp.mpf(601))), rel=1e-13)


def test_fixed_point_with_a_weight_std_whose_square_overflows() -> None:
    """fixed_point(act, 1e300) raised a raw OverflowError."""
    with pytest.raises(VarpropValueError, match=r"weight_std=1e\+300 is too large.*<= 1e154"):
        varprop.dynamics.fixed_point("tanh", 1e300)
    assert varprop.dynamics.fixed_point("relu", math.sqrt(2.0))[0].continuum  # ordinary values unaffected


def test_init_model_refuses_zero_input_var() -> None:
    """init_model(..., input_var=0.0) was accepted and gave a last-layer std of 521."""
    torch = pytest.importorskip("torch")
    import varprop.torch as vt

    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Tanh(), torch.nn.Linear(8, 8))
    before = [parameter.detach().clone() for parameter in model.parameters()]
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(VarpropValueError, match="input_var"):
            vt.init_model(model, example_input=torch.zeros(4, 8), input_var=bad)
    assert all(torch.equal(old, new) for old, new in zip(before, model.parameters(), strict=True))  # untouched


@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
def test_uniform_bound_and_truncated_normal_scale_are_named_for_what_they_are(mode: str) -> None:
    """weight_std is a standard deviation; U(-a, a) has std a / sqrt(3); N(0, s^2) cut at +-2s has std 0.8796 s."""
    std = varprop.weight_std("gelu", 256, 128, mode=mode)  # type: ignore[arg-type]
    bound = varprop.gains.uniform_bound("gelu", 256, 128, mode=mode)  # type: ignore[arg-type]
    scale = varprop.gains.truncated_normal_scale("gelu", 256, 128, mode=mode)  # type: ignore[arg-type]
    assert bound / math.sqrt(3.0) == pytest.approx(std, rel=1e-15)
    with mp.workdps(30):  # std of N(0, 1) truncated to (-2, 2): 1 - 4 phi(2) / (Phi(2) - Phi(-2))
        ratio = mp.sqrt(1 - 4 * mp.npdf(2) / (mp.ncdf(2) - mp.ncdf(-2)))
    assert scale * float(ratio) == pytest.approx(std, rel=1e-15)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        varprop.weight_std("gelu", 256, 128, mode=mode)  # type: ignore[arg-type]  # no warning by default


def test_old_distribution_argument_warns() -> None:
    with pytest.warns(DeprecationWarning, match=r"call uniform_bound\(\.\.\.\)"):
        old = varprop.weight_std("elu", 512, distribution="uniform")
    assert old == varprop.gains.uniform_bound("elu", 512)
    with pytest.warns(DeprecationWarning, match=r"call truncated_normal_scale\(\.\.\.\)"):
        old = varprop.weight_std("elu", 512, distribution="truncated_normal")
    assert old == varprop.gains.truncated_normal_scale("elu", 512)
