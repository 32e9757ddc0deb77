"""Issue 10, item 1: ``init_model`` on Hugging Face transformers built offline from small configs (``tests/zoo/hf.py``),
also built on the meta device and materialized with ``to_empty``; measured by the oracle of ``tests/zoo/oracle.py``
(forward hooks on a fresh batch). Every test runs with the network guard of ``tests/conftest.py``."""

from __future__ import annotations

import os
import socket

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from conftest import NetworkAccessError  # noqa: E402
from varprop.torch._calibration_batch import token_batch  # noqa: E402
from zoo.hf import BUILDERS, hf_case  # noqa: E402
from zoo.oracle import SHARE, Outcome, run_case  # noqa: E402

pytestmark = pytest.mark.usefixtures("no_network")

# What fails today, per model (measured on this branch, `python benchmarks/zoo.py` for the numbers of every layer).
WHY = {
    "whisper_encoder": "issue 10: by default embed_positions (requires_grad=False) is redrawn (the report notes it) "
    "and added whole to every sequence: the same 16 rows in each, so their deviations from the per-feature mean sum "
    "to zero over the tokens (token correlation -1/15, measured -0.057) while attention assumes independent tokens; "
    "out_proj measures 0.70x (layer 0) and 0.55x (layer 1) its prediction. Modelling that correlation (tried: "
    "rho = -1/(n-1) for constant distinct indices) gives 0.87x and 0.74x but moves GPT-2's and BERT's attention "
    "outputs the wrong way (c_proj 1.21 -> 1.33x), so it is not in; with keep='frozen' every layer is within",
}
META_WHY = {
    **WHY,
}


def _assert_initialized(outcome: Outcome) -> None:
    assert outcome.error is None, outcome.summary()
    assert outcome.checks, outcome.summary()
    assert outcome.fraction_within() >= SHARE, outcome.summary()
    assert not outcome.untouched, outcome.summary()
    assert not outcome.untied, outcome.summary()
    assert not outcome.unmeasured_weights, outcome.summary()


def _xfail(name: str, why: dict[str, str]) -> object:
    """The model's case, a strict xfail while ``why`` says why it fails."""
    if name not in why:
        return pytest.param(name)
    return pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=why[name]))


def test_offline_environment() -> None:
    """conftest.py set the offline switches before the first import of huggingface_hub / transformers."""
    import huggingface_hub.constants

    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"
    assert huggingface_hub.constants.HF_HUB_OFFLINE


def test_network_guard_refuses_connections() -> None:
    """The guard the zoo tests run under: an internet connection or a host lookup fails loudly."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock, pytest.raises(NetworkAccessError):
        sock.connect(("192.0.2.1", 443))  # (TEST-NET-1: never reached; the guard refuses before any packet)
    with pytest.raises(NetworkAccessError):
        socket.getaddrinfo("huggingface.co", 443)


def test_models_build_offline() -> None:
    """Every zoo config builds and runs forward without a download (the guard would raise)."""
    for name in BUILDERS:
        case = hf_case(name)
        with torch.no_grad():
            case.model(*case.example)


@pytest.mark.parametrize("name", [_xfail(name, WHY) for name in BUILDERS])
def test_hf_model(name: str) -> None:
    """Analytic init: >= 95% of weight layers within [0.8, 1.25] of their prediction on a fresh batch, every weight
    written, tied weights one tensor, every weight module in the report."""
    _assert_initialized(run_case(hf_case(name)))


@pytest.mark.parametrize("name", [_xfail(name, META_WHY) for name in BUILDERS])
def test_hf_model_on_meta_device(name: str) -> None:
    """The same after ``torch.device("meta")`` + ``to_empty`` (every parameter holds uninitialized memory)."""
    _assert_initialized(run_case(hf_case(name, meta=True)))


CALIBRATED_WHY = {
    **WHY,
}


@pytest.mark.parametrize(
    "name",
    [_xfail(name, CALIBRATED_WHY) for name in ("gpt2", "bert", "llama", "vit")],
)
def test_hf_model_calibrated(name: str) -> None:
    """calibrate='gaussian' (token models: the example ids): every layer within [0.9, 1.1] of its target."""
    outcome = run_case(hf_case(name), calibrate="gaussian")
    assert outcome.error is None, outcome.summary()
    assert outcome.fraction_within() == 1.0, outcome.summary()
    assert not outcome.untouched, outcome.summary()


@pytest.mark.parametrize("name", ["gpt2", "qwen2"])
def test_tied_word_embeddings(name: str) -> None:
    """``tie_word_embeddings``: one tensor after init_model, and the report says so (a row for the head's use, a note
    naming both the embedding and the head)."""
    case = hf_case(name)
    outcome = run_case(case)
    assert outcome.error is None, outcome.summary()
    assert not outcome.untied, outcome.summary()
    _embed, head = case.tied[0]
    report = outcome.report
    assert report is not None
    said = [note for row in report.layers for note in row.notes] + list(report.warnings)
    module = head.rsplit(".", 1)[0]
    assert any("tied" in text and module in text for text in said), said
    assert not outcome.unmeasured_weights, outcome.summary()


def test_frozen_table_redrawn_by_default_and_the_report_says_so() -> None:
    """(issue 10) A requires_grad=False parameter is redrawn unless kept (after to_empty or under no_init_weights
    there is no table to keep); its row says it has requires_grad=False and how to keep it."""
    outcome = run_case(hf_case("whisper_encoder"))
    assert outcome.error is None and not outcome.untouched and outcome.kept == [], outcome.summary()
    report = outcome.report
    assert report is not None
    (row,) = [row for row in report.layers if row.param == "embed_positions.weight"]
    assert any("requires_grad=False" in note and "keep='frozen'" in note for note in row.notes), row.notes
    kept = run_case(hf_case("whisper_encoder"), keep="frozen").report
    assert kept is not None
    assert not any("requires_grad=False" in note for r in kept.layers for note in r.notes)


def test_token_calibration_batch() -> None:
    """(issue 10) calibrate="gaussian" on token ids: ids drawn from the example's own (none outside them), at least
    1024 of them, the example's row length kept; seeded by the generator."""
    ids = torch.randint(3, 40, (8, 16), generator=torch.Generator().manual_seed(0))
    drawn = token_batch(ids, torch.Generator().manual_seed(1))
    assert drawn.shape == (64, 16) and drawn.dtype == ids.dtype
    assert set(drawn.unique().tolist()) <= set(ids.unique().tolist())
    assert torch.equal(drawn, token_batch(ids, torch.Generator().manual_seed(1)))
    big = torch.randint(0, 9, (128, 16))
    assert token_batch(big, None).shape == (128, 16)


def test_whisper_with_its_sinusoid_table_kept() -> None:
    """``keep="frozen"``: Whisper's ``embed_positions`` (requires_grad=False, the sinusoids its model defines) kept,
    listed as kept, and propagated: every layer within the band, nothing else untouched."""
    outcome = run_case(hf_case("whisper_encoder"), keep="frozen")
    assert outcome.kept == ["embed_positions.weight"], outcome.kept
    _assert_initialized(outcome)
