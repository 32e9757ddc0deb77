"""The numerics behind ``init_model``: per-unit moment tables, softmax collision, order statistics, attention tilt."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch.nn import functional as F  # noqa: E402, N812

import varprop  # noqa: E402
from varprop.torch.propagation.attention import tilt_variance  # noqa: E402
from varprop.torch.propagation.ops import _max_moments, _standard_logits, collision, reshape_stat  # noqa: E402
from varprop.torch.propagation.stats import Stat, UnitMoments, apply_activation  # noqa: E402

REGIMES = [
    # (spread of unit means, variance range): shallow layers, deep ReLU-like layers (offsets dominate), wide variance
    (0.5, 0.5, 0.8),
    (1.5, 0.04, 0.1),
    (1.0, 0.5, 3.0),
]


def _activations() -> list[str]:
    names = []
    for name in varprop.activations.registered_activations():
        try:
            varprop.activation(name)
        except varprop.VarpropValueError:  # needs parameters
            continue
        names.append(name)
    return names


@pytest.mark.parametrize("name", _activations())
def test_unit_moment_lattices_match_the_engine(name: str) -> None:
    """Chebyshev lattices against direct ``varprop.moments`` calls at 512 units; worst seen 3.7e-8 (tanh at var
    0.04-0.1, its poles +-i pi/2 close to the 2-wide mean panels), typical 1e-10 (``python /dev/stdin`` on this test's
    loop prints them). Tolerance 1e-7 relative to the layer's second moment."""
    act = varprop.activation(name)
    rng = np.random.default_rng(0)
    for spread, low, high in [*REGIMES, (3.0, 0.01, 30.0)]:
        mean = rng.normal(0.0, spread, 512)
        var = rng.uniform(low, high, 512)
        first, second = UnitMoments()(act, mean, var)
        exact = varprop.moments(act, var=var, mean=mean)
        scale = float(np.mean(exact.second_moment))
        np.testing.assert_allclose(second, exact.second_moment, rtol=0, atol=1e-7 * scale)
        np.testing.assert_allclose(first, exact.mean, rtol=0, atol=1e-7 * math.sqrt(scale))


def test_lattice_panels_are_kept_for_the_process() -> None:
    """A second call on the same units computes nothing new; units in one panel and in many give the same values."""
    act = varprop.activation("softplus")
    rng = np.random.default_rng(5)
    mean, var = rng.normal(0.0, 0.2, 300), rng.uniform(0.8, 1.2, 300)
    UnitMoments()(act, mean, var)
    again = UnitMoments()
    first, second = again(act, mean, var)
    assert again.engine_points == 0
    spread_mean = np.concatenate([mean, rng.normal(0.0, 5.0, 300)])
    spread_var = np.concatenate([var, rng.uniform(0.01, 10.0, 300)])
    both_first, both_second = UnitMoments()(act, spread_mean, spread_var)
    # 1e-10: a panel recomputed (the process's lattices start afresh past their size bound) in a different batch
    # of engine points can differ at 1e-12 (the quadrature mesh's grading depends on the whole batch)
    np.testing.assert_allclose(both_first[:300], first, rtol=1e-10, atol=0)
    np.testing.assert_allclose(both_second[:300], second, rtol=1e-10, atol=0)


def test_offset_average_matches_monte_carlo() -> None:
    """y = m + d + e with an unknown offset d ~ N(0, shared): pooled moments exact, offset variance by Gauss-Hermite."""
    act = varprop.activation("relu")
    stat = Stat(np.array([0.2]), np.array([0.5]), 0.3)
    out = apply_activation(act, stat, UnitMoments())
    rng = np.random.default_rng(1)
    offsets = rng.normal(0.0, math.sqrt(0.3), 4000)
    values = np.maximum(0.2 + offsets[:, None] + rng.normal(0, math.sqrt(0.5), (4000, 2000)), 0.0)
    channel_means = values.mean(axis=1)
    # standard errors: 4000 channels x 2000 samples; 5 of them
    assert out.pooled_mean == pytest.approx(values.mean(), abs=5 * values.std() / math.sqrt(values.size) + 0.01)
    assert out.shared == pytest.approx(channel_means.var(), rel=5 * math.sqrt(2 / 4000))


@pytest.mark.parametrize(("count", "logit_var"), [(4, 0.5), (32, 1.0), (128, 2.0)])
def test_collision_against_simulation(count: int, logit_var: float) -> None:
    """E[sum p^2] for softmax of i.i.d. Gaussian logits, against torch's softmax on fresh samples (2^16 rows)."""
    generator = torch.Generator().manual_seed(7)
    logits = torch.randn(1 << 16, count, generator=generator, dtype=torch.float64) * math.sqrt(logit_var)
    sample = (F.softmax(logits, dim=-1) ** 2).sum(-1)
    standard_error = float(sample.std()) / math.sqrt(sample.numel())
    internal = 0.005 * collision(count, logit_var)  # collision's own Monte Carlo error, < 0.5% (2^18 logits)
    assert collision(count, logit_var) == pytest.approx(float(sample.mean()), abs=5 * standard_error + internal)


@pytest.mark.parametrize("count", [2, 3, 64, 1000])
@pytest.mark.parametrize("logit_var", [0.0, 1e-12, 0.37, 2.5, 1e6])
def test_collision_is_the_softmax_of_its_own_logits_bit_for_bit(count: int, logit_var: float) -> None:
    """collision subtracts precomputed row maxima (s * max x = max s * x under monotone rounding): the same float as
    the softmax written out on its logits, with each row's maximum searched."""
    weights = _standard_logits(count) * np.float32(math.sqrt(logit_var))
    weights -= weights.max(axis=1, keepdims=True)
    np.exp(weights, out=weights)
    weights /= weights.sum(axis=1, keepdims=True)
    expected = float(np.mean(np.einsum("ij,ij->i", weights, weights), dtype=np.float64))
    assert collision.__wrapped__(count, logit_var) == expected


@pytest.mark.parametrize("count", [2, 3, 64, 1000, 70000])
def test_collision_logits_are_the_seeded_table_drawn_at_once(count: int) -> None:
    """The table drawn a block of rows at a time is the one standard_normal call on the whole table, rounded."""
    rows = max(64, (1 << 18) // count)
    expected = np.random.default_rng(0).standard_normal((rows, count)).astype(np.float32)
    assert _standard_logits(count).tobytes() == expected.tobytes()


@pytest.mark.parametrize("count", [1, 2, 4, 9])
def test_max_order_statistics(count: int) -> None:
    """E[max] and E[max^2] of n standard normals; n = 2: 1/sqrt(pi) and 1 (closed forms)."""
    first, second = _max_moments(count)
    if count == 1:
        assert (first, second) == pytest.approx((0.0, 1.0), abs=1e-10)
    if count == 2:
        assert (first, second) == pytest.approx((1 / math.sqrt(math.pi), 1.0), abs=1e-10)
    samples = np.random.default_rng(3).standard_normal((200_000, count)).max(axis=1)
    assert first == pytest.approx(samples.mean(), abs=5 * samples.std() / math.sqrt(samples.size))


def test_flatten_keeps_channel_order() -> None:
    """(N, C, H, W) -> (N, C*H*W): feature c*H*W + p holds channel c."""
    stat = Stat(np.array([1.0, 2.0, 3.0]), np.array([0.1, 0.2, 0.3]), 0.0, axis=1, ndim=4)
    flat = reshape_stat(stat, (5, 3, 2, 2), (5, 12))
    assert flat.axis == 1
    np.testing.assert_array_equal(flat.mean, np.repeat([1.0, 2.0, 3.0], 4))
    split = reshape_stat(Stat(np.arange(8.0), np.ones(8), 0.0, axis=2, ndim=3), (2, 5, 8), (2, 5, 2, 4))
    assert split.axis is None and split.shared == pytest.approx(np.var(np.arange(8.0)))


def test_tilt_formula_against_multihead_attention() -> None:
    """Keys and values from the same tokens: the extra variance scale^2 D E[q^2] Var[k] Var[v] / fan (docstring)."""
    torch.manual_seed(0)
    tokens, width, heads = 128, 64, 4
    x, y, z = (torch.randn(64, tokens, width) for _ in range(3))
    attention = torch.nn.MultiheadAttention(width, heads, batch_first=True)
    with torch.no_grad():
        attention.in_proj_weight.normal_(0.0, 1.0 / math.sqrt(width))
        attention.in_proj_bias.zero_()
        torch.nn.init.eye_(attention.out_proj.weight)
        attention.out_proj.bias.zero_()
        shared = float(attention(x, y, y)[0].var())  # keys and values from the same tokens y
        separate = float(attention(x, y, z)[0].var())
    head_dim = width // heads
    predicted = tilt_variance(1.0, 1.0, 1.0, head_dim, 1 / math.sqrt(head_dim), width)
    # measured difference of two variances of 64*128*64 entries; its spread across seeds is ~15% of the effect
    assert shared - separate == pytest.approx(predicted, rel=0.3)


@pytest.mark.parametrize("name", ["relu", "elu", "leaky_relu", "hardtanh"])
def test_units_over_many_panels_use_the_closed_form(name: str) -> None:
    """Units spread over many lattice panels (deep ReLU networks: variances over decades) take the closed form,
    exact; fewer panels take the lattice, to ~1e-10 here."""
    act = varprop.activation(name)
    rng = np.random.default_rng(2)
    mean = rng.normal(0.0, 3.0, 512)
    var = np.exp(rng.uniform(np.log(1e-3), np.log(10.0), 512))
    first, second = UnitMoments()(act, mean, var)
    exact = varprop.moments(act, var=var, mean=mean)
    np.testing.assert_allclose(second, exact.second_moment, rtol=1e-13, atol=0)
    np.testing.assert_allclose(first, exact.mean, rtol=1e-12, atol=1e-15)
    narrow_mean, narrow_var = rng.normal(0.3, 0.1, 512), rng.uniform(0.9, 1.1, 512)
    first, second = UnitMoments()(act, narrow_mean, narrow_var)
    exact = varprop.moments(act, var=narrow_var, mean=narrow_mean)
    np.testing.assert_allclose(second, exact.second_moment, rtol=1e-9, atol=0)
    assert not np.array_equal(second, exact.second_moment)  # the lattice, not the closed form


@pytest.mark.parametrize("name", ["softplus", "relu"])
def test_many_units_in_chunks_or_closed_form(name: str) -> None:
    """Above 2048 units (a convolution's maps): the lattice in chunks (softplus, no closed form), or the closed form
    where valid at every unit (relu, exact)."""
    act = varprop.activation(name)
    rng = np.random.default_rng(4)
    mean, var = rng.normal(0.2, 0.4, 5000), rng.uniform(0.6, 1.6, 5000)
    first, second = UnitMoments()(act, mean, var)
    exact = varprop.moments(act, var=var, mean=mean)
    tolerance = 1e-13 if act.closed_form is not None else 1e-8
    np.testing.assert_allclose(second, exact.second_moment, rtol=tolerance, atol=0)
    np.testing.assert_allclose(first, exact.mean, rtol=tolerance, atol=1e-15)
