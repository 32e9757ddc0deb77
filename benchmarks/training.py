"""Training benchmark: deep plain MLPs on scikit-learn's digits, seven initializations, five activations.

Prints Markdown for the "Training" section of ``docs/benchmarks.md``::

    python benchmarks/training.py            # 3 seeds, about 5 minutes on 2 cores
    python benchmarks/training.py --quick    # 1 seed (smoke run)
    python benchmarks/training.py --write    # also replace the section in docs/benchmarks.md
                                             # and draw docs/figures/training.png

Setup (fixed once for every initialization, never tuned per init):

- data: ``sklearn.datasets.load_digits`` (1797 8x8 images, shipped with scikit-learn, no download), stratified
  split 1437 train / 360 test (``random_state=0``), features standardized with the training set's mean and std;
- model: 30 ``nn.Linear`` layers (64 -> 256, 28 x 256 -> 256, 256 -> 10) with the activation after each of the
  first 29, no normalization, no residual connections;
- optimizer: SGD, learning rate 0.01, momentum 0.9, batch 64 (the training set reshuffled each epoch with a
  per-seed generator, so every initialization of one seed sees the same batches), 5 epochs, cross-entropy;
- a seed fixes the model's construction, the weight draw and the batch order.

Initializations: the modules' own ``reset_parameters`` (torch default), He (``kaiming_normal_``, nonlinearity
relu, zero bias), Glorot (``xavier_normal_``, zero bias), ``lsuv.lsuv_with_singlebatch`` (lsuv 0.3.0; orthogonal,
then unit output std per layer on a batch), ``anyinit.initialize(model, "analytic", shape)`` (AnyInit 0.4.0),
``varprop.torch.init_model(model, shape)`` (analytic) and ``varprop.torch.init_model(model, batch,
calibrate=batch)`` (calibrated). LSUV and varprop calibrated get the same batch: 256 training rows drawn with
the seed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from _docs import replace_section  # benchmarks/_docs.py (the script's directory is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
FIGURE = ROOT / "docs" / "figures" / "training.png"

DEPTH = 30  # weight layers: 1 input layer, 28 hidden, 1 output layer
WIDTH = 256
EPOCHS = 5
BATCH = 64
LEARNING_RATE = 0.01
MOMENTUM = 0.9
CALIBRATION_ROWS = 256  # rows of the training set given to LSUV and to varprop's calibration
THREADS = 2

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
}


@dataclass(frozen=True)
class Data:
    """Standardized digits: training and test tensors."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


@dataclass
class Run:
    """One (activation, init, seed) training run."""

    init_seconds: float
    preact_var_min: float
    preact_var_max: float
    last_mean_squares: list[float]  # per training input: mean over units of the last hidden pre-activation squared
    last_mean_cosine: float  # mean cosine similarity between two different inputs' last hidden pre-activations
    train_loss: list[float] = field(default_factory=list)  # epoch 0 (at init) .. EPOCHS; nan after divergence
    test_accuracy: float = math.nan


def load_data() -> Data:
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data, digits.target, test_size=360, random_state=0, stratify=digits.target
    )
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std[std == 0] = 1.0  # constant pixels (always 0 in the training set) stay 0
    return Data(
        x_train=torch.tensor((x_train - mean) / std, dtype=torch.float32),
        y_train=torch.tensor(y_train, dtype=torch.long),
        x_test=torch.tensor((x_test - mean) / std, dtype=torch.float32),
        y_test=torch.tensor(y_test, dtype=torch.long),
    )


def build_mlp(activation: type[nn.Module], in_features: int = 64, classes: int = 10) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(in_features, WIDTH), activation()]
    for _ in range(DEPTH - 2):
        layers += [nn.Linear(WIDTH, WIDTH), activation()]
    layers.append(nn.Linear(WIDTH, classes))
    return nn.Sequential(*layers)


# --- initializations: each takes (model, calibration batch, seed) and initializes the model in place ---


def init_torch_default(model: nn.Module, batch: torch.Tensor, seed: int) -> None:
    for module in model.modules():
        if isinstance(module, nn.Linear):
            module.reset_parameters()


def init_he(model: nn.Module, batch: torch.Tensor, seed: int) -> None:
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)


def init_glorot(model: nn.Module, batch: torch.Tensor, seed: int) -> None:
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_normal_(module.weight)
                nn.init.zeros_(module.bias)


def init_lsuv(model: nn.Module, batch: torch.Tensor, seed: int) -> None:
    import lsuv

    lsuv.lsuv_with_singlebatch(model, batch, verbose=False)


def init_anyinit(model: nn.Module, batch: torch.Tensor, seed: int) -> None:
    import anyinit

    anyinit.initialize(model, "analytic", tuple(batch.shape), seed=seed)


def init_varprop_analytic(model: nn.Module, batch: torch.Tensor, seed: int) -> None:
    from varprop.torch import init_model

    init_model(model, tuple(batch.shape), generator=torch.Generator().manual_seed(seed))


def init_varprop_calibrated(model: nn.Module, batch: torch.Tensor, seed: int) -> None:
    from varprop.torch import init_model

    init_model(model, batch, calibrate=batch, generator=torch.Generator().manual_seed(seed))


INITS: dict[str, Callable[[nn.Module, torch.Tensor, int], None]] = {
    "torch default": init_torch_default,
    "He": init_he,
    "Glorot": init_glorot,
    "LSUV": init_lsuv,
    "AnyInit analytic": init_anyinit,
    "varprop analytic": init_varprop_analytic,
    "varprop calibrated": init_varprop_calibrated,
}


# --- measurement and training ---


@dataclass(frozen=True)
class Signal:
    """The signal at initialization, on a batch."""

    variances: list[float]  # variance (over rows and units) of every nn.Linear output that feeds an activation
    last_mean_squares: list[float]
    last_mean_cosine: float


@torch.no_grad()
def signal_at_init(model: nn.Sequential, x: torch.Tensor) -> Signal:
    """Pre-activation variance of every hidden layer, and per-input statistics of the last one.

    The pooled variance can be 1 while most inputs carry almost nothing (a few carry the rest) or while all inputs
    point the same way; the per-input mean square and the mean cosine between inputs show both.
    """
    variances: list[float] = []
    hidden = x
    last = x
    modules = list(model)
    for index, module in enumerate(modules):
        hidden = module(hidden)
        if isinstance(module, nn.Linear) and index + 1 < len(modules):
            variances.append(float(hidden.var(unbiased=False)))
            last = hidden
    unit = last / last.norm(dim=1, keepdim=True).clamp_min(1e-30)
    rows = len(unit)
    cosine_sum = float((unit.sum(dim=0) ** 2).sum()) - float((unit**2).sum())  # sum over pairs i != j
    return Signal(
        variances=variances,
        last_mean_squares=(last**2).mean(dim=1).tolist(),
        last_mean_cosine=cosine_sum / (rows * (rows - 1)),
    )


@torch.no_grad()
def full_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float(nn.functional.cross_entropy(model(x), y))


def train_one(activation: str, init: str, seed: int, data: Data) -> Run:
    torch.manual_seed(seed)
    model = build_mlp(ACTIVATIONS[activation])
    rows = torch.randperm(len(data.x_train), generator=torch.Generator().manual_seed(1000 + seed))
    calibration_batch = data.x_train[rows[:CALIBRATION_ROWS]]
    with contextlib.redirect_stdout(io.StringIO()):  # AnyInit / LSUV chatter stays out of the Markdown
        start = time.perf_counter()
        INITS[init](model, calibration_batch, seed)
        init_seconds = time.perf_counter() - start
    signal = signal_at_init(model, data.x_train)
    run = Run(
        init_seconds=init_seconds,
        preact_var_min=min(signal.variances),
        preact_var_max=max(signal.variances),
        last_mean_squares=signal.last_mean_squares,
        last_mean_cosine=signal.last_mean_cosine,
    )

    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)
    shuffle = torch.Generator().manual_seed(seed)
    run.train_loss.append(full_loss(model, data.x_train, data.y_train))
    for _ in range(EPOCHS):
        if not math.isfinite(run.train_loss[-1]):
            run.train_loss.append(math.nan)
            continue
        order = torch.randperm(len(data.x_train), generator=shuffle)
        for start_row in range(0, len(order), BATCH):
            index = order[start_row : start_row + BATCH]
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(data.x_train[index]), data.y_train[index])
            loss.backward()
            optimizer.step()
        epoch_loss = full_loss(model, data.x_train, data.y_train)
        run.train_loss.append(epoch_loss if math.isfinite(epoch_loss) else math.nan)
    if math.isfinite(run.train_loss[-1]):
        with torch.no_grad():
            predicted = model(data.x_test).argmax(dim=1)
        run.test_accuracy = float((predicted == data.y_test).float().mean())
    return run


# --- report ---


def mean_std(values: list[float], digits: int, scale: float = 1.0) -> str:
    finite = [value * scale for value in values if math.isfinite(value)]
    diverged = len(values) - len(finite)
    if not finite:
        return f"diverged ({diverged}/{len(values)})"
    text = f"{np.mean(finite):.{digits}f}"
    if len(finite) > 1:
        text += f" ± {np.std(finite, ddof=1):.{digits}f}"
    if diverged:
        text += f" ({diverged}/{len(values)} diverged)"
    return text


def table(results: dict[tuple[str, str], list[Run]]) -> list[str]:
    lines = [
        "| activation | init | init time, s (best) | pre-act. variance, min – max | last layer: median per-input "
        f"mean square | last layer: mean cosine | train loss, epoch 1 | train loss, epoch {EPOCHS} "
        f"| test accuracy after epoch {EPOCHS}, % |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (activation, init), runs in results.items():
        seconds = min(run.init_seconds for run in runs)
        low = min(run.preact_var_min for run in runs)
        high = max(run.preact_var_max for run in runs)
        median_square = float(np.median([value for run in runs for value in run.last_mean_squares]))
        cosine = float(np.mean([run.last_mean_cosine for run in runs]))
        lines.append(
            f"| {activation} | {init} | {seconds:.3f} | {low:.2g} – {high:.2g} | {median_square:.2g} | {cosine:.2f} "
            f"| {mean_std([run.train_loss[1] for run in runs], 3)} "
            f"| {mean_std([run.train_loss[EPOCHS] for run in runs], 3)} "
            f"| {mean_std([run.test_accuracy for run in runs], 1, scale=100)} |"
        )
    return lines


def _mean_if_all_finite(values: list[float], fallback: float) -> float:
    return float(np.mean(values)) if all(math.isfinite(value) for value in values) else fallback


def ranking(results: dict[tuple[str, str], list[Run]]) -> list[str]:
    """Per activation: the inits ordered by mean training loss after the last epoch (a diverged seed ranks last)."""
    lines = [
        f"| activation | inits by train loss after epoch {EPOCHS} (lowest first) | best test accuracy |",
        "|---|---|---|",
    ]
    for activation in ACTIVATIONS:
        entries = {init: runs for (act, init), runs in results.items() if act == activation}
        if not entries:
            continue
        final_loss = {
            init: _mean_if_all_finite([run.train_loss[EPOCHS] for run in runs], math.inf)
            for init, runs in entries.items()
        }
        accuracy = {
            init: _mean_if_all_finite([run.test_accuracy for run in runs], -math.inf) for init, runs in entries.items()
        }
        order = " < ".join(sorted(entries, key=final_loss.__getitem__))
        best = max(entries, key=accuracy.__getitem__)
        lines.append(f"| {activation} | {order} | {best} ({100 * accuracy[best]:.1f} %) |")
    return lines


def plot(results: dict[tuple[str, str], list[Run]], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise SystemExit("the figure needs matplotlib: pip install 'varprop[plot]'") from error
    activations = [name for name in ACTIVATIONS if any(act == name for act, _ in results)]
    columns = 3
    rows = len(activations) // columns + 1  # one cell more than the panels, for the legend
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), sharey=True, squeeze=False)
    cells = list(axes.flat)
    epochs = np.arange(EPOCHS + 1)
    for axis, activation in zip(cells, activations, strict=False):
        diverged: list[str] = []
        for index, init in enumerate(INITS):
            runs = results.get((activation, init))
            if not runs:
                continue
            curve = np.mean([run.train_loss for run in runs], axis=0)  # nan once any seed diverged
            if not np.isfinite(curve[-1]):
                diverged.append(init)
            line_style = "-" if init.startswith("varprop") else "--"
            axis.plot(epochs, curve, line_style, color=f"C{index}", marker="o", markersize=3, label=init)
        axis.set_title(activation)
        axis.set_xlabel("epoch")
        axis.set_yscale("log")
        axis.grid(True, which="both", alpha=0.3)
        if diverged:
            axis.text(0.98, 0.02, "diverged: " + ", ".join(diverged), transform=axis.transAxes, ha="right", fontsize=7)
    for axis in axes[:, 0]:
        axis.set_ylabel("training loss (mean over seeds)")
    legend_cell = cells[len(activations)]
    legend_cell.axis("off")
    handles, labels = cells[0].get_legend_handles_labels()
    legend_cell.legend(handles, labels, loc="center", title="initialization")
    for axis in cells[len(activations) + 1 :]:
        axis.axis("off")
    figure.suptitle(
        f"Plain MLP, {DEPTH} layers, width {WIDTH}, digits; SGD lr {LEARNING_RATE} momentum {MOMENTUM}, batch {BATCH}"
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def versions() -> str:
    names = ["torch", "numpy", "scikit-learn", "lsuv", "anyinit", "varprop"]
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return f"Python {platform.python_version()}, " + ", ".join(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one seed instead of three (smoke run)")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md and the figure")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    seeds = [0] if args.quick else [0, 1, 2]
    data = load_data()
    start = time.time()
    results: dict[tuple[str, str], list[Run]] = {}
    for activation in ACTIVATIONS:
        for init in INITS:
            results[activation, init] = [train_one(activation, init, seed, data) for seed in seeds]
            print(f"{activation:5s} {init:18s} done at {time.time() - start:6.1f} s", file=sys.stderr)
    total = time.time() - start

    command = "python benchmarks/training.py" + (" --quick" if args.quick else "") + (" --write" if args.write else "")
    lines = [
        "## Training",
        "",
        f"Command: `{command}`",
        "",
        f"Plain MLP, {DEPTH} `nn.Linear` layers (64 → {WIDTH}, {DEPTH - 2} × {WIDTH} → {WIDTH}, {WIDTH} → 10), "
        f"the activation after each of the first {DEPTH - 1}, no normalization or residuals; "
        f"scikit-learn digits, {len(data.x_train)} train / {len(data.x_test)} test (stratified, `random_state=0`), "
        "standardized features; SGD, learning rate "
        f"{LEARNING_RATE}, momentum {MOMENTUM}, batch {BATCH}, {EPOCHS} epochs, the same for every init "
        f"(not tuned); {len(seeds)} seed(s), mean ± std (ddof = 1) over seeds. Train loss: cross-entropy on the "
        "whole training set at the end of the epoch. Signal at initialization, on the whole training set: "
        f"pre-activation variance of every hidden `nn.Linear` output (the {DEPTH - 1} that feed an activation), "
        "pooled over inputs and units, smallest and largest over layers and seeds; at the last hidden layer, the "
        "median over inputs (and seeds) of each input's mean square over units, and the mean cosine similarity "
        "between two different inputs (mean over seeds; near 1 = every input gives nearly the same vector). "
        "Init time: the whole call, best over seeds (robust to other load on the machine; the first call per "
        "process also fills caches, so a single cold call can be slower). "
        f"LSUV and varprop calibrated use the same {CALIBRATION_ROWS} training rows; varprop analytic and AnyInit "
        f"get only the shape ({CALIBRATION_ROWS}, 64) (input variance 1; the standardized training set has "
        f"{float(data.x_train.var()):.3f}: constant pixels stay 0).",
        "",
        *table(results),
        "",
        f"Ranking by mean over seeds (a diverged seed ranks an init last); with {len(seeds)} seed(s), a gap "
        "smaller than the std columns above is not a difference:",
        "",
        *ranking(results),
        "",
        f"![training loss curves](figures/{FIGURE.name})",
        "",
        f"Machine: {cpu_model()}, {os.cpu_count()} cores, torch threads {THREADS}; {versions()}; total {total:.0f} s.",
    ]
    section = "\n".join(lines)
    print(section)
    if args.write:
        plot(results, FIGURE)
        replace_section("training", section)
        print(f"wrote docs/benchmarks.md and {FIGURE.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
