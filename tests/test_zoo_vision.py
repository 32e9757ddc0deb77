"""Issue 10, item 2: standard vision networks as torchvision and timm define them (``tests/zoo/vision.py``): every
weight layer's prediction against its measurement on a fresh batch, every weight written, residual streams bounded
as the residual policy promises."""

from __future__ import annotations

from collections import OrderedDict

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

import varprop.torch as vt  # noqa: E402
from zoo.oracle import SHARE, run_case, stream_growth  # noqa: E402
from zoo.vision import STREAM_PREFIXES, VISION, BatchNormAct2d, vision_case  # noqa: E402

pytestmark = pytest.mark.usefixtures("no_network")

# residual="scaled" doubles a chain's stream; a network of several stages (each a chain, with a downsampling
# convolution or normalization between them) stays within a few times its first block's variance.
STREAM_BOUND = 4.0

WHY = {
    "convnext": "issue 10: RuntimeError 'Tensor.item() cannot be called on meta tensors' (layer_scale read from the "
    "meta trace); then layer_scale untouched and its branches unscaled",
    "mobilenet_v3": "issue 10: squeeze-excitation (gate times its own input) as a product of independent factors: "
    "measured up to 2x the prediction",
    "vit": "issue 10: RuntimeError 'Tensor.item() cannot be called on meta tensors' (cls_token.expand); then "
    "cls_token and pos_embed untouched",
}
CALIBRATED_WHY = {
    "convnext": WHY["convnext"],
    "vit": WHY["vit"],
    "mobilenet_v3": "issue 10: calibrated, only 33% of the layers within [0.9, 1.1] on a fresh batch (the "
    "squeeze-excitation blocks: 0.89-1.19)",
    "densenet": "issue 10: calibrated, denseblock2.denselayer3.conv2 measured 1.12 on a fresh batch (93% within)",
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
    """calibrate='gaussian': >= 95% of the layers within [0.9, 1.1] of the target on a fresh batch (not all: the
    head's 80 outputs per batch measure a variance to ~16%)."""
    outcome = run_case(vision_case(name), calibrate="gaussian")
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
