"""``init_model`` as an API: atomicity, what it must not touch, calibration, residual policies, report, bad input."""

from __future__ import annotations

import json
import math

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402, N812

import varprop.torch as vt  # noqa: E402
from varprop import VarpropError, VarpropTypeError, VarpropValueError  # noqa: E402
from varprop.torch.propagation import layers as _layers  # noqa: E402


def _net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ELU(),
        nn.Dropout(0.3),
        nn.Flatten(),
        nn.Linear(16 * 64, 32),
        nn.LayerNorm(32),
        nn.GELU(),
        nn.Linear(32, 10),
    )


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()}


def _same(model: nn.Module, snapshot: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(v, snapshot[k]) for k, v in model.state_dict().items())


def test_failure_midway_leaves_model_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _net()
    before = _snapshot(model)
    calls = {"n": 0}
    original = _layers.weight_layer

    def failing(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 2:  # the second weight layer: the first one's new weights already exist
            raise RuntimeError("injected failure")
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_layers, "weight_layer", failing)
    with pytest.raises(RuntimeError, match="injected failure"):
        vt.init_model(model, (4, 3, 8, 8))
    assert calls["n"] == 2
    assert _same(model, before)


def test_failure_during_calibration_leaves_model_untouched() -> None:
    model = _net()
    before = _snapshot(model)

    def hook(module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if args[0].shape[0] == 64:  # only in the calibration pass (the example has batch 4)
            raise RuntimeError("injected in forward")

    handle = model[5].register_forward_hook(hook)
    try:
        with pytest.raises(VarpropValueError, match=r"calibration batch .* RuntimeError: injected in forward"):
            vt.init_model(model, torch.randn(4, 3, 8, 8), calibrate=torch.randn(64, 3, 8, 8))
    finally:
        handle.remove()
    assert _same(model, before)
    assert model.training


def test_buffers_modes_flags_dtype_and_rng_preserved() -> None:
    model = _net()
    model[1].running_mean.fill_(0.25)
    model[1].num_batches_tracked.fill_(7)
    model[5].weight.requires_grad_(False)
    model.eval()
    model[3].train()  # a mixed state must come back as it was
    modes = {name: m.training for name, m in model.named_modules()}
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    rng = torch.random.get_rng_state()
    vt.init_model(model, (8, 3, 8, 8), calibrate="gaussian", generator=torch.Generator().manual_seed(0))
    assert torch.equal(rng, torch.random.get_rng_state())
    assert {name: m.training for name, m in model.named_modules()} == modes
    for key, value in model.named_buffers():
        assert torch.equal(value, buffers[key]), key
    assert not model[5].weight.requires_grad and model[0].weight.requires_grad
    assert all(p.dtype == torch.float32 and p.device.type == "cpu" for p in model.parameters())
    assert float(model[0].bias.detach().abs().max()) == 0.0
    assert float((model[1].weight.detach() - 1).abs().max()) == 0.0  # norm affine reset to (1, 0)


def test_same_generator_same_weights_double_precision() -> None:
    example = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    first, second = _net().double(), _net().double()
    vt.init_model(first, example, generator=torch.Generator().manual_seed(5))
    vt.init_model(second, example, generator=torch.Generator().manual_seed(5))
    for (name, a), (_, b) in zip(first.named_parameters(), second.named_parameters(), strict=True):
        assert a.dtype == torch.float64, name
        assert torch.equal(a, b), name


def test_calibration_hits_the_target_on_its_batch() -> None:
    """One forward pass: every weight layer's output variance on the calibration batch equals its target."""
    model = nn.Sequential(*[m for _ in range(12) for m in (nn.Linear(64, 64), nn.SiLU())], nn.Linear(64, 64))
    batch = torch.randn(1024, 64, generator=torch.Generator().manual_seed(1))
    report = vt.init_model(model, (8, 64), calibrate=batch, target_var=2.0, generator=torch.Generator().manual_seed(0))
    measured = vt.measure_variances(model, batch)
    for row in report.layers:
        assert row.measured_var is not None and row.calibration_scale is not None
        assert measured[row.name][0] == pytest.approx(2.0, rel=1e-4), row.name


def test_calibration_counts_forward_passes() -> None:
    """O(1) passes: the graph is traced and run on meta tensors (no arithmetic), then one real pass calibrates."""
    model = nn.Sequential(*[m for _ in range(6) for m in (nn.Linear(16, 16), nn.Tanh())])
    calls = {"n": 0}
    model.register_forward_pre_hook(lambda module, args: calls.__setitem__("n", calls["n"] + 1))
    vt.init_model(model, (32, 16), calibrate="gaussian")
    assert calls["n"] == 1


def test_transformer_attention_is_calibrated() -> None:
    model = nn.TransformerEncoder(
        nn.TransformerEncoderLayer(32, 4, 64, dropout=0.1, batch_first=True, norm_first=True),
        2,
        enable_nested_tensor=False,
    )
    model.eval()  # the fused fast path must not bypass the hooks
    batch = torch.randn(16, 12, 32, generator=torch.Generator().manual_seed(2))
    report = vt.init_model(model, batch, calibrate=batch, residual="none", generator=torch.Generator().manual_seed(0))
    measured = vt.measure_variances(model, batch)
    for name in ("layers.0.self_attn.out_proj", "layers.1.linear1", "layers.1.linear2"):
        assert measured[name][0] == pytest.approx(1.0, rel=1e-4), name
    assert not model.training
    assert {row.name for row in report.layers} >= {"layers.0.self_attn.q_proj", "layers.1.self_attn.v_proj"}


@pytest.mark.parametrize(("policy", "low", "high"), [("scaled", 1.88, 2.12), ("zero", 1.0, 1.0), ("none", 30, 52)])
def test_residual_policies_bound_the_stream(policy: str, low: float, high: float) -> None:
    class Stream(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = nn.ModuleList(
                nn.Sequential(nn.Linear(48, 48), nn.ReLU(), nn.Linear(48, 48)) for _ in range(40)
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for block in self.blocks:
                x = x + block(x)
            return x

    x = torch.randn(4096, 48, generator=torch.Generator().manual_seed(1))
    ratios = []
    for seed in range(16 if policy == "scaled" else 1):
        model = Stream()
        vt.init_model(model, (64, 48), residual=policy, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            ratios.append(float(model(x).var() / x.var()))
    ratio = sum(ratios) / len(ratios)
    # "scaled": exactly 2 in expectation over weight draws; one draw at width 48 varies by sd ~0.11 (measured over 40
    # seeds), so the mean of 16 draws is within 2 +- 0.12 (4 sd). "none": 1 + 40 blocks, spread by the ReLU MLPs.
    assert low <= ratio <= high, ratios


def test_functional_and_method_activations_are_recognized() -> None:
    class Mixed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.c = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.c(self.b(F.gelu(self.a(x))).relu().tanh())

    report = vt.init_model(Mixed(), (16, 8))
    specs = {row.activation for row in report.activations}
    assert specs == {"gelu(approximate='none')", "relu", "tanh"}
    assert [row.follows for row in report.layers] == ["gelu", "relu", "output"]


def test_hook_fallback_for_untraceable_models() -> None:
    class Dynamic(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(16, 16), nn.Linear(16, 16)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum() > -1e9:  # data-dependent control flow: torch.fx cannot trace it
                x = torch.tanh(self.a(x))
            return self.b(x)

    report = vt.init_model(Dynamic(), (32, 16))
    assert report.settings["graph"] == "hooks"
    assert "torch.fx could not trace" in report.settings["note"]
    assert [row.activation for row in report.activations] == ["tanh"]


def test_unknown_module_is_listed_and_strict_raises() -> None:
    # (nn.GRUCell: nn.LSTM was the example until issue 10 made recurrent layers supported)
    model = nn.Sequential(nn.Linear(8, 8), nn.GRUCell(8, 8))
    before = _snapshot(model)
    report = vt.init_model(model, (4, 8))
    assert any("GRUCell" in what for what, _ in report.unknown)
    assert any("owned by unsupported module GRUCell" in w for w in report.warnings)
    assert torch.equal(model[1].weight_ih, before["1.weight_ih"])
    fresh = nn.Sequential(nn.Linear(8, 8), nn.GRUCell(8, 8))
    snapshot = _snapshot(fresh)
    with pytest.raises(VarpropValueError, match=r"strict=True.*GRUCell"):
        vt.init_model(fresh, (4, 8), strict=True)
    assert _same(fresh, snapshot)


def test_report_table_dict_json() -> None:
    report = vt.init_model(_net(), (4, 3, 8, 8), calibrate="gaussian", generator=torch.Generator().manual_seed(0))
    text = str(report)
    assert "Conv2d" in text and "elu(alpha=1.0)" in text and "stable" in text
    data = report.to_dict()
    assert [row["name"] for row in data["layers"]] == ["0", "5", "8"]
    assert data["layers"][0]["effective_fan_in"] < 27  # zero padding at the borders of an 8x8 input
    decoded = json.loads(report.to_json(indent=1))
    assert decoded["settings"]["calibrate"] == "gaussian"
    assert all(math.isfinite(row["std"]) for row in decoded["layers"])


def test_dead_branch_and_zero_target_policy_rows() -> None:
    model = nn.Sequential(nn.Linear(8, 8))
    report = vt.init_model(model, (4, 8), target_var=0.5)
    assert report.layers[0].target_var == 0.5


@pytest.mark.parametrize(
    ("model", "example", "kwargs", "error", "pattern"),
    [
        ("not a module", (2, 3), {}, VarpropTypeError, "model must be a torch.nn.Module"),
        (nn.Linear(3, 2), (4, 5), {}, VarpropValueError, "does not fit the model"),
        (nn.Linear(3, 2), torch.ones(4, 3, dtype=torch.int64), {}, VarpropTypeError, "integer tensor"),
        (nn.Linear(3, 2), "x", {}, VarpropTypeError, "example_input must be a tensor"),
        (nn.Linear(3, 2), (4, 0), {}, VarpropValueError, "non-positive"),
        (nn.Linear(3, 2), torch.full((4, 3), math.nan), {}, VarpropValueError, "NaN"),
        (nn.Linear(3, 2), (4, 3), {"target_var": 0.0}, VarpropValueError, "target_var must be > 0"),
        (nn.Linear(3, 2), (4, 3), {"distribution": "laplace"}, VarpropValueError, "valid choices"),
        (nn.Linear(3, 2), (4, 3), {"residual": "fixup"}, VarpropValueError, "'scaled', 'none', 'zero'"),
        (nn.Linear(3, 2), (4, 3), {"calibrate": "data"}, VarpropValueError, "unknown calibrate"),
        (nn.Linear(3, 2), (4, 3), {"calibrate": [1, 2]}, VarpropTypeError, "calibrate must be a tensor"),
        (nn.Linear(3, 2), (4, 3), {"calibrate": torch.ones(8, 5)}, VarpropValueError, "calibration batch"),
        (nn.Linear(3, 2), (4, 3), {"generator": 1}, VarpropTypeError, "torch.Generator"),
    ],
)
def test_bad_input(model: object, example: object, kwargs: dict[str, object], error: type, pattern: str) -> None:
    with pytest.raises(error, match=pattern) as info:
        vt.init_model(model, example, **kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, VarpropError)


def test_integer_tensor_into_linear_names_the_layer() -> None:
    class Indices(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed, self.proj = nn.Embedding(10, 4), nn.Linear(3, 3)

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            return self.embed(tokens).sum(-1) + self.proj(tokens.float())

    vt.init_model(Indices(), torch.randint(0, 10, (2, 3)))  # float() makes it legal
    with pytest.raises(VarpropTypeError, match=r"0 \(Linear\) receives an integer tensor"):
        vt.init_model(nn.Sequential(nn.Linear(3, 4)), torch.randint(0, 10, (2, 3)))
