"""Issue 10, item 2: standard vision networks as torchvision and timm define them (``tests/zoo/vision.py``): every
weight layer's prediction against its measurement on a fresh batch, every weight written, residual streams bounded
as the residual policy promises."""

from __future__ import annotations

from collections import OrderedDict

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

import varprop.torch as vt  # noqa: E402
from varprop.torch._calibration_batch import calibration_batch  # noqa: E402
from zoo.oracle import SHARE, run_case, stream_growth  # noqa: E402
from zoo.vision import STREAM_PREFIXES, VISION, BatchNormAct2d, measured_on_more_images, vision_case  # noqa: E402

pytestmark = pytest.mark.usefixtures("no_network")

# residual="scaled" doubles a chain's stream; a network of several stages (each a chain, with a downsampling
# convolution or normalization between them) stays within a few times its first block's variance.
STREAM_BOUND = 4.0

# mobilenet_v3 (``PYTHONPATH=src:tests python -c "from zoo.vision import print_heavy_tails; print_heavy_tails()"``): the
# cause is not the squeeze-excitation product but the measurement: at 32 x 32 inputs the last maps are 2 x 2 and the
# per-image mean square of the deep layers is heavy-tailed (classifier.3 over 4096 images: median 0.29, mean 0.72,
# the top 1% of the images carry 18% of it), so 8 images measure near the median, below the expectation that the
# prediction is; on 2048 fresh images 92-100% of the layers are within [0.8, 1.25] (three batches), the SE layers
# (fc1, fc2, the projection after the gate) at 0.86-1.06.
WHY = {
    "mobilenet_v3": "issue 10: the deep layers' per-image variance is heavy-tailed at 2 x 2 maps (classifier.3: "
    "median 0.29, mean 0.72 over 4096 images): 8 fresh images measure features.5 and the head at 0.35-0.78 of the "
    "prediction (2048 images: 0.73-1.2, 92-100% within)",
}
CALIBRATED_WHY = {
    "mobilenet_v3": "issue 10: calibrated on 64 heavy-tailed images (see WHY), a fresh batch of 64 measures the "
    "deep layers at 0.45-0.9 (seed 12345) or up to 1.37 (seed 2) of their targets: 29% within [0.9, 1.1]",
}


def _param(name: str, why: dict[str, str]) -> object:
    if name in why:
        return pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=why[name]))
    return name


@pytest.mark.parametrize("name", [_param(name, WHY) for name in VISION])
def test_vision_model(name: str) -> None:
    outcome = run_case(vision_case(name))
    assert outcome.error is None, outcome.summary()
    assert outcome.fraction_within() >= SHARE, outcome.summary()
    assert not outcome.untouched, outcome.summary()
    assert not outcome.unmeasured_weights, outcome.summary()
    if name in STREAM_PREFIXES:
        assert stream_growth(outcome) <= STREAM_BOUND, (outcome.summary(), outcome.streams)


@pytest.mark.parametrize("name", [_param(name, CALIBRATED_WHY) for name in VISION])
def test_vision_model_calibrated(name: str) -> None:
    """calibrate='gaussian': >= 95% of the layers within [0.9, 1.1] of the target on a fresh batch of 64 images."""
    outcome = run_case(measured_on_more_images(vision_case(name)), calibrate="gaussian")
    assert outcome.error is None, outcome.summary()
    assert outcome.fraction_within() >= SHARE, outcome.summary()
    assert not outcome.untouched, outcome.summary()
    if name in STREAM_PREFIXES:
        assert stream_growth(outcome) <= STREAM_BOUND, (outcome.summary(), outcome.streams)


@pytest.mark.parametrize("act", [nn.ReLU, nn.ELU, nn.Hardswish])
def test_batchnorm_with_its_activation_inside_is_the_norm_then_the_activation(act: type[nn.Module]) -> None:
    """timm's BatchNormAct2d (regression, issue 10: it was taken for a plain BatchNorm2d) gives the same weights and
    predictions as BatchNorm2d followed by the activation module."""

    def build(fused: bool) -> nn.Module:
        torch.manual_seed(0)
        layers: dict[str, nn.Module] = {}
        for index in range(4):  # (the same names: each weight's draw is seeded by its name)
            layers[f"conv{index}"] = nn.Conv2d(8, 8, 3, padding=1, bias=False)
            layers[f"norm{index}"] = BatchNormAct2d(8, act_layer=act) if fused else nn.BatchNorm2d(8)
            if not fused:
                layers[f"act{index}"] = act()
        layers["head"] = nn.Conv2d(8, 8, 3, padding=1)
        return nn.Sequential(OrderedDict(layers)).eval()

    reports = [
        vt.init_model(build(fused), (8, 8, 12, 12), generator=torch.Generator().manual_seed(0))
        for fused in (
            True,
            False,
        )
    ]
    fused, plain = ([row.predicted_output_var for row in report.layers] for report in reports)
    assert fused == pytest.approx(plain, rel=1e-12, abs=0), (fused, plain)
    assert [a.count for a in reports[0].activations] == [a.count for a in reports[1].activations] == [4]


@pytest.mark.parametrize("residual", ["scaled", "zero", "none"])
def test_convnext_layer_scale_is_the_branch_gain(residual: str) -> None:
    """ConvNeXt's layer_scale (read in forward, regression: '.item() on meta tensors', then left at 1e-6): one value
    per block, the gain that gives the branch the residual policy's variance (0 for "zero"); the block's last Linear
    keeps target_var."""
    case = vision_case("convnext")
    report = vt.init_model(case.model, case.example, residual=residual, generator=torch.Generator().manual_seed(0))
    scales = {name: p.detach() for name, p in case.model.named_parameters() if name.endswith("layer_scale")}
    assert len(scales) == 4
    for name, value in scales.items():
        first = float(value.flatten()[0])
        assert bool((value == first).all()), name
        notes = [note for row in report.layers for note in row.notes if note.startswith(name)]
        assert len(notes) == 1, notes
        if residual == "none":
            assert first == 1.0 and "residual='none'" in notes[0], (name, first, notes)
            continue
        assert "branch gain" in notes[0], notes
        if residual == "zero":
            assert first == 0.0, (name, first)
        else:
            assert 0.1 < first < 1.0, (name, first)  # sqrt(2^(1/4) - 1) = 0.43 times sqrt(skip var / 1)
    last = [row for row in report.layers if row.name.endswith("block.5")]
    assert [row.target_var for row in last] == [1.0] * 4


def test_vit_tokens_and_positions_at_the_vit_convention() -> None:
    """ViT's cls_token (concatenated) and pos_embed (added): drawn, not left untouched, with std 0.02 times the std
    of the patch embedding's output measured on a fresh batch (timm's and HF's convention next to a unit stream)."""
    outcome = run_case(vision_case("vit"))
    assert outcome.error is None and not outcome.untouched, outcome.summary()
    model = vision_case("vit").model  # (the same seed: rebuilt only to measure the patch embedding)
    report = vt.init_model(model, vision_case("vit").example, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        patches = model.patch_embed(torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(3)))
    measured = float(patches.double().var())
    for name in ("cls_token", "pos_embed"):
        drawn = float(getattr(model, name).detach().double().pow(2).mean())
        assert 0.8 <= drawn / (0.02**2 * measured) <= 1.25, (name, drawn, measured)
        notes = [note for row in report.layers for note in row.notes if note.startswith(name)]
        assert len(notes) == 1 and "ViT convention" in notes[0], notes


def test_gaussian_calibration_batch_has_enough_rows() -> None:
    """(regression, issue 10) calibrate="gaussian" on 8 images calibrated DenseNet's denselayer3.conv2 to 1.10-1.12x
    its target on fresh batches: the synthesized batch has at least FLOAT_ROWS = 64 rows (the example's when it has
    more), N(the example's mean, variance) entries, index inputs resampled by whole rows; the example's shapes kept
    where dim 0 may not be the batch (a module with batch_first=False, unequal leading sizes)."""
    generator = torch.Generator().manual_seed(0)
    images = 3.0 + 2.0 * torch.randn(8, 3, 16, 16, generator=generator)
    mask = torch.arange(8).repeat_interleave(5).reshape(8, 5)  # (row i holds i: resampled rows stay whole)
    conv = nn.Conv2d(3, 4, 3)
    (batch, drawn_mask) = calibration_batch(conv, "gaussian", (images, mask), None, torch.Generator().manual_seed(1))
    assert batch.shape == (64, 3, 16, 16) and drawn_mask.shape == (64, 5)
    assert all(len(set(row.tolist())) == 1 for row in drawn_mask)
    values = batch.double()
    assert abs(float(values.mean()) - float(images.double().mean())) < 0.03  # (49152 draws: std 2 / 222 = 0.009)
    assert abs(float(values.var()) / float(images.double().var()) - 1) < 0.02  # (std sqrt(2 / 49152) = 0.006)
    (many,) = calibration_batch(conv, "gaussian", (torch.randn(100, 3, 8, 8),), None, None)
    assert many.shape == (100, 3, 8, 8)
    sequence_first = nn.LSTM(3, 4)  # (batch_first=False: dim 0 is time)
    (kept,) = calibration_batch(sequence_first, "gaussian", (torch.randn(8, 2, 3),), None, None)
    assert kept.shape == (8, 2, 3)
    unequal = calibration_batch(conv, "gaussian", (torch.randn(8, 3), torch.randn(4, 3)), None, None)
    assert [t.shape for t in unequal] == [(8, 3), (4, 3)]
