"""``varprop.gain`` and ``varprop.weight_std`` against the papers' formulas, scipy and the seed constants."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import varprop
from varprop import VarpropTypeError, VarpropValueError
from varprop.gains._gain import TRUNCATED_NORMAL_STD
from varprop.gains._table import gain_table, torch_gain

# shared/seed.md (40-digit quadrature): n Var[w] and std[w] sqrt(n) for ELU at q = 1, 15 digits.
ELU_VAR_TIMES_FAN = 1.55051880806793
ELU_STD_TIMES_SQRT_FAN = 1.24519830070071
SEED_RTOL = 5e-15  # half a unit in the 15th digit


def test_elu_gain_is_the_seed_constant() -> None:
    assert varprop.gain("elu") ** 2 == pytest.approx(ELU_VAR_TIMES_FAN, rel=SEED_RTOL, abs=0)
    assert varprop.gain("elu") == pytest.approx(ELU_STD_TIMES_SQRT_FAN, rel=SEED_RTOL, abs=0)
    for n in (1, 64, 512, 4096):
        std = varprop.weight_std("elu", fan_in=n)
        assert std * math.sqrt(n) == pytest.approx(ELU_STD_TIMES_SQRT_FAN, rel=SEED_RTOL, abs=0)
        assert std**2 * n == pytest.approx(ELU_VAR_TIMES_FAN, rel=SEED_RTOL, abs=0)
        # The seed's "Var[w] = sqrt(1.55/n)" is the standard deviation, not the variance.
        assert std == pytest.approx(math.sqrt(ELU_VAR_TIMES_FAN / n), rel=SEED_RTOL)


@pytest.mark.parametrize("var", [1e-4, 1.0, 3.0, 1e4])
@pytest.mark.parametrize("n", [1, 100, 512])
def test_relu_is_he_two_over_n_at_any_variance(var: float, n: int) -> None:
    """He et al. (2015): Var[w] = 2 / n for ReLU, whatever the pre-activation variance."""
    assert varprop.weight_std("relu", fan_in=n, var=var) ** 2 == pytest.approx(2.0 / n, rel=1e-14, abs=0)
    assert varprop.gain("relu", var=var, mode="fan_out") == pytest.approx(math.sqrt(2.0), rel=1e-14)


@pytest.mark.parametrize("slope", [0.01, 0.1, 0.25, 0.5, 1.0])
def test_prelu_and_leaky_relu_follow_he_2015(slope: float) -> None:
    """He et al. (2015), eq. 10 with PReLU slope a: Var[w] = 2 / ((1 + a^2) n)."""
    n = 300
    expected = 2.0 / ((1.0 + slope**2) * n)
    assert varprop.weight_std(f"prelu(init={slope})", fan_in=n) ** 2 == pytest.approx(expected, rel=1e-14, abs=0)
    leaky = f"leaky_relu(negative_slope={slope})"
    assert varprop.weight_std(leaky, fan_in=n) ** 2 == pytest.approx(expected, rel=1e-14, abs=0)
    # torch.nn.init.calculate_gain('leaky_relu', slope) is the same formula.
    torch_value = torch_gain(leaky)
    assert torch_value is not None
    assert torch_value[0] == pytest.approx(varprop.gain(leaky), rel=1e-14)


def test_fan_out_is_the_backward_gain() -> None:
    """fan_out: Var[w] = 1 / (fan_out E[phi'(y)^2]) (He et al. 2015, backward case)."""
    fan_in, fan_out = 128, 512
    deriv = varprop.moments("tanh", var=2.0).deriv_second_moment
    assert varprop.gain("tanh", var=2.0, mode="fan_out") == pytest.approx(1 / math.sqrt(deriv), rel=1e-15)
    std = varprop.weight_std("tanh", fan_in, fan_out, var=2.0, mode="fan_out")
    assert std**2 == pytest.approx(1.0 / (fan_out * deriv), rel=1e-14)


@pytest.mark.parametrize("spec", ["elu", "tanh", "identity", "gelu"])
def test_fan_avg_is_the_glorot_compromise(spec: str) -> None:
    """fan_avg: Var[w] = 2 / (fan_in / g_in^2 + fan_out / g_out^2); Glorot's 2/(fan_in+fan_out) for identity."""
    fan_in, fan_out = 200, 50
    g_in, g_out = varprop.gain(spec, mode="fan_in"), varprop.gain(spec, mode="fan_out")
    std = varprop.weight_std(spec, fan_in, fan_out, mode="fan_avg")
    assert std**2 == pytest.approx(2.0 / (fan_in / g_in**2 + fan_out / g_out**2), rel=1e-14)
    square = varprop.weight_std(spec, 100, 100, mode="fan_avg")
    assert square * 10.0 == pytest.approx(varprop.gain(spec, mode="fan_avg"), rel=1e-14)
    if spec == "identity":
        assert std**2 == pytest.approx(2.0 / (fan_in + fan_out), rel=1e-14)


def test_truncated_normal_constant_matches_scipy() -> None:
    """JAX's 0.87962566103423978: the std of a standard normal truncated to (-2, 2)."""
    assert stats.truncnorm(-2, 2).std() == pytest.approx(TRUNCATED_NORMAL_STD, rel=1e-15, abs=0)


def test_truncated_normal_scale_gives_the_right_realized_std() -> None:
    normal = varprop.weight_std("elu", 256)
    scale = varprop.weight_std("elu", 256, distribution="truncated_normal")
    assert scale == pytest.approx(normal / TRUNCATED_NORMAL_STD, rel=1e-15)
    realized = stats.truncnorm(-2, 2, loc=0, scale=scale).std()
    assert realized == pytest.approx(normal, rel=1e-14)


def test_uniform_bound_is_sqrt_three_std() -> None:
    normal = varprop.weight_std("gelu", 256)
    bound = varprop.weight_std("gelu", 256, distribution="uniform")
    assert bound == pytest.approx(math.sqrt(3.0) * normal, rel=1e-15)
    assert stats.uniform(loc=-bound, scale=2 * bound).std() == pytest.approx(normal, rel=1e-14)


def test_gain_is_vectorized_over_variance() -> None:
    var = np.array([0.01, 1.0, 100.0])
    vector = varprop.gain("elu", var=var)
    assert isinstance(vector, np.ndarray) and vector.shape == (3,)
    for value, q in zip(vector, var, strict=True):
        assert value == pytest.approx(varprop.gain("elu", var=float(q)), rel=1e-14)
    # ELU: gain -> 1 as q -> 0 and -> sqrt(2) as q -> inf (c(q) -> 1 and 1/2).
    assert 1.0 < vector[0] < vector[1] < vector[2] < math.sqrt(2.0)


def test_gain_table_covers_the_registry() -> None:
    rows = {row.activation.split("(")[0]: row for row in gain_table()}
    assert set(rows) == set(varprop.activations.registered_activations())
    assert rows["elu"].fan_var == pytest.approx(ELU_VAR_TIMES_FAN, rel=SEED_RTOL)
    assert rows["relu"].torch_gain == pytest.approx(math.sqrt(2.0), rel=1e-15)
    assert rows["tanh"].torch_gain == pytest.approx(5.0 / 3.0, rel=1e-15)
    assert "empirical" in rows["tanh"].torch_note
    assert rows["selu"].torch_gain == 0.75 and "empirical" in rows["selu"].torch_note
    assert rows["gelu"].torch_gain is None
    for row in rows.values():
        assert row.gain == pytest.approx(math.sqrt(row.var / row.second_moment), rel=1e-15)


def test_torch_gains_match_torch_itself() -> None:
    torch_init = pytest.importorskip("torch.nn.init")
    for spec, name, param in [
        ("relu", "relu", None),
        ("tanh", "tanh", None),
        ("selu", "selu", None),
        ("sigmoid", "sigmoid", None),
        ("identity", "linear", None),
        ("leaky_relu", "leaky_relu", None),
        ("leaky_relu(negative_slope=0.3)", "leaky_relu", 0.3),
    ]:
        ours = torch_gain(spec)
        assert ours is not None
        assert ours[0] == pytest.approx(torch_init.calculate_gain(name, param), rel=1e-15), spec


# --------------------------------------------------------------------------------------------- bad input


def test_unknown_mode_and_distribution_list_the_choices() -> None:
    with pytest.raises(
        VarpropValueError, match=r"unknown mode 'fan_mid'; valid choices: 'fan_in', 'fan_out', 'fan_avg'"
    ):
        varprop.gain("elu", mode="fan_mid")  # type: ignore[arg-type]
    with pytest.raises(VarpropValueError, match="valid choices: 'normal', 'truncated_normal', 'uniform'"):
        varprop.weight_std("elu", 10, distribution="gaussian")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fan_in", "error"),
    [(0, VarpropValueError), (-3, VarpropValueError), (1.5, VarpropTypeError), (True, VarpropTypeError)],
)
def test_bad_fan_is_refused(fan_in: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="fan_in"):
        varprop.weight_std("elu", fan_in)  # type: ignore[arg-type]


def test_fan_out_mode_needs_fan_out() -> None:
    with pytest.raises(VarpropValueError, match="needs fan_out"):
        varprop.weight_std("elu", 10, mode="fan_out")


@pytest.mark.parametrize(
    ("var", "error"), [(-1.0, VarpropValueError), (float("nan"), VarpropValueError), (False, VarpropTypeError)]
)
def test_bad_variance_is_refused(var: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="var"):
        varprop.gain("elu", var=var)
    with pytest.raises(error, match="var"):
        varprop.weight_std("elu", 10, var=var)


def test_zero_signal_has_no_gain() -> None:
    with pytest.raises(VarpropValueError, match="no finite gain"):
        varprop.gain("relu", var=0.0)
