"""Data, models and initializations of the training benchmark (``benchmarks/training.py``).

Everything here is plain PyTorch and scikit-learn; the replica training, the learning-rate selection and the report
are in ``training.py``. An initialization is a function ``(model, batch, seed, activation) -> None`` that
initializes the freshly built ``model`` in place (``batch``: training rows for the data-dependent methods; ``seed``:
the run's seed; ``activation``: the name of the model's activation, for the methods that need a gain).
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from varprop import VarpropError
from varprop.torch import init_model

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "elu": nn.ELU,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
}

# torch.nn.init.calculate_gain knows tanh (5/3) and relu (sqrt 2) but not ELU, SiLU or GELU; for those a user of
# orthogonal_ takes relu's sqrt 2 (all three are rectifier-like for positive inputs).
TORCH_GAIN_NAME = {"elu": "relu", "tanh": "tanh", "relu": "relu", "silu": "relu", "gelu": "relu"}


@dataclass(frozen=True)
class Dataset:
    """A classification set split into standardized train / validation / test tensors."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: int

    @property
    def prior_loss(self) -> float:
        """Validation cross-entropy of the best constant prediction: the training set's class frequencies."""
        counts = torch.bincount(self.y_train, minlength=self.classes).double()
        log_prior = torch.log(counts / counts.sum())
        return float(-log_prior[self.y_val].mean())


def _split(name: str, features: np.ndarray, labels: np.ndarray, holdout: float, shape: tuple[int, ...]) -> Dataset:
    """Stratified train / validation / test split (``holdout`` of the rows each for validation and test).

    Features are standardized with the training rows' mean and std (a feature constant there keeps std 1).
    """
    x_rest, x_test, y_rest, y_test = train_test_split(
        features, labels, test_size=holdout, random_state=0, stratify=labels
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=len(x_test), random_state=0, stratify=y_rest
    )
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std[std == 0] = 1.0  # digits: pixels that are 0 in every training image stay 0

    def tensor(rows: np.ndarray) -> torch.Tensor:
        return torch.tensor((rows - mean) / std, dtype=torch.float32).reshape(len(rows), *shape)

    return Dataset(
        name=name,
        x_train=tensor(x_train),
        y_train=torch.tensor(y_train, dtype=torch.long),
        x_val=tensor(x_val),
        y_val=torch.tensor(y_val, dtype=torch.long),
        x_test=tensor(x_test),
        y_test=torch.tensor(y_test, dtype=torch.long),
        classes=int(labels.max()) + 1,
    )


def digits(image: bool = False) -> Dataset:
    """scikit-learn's digits (1797 8x8 images, shipped with the package): 1077 train / 360 val / 360 test."""
    data = load_digits()
    return _split("digits", data.data, data.target, 360 / 1797, (1, 8, 8) if image else (64,))


def breast_cancer() -> Dataset:
    """scikit-learn's Wisconsin breast cancer (569 rows, 30 features, 2 classes): 341 / 114 / 114."""
    data = load_breast_cancer()
    return _split("breast cancer", data.data, data.target, 114 / 569, (30,))


# --- models ---


def plain_mlp(activation: type[nn.Module], inputs: int, classes: int, depth: int, width: int) -> nn.Sequential:
    """``depth`` Linear layers (inputs -> width, depth - 2 x width -> width, width -> classes), activation between."""
    layers: list[nn.Module] = [nn.Linear(inputs, width), activation()]
    for _ in range(depth - 2):
        layers += [nn.Linear(width, width), activation()]
    layers.append(nn.Linear(width, classes))
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    """``x + fc2(act(fc1(act(x))))``: a pre-activation residual block of two Linear layers."""

    def __init__(self, activation: type[nn.Module], width: int) -> None:
        super().__init__()
        self.act1 = activation()
        self.fc1 = nn.Linear(width, width)
        self.act2 = activation()
        self.fc2 = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch: torch.Tensor = self.fc2(self.act2(self.fc1(self.act1(x))))
        return x + branch


def residual_mlp(activation: type[nn.Module], inputs: int, classes: int, blocks: int, width: int) -> nn.Sequential:
    """Linear stem, ``blocks`` residual blocks, then activation and a Linear head (2 * blocks + 2 weight layers)."""
    body = [ResidualBlock(activation, width) for _ in range(blocks)]
    return nn.Sequential(nn.Linear(inputs, width), *body, activation(), nn.Linear(width, classes))


def small_cnn(activation: type[nn.Module], classes: int, depth: int, channels: int) -> nn.Sequential:
    """``depth`` 3x3 convolutions (padding 1, stride 1) on 8x8 images, the activation after each, a Linear head."""
    layers: list[nn.Module] = [nn.Conv2d(1, channels, 3, padding=1), activation()]
    for _ in range(depth - 1):
        layers += [nn.Conv2d(channels, channels, 3, padding=1), activation()]
    layers += [nn.Flatten(), nn.Linear(channels * 64, classes)]
    return nn.Sequential(*layers)


# --- initializations ---

Init = Callable[[nn.Module, torch.Tensor, int, str], None]


def _weight_layers(model: nn.Module) -> list[nn.Linear | nn.Conv2d]:
    return [module for module in model.modules() if isinstance(module, (nn.Linear, nn.Conv2d))]


def init_torch_default(model: nn.Module, batch: torch.Tensor, seed: int, activation: str) -> None:
    """The modules' own ``reset_parameters`` (already run when the model was built)."""


@torch.no_grad()
def init_he(model: nn.Module, batch: torch.Tensor, seed: int, activation: str) -> None:
    """``kaiming_normal_`` (fan in, relu's gain sqrt 2: He et al. 2015 as users call it), zero biases."""
    for module in _weight_layers(model):
        nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)


@torch.no_grad()
def init_glorot(model: nn.Module, batch: torch.Tensor, seed: int, activation: str) -> None:
    """``xavier_normal_`` (gain 1; Glorot & Bengio 2010), zero biases."""
    for module in _weight_layers(model):
        nn.init.xavier_normal_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


@torch.no_grad()
def init_orthogonal(model: nn.Module, batch: torch.Tensor, seed: int, activation: str) -> None:
    """``orthogonal_`` with ``calculate_gain`` of the activation (``TORCH_GAIN_NAME``; Saxe et al. 2014), zero biases.

    The output layer (no activation after it) gets gain 1.
    """
    layers = _weight_layers(model)
    gain = nn.init.calculate_gain(TORCH_GAIN_NAME[activation])  # type: ignore[arg-type]
    for index, module in enumerate(layers):
        nn.init.orthogonal_(module.weight, gain=gain if index + 1 < len(layers) else 1.0)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def init_lsuv(model: nn.Module, batch: torch.Tensor, seed: int, activation: str) -> None:
    """``lsuv.lsuv_with_singlebatch`` (lsuv 0.3.0): orthogonal weights, then unit output std per layer on ``batch``."""
    import lsuv

    lsuv.lsuv_with_singlebatch(model, batch, verbose=False)


def init_anyinit(model: nn.Module, batch: torch.Tensor, seed: int, activation: str) -> None:
    """``anyinit.initialize(model, "analytic", batch, seed=seed)`` (AnyInit 0.4.0)."""
    import anyinit

    anyinit.initialize(model, "analytic", batch, seed=seed)


@torch.no_grad()
def init_zeros(model: nn.Module, batch: torch.Tensor, seed: int, activation: str) -> None:
    """Every weight and bias 0: a deliberately broken initialization (the tests check it is reported as such)."""
    for parameter in model.parameters():
        parameter.zero_()


def varprop_init(objective: str, distribution: str) -> Init:
    """``varprop.torch.init_model(model, batch, distribution=..., objective=...)`` seeded by the run's seed.

    ``batch`` is the example input (its measured variance is the input variance; no calibration). ``objective`` is
    passed only when it is not the default ``"variance"``, so the variance objective runs on versions without it.
    """

    def initialize(model: nn.Module, batch: torch.Tensor, seed: int, activation: str) -> None:
        options: dict[str, str] = {"distribution": distribution}
        if objective != "variance":
            options["objective"] = objective
        init_model(model, batch, generator=torch.Generator().manual_seed(seed), **options)  # type: ignore[arg-type]

    initialize.__doc__ = f"varprop init_model, objective {objective!r}, distribution {distribution!r}"
    return initialize


PEERS: dict[str, Init] = {
    "torch default": init_torch_default,
    "He": init_he,
    "Glorot": init_glorot,
    "orthogonal": init_orthogonal,
    "LSUV": init_lsuv,
    "AnyInit": init_anyinit,
}

VARPROP_SETTINGS: dict[str, tuple[str, str]] = {  # name -> (objective, distribution)
    "vp variance normal": ("variance", "normal"),
    "vp variance orth.": ("variance", "orthogonal"),
    "vp critical normal": ("critical", "normal"),
    "vp critical orth.": ("critical", "orthogonal"),
}


def varprop_unavailable(objective: str, distribution: str) -> str | None:
    """Why this varprop version cannot run the setting (``None`` when it can): one call on a 3-layer tanh MLP."""
    model = plain_mlp(nn.Tanh, 4, 2, 3, 8)
    try:
        varprop_init(objective, distribution)(model, torch.randn(16, 4), 0, "tanh")
    except (VarpropError, TypeError) as error:
        return f"{type(error).__name__}: {error}"
    return None


def initialize(
    init: Init, build: Callable[[], nn.Module], batch: torch.Tensor, seed: int, activation: str
) -> nn.Module:
    """Build the model under ``torch.manual_seed(seed)`` and initialize it (printing and warnings silenced)."""
    torch.manual_seed(seed)
    model = build()
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # varprop's and the peers' notices about deep unstable nets
        init(model, batch, seed, activation)
    for name, parameter in model.named_parameters():
        if not bool(torch.isfinite(parameter).all()):
            raise FloatingPointError(f"initialization left non-finite values in {name}")
    return model


def log_grid(low: float, high: float, points: int) -> list[float]:
    """``points`` learning rates log-spaced from ``low`` to ``high`` (both included)."""
    return [float(value) for value in np.logspace(math.log10(low), math.log10(high), points)]
