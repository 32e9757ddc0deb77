"""``varprop.torch.report.signal.signal_stats`` against statistics computed by hand, and ``plot_signal``.

The oracle runs the layers one by one, computes the moments with numpy in float64 and the gradients
with ``torch.autograd.grad`` on the same loss L = sum(output * R), R from ``torch.randn`` with a
generator seeded as documented. Models are float64 so that both sides see the same numbers.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from varprop import VarpropTypeError, VarpropValueError  # noqa: E402
from varprop.torch.report.signal import STATISTICS, LayerSignal, SignalStats, signal_stats  # noqa: E402

RTOL = 1e-12  # float64 moments of identical tensors: only summation order differs


def by_hand(tensor: Any, channel_dim: int = 1) -> dict[str, float]:
    """Mean, variance and Brock et al.'s channel statistics of a tensor, with numpy in float64."""
    data = tensor.detach().double().numpy()
    channels = np.moveaxis(data, channel_dim, 0).reshape(data.shape[channel_dim], -1)
    channel_means = channels.mean(axis=1)
    return {
        "mean": float(data.mean()),
        "variance": float(((data - data.mean()) ** 2).mean()),
        "channel_mean_sq": float((channel_means**2).mean()),
        "channel_variance": float(((channels - channel_means[:, None]) ** 2).mean(axis=1).mean()),
    }


def projection(shape: tuple[int, ...], seed: int, dtype: Any = torch.float64) -> Any:
    """The documented R: i.i.d. N(0, 1) from a torch generator seeded with ``seed``."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def small_cnn() -> Any:
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ELU(),
        nn.Conv2d(4, 5, 3),
        nn.Tanh(),
        nn.Flatten(),
        nn.Linear(5 * 4 * 4, 7),
    ).double()


def assert_row(row: LayerSignal, expected: dict[str, float]) -> None:
    for key, value in expected.items():
        measured = getattr(row, key)
        assert measured == pytest.approx(value, rel=RTOL, abs=1e-300), f"{row.label} {key}: {measured} vs {value}"


def test_forward_statistics_match_layers_run_by_hand() -> None:
    model = small_cnn()
    x = torch.randn(6, 3, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    stats = signal_stats(model, x, backward=False)
    assert stats.labels == ["(input)", "0", "1", "2", "3", "4", "5"]
    assert [row.type for row in stats] == ["input", "Conv2d", "ELU", "Conv2d", "Tanh", "Flatten", "Linear"]
    outputs = [x]
    for layer in model:
        outputs.append(layer(outputs[-1]))
    for row, output in zip(stats, outputs, strict=True):
        assert row.shape == tuple(output.shape)
        assert_row(row, by_hand(output))
        assert row.grad_variance is None
    assert stats.backward is False and stats.notes == ()


def test_gradient_variance_matches_autograd_by_hand() -> None:
    model = small_cnn()
    x = torch.randn(6, 3, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    seed = 11
    stats = signal_stats(model, x, seed=seed)
    leaf = x.clone().requires_grad_(True)
    outputs = [leaf]
    for layer in model:
        outputs.append(layer(outputs[-1]))
    loss = (outputs[-1] * projection(tuple(outputs[-1].shape), seed)).sum()
    grads = torch.autograd.grad(loss, outputs)
    for row, grad in zip(stats, grads, strict=True):
        expected = float(grad.double().var(correction=0))
        assert row.grad_variance == pytest.approx(expected, rel=RTOL), row.label
    # The gradient entering the output is R itself: its variance is the sample variance of R.
    assert stats[-1].grad_variance == pytest.approx(float(projection((6, 7), seed).var(correction=0)), rel=RTOL)


def test_channels_last_and_law_of_total_variance() -> None:
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(8, 6), nn.GELU()).double()
    x = torch.randn(5, 9, 8, dtype=torch.float64) + 0.3  # (N, L, D) with a mean
    stats = signal_stats(model, x, channel_dim=-1)
    hidden = model[0](x)
    assert_row(stats[1], by_hand(hidden, channel_dim=-1))
    for row in stats:
        assert row.channel_variance is not None and row.channel_mean_sq is not None
        total = row.channel_variance + row.channel_mean_sq - row.mean**2
        assert total == pytest.approx(row.variance, rel=1e-10), row.label


def test_one_dimensional_outputs_have_no_channel_statistics() -> None:
    class Summary(nn.Module):
        def forward(self, x: Any) -> Any:
            return x.sum(dim=1)

    stats = signal_stats(nn.Sequential(nn.Linear(3, 3), Summary()), torch.randn(4, 3))
    assert stats[-1].shape == (4,)
    assert stats[-1].channel_mean_sq is None and stats[-1].channel_variance is None
    assert math.isnan(stats.column("channel_variance")[-1])


def snapshot(model: Any) -> dict[str, Any]:
    return {
        "state": {key: value.clone() for key, value in model.state_dict(keep_vars=False).items()},
        "grads": {name: None if p.grad is None else p.grad.clone() for name, p in model.named_parameters()},
        "grad_ids": {name: id(p.grad) for name, p in model.named_parameters()},
        "modes": {name: module.training for name, module in model.named_modules()},
        "requires_grad": {name: p.requires_grad for name, p in model.named_parameters()},
        "hooks": {name: (len(m._forward_hooks), len(m._backward_hooks)) for name, m in model.named_modules()},
    }


def assert_unchanged(model: Any, before: dict[str, Any]) -> None:
    after = snapshot(model)
    assert after["state"].keys() == before["state"].keys()
    for key, value in before["state"].items():
        assert torch.equal(after["state"][key], value), f"{key} changed"
    for name, grad in before["grads"].items():
        assert (after["grads"][name] is None) == (grad is None), name
        if grad is not None:
            assert torch.equal(after["grads"][name], grad), f"{name}.grad changed"
    assert after["grad_ids"] == before["grad_ids"]
    for key in ("modes", "requires_grad", "hooks"):
        assert after[key] == before[key], key


def norm_model() -> Any:
    torch.manual_seed(5)
    model = nn.Sequential(
        nn.ReLU(inplace=True),  # in place on the model's input: the caller's batch must survive
        nn.Conv2d(3, 4, 3),
        nn.BatchNorm2d(4),
        nn.ReLU(inplace=True),
        nn.Dropout(0.3),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 2),
    )
    model.train()
    model[4].eval()  # a mixed mode that model.train()/eval() would not restore
    model[1].weight.requires_grad_(False)
    model[6].weight.grad = torch.full_like(model[6].weight, 0.5)  # an existing gradient must be kept
    return model


@pytest.mark.parametrize("train", [None, True, False])
def test_model_rng_and_batch_left_as_they_were(train: bool | None) -> None:
    model = norm_model()
    x = torch.randn(8, 3, 5, 5)
    x_before = x.clone()
    before = snapshot(model)
    rng = torch.get_rng_state()
    stats = signal_stats(model, x, train=train)
    assert_unchanged(model, before)
    assert torch.equal(torch.get_rng_state(), rng), "the global RNG was consumed"
    assert torch.equal(x, x_before) and not x.requires_grad
    assert stats.training == (True if train is None else train)
    # The BatchNorm output in training mode is normalized per channel (before the in-place ReLU).
    if stats.training:
        bn = next(row for row in stats if row.type == "BatchNorm2d")
        assert bn.channel_variance == pytest.approx(1.0, rel=1e-3) and bn.channel_mean_sq < 1e-10
    assert all(row.grad_variance is not None for row in stats)


def test_hooks_modes_and_buffers_restored_when_the_model_raises() -> None:
    class Boom(nn.Module):
        def forward(self, x: Any) -> Any:
            raise RuntimeError("boom")

    model = norm_model()
    model.append(Boom())
    before = snapshot(model)
    with pytest.raises(RuntimeError, match="boom"):
        signal_stats(model, torch.randn(8, 3, 5, 5), train=False)
    assert_unchanged(model, before)


@pytest.mark.parametrize("context", ["no_grad", "inference_mode"])
def test_gradients_collected_inside_a_callers_no_grad_or_inference_mode(context: str) -> None:
    model = small_cnn()
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    expected = signal_stats(model, x)
    with getattr(torch, context)():
        inside = signal_stats(model, x.clone())
    assert [row.grad_variance for row in inside] == [row.grad_variance for row in expected]
    assert None not in [row.grad_variance for row in inside]


def test_shared_module_gives_one_row_per_call() -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 4)
            self.act = nn.Tanh()

        def forward(self, x: Any) -> Any:
            return self.lin(self.act(self.lin(x)))

    stats = signal_stats(Twice(), torch.randn(16, 4))
    assert stats.labels == ["(input)", "lin", "act", "lin#2"]
    assert [row.call for row in stats] == [1, 1, 1, 2]
    assert stats[1].variance != stats[3].variance


def test_module_selection() -> None:
    model = small_cnn()
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    assert signal_stats(model, x, modules=["2", "0"], backward=False).labels == ["(input)", "0", "2"]
    assert signal_stats(model, x, modules=nn.Conv2d, backward=False).labels == ["(input)", "0", "2"]
    assert signal_stats(model, x, modules=(nn.ELU, nn.Tanh), backward=False).labels == ["(input)", "1", "3"]
    picked = signal_stats(model, x, modules=lambda name, module: name == "", backward=False)
    assert picked.labels == ["(input)", "(model)"]
    with pytest.raises(VarpropValueError, match=r"no submodule '6'.*\(names as in model.named_modules"):
        signal_stats(model, x, modules=["6"])
    with pytest.raises(VarpropTypeError, match="not the string"):
        signal_stats(model, x, modules="0")


def test_integer_inputs_and_frozen_models() -> None:
    torch.manual_seed(6)
    embed = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 3))
    stats = signal_stats(embed, torch.randint(0, 10, (5, 7)))
    assert stats.labels == ["0", "1"]  # no row for an integer input
    assert all(row.grad_variance is not None for row in stats)  # reached through the parameters
    frozen = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 3)).requires_grad_(False)
    stats = signal_stats(frozen, torch.randint(0, 10, (5, 7)))
    assert all(row.grad_variance is None for row in stats)
    assert any("does not require grad" in note for note in stats.notes)
    assert "-" in str(stats)


def test_bad_input() -> None:
    model = nn.Linear(2, 2)
    with pytest.raises(VarpropTypeError, match=r"torch\.nn\.Module"):
        signal_stats(lambda x: x, torch.randn(2, 2))  # type: ignore[arg-type]
    with pytest.raises(VarpropTypeError, match="tensor or a non-empty tuple"):
        signal_stats(model, [[1.0, 2.0]])  # type: ignore[arg-type]
    with pytest.raises(VarpropTypeError, match="channel_dim must be an int"):
        signal_stats(model, torch.randn(2, 2), channel_dim=1.0)  # type: ignore[arg-type]
    with pytest.raises(VarpropTypeError, match="train must be"):
        signal_stats(model, torch.randn(2, 2), train=1)  # type: ignore[arg-type]


def test_tuple_batch_table_and_json() -> None:
    class Pair(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(3, 2)
            self.b = nn.Linear(4, 2)

        def forward(self, x: Any, y: Any) -> tuple[Any, Any]:
            return self.a(x), {"b": self.b(y)}

    stats = signal_stats(Pair(), (torch.randn(5, 3), torch.randn(5, 4)))
    assert stats.input_shapes == ((5, 3), (5, 4))
    assert stats.labels == ["(input)", "a", "b"]
    assert all(row.grad_variance is not None for row in stats)  # both outputs enter the loss
    data = json.loads(json.dumps(stats.to_dict()))
    assert [row["name"] for row in data["layers"]] == ["(input)", "a", "b"]
    assert data["loss"].startswith("L = sum(output * R)")
    text = str(stats)
    assert "ch. mean²" in text and "grad variance" in text and "5x3, 5x4" in text
    assert isinstance(stats, SignalStats) and len(stats) == 3
    with pytest.raises(VarpropValueError, match="unknown statistic"):
        stats.column("varianse")
    assert set(STATISTICS) <= set(LayerSignal.__dataclass_fields__)


# --------------------------------------------------------------------------------------------- plots


def test_plot_signal_writes_files_and_compares_runs(tmp_path: Any) -> None:
    pytest.importorskip("matplotlib")
    from varprop.plotting.signal import plot_signal

    model = small_cnn()
    x = torch.randn(4, 3, 6, 6, dtype=torch.float64)
    first, second = signal_stats(model, x), signal_stats(model, 2 * x, backward=False)
    figure = plot_signal({"x": first, "2x": second}, tmp_path / "spp", title="t")
    assert (tmp_path / "spp.png").stat().st_size > 0 and (tmp_path / "spp.svg").stat().st_size > 0
    axes = figure.axes
    assert [ax.get_title() for ax in axes] == [
        "average channel squared mean",
        "average channel variance",
        "gradient variance (backward)",
    ]
    assert len(axes[1].get_lines()) == 3  # two runs and the target line
    assert axes[1].get_yscale() == "log"
    plot_signal(first, tmp_path / "one.pdf", statistics=("mean", "variance"))
    assert (tmp_path / "one.pdf").stat().st_size > 0


def test_plot_signal_bad_input() -> None:
    pytest.importorskip("matplotlib")
    from varprop.plotting.signal import plot_signal

    stats = signal_stats(nn.Linear(2, 2), torch.randn(3, 2))
    with pytest.raises(VarpropValueError, match="unknown statistic 'std'; valid choices"):
        plot_signal(stats, statistics=("std",))
    with pytest.raises(VarpropValueError, match="at least one"):
        plot_signal({})
    with pytest.raises(VarpropTypeError, match="SignalStats"):
        plot_signal({"a": [1, 2]})  # type: ignore[dict-item]


def test_plot_signal_lives_in_plotting_and_the_old_name_warns() -> None:
    import varprop.plotting
    import varprop.torch

    assert "plot_signal" not in varprop.torch.__all__ and "plot_signal" in varprop.plotting.__all__
    with pytest.warns(DeprecationWarning, match=r"varprop\.plotting\.plot_signal"):
        old = varprop.torch.plot_signal
    assert old is varprop.plotting.plot_signal
    with pytest.raises(AttributeError, match="no attribute 'plot_signals'"):
        varprop.torch.plot_signals  # noqa: B018
