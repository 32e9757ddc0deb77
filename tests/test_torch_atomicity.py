"""``init_model``'s write order (issue 13): everything is planned and checked before the first write, the plan reads
and writes no parameter, an error during planning leaves the model untouched, and a fault during the write names the
parameters already written, leaves none half-written, and a rerun with the same seed finishes the job bit for bit.

Oracles: the parameters' own version counters (``Tensor._version``, bumped by every in-place write) and bytes before
and after; the weights of a clean run from the same seed on an identical copy of the model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import test_torch_init_golden  # noqa: E402  # tests/ is on sys.path (as for torch_helpers)
import varprop.torch as vt  # noqa: E402
from varprop import VarpropError  # noqa: E402
from varprop.torch import _model_init  # noqa: E402
from varprop.torch.propagation import calibrate as _calibrate  # noqa: E402
from varprop.torch.propagation import plan as _plan  # noqa: E402

SEED = 20261203


class _Mixed(nn.Module):
    """Every way a parameter is planned: a drawn embedding with a padding row, MultiheadAttention's q/k/v row blocks
    of one tensor (and its bias rows), LayerNorms (constants), a convolution, BatchNorm, Linear weights and biases."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(40, 16, padding_idx=0)
        self.encoder = nn.TransformerEncoderLayer(16, 4, 32, batch_first=True, norm_first=True)
        self.conv = nn.Conv1d(16, 8, 3, padding=1)
        self.norm = nn.BatchNorm1d(8)
        self.head = nn.Linear(8, 5)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(self.embed(tokens))
        features = torch.relu(self.norm(self.conv(hidden.transpose(1, 2))))
        return self.head(features.mean(dim=2))


def _model() -> nn.Module:
    torch.manual_seed(0)
    return _Mixed()


EXAMPLE = (6, 12)  # token indices of shape (batch, sequence)
MODES: dict[str, dict[str, Any]] = {
    "realized": {},
    "mean-field": {"realized": False},
    "calibrated": {"calibrate": "gaussian"},
}


def _state(model: nn.Module) -> dict[str, tuple[torch.Tensor, int]]:
    return {name: (p.detach().clone(), p._version) for name, p in model.named_parameters()}


def _init(model: nn.Module, options: dict[str, Any]) -> Any:
    return vt.init_model(model, EXAMPLE, generator=torch.Generator().manual_seed(SEED), **options)


def _reference(options: dict[str, Any]) -> dict[str, torch.Tensor]:
    model = _model()
    _init(model, options)
    return {name: p.detach().clone() for name, p in model.named_parameters()}


# The two routes of a draw: kept between planning and writing (models up to KEEP_DRAWS_BYTES, as these), or made
# again each time it is needed (larger models; forced here by a limit of 0).
ROUTES = {"kept": None, "made-again": 0}


@pytest.mark.parametrize("route", sorted(ROUTES))
@pytest.mark.parametrize("mode", sorted(MODES))
def test_nothing_is_written_before_the_write_starts(mode: str, route: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """At the moment the write begins (every scale, statistic and calibration factor already found), no parameter
    has been written in place, not even temporarily: same bytes and same version counter as before the call."""
    if ROUTES[route] is not None:
        monkeypatch.setattr(_plan, "KEEP_DRAWS_BYTES", ROUTES[route])
    model = _model()
    before = _state(model)
    seen: dict[str, tuple[torch.Tensor, int]] = {}
    original = _plan.Context.write

    def checked(self: _plan.Context) -> None:
        seen.update(_state(model))
        original(self)

    monkeypatch.setattr(_plan.Context, "write", checked)
    _init(model, MODES[mode])
    assert seen.keys() == before.keys()
    changed = [
        n for n, (value, version) in seen.items() if version != before[n][1] or not torch.equal(value, before[n][0])
    ]
    assert not changed, f"written during planning: {changed}"
    written = [n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n][0])]
    assert len(written) >= 10, written  # and the write did write (the test would catch a write that ran too early)


# Failures injected after planning has started and before the write: in the propagation (the n-th scale factor
# recorded), after the propagation (describing the report), inside the calibration pass (the n-th weight made).
def _fail_on_call(target: Any, name: str, call: int) -> Callable[[pytest.MonkeyPatch], None]:
    def inject(monkeypatch: pytest.MonkeyPatch) -> None:
        original = getattr(target, name)
        count = [0]

        def failing(*args: Any, **kwargs: Any) -> Any:
            count[0] += 1
            if count[0] == call:
                raise RuntimeError("injected failure")
            return original(*args, **kwargs)

        monkeypatch.setattr(target, name, failing)

    return inject


def _calibration_scale_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first calibration hook fails while computing its scale (``math.sqrt`` in ``_calibrate``)."""

    class RaisingMath:
        def __getattr__(self, name: str) -> Any:
            if name == "sqrt":
                raise RuntimeError("injected failure")
            return getattr(math, name)

    monkeypatch.setattr(_calibrate, "math", RaisingMath())


INJECTIONS: dict[str, tuple[Callable[[pytest.MonkeyPatch], None], str]] = {
    "propagation, 3rd realized scale": (_fail_on_call(_plan.Context, "scale", 3), "realized"),
    "after propagation": (_fail_on_call(_model_init, "_describe_follows", 1), "realized"),
    "calibration pass, 4th weight made": (_fail_on_call(_plan.Context, "value", 4), "calibrated"),
    "calibration pass, a layer's scale": (_calibration_scale_fails, "calibrated"),
}


@pytest.mark.parametrize("where", sorted(INJECTIONS))
def test_an_error_during_planning_leaves_the_model_untouched(where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    inject, mode = INJECTIONS[where]
    inject(monkeypatch)
    model = _model()
    before = _state(model)
    with pytest.raises((RuntimeError, VarpropError), match="injected failure"):
        _init(model, MODES[mode])
    after = _state(model)
    changed = [
        n for n, (value, version) in after.items() if version != before[n][1] or not torch.equal(value, before[n][0])
    ]
    assert not changed, f"{where}: touched {changed}"


@pytest.mark.parametrize("route", sorted(ROUTES))
@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("fault_at", [1, 4, 9])
def test_a_fault_during_the_write_names_what_was_written_and_a_rerun_finishes(
    mode: str, fault_at: int, route: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = MODES[mode]
    expected = _reference(options)  # (on the kept route: the other must give the same bits)
    if ROUTES[route] is not None:
        monkeypatch.setattr(_plan, "KEEP_DRAWS_BYTES", ROUTES[route])
    model = _model()
    old = {name: p.detach().clone() for name, p in model.named_parameters()}
    original = _plan._store
    count = [0]

    def faulty(param: torch.Tensor, value: torch.Tensor, factor: float | None) -> None:
        count[0] += 1
        if count[0] == fault_at:
            raise MemoryError("injected fault")
        original(param, value, factor)

    monkeypatch.setattr(_plan, "_store", faulty)
    with pytest.raises(_plan.InitWriteError, match="injected fault") as caught:
        _init(model, options)
    error = caught.value
    assert isinstance(error, VarpropError) and isinstance(error.__cause__, MemoryError)
    assert len(error.written) == fault_at - 1
    assert not set(error.written) & set(error.pending)
    assert set(error.written) | set(error.pending) == set(expected)
    for name in error.written:
        assert name in str(error)
    params = dict(model.named_parameters())
    for name in error.written:  # whole and new
        assert torch.equal(params[name].detach(), expected[name]), name
    for name in error.pending:  # whole and old (none half-written)
        assert torch.equal(params[name].detach(), old[name]), name

    monkeypatch.setattr(_plan, "_store", original)
    _init(model, options)  # the rerun, same seed: the same weights as a clean run
    mismatched = [name for name, p in model.named_parameters() if not torch.equal(p.detach(), expected[name])]
    assert not mismatched, mismatched


def test_rerun_on_a_partly_written_model_reads_nothing_it_wrote() -> None:
    """The plan does not depend on the parameters' current values: init_model on a model whose weights were already
    replaced (by a previous init_model, or anything else) gives the same weights as on the fresh model."""
    expected = _reference({})
    model = _model()
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(3.0, 5.0)
    _init(model, {})
    mismatched = [name for name, p in model.named_parameters() if not torch.equal(p.detach(), expected[name])]
    assert not mismatched, mismatched


@pytest.mark.parametrize("name", sorted(test_torch_init_golden.CASES))
def test_draws_made_again_give_the_recorded_bits(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Models over ``KEEP_DRAWS_BYTES`` make each draw again (for the realized statistics, the calibration pass and
    the write) instead of keeping it: the golden cases (all small, so they keep theirs) rerun on that route give the
    same recorded digests."""
    recorded = test_torch_init_golden._recorded()
    if recorded["platform"] != test_torch_init_golden._platform():
        pytest.skip("digests recorded on another torch version or CPU capability (see test_torch_init_golden)")
    monkeypatch.setattr(_plan, "KEEP_DRAWS_BYTES", 0)
    expected = recorded["cases"][name]
    found = test_torch_init_golden._digests(name)
    changed = sorted(key for key in expected if found.get(key) != expected[key])
    assert not changed and found.keys() == expected.keys(), f"{name}: parameters whose bits changed: {changed}"


def test_init_write_error_is_public_and_a_varprop_error() -> None:
    """``except varprop.torch.InitWriteError`` works, and the error is caught by ``except varprop.VarpropError``."""
    import varprop
    import varprop.torch

    assert "InitWriteError" in varprop.torch.__all__
    assert issubclass(varprop.torch.InitWriteError, varprop.VarpropError)
