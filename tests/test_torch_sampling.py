"""Seeds and draws of ``init_model``'s weights (``varprop.torch.sampling.sharded_random``), and the meta-shape
shortcut."""

from __future__ import annotations

import gc
import itertools
import math
import subprocess
import sys
from typing import Any

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import varprop  # noqa: E402
from varprop.torch import init_model  # noqa: E402
from varprop.torch.graph.ir import Ref  # noqa: E402
from varprop.torch.graph.shapes import _conv_output  # noqa: E402
from varprop.torch.graph.trace import _sequential_graph, trace_fx  # noqa: E402
from varprop.torch.sampling.sharded_random import draw_region, fresh_seed, name_seed  # noqa: E402

DISTRIBUTIONS = ["normal", "truncated_normal", "uniform"]
OPTIONS: dict[str, Any] = {"dtype": torch.float32, "device": torch.device("cpu")}


def test_name_seeds_separate_parameters_and_repeat() -> None:
    assert name_seed(5, "0.weight") == name_seed(5, "0.weight")
    seeds = {name_seed(5, "0.weight"), name_seed(5, "2.weight"), name_seed(6, "0.weight")}
    assert len(seeds) == 3


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_unit_std_and_zero_mean(distribution: str) -> None:
    """Sample moments of 2^20 values within 5 standard errors: sd(s^2) = sqrt((kurtosis - 1) / N) for each law."""
    count = 1 << 20
    values = draw_region((1024, 1024), [None, None], 1.0, distribution=distribution, seed=9, **OPTIONS).double()
    kurtosis = {"normal": 3.0, "uniform": 1.8, "truncated_normal": 2.3656}[distribution]  # cut at 2 sd: 2.3656
    assert abs(float(values.mean())) < 5.0 / math.sqrt(count)
    assert abs(float(values.var()) - 1.0) < 5.0 * math.sqrt((kurtosis - 1.0) / count)
    if distribution == "uniform":
        assert float(values.abs().max()) <= math.sqrt(3.0)


def test_rows_of_a_packed_weight_are_the_rows_of_its_whole_draw() -> None:
    """Attention's packed q/k/v projections draw blocks of rows separately (each with its own std): the same values
    as the whole tensor's draw, so the blocks are independent and reproducible."""
    whole = draw_region((96, 32), [None, None], 1.0, distribution="normal", seed=4, **OPTIONS)
    for start in (0, 32, 64):
        rows = torch.arange(start, start + 32)
        part = draw_region((96, 32), [rows, None], 1.0, distribution="normal", seed=4, **OPTIONS)
        assert torch.equal(part, whole[start : start + 32])


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


def _convolutions() -> list[nn.Module]:
    found: list[nn.Module] = []
    for cls in (nn.Conv1d, nn.Conv2d, nn.Conv3d):
        for kernel, stride, padding, dilation in itertools.product((1, 3, 4), (1, 2), (0, 1, "same", "valid"), (1, 2)):
            if padding != "same" or stride == 1:
                found.append(cls(2, 3, kernel, stride=stride, padding=padding, dilation=dilation))
    for cls in (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d):
        for kernel, stride, padding, dilation, extra in itertools.product((1, 3), (1, 2), (0, 1), (1, 2), (0, 1)):
            if extra < max(stride, dilation):
                found.append(cls(2, 3, kernel, stride, padding, extra, dilation=dilation))
    return found


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_convolution_shapes_on_meta_match_running_them() -> None:
    """The meta shortcut's shape formulas for every ConvNd / ConvTransposeNd option against real forward passes."""
    for module in _convolutions():
        dims = len(module.kernel_size)
        for shape in ((4, 2, *(9,) * dims), (2, *(9,) * dims)):
            out = _conv_output(module, shape)
            assert out == tuple(module(torch.randn(shape)).shape), (module, shape)


def test_plain_models_trace_without_pytorch_meta_kernels() -> None:
    """Linear, convolution, elementwise and norm modules get their meta shapes by formula: the first meta kernel of a
    process imports PyTorch's symbolic-shape machinery (sympy, 0.5-1.5 s), which such models must not pay."""
    script = (
        "import sys, torch\n"
        "from torch import nn\n"
        "import varprop.torch as vt\n"
        "model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3),\n"
        "                      nn.GELU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5), nn.LayerNorm(5), nn.Tanh())\n"
        "vt.init_model(model, (2, 3, 8, 8))\n"
        "print('sympy' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "False", result.stdout + result.stderr


def test_parallel_block_sampling_gives_the_serial_values() -> None:
    """Large CPU draws sample their blocks on a thread pool: the values must not depend on it or on the threads."""
    threads = torch.get_num_threads()
    shape = (1024, 1024)  # 2^20 values: above the parallel threshold
    try:
        torch.set_num_threads(1)
        serial = draw_region(shape, [None, None], 0.5, distribution="normal", seed=11, **OPTIONS)
        torch.set_num_threads(4)
        parallel = draw_region(shape, [None, None], 0.5, distribution="normal", seed=11, **OPTIONS)
    finally:
        torch.set_num_threads(threads)
    rows = torch.arange(100, 900)
    part = draw_region(shape, [rows, None], 0.5, distribution="normal", seed=11, **OPTIONS)
    assert torch.equal(serial, parallel)
    assert torch.equal(part, serial[100:900])


@pytest.mark.parametrize("realized", [True, False])
@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_init_model_weights_are_the_scaled_unit_draws(realized: bool, distribution: str) -> None:
    """Each weight is its unit-std rank-invariant draw (seed from the generator and the parameter's name) times the
    std in the report, exactly: the draws sampled ahead and the scale fused into the write change nothing."""
    model = nn.Sequential(nn.Linear(64, 48), nn.ELU(), nn.Linear(48, 48), nn.SiLU(), nn.Linear(48, 8))
    generator = torch.Generator().manual_seed(5)
    report = init_model(model, (32, 64), generator=generator, realized=realized, distribution=distribution)
    seed = fresh_seed(torch.Generator().manual_seed(5))
    for row in report.layers:
        weight = model.get_submodule(row.name).weight
        shape = tuple(weight.shape)
        seeded = name_seed(seed, f"{row.name}.weight")
        unit = draw_region(shape, [None, None], 1.0, distribution=distribution, seed=seeded, **OPTIONS)
        assert torch.equal(weight.detach(), unit * row.std), row.name


def test_half_precision_weights_are_drawn_at_their_std() -> None:
    """bfloat16 weights: drawn at their std in float32 and rounded once (not a rounded unit draw scaled again)."""
    model = nn.Sequential(nn.Linear(64, 48), nn.Tanh(), nn.Linear(48, 8)).to(torch.bfloat16)
    report = init_model(model, torch.randn(32, 64), generator=torch.Generator().manual_seed(2), realized=False)
    seed = fresh_seed(torch.Generator().manual_seed(2))
    for row in report.layers:
        weight = model.get_submodule(row.name).weight
        expected = draw_region(
            tuple(weight.shape),
            [None, None],
            row.std,
            dtype=torch.bfloat16,
            device=OPTIONS["device"],
            distribution="normal",
            seed=name_seed(seed, f"{row.name}.weight"),
        )
        assert torch.equal(weight.detach(), expected), row.name


def _structure(graph: Any) -> list[tuple[Any, ...]]:
    """A graph's nodes without their names: op, target, arguments as positions of the nodes they refer to, shapes."""
    position = {node.name: index for index, node in enumerate(graph.nodes)}
    found = []
    for node in graph.nodes:
        args = tuple(position[a.node] if isinstance(a, Ref) else a for a in node.args)
        meta = (tuple(node.meta.shape), node.meta.dtype) if hasattr(node.meta, "shape") else None
        found.append((node.op, str(node.target), args, meta))
    return found


@pytest.mark.parametrize(
    "model, shape",
    [
        (nn.Sequential(nn.Linear(12, 20), nn.Sequential(nn.GELU(), nn.Linear(20, 20)), nn.Tanh()), (4, 12)),
        (
            nn.Sequential(
                nn.Conv2d(3, 8, 3, padding=1),
                nn.BatchNorm2d(8),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(8, 8, 3, stride=2),
                nn.AdaptiveAvgPool2d(1),
                nn.Flatten(),
                nn.Linear(8, 5),
            ),
            (2, 3, 16, 16),
        ),
        (nn.Sequential(nn.Embedding(10, 6), nn.Flatten(1, 2), nn.Linear(18, 4)), (5, 3)),
    ],
)
def test_sequential_graph_is_the_traced_graph(model: nn.Module, shape: tuple[int, ...]) -> None:
    """A plain nn.Sequential of leaf modules is read as its chain without tracing: the same nodes and shapes as
    torch.fx gives (shapes by formula, or from the module run on meta tensors: pooling, embedding)."""
    x = torch.randint(0, 10, shape) if isinstance(model[0], nn.Embedding) else torch.randn(shape)
    fast = _sequential_graph(model, (x,))
    assert fast is not None and fast.method == "nn.Sequential"
    assert _structure(fast) == _structure(trace_fx(model, (x,)))


@pytest.mark.parametrize("norm_first", [True, False])
def test_transformer_shapes_by_formula(norm_first: bool) -> None:
    """A transformer encoder (layer) as the whole model: its output shape is its input's, by formula, as running it
    gives; the formula declines inputs of the wrong width."""
    from varprop.torch.graph.shapes import output_shape

    layer = nn.TransformerEncoderLayer(32, 4, 64, batch_first=True, norm_first=norm_first)
    encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
    x = torch.randn(3, 5, 32)
    for module in (layer, encoder):
        assert output_shape(module, (3, 5, 32), True) == tuple(module(x).shape)
        assert output_shape(module, (3, 5, 31), True) is None


def test_elementwise_shapes_on_meta_match_running_them() -> None:
    """Residual adds and scalings get their meta output by the broadcasting rule; other cases run as before."""
    import operator

    from varprop.torch.graph.shapes import elementwise_meta as _elementwise_meta

    shapes = [((3, 1, 4), (5, 4)), ((2, 3), (3,)), ((1,), (4, 5)), ((), (2, 2)), ((0, 3), (1, 3))]
    for target in (operator.add, operator.sub, operator.mul, operator.truediv, torch.add, torch.mul):
        for left, right in shapes:
            out = _elementwise_meta(target, (torch.empty(left, device="meta"), torch.empty(right, device="meta")), {})
            assert out is not None and out.shape == target(torch.ones(left), torch.ones(right)).shape
        scaled = _elementwise_meta(target, (torch.empty(2, 3, device="meta"), 0.5), {})
        assert scaled is not None and scaled.shape == (2, 3)
    meta = torch.empty(2, 3, device="meta")
    declined = [
        (operator.add, (meta, torch.empty(2, 4, device="meta")), {}),  # not broadcastable: PyTorch raises
        (operator.add, (meta, meta.double()), {}),  # two dtypes
        (operator.add, (torch.empty(2, 3, dtype=torch.int64, device="meta"), 1), {}),  # integers
        (operator.add, (meta, True), {}),
        (torch.add, (meta, meta), {"alpha": 2}),
        (operator.matmul, (meta, meta.t()), {}),
        (operator.add, (torch.ones(2, 3), torch.ones(2, 3)), {}),  # not meta
    ]
    for target, args, kwargs in declined:
        assert _elementwise_meta(target, args, kwargs) is None, (target, args, kwargs)


class _Custom(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2


def test_sequential_graph_leaves_other_models_to_the_tracer() -> None:
    """A user module inside, a hook on a container, a subclass: traced as before."""
    x = torch.randn(3, 4)
    assert _sequential_graph(nn.Sequential(nn.Linear(4, 4), _Custom()), (x,)) is None
    hooked = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.ReLU()))
    hooked[1].register_forward_hook(lambda module, args, out: out)
    assert _sequential_graph(hooked, (x,)) is None
    assert _sequential_graph(type("Subclass", (nn.Sequential,), {})(nn.Linear(4, 4)), (x,)) is None
    assert init_model(nn.Sequential(nn.Linear(4, 4), _Custom()), (3, 4)).settings["graph"] == "torch.fx"


def test_garbage_collection_is_paused_during_init_model_only() -> None:
    """init_model turns the cyclic collector off for the call and restores the caller's setting, also on error."""
    seen: list[bool] = []
    model = nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 8))
    model[0].register_forward_hook(lambda module, args, out: seen.append(gc.isenabled()))
    assert gc.isenabled()
    init_model(model, (4, 8), calibrate="gaussian")
    assert seen == [False] and gc.isenabled()
    with pytest.raises(varprop.VarpropError):
        init_model(model, (4, 8), calibrate=torch.randn(4, 9))
    assert gc.isenabled()
    gc.disable()
    try:
        init_model(model, (4, 8))
        assert not gc.isenabled()
    finally:
        gc.enable()
