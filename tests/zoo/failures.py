"""One small reproducer per row of issue 10's table of failures (and its models), each a ``Case``."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812 - torch's own convention

from .case import Case, example_of, gaussian

WIDTH = 64
ROWS = 256  # batch of the plain reproducers


def _case(name: str, model: nn.Module, shape: tuple[int, ...], seed: int = 0, **extra: object) -> Case:
    fresh = gaussian(shape)
    return Case(name, model.eval(), example_of(fresh, seed), fresh, kind="failure", extra=dict(extra))


def shared_activation(depth: int = 4) -> Case:
    """``nn.Sequential(Linear, act, Linear, act, ...)`` with ONE ``nn.ELU()`` instance (KeyError '3' today)."""
    torch.manual_seed(0)
    act = nn.ELU()
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(WIDTH, WIDTH), act]
    return _case("shared_activation", nn.Sequential(*layers, nn.Linear(WIDTH, WIDTH)), (ROWS, WIDTH))


class MishPlusSquare(nn.Module):
    """A user's activation written as tensor code: x * tanh(softplus(x)) + 0.1 * x ** 2."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.tanh(F.softplus(x)) + 0.1 * x**2


class Log(nn.Module):
    """torch.log as an activation (negative inputs give NaN: varprop should say so, not predict a number)."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.log(x)


def custom_activation(kind: str = "mish_square", depth: int = 3) -> Case:
    """Linear -> custom activation, ``depth`` times, then Linear. ``kind``: ``"mish_square"`` or ``"log"``."""
    torch.manual_seed(0)
    make = MishPlusSquare if kind == "mish_square" else Log
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(WIDTH, WIDTH), make()]
    return _case(f"custom_activation_{kind}", nn.Sequential(*layers, nn.Linear(WIDTH, WIDTH)), (ROWS, WIDTH))


class TiedLinears(nn.Module):
    """Two Linear layers that share one weight (``b.weight = a.weight``), each with its own bias."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(WIDTH, WIDTH)
        self.b = nn.Linear(WIDTH, WIDTH)
        self.b.weight = self.a.weight

    def forward(self, x: Tensor) -> Tensor:
        return self.b(torch.tanh(self.a(x)))


class TiedEmbeddingHead(nn.Module):
    """A language-model toy: embedding, tanh MLP, output head tied to the embedding (``head.weight = embed.weight``)."""

    def __init__(self, vocab: int = 100) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, WIDTH)
        self.hidden = nn.Linear(WIDTH, WIDTH)
        self.head = nn.Linear(WIDTH, vocab, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, ids: Tensor) -> Tensor:
        return self.head(torch.tanh(self.hidden(self.embed(ids))))


def tied_linears() -> Case:
    torch.manual_seed(0)
    return Case(
        "tied_linears",
        TiedLinears().eval(),
        example_of(gaussian((ROWS, WIDTH))),
        gaussian((ROWS, WIDTH)),
        kind="failure",
        tied=(("a.weight", "b.weight"),),
    )


def tied_embedding_head(vocab: int = 100) -> Case:
    torch.manual_seed(0)

    def fresh(generator: torch.Generator) -> tuple[Tensor, ...]:
        return (torch.randint(0, vocab, (32, 16), generator=generator),)

    return Case(
        "tied_embedding_head",
        TiedEmbeddingHead(vocab).eval(),
        example_of(fresh),
        fresh,
        kind="failure",
        tied=(("embed.weight", "head.weight"),),
    )


class EluResidualBlock(nn.Module):
    """elu(x + bn2(conv2(elu(bn1(conv1(x))))))  -- a ResNet-v1 block with ELU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        return F.elu(x + self.bn2(self.conv2(F.elu(self.bn1(self.conv1(x))))))


class EluResNet(nn.Module):
    def __init__(self, blocks: int = 16, channels: int = 16) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, channels, 3, padding=1, bias=False)
        self.blocks = nn.Sequential(*(EluResidualBlock(channels) for _ in range(blocks)))
        self.head = nn.Linear(channels, 10)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.blocks(self.stem(x)).mean(dim=(2, 3)))


def elu_resnet(blocks: int = 16) -> Case:
    """The 16-block ResNet-v1-style net of the issue (8 images of 3 x 16 x 16); streams: the stem and every block."""
    torch.manual_seed(0)
    model = EluResNet(blocks)
    fresh = gaussian((8, 3, 16, 16))
    streams = ("stem", *(f"blocks.{i}" for i in range(blocks)))
    return Case("elu_resnet", model.eval(), example_of(fresh), fresh, kind="failure", streams=streams)


def depthwise_conv() -> Case:
    """A 3x3 depthwise convolution (groups = channels) on 16 x 16 maps: torch's fan_in is 9, the padding-corrected
    effective fan-in 8.2656 (= 9 x (14 x 3 + 2 x 2)^2 / (3 x 16)^2 ... the mean count of taps inside the map)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, groups=8))
    return _case("depthwise_conv", model, (16, 8, 16, 16))


def unstable_chain(depth: int = 24) -> Case:
    """A deep plain SiLU chain (unstable at q = 1): the report's warning must not tell a calibrated call to
    calibrate."""
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(WIDTH, WIDTH), nn.SiLU()]
    return _case("unstable_chain", nn.Sequential(*layers, nn.Linear(WIDTH, WIDTH)), (ROWS, WIDTH))
