"""Every layer type of ``init_model`` in small models: predicted output variances against measurement.

Tolerances: see ``torch_helpers.py`` (5 standard errors of the measurement, estimated from 16 independent sub-batches,
plus the O(1/sqrt(width)) error of treating units as independent). Each model is tested with realized weights
(the default) and measured on fresh Gaussian batches.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402, N812

import varprop.torch as vt  # noqa: E402
from torch_helpers import check_predictions, chunked_variances  # noqa: E402

WIDTH = 64


class Functional(nn.Module):
    """Activations as functions (``F.gelu``), torch functions (``torch.tanh``) and tensor methods (``x.relu()``)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c, self.d = (nn.Linear(WIDTH, WIDTH) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.a(x))
        x = torch.tanh(self.b(x))
        x = self.c(x).relu()
        return self.d(F.leaky_relu(x, 0.2) * 0.5)


class Residual(nn.Module):
    def __init__(self, blocks: int = 12) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(WIDTH, WIDTH), nn.ReLU(), nn.Linear(WIDTH, WIDTH)) for _ in range(blocks)
        )
        self.head = nn.Linear(WIDTH, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = x + block(x)
        return self.head(x)


class Attention(nn.Module):
    """Hand-written attention with ``F.scaled_dot_product_attention`` (causal)."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(WIDTH, 3 * WIDTH)
        self.out = nn.Linear(WIDTH, WIDTH)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, width = x.shape
        q, k, v = (t.view(batch, tokens, 4, width // 4).transpose(1, 2) for t in self.qkv(x).chunk(3, dim=-1))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(y.transpose(1, 2).reshape(batch, tokens, width))


class Concat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.left, self.right = nn.Linear(WIDTH, 32), nn.Linear(WIDTH, 32)
        self.out = nn.Linear(64, WIDTH)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.cat([F.elu(self.left(x)), torch.sigmoid(self.right(x))], dim=-1))


def _cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1, groups=2),
        nn.ELU(),
        nn.AvgPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.GroupNorm(8, 64),
        nn.SiLU(),
        nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1),
        nn.Tanh(),
        # Pooling to 2x2 then flattening: the position-dependent means (zero-padding borders, transposed-convolution
        # phases) reach the Linear through the exact mean maps (Stat.spatial).
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.2),
        nn.Linear(128, WIDTH),
    )


def _deep_cnn() -> nn.Module:
    """24 zero-padded ReLU convolutions on 8x8 maps: without the mean maps the border deficit would compound."""
    layers: list[nn.Module] = [nn.Conv2d(3, 16, 3, padding=1), nn.ReLU()]
    for _ in range(23):
        layers += [nn.Conv2d(16, 16, 3, padding=1), nn.ReLU()]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, WIDTH))


def _conv1d() -> nn.Module:
    return nn.Sequential(
        nn.Conv1d(8, 32, 5, padding=2),
        nn.InstanceNorm1d(32, affine=True),
        nn.Mish(),
        nn.Conv1d(32, 32, 3),
        nn.Softplus(),
        nn.AdaptiveMaxPool1d(4),
        nn.Flatten(),
        nn.Linear(128, WIDTH),
    )


def _conv3d() -> nn.Module:
    return nn.Sequential(nn.Conv3d(2, 16, 3, padding=1), nn.SELU(), nn.ConvTranspose3d(16, 8, 2, stride=2), nn.ReLU6())


def _mlp_norms() -> nn.Module:
    return nn.Sequential(
        nn.Linear(WIDTH, WIDTH),
        nn.LayerNorm(WIDTH),
        nn.GELU(approximate="tanh"),
        nn.Linear(WIDTH, WIDTH),
        nn.RMSNorm(WIDTH),
        nn.Hardswish(),
        nn.Linear(WIDTH, WIDTH),
        nn.BatchNorm1d(WIDTH),
        nn.Hardtanh(),
        nn.Linear(WIDTH, WIDTH),
        nn.Softsign(),
        nn.Linear(WIDTH, WIDTH),
    )


def _mha() -> nn.Module:
    return nn.TransformerEncoder(
        nn.TransformerEncoderLayer(WIDTH, 4, 128, dropout=0.1, batch_first=True, norm_first=True),
        2,
        enable_nested_tensor=False,
    )


def _post_norm() -> nn.Module:
    return nn.TransformerEncoderLayer(WIDTH, 4, 128, dropout=0.0, activation="gelu", batch_first=False)


def _gaussian(shape: tuple[int, ...]) -> Callable[[torch.Generator], torch.Tensor]:
    return lambda generator: torch.randn(shape, generator=generator)


CASES = {
    "functional": (Functional, (256, WIDTH)),
    "residual": (Residual, (256, WIDTH)),
    "sdpa": (Attention, (16, 24, WIDTH)),
    "concat": (Concat, (256, WIDTH)),
    "cnn": (_cnn, (32, 3, 16, 16)),
    "deep_cnn": (_deep_cnn, (32, 3, 8, 8)),
    "conv1d": (_conv1d, (64, 8, 20)),
    "conv3d": (_conv3d, (8, 2, 6, 6, 6)),
    "norms": (_mlp_norms, (256, WIDTH)),
    "transformer_pre_norm": (_mha, (16, 24, WIDTH)),
    "transformer_post_norm": (_post_norm, (24, 16, WIDTH)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_predicted_variances_match_measurement(case: str) -> None:
    build, shape = CASES[case]
    torch.manual_seed(0)
    model = build()
    report = vt.init_model(model, shape, generator=torch.Generator().manual_seed(0))
    assert not report.unknown, report.unknown
    measured = chunked_variances(model, _gaussian(shape))
    failures = check_predictions(report, measured)
    assert not failures, "\n".join(failures) + "\n" + str(report)


def test_embedding_with_example_indices() -> None:
    class Tokens(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(50, WIDTH, padding_idx=0)
            self.proj = nn.Linear(WIDTH, WIDTH)

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            return self.proj(F.silu(self.embed(tokens)))

    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 50, (128, 12), generator=generator)
    model = Tokens()
    report = vt.init_model(model, tokens, generator=generator)
    assert float(model.embed.weight[0].detach().abs().max()) == 0.0
    measured = chunked_variances(model, lambda g: torch.randint(0, 50, (128, 12), generator=g))
    assert not check_predictions(report, measured)


def test_shared_module_second_call_is_predicted() -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = nn.Linear(WIDTH, WIDTH)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.layer(torch.tanh(self.layer(x)))

    model = Twice()
    report = vt.init_model(model, (512, WIDTH), generator=torch.Generator().manual_seed(0))
    (row,) = report.layers
    assert row.calls == 2
    values = vt.measure_variances(model, torch.randn(8192, WIDTH, generator=torch.Generator().manual_seed(1)))
    assert values["layer"][0] == pytest.approx(1.0, rel=0.1)
    # the second call sees tanh outputs through the weights chosen for the first: about E[tanh^2] = 0.394
    assert values["layer"][1] == pytest.approx(0.394, rel=0.15)


def test_pooling_assumption_for_white_noise() -> None:
    """Average pooling of independent positions divides the within-channel variance by the window (documented
    assumption); checked on a conv stack fed white noise, where it holds at initialization."""
    model = nn.Sequential(nn.Conv2d(4, 32, 3, padding=1), nn.ReLU(), nn.AvgPool2d(4), nn.Flatten(), nn.Linear(512, 64))
    report = vt.init_model(model, (64, 4, 16, 16), generator=torch.Generator().manual_seed(0))
    measured = chunked_variances(model, _gaussian((64, 4, 16, 16)))
    assert not check_predictions(report, measured)
