"""Seeded blocks of rows for ``init_model``'s weights (``varprop.torch._sampling``), and the meta-shape shortcut."""

from __future__ import annotations

import itertools
import math

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from varprop.torch import init_model  # noqa: E402
from varprop.torch._graph import trace_fx  # noqa: E402
from varprop.torch._sampling import Sampler, block_rows, unit_sample  # noqa: E402

DISTRIBUTIONS = ["normal", "truncated_normal", "uniform"]


@pytest.mark.parametrize("shape", [(1000, 300), (7, 3, 5, 5), (70000,), (3, 40000)])
def test_any_range_of_rows_agrees_with_the_whole(shape: tuple[int, ...]) -> None:
    whole = unit_sample(shape, 123, "normal")
    total = shape[0]
    per_block = block_rows(shape)
    cuts = sorted({0, total, 1, total // 3, per_block, per_block + 1, total - 1} & set(range(total + 1)))
    for start, stop in itertools.pairwise(cuts):
        part = unit_sample(shape, 123, "normal", rows=(start, stop))
        assert torch.equal(part, whole[start:stop]), (start, stop)


def test_seeds_separate_parameters_and_repeat() -> None:
    assert torch.equal(unit_sample((64, 64), 5, "normal"), unit_sample((64, 64), 5, "normal"))
    assert not torch.equal(unit_sample((64, 64), 5, "normal"), unit_sample((64, 64), 6, "normal"))
    sampler = Sampler("normal", torch.Generator().manual_seed(0))
    weight = torch.empty(64, 64)
    assert not torch.equal(sampler.unit("a.weight", weight), sampler.unit("b.weight", weight))


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_unit_std_and_zero_mean(distribution: str) -> None:
    """Sample moments of 2^20 values within 5 standard errors: sd(s^2) = sqrt((kurtosis - 1) / N) for each law."""
    count = 1 << 20
    values = unit_sample((1024, 1024), 9, distribution).double()
    kurtosis = {"normal": 3.0, "uniform": 1.8, "truncated_normal": 2.36}[distribution]  # trunc at 2 sd: 2.362
    assert abs(float(values.mean())) < 5.0 / math.sqrt(count)
    assert abs(float(values.var()) - 1.0) < 5.0 * math.sqrt((kurtosis - 1.0) / count)
    if distribution == "uniform":
        assert float(values.abs().max()) <= math.sqrt(3.0)


def test_half_precision_samples_in_float32() -> None:
    assert unit_sample((8, 8), 1, "normal", dtype=torch.bfloat16).dtype == torch.float32


def test_init_model_independent_of_module_order_and_global_rng() -> None:
    """A parameter's draw depends on the seed and its name only: the same layer in two models gets the same weights
    (up to its scale), and the global RNG is not consumed when a generator is given."""
    torch.manual_seed(0)
    first = nn.Sequential(nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 32))
    second = nn.Sequential(nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 8))
    state = torch.random.get_rng_state()
    init_model(first, (16, 32), generator=torch.Generator().manual_seed(3), realized=False)
    init_model(second, (16, 32), generator=torch.Generator().manual_seed(3), realized=False)
    assert torch.equal(torch.random.get_rng_state(), state)
    for index in (0, 2):
        a, b = first[index].weight, second[index].weight
        ratio = a / b
        assert torch.allclose(ratio, ratio.flatten()[0].expand_as(ratio), rtol=1e-6), index


@pytest.mark.parametrize(
    "model, shape",
    [
        (nn.Sequential(nn.Linear(12, 20), nn.GELU(), nn.LayerNorm(20), nn.Dropout(0.1), nn.Linear(20, 3)), (4, 7, 12)),
        (
            nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.PReLU(), nn.Flatten(), nn.Linear(8 * 36, 5)),
            (2, 3, 8, 8),
        ),
    ],
)
def test_meta_shortcut_shapes_match_running_the_model(model: nn.Module, shape: tuple[int, ...]) -> None:
    """The shapes recorded on meta tensors (with the elementwise/norm/Linear shortcut) equal a real forward's."""
    x = torch.randn(shape)
    graph = trace_fx(model, (x,))
    recorded = {node.name: node.meta.shape for node in graph.nodes if hasattr(node.meta, "shape")}
    outputs: dict[str, tuple[int, ...]] = {}
    value = x
    for name, module in model.named_children():
        value = module(value)
        outputs[name] = tuple(value.shape)
    module_nodes = [node for node in graph.nodes if node.op == "module"]
    assert [recorded[node.name] for node in module_nodes] == [outputs[str(node.target)] for node in module_nodes]
