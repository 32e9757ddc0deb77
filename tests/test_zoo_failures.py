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
from varprop.torch.propagation import streams  # noqa: E402
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


def test_post_activation_resnet_stream_bounded_calibrated() -> None:
    outcome = run_case(failures.elu_resnet(), calibrate="gaussian")
    assert outcome.error is None, outcome.summary()
    assert outcome.fraction_within(CALIBRATED_BAND) >= SHARE, outcome.summary()
    assert stream_growth(outcome) <= 4.0, outcome.streams


@pytest.mark.parametrize("per_channel", [False, True])
def test_post_activation_resnet_stream_bounded(per_channel: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """(regression, issue 10: 41% of the layers outside [0.8, 1.25], conv1 of blocks 4-15 at 1.2-1.5x) the stream
    elu(skip + branch) is not Gaussian; its distribution is carried through the blocks (``streams``), per
    unit-position or, for maps over ``MAX_ENTRIES`` entries (forced here), per channel."""
    if per_channel:
        monkeypatch.setattr(streams, "MAX_ENTRIES", 8)
    outcome = run_case(failures.elu_resnet())
    _assert_good(outcome)
    assert stream_growth(outcome) <= 4.0, outcome.streams


def test_post_activation_blocks_form_one_residual_chain() -> None:
    """(regression) elu(x + bn2(conv2(...))): the ELU after the add keeps the next block in the same chain, so each
    branch end (bn2's gamma) gets Var[skip] (2^(1/16) - 1), not Var[skip] (a chain of one, doubling every block)."""
    case = failures.elu_resnet()
    report = vt.init_model(case.model, case.example, generator=torch.Generator().manual_seed(0))
    ends = [row for row in report.layers if row.name.endswith("bn2")]
    assert len(ends) == 16 and all("chain of 16" in row.branch for row in ends), [row.branch for row in ends]
    gammas = [float(block.bn2.weight[0]) for block in case.model.blocks]
    assert all(0.1 < gamma < 0.35 for gamma in gammas), gammas  # sqrt(2^(1/16) - 1) = 0.209 x the skip's std


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


def test_unstable_activation_warning_with_calibration() -> None:
    """The warning must exist (the fresh-batch spread is real: 1.3-2.7x the target at the last layers over three
    fresh batches, against 170-210x uncalibrated) and must not tell a calibrated call to calibrate."""
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


# ------------------------------------------------------------------------- the rules behind the Hugging Face rows


class AddmmLayer(nn.Module):
    """Hugging Face's ``Conv1D`` as GPT-2 writes it: ``addmm(bias, x, weight)`` with a weight of shape (in, out)."""

    def __init__(self, fan_in: int, fan_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(fan_in, fan_out) * 0.02)
        self.bias = nn.Parameter(torch.zeros(fan_out))

    def forward(self, x: Tensor) -> Tensor:
        flat = torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)
        return flat.view(*x.shape[:-1], -1)


class TanhGelu(nn.Module):
    """GPT-2's ``gelu_new`` written out (a power and a tanh of the same tensor)."""

    def forward(self, x: Tensor) -> Tensor:
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class TensorCodeRMSNorm(nn.Module):
    """LlamaRMSNorm's forward, as transformers writes it."""

    def __init__(self, width: int, eps: float = 1e-6, shift: float = 0.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.variance_epsilon = eps
        self.shift = shift  # (1.0: Gemma's (1 + weight) variant, not an nn.RMSNorm)

    def forward(self, x: Tensor) -> Tensor:
        variance = x.pow(2).mean(-1, keepdim=True)
        return (self.weight + self.shift) * (x * torch.rsqrt(variance + self.variance_epsilon))


class ConvOneDBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.up, self.act, self.down = AddmmLayer(64, 256), TanhGelu(), AddmmLayer(256, 64)
        self.norm = TensorCodeRMSNorm(64)
        self.head = nn.Linear(64, 64)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.norm(self.down(self.act(self.up(x)))))


def test_addmm_weight_layers_gelu_formula_and_rms_norm_code() -> None:
    """Conv1D rows named for their modules with fan_in = dim 0 of the weight; gelu_new propagated as one formula
    (no unknown operation); the tensor-code RMS norm recorded as one normalization, its gamma written."""
    torch.manual_seed(0)
    fresh = gaussian((16, 32, 64))
    outcome = run_case(Case("conv1d_block", ConvOneDBlock().eval(), example_of(fresh), fresh))
    _assert_good(outcome)
    report = outcome.report
    assert report is not None and not report.unknown, report.unknown
    rows = {row.name: row for row in report.layers}
    assert (rows["up"].layer_type, rows["up"].fan_in, rows["down"].fan_in) == ("AddmmLayer", 64.0, 256.0)
    assert any(row.activation.startswith("expr:") and "tanh" in row.activation for row in report.activations)


def test_only_an_exact_rms_norm_is_recognized() -> None:
    from varprop.torch.graph.foreign_modules import rms_norm_proxy

    norm = TensorCodeRMSNorm(16, eps=1e-5)
    proxy = rms_norm_proxy(norm)
    assert proxy is not None and proxy.weight is norm.weight and proxy.eps == 1e-5
    assert rms_norm_proxy(TensorCodeRMSNorm(16, shift=1.0)) is None  # (Gemma's 1 + weight)
    assert rms_norm_proxy(nn.LayerNorm(16)) is None  # (torch's own modules have their own rules)


class WeightNormed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.utils.parametrizations.weight_norm(nn.Linear(64, 64))
        self.b = nn.Linear(64, 64)

    def forward(self, x: Tensor) -> Tensor:
        return self.b(torch.tanh(self.a(x)))


def test_weight_norm_written_through_its_parametrization() -> None:
    torch.manual_seed(0)
    fresh = gaussian((256, 64))
    case = Case("weight_norm", WeightNormed().eval(), example_of(fresh), fresh)
    outcome = run_case(case)
    _assert_good(outcome)
    weight = case.model.a.weight
    row = next(row for row in outcome.report.layers if row.name == "a")  # type: ignore[union-attr]
    assert float(weight.detach().std()) == pytest.approx(row.std, rel=0.05)


def test_keep_leaves_named_parameters_and_says_so() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 64))
    old = model[2].weight.detach().clone()
    with warnings.catch_warnings():
        warnings.simplefilter("error", VarpropWarning)  # (a kept parameter is asked for: no warning)
        report = vt.init_model(model, (64, 64), keep=["2.weight"], generator=torch.Generator().manual_seed(0))
    assert torch.equal(model[2].weight, old)
    assert report.settings["kept_parameters"] == ["2.weight"] and "untouched_parameters" not in report.settings
    predictions = [row.predicted_output_var for row in report.layers]
    assert predictions[0] is not None and predictions[1:] == [None, None]
    assert "keep=" in report.layers[1].notes[0]
    by_predicate = vt.init_model(model, (64, 64), keep=lambda name, p: name.endswith("bias"))
    assert by_predicate.settings["kept_parameters"] == ["0.bias", "2.bias", "4.bias"]
    with pytest.raises(ValueError, match=r"'2\.weigth'.*did you mean '2\.weight'"):
        vt.init_model(model, (64, 64), keep=["2.weigth"])
    with pytest.raises(TypeError, match="keep must be"):
        vt.init_model(model, (64, 64), keep="2.weight")


class UnusedParameter(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(8, 8)
        self.spare = nn.Parameter(torch.ones(3))

    def forward(self, x: Tensor) -> Tensor:
        return self.a(x)


def test_a_parameter_no_rule_reaches_is_named() -> None:
    with pytest.warns(VarpropWarning, match=r"not written .*spare.*keep="):
        report = vt.init_model(UnusedParameter(), (16, 8))
    assert report.settings["untouched_parameters"] == ["spare"]


class UnknownThenNorm(nn.Module):
    """cumsum (no rule) then LayerNorm: the normalization's output is known again."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.norm, self.b = nn.Linear(64, 64), nn.LayerNorm(64), nn.Linear(64, 64)

    def forward(self, x: Tensor) -> Tensor:
        return self.b(self.norm(torch.cumsum(self.a(x), dim=-1)))


def test_a_normalization_after_an_unknown_operation_gives_predictions_again() -> None:
    torch.manual_seed(0)
    fresh = gaussian((256, 64))
    with pytest.warns(VarpropWarning, match="cumsum"):
        outcome = run_case(Case("unknown_then_norm", UnknownThenNorm().eval(), example_of(fresh), fresh))
    _assert_good(outcome)


def test_attention_token_correlation_closed_forms() -> None:
    """At zero logit variance softmax weights are uniform: causal query t (t + 1 keys) and s have correlation
    sqrt(min / max) of their key counts for independent values; a full (unmasked) average makes every output the
    sequence mean (correlation 1); a common part rho of the values adds rho + (1 - rho) / max to the covariance."""
    import numpy as np

    from varprop.torch.propagation.attention import attention_output, attention_token_correlation
    from varprop.torch.propagation.stats import scalar_stat

    zero = scalar_stat(0.0, 0.0)  # (queries of zero second moment: logit variance 0)
    rel = 1e-6  # (E[sum p^2] comes from softmax in float32 (``_ops.collision``): 1/n to ~1e-7 here)
    unit = scalar_stat(0.0, 1.0)
    tokens = 12
    causal = np.arange(1.0, tokens + 1)
    pairs = [(t, s) for t in range(1, tokens + 1) for s in range(1, tokens + 1) if t != s]
    expected = sum(math.sqrt(min(t, s) / max(t, s)) for t, s in pairs) / len(pairs)
    assert attention_token_correlation(zero, unit, 16, 0.25, causal, 0.0) == pytest.approx(expected, rel=rel)
    full = np.full(tokens, float(tokens))
    assert attention_token_correlation(zero, unit, 16, 0.25, full, 0.0) == pytest.approx(1.0, rel=rel)
    rho = 0.3
    corr = sum(
        (rho + (1 - rho) / max(t, s)) / math.sqrt((rho + (1 - rho) / t) * (rho + (1 - rho) / s)) for t, s in pairs
    ) / len(pairs)
    assert attention_token_correlation(zero, unit, 16, 0.25, causal, rho) == pytest.approx(corr, rel=rel)
    out = attention_output(zero, unit, unit, 16, 0.25, full, token_corr=rho)
    assert float(out.var[0]) == pytest.approx(rho + (1 - rho) / tokens, rel=rel)


WIDTH = failures.WIDTH


class TiedHeadOnTheStream(nn.Module):
    """A head tied to the input embedding that sees the embedding itself (through a residual stream and a norm, as in
    a language model): the logit of the input token gets |e|^2, which independence would miss."""

    def __init__(self, vocab: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, WIDTH)
        self.mlp = nn.Linear(WIDTH, WIDTH)
        self.norm = nn.LayerNorm(WIDTH)
        self.head = nn.Linear(WIDTH, vocab, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, ids: Tensor) -> Tensor:
        x = self.embed(ids)
        return self.head(self.norm(x + self.mlp(torch.tanh(x))))


def test_tied_head_that_sees_its_own_rows_is_measured() -> None:
    torch.manual_seed(0)

    def fresh(generator: torch.Generator) -> tuple[Tensor, ...]:
        return (torch.randint(0, 64, (32, 16), generator=generator),)

    case = Case(
        "tied_head_stream",
        TiedHeadOnTheStream().eval(),
        example_of(fresh),
        fresh,
        tied=(("embed.weight", "head.weight"),),
    )
    outcome = run_case(case)
    _assert_good(outcome)
    head = next(row for row in outcome.report.layers if row.name == "head")  # type: ignore[union-attr]
    assert any("measured" in note for note in head.notes), head.notes


def test_keep_frozen_leaves_a_sinusoid_table_and_propagates_it() -> None:
    """keep='frozen': a frozen embedding (a fixed sinusoid table) is kept, and its own rows' moments are propagated
    (a row for it, no unknown downstream)."""

    class Sinusoid(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.positions = nn.Embedding(16, WIDTH)
            angles = torch.arange(16.0)[:, None] / 10.0 ** (torch.arange(WIDTH // 2.0)[None, :] / 8.0)
            with torch.no_grad():
                self.positions.weight.copy_(torch.cat([angles.sin(), angles.cos()], dim=1))
            self.positions.weight.requires_grad_(False)
            self.a, self.b = nn.Linear(WIDTH, WIDTH), nn.Linear(WIDTH, WIDTH)

        def forward(self, x: Tensor) -> Tensor:
            h = x + self.positions(torch.arange(x.shape[1], device=x.device))
            return self.b(torch.tanh(self.a(h)))

    torch.manual_seed(0)
    fresh = gaussian((32, 16, WIDTH))
    model = Sinusoid().eval()
    table = model.positions.weight.detach().clone()
    outcome = run_case(Case("sinusoid", model, example_of(fresh), fresh), keep="frozen")
    assert outcome.kept == ["positions.weight"]
    # (the oracle perturbs every parameter by 1e-3 x N(0, 1) relative first: the kept table is the perturbed one)
    assert torch.allclose(model.positions.weight, table, rtol=1e-2, atol=1e-5)
    _assert_good(outcome)


def test_one_linear_instance_at_two_places_in_a_sequential() -> None:
    """A weight module (and a norm) reused in a Sequential is one layer called twice: one row with calls=2, no
    'tied' note (that is for two layers that share a tensor)."""
    torch.manual_seed(0)
    shared, norm = nn.Linear(WIDTH, WIDTH), nn.LayerNorm(WIDTH)
    model = nn.Sequential(
        nn.Linear(WIDTH, WIDTH), nn.Tanh(), shared, norm, nn.Tanh(), shared, norm, nn.Linear(WIDTH, WIDTH)
    )
    fresh = gaussian((256, WIDTH))
    outcome = run_case(Case("shared_linear", model.eval(), example_of(fresh), fresh))
    _assert_good(outcome)
    rows = outcome.report.layers  # type: ignore[union-attr]
    assert [(row.name, row.calls) for row in rows] == [("0", 1), ("2", 2), ("7", 1)]
    assert not any("tied" in note for row in rows for note in row.notes)
