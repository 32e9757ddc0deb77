"""Issue 10's table of failures, one regression test each (reproducers in ``tests/zoo/failures.py``), and its
"nothing silent" rules. Each test states what the issue's "Done when" demands; those that fail today are strict
xfails whose reason gives the current exception or wrong number."""

from __future__ import annotations

import math
import re
import warnings

import pytest

torch = pytest.importorskip("torch")
from torch import Tensor, nn  # noqa: E402

import varprop.torch as vt  # noqa: E402
from varprop import VarpropWarning  # noqa: E402
from zoo import failures  # noqa: E402
from zoo.case import Case, example_of, gaussian, token_ids  # noqa: E402
from zoo.oracle import ANALYTIC_BAND, CALIBRATED_BAND, SHARE, Outcome, run_case, stream_growth  # noqa: E402

pytestmark = pytest.mark.usefixtures("no_network")


def xfail(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, reason=f"issue 10: {reason}")


def _assert_good(outcome: Outcome) -> None:
    assert outcome.error is None, outcome.summary()
    assert outcome.fraction_within() >= SHARE, outcome.summary()
    assert not outcome.untouched, outcome.summary()
    assert not outcome.untied, outcome.summary()
    assert not outcome.unmeasured_weights, outcome.summary()


# ------------------------------------------------------------------------- constant tensors (the HF rows)


class PositionIds(nn.Module):
    """What GPT-2 / Llama / BERT / T5 do before their first layer: position ids from ``torch.arange(T) + offset`` and
    from a registered buffer sliced to the sequence length, both into embeddings (HF's models fail on these)."""

    def __init__(self, vocab: int = 50, width: int = 64, positions: int = 32) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab, width)
        self.positions = nn.Embedding(positions, width)
        self.segments = nn.Embedding(positions, width)
        self.register_buffer("position_ids", torch.arange(positions).expand((1, -1)), persistent=False)
        self.out = nn.Linear(width, width)

    def forward(self, ids: Tensor) -> Tensor:
        length = ids.shape[1]
        arange = torch.arange(length, device=ids.device) + 0  # (add on a constant: GPT-2, Llama)
        sliced = self.position_ids[:, :length]  # (getitem on a buffer: BERT, T5)
        x = self.tokens(ids) + self.positions(arange.unsqueeze(0)) + self.segments(sliced)
        return self.out(torch.tanh(x))


def test_constant_tensors_before_the_first_layer() -> None:
    fresh = token_ids((16, 16), 50)
    torch.manual_seed(0)
    _assert_good(run_case(Case("position_ids", PositionIds().eval(), example_of(fresh), fresh)))


# ------------------------------------------------------------------------- shared module instances


def test_one_activation_instance_reused_in_a_sequential() -> None:
    _assert_good(run_case(failures.shared_activation()))


def test_one_activation_instance_reused_in_a_sequential_calibrated() -> None:
    outcome = run_case(failures.shared_activation(), calibrate="gaussian")
    assert outcome.error is None, outcome.summary()
    assert outcome.fraction_within() == 1.0, outcome.summary()


class SharedWithControlFlow(nn.Module):
    """One ``nn.ELU`` called three times in a forward that torch.fx cannot trace (a branch on a tensor's value): the
    recorded forward pass (hooks) path."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c, self.d = (nn.Linear(64, 64) for _ in range(4))
        self.act = nn.ELU()

    def forward(self, x: Tensor) -> Tensor:
        h = self.act(self.a(x))
        if float(h.sum()) > -1e30:  # (always true: only there to defeat symbolic tracing)
            h = self.act(self.b(h))
        return self.d(self.act(self.c(h)))


def test_one_activation_instance_called_several_times_on_the_hooks_path() -> None:
    torch.manual_seed(0)
    fresh = gaussian((256, 64))
    outcome = run_case(Case("shared_hooks", SharedWithControlFlow().eval(), example_of(fresh), fresh))
    assert outcome.report is not None and outcome.report.settings["graph"] == "hooks"
    _assert_good(outcome)


class SharedInForward(nn.Module):
    """One ``nn.GELU`` module called three times in ``forward`` (the shared-instance case outside Sequential)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c, self.d = (nn.Linear(64, 64) for _ in range(4))
        self.act = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        return self.d(self.act(self.c(self.act(self.b(self.act(self.a(x)))))))


def test_one_activation_instance_called_several_times_in_forward() -> None:
    torch.manual_seed(0)
    fresh = gaussian((256, 64))
    _assert_good(run_case(Case("shared_in_forward", SharedInForward().eval(), example_of(fresh), fresh)))


# ------------------------------------------------------------------------- custom activations written as tensor code


def test_custom_activation_with_a_power() -> None:
    _assert_good(run_case(failures.custom_activation("mish_square")))


def test_custom_activation_log_is_not_predicted_silently() -> None:
    case = failures.custom_activation("log")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcome = run_case(case)
    assert outcome.error is None, outcome.summary()
    said = [str(w.message) for w in caught if issubclass(w.category, VarpropWarning)]
    assert any("log" in text for text in said), said
    for check in outcome.checks[1:]:  # after the first log: no finite number claimed for a NaN output
        assert check.predicted is None or not math.isfinite(check.predicted), check.describe()


class CumulativeSum(nn.Module):
    """An operation varprop has no rule for (``torch.cumsum``) between two weight layers."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(64, 64), nn.Linear(64, 64)

    def forward(self, x: Tensor) -> Tensor:
        return self.b(torch.cumsum(torch.tanh(self.a(x)), dim=-1))


def test_unknown_operation_is_measured_or_warned_by_name() -> None:
    """Nothing silent: the layer after an unknown op is either right (the op measured on the example) or the op is
    warned about by name and the prediction downstream marked unknown (``None``)."""
    torch.manual_seed(0)
    fresh = gaussian((256, 64))
    case = Case("cumsum", CumulativeSum().eval(), example_of(fresh), fresh)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcome = run_case(case)
    assert outcome.error is None, outcome.summary()
    downstream = outcome.checks[-1]
    said = [str(w.message) for w in caught if issubclass(w.category, VarpropWarning)]
    if downstream.predicted is not None:
        assert downstream.within(ANALYTIC_BAND), downstream.describe()
    else:
        assert any("cumsum" in text for text in said), said


def test_unknown_operation_raises_with_strict() -> None:
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="cumsum"):
        vt.init_model(CumulativeSum(), (64, 64), strict=True)


# ------------------------------------------------------------------------- tied weights


def test_two_tied_linears() -> None:
    outcome = run_case(failures.tied_linears())
    _assert_good(outcome)
    report = outcome.report
    assert report is not None
    said = [note for row in report.layers for note in row.notes] + list(report.warnings)
    assert any("tied" in text for text in said), said


def test_embedding_tied_to_the_output_head() -> None:
    """One value, chosen by the role that sets the variance, and the report says so (naming both uses)."""
    outcome = run_case(failures.tied_embedding_head())
    _assert_good(outcome)
    report = outcome.report
    assert report is not None
    said = [note for row in report.layers for note in row.notes] + list(report.warnings)
    assert any("tied" in text and "head" in text and "embed" in text for text in said), said
    predicted, measured = outcome.outputs[0]
    assert predicted is not None and ANALYTIC_BAND[0] <= measured / predicted <= ANALYTIC_BAND[1]


# ------------------------------------------------------------------------- residual streams


@xfail(
    "calibrate='gaussian': the stream variance grows 196x from the stem to block 16 (post-activation ELU ends "
    "every residual chain after one link: each add doubles the stream)"
)
def test_post_activation_resnet_stream_bounded_calibrated() -> None:
    outcome = run_case(failures.elu_resnet(), calibrate="gaussian")
    assert outcome.error is None, outcome.summary()
    assert outcome.fraction_within(CALIBRATED_BAND) >= SHARE, outcome.summary()
    assert stream_growth(outcome) <= 4.0, outcome.streams


@xfail("analytic: the stream variance grows 514x over the 16 blocks")
def test_post_activation_resnet_stream_bounded() -> None:
    outcome = run_case(failures.elu_resnet())
    _assert_good(outcome)
    assert stream_growth(outcome) <= 4.0, outcome.streams


# ------------------------------------------------------------------------- the report's fan-in columns


def _table(report: vt.InitReport) -> tuple[list[str], list[list[str]]]:
    lines = str(report).splitlines()
    header_at = next(i for i, line in enumerate(lines) if line.startswith("layer "))
    header = re.split(r"\s{2,}", lines[header_at].strip())
    rows = []
    for line in lines[header_at + 2 :]:
        if not line.strip() or line.startswith("columns:"):
            break
        rows.append(re.split(r"\s{2,}", line.strip()))
    return header, rows


def test_depthwise_fan_in_columns() -> None:
    """torch's fan_in (9 for a 3x3 depthwise kernel) and the effective fan-in (8.2656 on 16x16 maps) in two labelled
    columns."""
    case = failures.depthwise_conv()
    report = vt.init_model(case.model, case.example, generator=torch.Generator().manual_seed(0))
    assert [row.fan_in for row in report.layers] == [9.0, 9.0]
    assert report.layers[0].effective_fan_in == pytest.approx(9 * (14 + 2 * 2 / 3) ** 2 / 16**2, rel=1e-12)
    header, rows = _table(report)
    assert "fan_in" in header and any("effective" in column for column in header), header
    effective = next(column for column in header if "effective" in column)
    for row in rows:
        assert row[header.index("fan_in")] == "9" and row[header.index(effective)].startswith("8.26"), (header, row)


def test_depthwise_drift_line_names_the_effective_fan_in() -> None:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(6):
        layers += [nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.SiLU()]
    model = nn.Sequential(*layers, nn.Conv2d(8, 8, 3, padding=1, groups=8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VarpropWarning)
        text = str(vt.init_model(model, (16, 8, 16, 16), generator=torch.Generator().manual_seed(0)))
    drift = [line for line in text.splitlines() if "plain chain of" in line]
    assert drift, text
    assert all("width 8.26562" not in line for line in drift), drift
    assert all("effective fan-in 8.26562" in line for line in drift), drift
    warned = [line for line in text.splitlines() if "is unstable at var" in line]
    assert warned and all("layers of effective fan-in 8.26562 " in line for line in warned), warned


# ------------------------------------------------------------------------- warnings under calibration


@xfail(
    "with calibrate= given an unstable deep chain gets no warning at all, while a fresh batch measures up to "
    "2.5x the target (layers 16-38 outside [0.9, 1.1])"
)
def test_unstable_activation_warning_with_calibration() -> None:
    """The warning must exist (the fresh-batch spread is real) and must not tell a calibrated call to calibrate."""
    case = failures.unstable_chain()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vt.init_model(case.model, case.example, calibrate="gaussian", generator=torch.Generator().manual_seed(0))
    said = [str(w.message) for w in caught if issubclass(w.category, VarpropWarning)]
    assert any("silu" in text.lower() for text in said), said
    assert not any("use calibrate=" in text for text in said), said


def test_unstable_activation_warning_without_calibration() -> None:
    """(Today's behavior, kept: uncalibrated, the deep SiLU chain warns and suggests calibration.)"""
    case = failures.unstable_chain()
    with pytest.warns(VarpropWarning, match="use calibrate="):
        vt.init_model(case.model, case.example, generator=torch.Generator().manual_seed(0))
