"""Training benchmark: does an initialization train, at its own best learning rate? (issue 11, item 5)

Prints Markdown for the "Training" section of ``docs/benchmarks.md``::

    python benchmarks/training.py --quick           # small models, 2 seeds, 3 learning rates: a minute or two
    python benchmarks/training.py --write           # the full configuration; also writes docs/benchmarks.md
                                                    # and docs/figures/training_*.png

Protocol (the same for every initialization):

- data shipped with scikit-learn, no download: digits (1797 8x8 images, 10 classes) and Wisconsin breast cancer
  (569 rows, 30 features, 2 classes), stratified train / validation / test splits (``random_state=0``), features
  standardized with the training rows' statistics;
- models: plain MLPs (30 layers of width 256 on digits), a residual MLP (20 pre-activation blocks of two Linear
  layers) and a small CNN on the 8x8 images; no normalization layers; activations ELU, tanh, ReLU, SiLU, GELU;
- optimizers: SGD with momentum 0.9 and Adam (betas 0.9, 0.999, eps 1e-8), no weight decay, minibatches of
  ``batch`` rows (the training set reshuffled every epoch by a per-seed generator), a fixed number of steps;
- learning rates: a log-spaced grid per optimizer; every (seed, learning rate) of one (initialization, optimizer)
  is one replica of a batch trained at once (``torch.func.functional_call`` + ``vmap`` over stacked parameters,
  per-replica learning rates), all replicas of one seed starting from the same initial weights;
- selection: per (initialization, optimizer) the learning rate with the best mean validation accuracy over seeds
  (ties: the lower mean validation loss); reported at it: test accuracy (mean ± std over seeds, ddof 1) and the
  final validation loss (mean over seeds);
- "trains": a (seed, learning rate) run trains when its final validation loss is finite and at most half the
  validation loss of the best constant prediction (the training set's class frequencies, ``Dataset.prior_loss``);
  the fraction of the grid that trains counts such runs over all seeds x learning rates;
- verdict per cell: varprop's recommended setting (``RECOMMENDED``) meets the issue's criterion when its test
  accuracy is at least the best peer's minus the larger of the two seed stds, and its fraction of the grid that
  trains is at least the largest fraction of any peer.
"""

from __future__ import annotations

import os

# libgomp's threads spin while they wait; on a machine shared with other jobs two spinning threads per process make
# a training step 20-40x slower (measured here: 35 ms with one thread, 1.3 s with two, 70 ms with two passive
# ones). Read when torch loads its OpenMP runtime, so it is set before the import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import contextlib
import dataclasses
import functools
import math
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad_and_value, vmap

import _training_setup as setup  # benchmarks/_training_setup.py (the script's directory is on sys.path)
from _docs import replace_section

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ROOT / "docs" / "figures"
THREADS = 2
MOMENTUM = 0.9  # SGD momentum, PyTorch's convention (buffer = momentum * buffer + grad; no dampening)
ADAM_BETAS = (0.9, 0.999)  # Kingma & Ba 2015, PyTorch's defaults
ADAM_EPS = 1e-8  # idem
TRAINS_FRACTION_OF_PRIOR = 0.5  # "trains": final validation loss <= this x the constant predictor's loss
CALIBRATION_ROWS = 256  # training rows given to every init as `batch` (LSUV measures on them; others read shapes)

# varprop's recommended setting per activation, fixed before the run (theory, not this benchmark's numbers): the
# edge of chaos with orthogonal weights (dynamical isometry for tanh, Pennington et al. 2017); for ReLU, which has
# no non-trivial critical point, the variance objective (He's scale) with orthogonal weights. When a setting is not
# available in the installed varprop, the next one in the list is used and the report says so.
RECOMMENDED: dict[str, tuple[str, ...]] = {
    "elu": ("vp critical orth.", "vp variance orth.", "vp variance normal"),
    "tanh": ("vp critical orth.", "vp variance orth.", "vp variance normal"),
    "relu": ("vp variance orth.", "vp variance normal"),
    "silu": ("vp critical orth.", "vp variance orth.", "vp variance normal"),
    "gelu": ("vp critical orth.", "vp variance orth.", "vp variance normal"),
}


@dataclass(frozen=True)
class Task:
    """One (data set, architecture) with its training budget."""

    key: str  # figure suffix: docs/figures/training_<key>.png
    title: str
    dataset: Callable[[], setup.Dataset]
    build: Callable[[type[nn.Module], setup.Dataset], nn.Module]
    activations: tuple[str, ...]
    steps: int
    batch: int


@dataclass(frozen=True)
class Config:
    tasks: tuple[Task, ...]
    seeds: tuple[int, ...]
    learning_rates: dict[str, list[float]]  # optimizer -> grid


def _inputs(data: setup.Dataset) -> int:
    return int(data.x_train[0].numel())


def full_config() -> Config:
    """The configuration of docs/benchmarks.md: about 10 minutes of 2 idle cores (cost: 24 steps of 12 replicas of
    the 30 x 256 MLP are ~6 CPU-seconds per (init, optimizer); the other tasks together cost about half of that)."""
    return Config(
        tasks=(
            Task(
                "digits_mlp",
                "digits, plain MLP, 30 layers, width 256",
                setup.digits,
                lambda act, data: setup.plain_mlp(act, _inputs(data), data.classes, 30, 256),
                tuple(setup.ACTIVATIONS),
                24,
                64,
            ),
            Task(
                "digits_resmlp",
                "digits, residual MLP, 20 blocks, width 128",
                setup.digits,
                lambda act, data: setup.residual_mlp(act, _inputs(data), data.classes, 20, 128),
                ("elu", "tanh", "relu"),
                24,
                64,
            ),
            Task(
                "digits_cnn",
                "digits 8x8 images, CNN, 4 conv layers of 16 channels",
                lambda: setup.digits(image=True),
                lambda act, data: setup.small_cnn(act, data.classes, 4, 16),
                ("elu", "relu"),
                24,
                64,
            ),
            Task(
                "cancer_mlp",
                "breast cancer, plain MLP, 30 layers, width 128",
                setup.breast_cancer,
                lambda act, data: setup.plain_mlp(act, _inputs(data), data.classes, 30, 128),
                ("tanh", "relu"),
                24,
                64,
            ),
        ),
        seeds=(0, 1, 2),
        # half-decade steps; a first full run on a grid half a decade higher picked its smallest rate for most
        # inits of the 30-layer MLP (SGD 3.2e-3, Adam 3.2e-4), so the grids start half a decade lower
        learning_rates={"SGD": setup.log_grid(1e-3, 10**-1.5, 4), "Adam": setup.log_grid(1e-4, 10**-2.5, 4)},
    )


def quick_config() -> Config:
    all_five = tuple(setup.ACTIVATIONS)
    return Config(
        tasks=(
            Task(
                "digits_mlp",
                "digits, plain MLP, 10 layers, width 64",
                setup.digits,
                lambda act, data: setup.plain_mlp(act, _inputs(data), data.classes, 10, 64),
                all_five,
                16,
                128,
            ),
            Task(
                "digits_resmlp",
                "digits, residual MLP, 4 blocks, width 64",
                setup.digits,
                lambda act, data: setup.residual_mlp(act, _inputs(data), data.classes, 4, 64),
                ("elu",),
                16,
                128,
            ),
            Task(
                "digits_cnn",
                "digits 8x8 images, CNN, 3 conv layers of 8 channels",
                lambda: setup.digits(image=True),
                lambda act, data: setup.small_cnn(act, data.classes, 3, 8),
                ("elu",),
                16,
                128,
            ),
            Task(
                "cancer_mlp",
                "breast cancer, plain MLP, 10 layers, width 64",
                setup.breast_cancer,
                lambda act, data: setup.plain_mlp(act, _inputs(data), data.classes, 10, 64),
                ("tanh",),
                8,
                170,
            ),
        ),
        seeds=(0, 1),
        learning_rates={"SGD": setup.log_grid(3e-3, 3e-1, 3), "Adam": setup.log_grid(3e-4, 3e-2, 3)},
    )


# --- replica training ---


@dataclass
class Grid:
    """Per (seed, learning rate) results of one (task, activation, init, optimizer); arrays shaped [seeds, rates]."""

    learning_rates: list[float]
    initial_val_loss: np.ndarray
    val_loss: np.ndarray
    val_accuracy: np.ndarray
    test_accuracy: np.ndarray
    seconds: float

    def trains(self, prior_loss: float) -> np.ndarray:
        """Boolean [seeds, rates]: the final validation loss is finite and <= TRAINS_FRACTION_OF_PRIOR x prior."""
        trained: np.ndarray = np.isfinite(self.val_loss) & (self.val_loss <= TRAINS_FRACTION_OF_PRIOR * prior_loss)
        return trained

    def best_rate(self) -> int:
        """Index of the learning rate with the best mean validation accuracy (ties: lower mean validation loss)."""
        accuracy = self.val_accuracy.mean(axis=0)
        loss = np.where(np.isfinite(self.val_loss), self.val_loss, np.inf).mean(axis=0)
        order = sorted(range(len(self.learning_rates)), key=lambda index: (-accuracy[index], loss[index]))
        return order[0]


def _stack(per_seed: list[dict[str, torch.Tensor]], rates: int) -> dict[str, torch.Tensor]:
    """[seeds, ...] parameters repeated for every learning rate: replica ``seed * rates + rate``."""
    return {
        name: torch.stack([params[name] for params in per_seed]).repeat_interleave(rates, dim=0).contiguous()
        for name in per_seed[0]
    }


def _batches(data: setup.Dataset, seeds: tuple[int, ...], steps: int, batch: int) -> torch.Tensor:
    """Row indices [steps, seeds, batch]: each seed's own reshuffle every epoch (the last partial batch dropped)."""
    rows = len(data.x_train)
    per_epoch = rows // batch
    if per_epoch == 0:
        raise ValueError(f"batch {batch} is larger than the {rows} training rows")
    epochs = -(-steps // per_epoch)
    indices = []
    for seed in seeds:
        generator = torch.Generator().manual_seed(1000 + seed)
        orders = [torch.randperm(rows, generator=generator)[: per_epoch * batch] for _ in range(epochs)]
        indices.append(torch.cat(orders).reshape(-1, batch)[:steps])
    return torch.stack(indices, dim=1)


class ReplicaTrainer:
    """Trains replicas ``[seeds x rates]`` of one model structure at once with per-replica learning rates."""

    def __init__(self, template: nn.Module, data: setup.Dataset) -> None:
        self.template = template
        self.data = data

        def loss(params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return nn.functional.cross_entropy(functional_call(self.template, params, (x,)), y)

        def logits(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = functional_call(self.template, params, (x,))
            return out

        self.grad = vmap(grad_and_value(loss), in_dims=(0, 0, 0))
        self.logits = vmap(logits, in_dims=(0, None))

    @torch.no_grad()
    def evaluate(
        self, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per replica: cross-entropy and accuracy (a row with a non-finite logit counts as wrong)."""
        out = self.logits(params, x)  # [replicas, rows, classes]
        loss = nn.functional.cross_entropy(out.transpose(1, 2), y.expand(len(out), -1), reduction="none").mean(dim=1)
        finite = torch.isfinite(out).all(dim=2)
        correct = (out.argmax(dim=2) == y) & finite
        return loss.numpy().astype(float), correct.float().mean(dim=1).numpy().astype(float)

    def fit(
        self, params: dict[str, torch.Tensor], lr: torch.Tensor, optimizer: str, replica_rows: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Train the stacked ``params`` in place: one step per ``replica_rows[step]`` (row indices [replicas, batch]).

        SGD: ``buffer = MOMENTUM * buffer + grad; p -= lr * buffer`` (``torch.optim.SGD``, momentum, no dampening).
        Adam: Kingma & Ba 2015 with bias correction, as ``torch.optim.Adam`` (``ADAM_BETAS``, ``ADAM_EPS``).
        """
        if optimizer not in ("SGD", "Adam"):
            raise ValueError(f"unknown optimizer {optimizer!r}; valid choices: 'SGD', 'Adam'")
        state = {name: torch.zeros_like(value) for name, value in params.items()}
        second = {name: torch.zeros_like(value) for name, value in params.items()}
        beta1, beta2 = ADAM_BETAS
        for step, rows in enumerate(replica_rows, start=1):
            grads, _ = self.grad(params, self.data.x_train[rows], self.data.y_train[rows])
            with torch.no_grad():
                for name, value in params.items():
                    rate = lr.reshape(-1, *([1] * (value.dim() - 1)))
                    if optimizer == "SGD":
                        state[name].mul_(MOMENTUM).add_(grads[name])
                        value.sub_(rate * state[name])
                    else:
                        state[name].mul_(beta1).add_(grads[name], alpha=1 - beta1)
                        second[name].mul_(beta2).addcmul_(grads[name], grads[name], value=1 - beta2)
                        denominator = (second[name] / (1 - beta2**step)).sqrt_().add_(ADAM_EPS)
                        value.sub_(rate / (1 - beta1**step) * state[name] / denominator)
        return params

    def train(
        self, per_seed: list[dict[str, torch.Tensor]], rates: list[float], optimizer: str, batches: torch.Tensor
    ) -> Grid:
        """Every (seed, rate) replica from its seed's initial parameters; ``batches``: rows [steps, seeds, batch]."""
        start = time.perf_counter()
        seeds = len(per_seed)
        params = _stack(per_seed, len(rates))
        lr = torch.tensor(rates, dtype=torch.float32).repeat(seeds)  # replica seed * rates + rate -> rates[rate]
        initial_val_loss, _ = self.evaluate(params, self.data.x_val, self.data.y_val)
        self.fit(params, lr, optimizer, batches.repeat_interleave(len(rates), dim=1))
        val_loss, val_accuracy = self.evaluate(params, self.data.x_val, self.data.y_val)
        _, test_accuracy = self.evaluate(params, self.data.x_test, self.data.y_test)

        def grid(values: np.ndarray) -> np.ndarray:
            return values.reshape(seeds, len(rates))

        return Grid(
            learning_rates=list(rates),
            initial_val_loss=grid(initial_val_loss),
            val_loss=grid(np.where(np.isfinite(val_loss), val_loss, np.nan)),
            val_accuracy=grid(val_accuracy),
            test_accuracy=grid(test_accuracy),
            seconds=time.perf_counter() - start,
        )


# --- the whole run ---


@dataclass
class Results:
    """Every cell: ``grids[task, activation, init, optimizer]`` or why it has no numbers (``missing``)."""

    config: Config
    inits: list[str]
    prior_loss: dict[str, float] = field(default_factory=dict)  # task key -> constant predictor's val loss
    grids: dict[tuple[str, str, str, str], Grid] = field(default_factory=dict)
    missing: dict[tuple[str, str, str, str], str] = field(default_factory=dict)
    init_seconds: dict[tuple[str, str, str], float] = field(default_factory=dict)  # best over seeds
    task_seconds: dict[str, float] = field(default_factory=dict)


def default_inits() -> tuple[dict[str, setup.Init], dict[str, str]]:
    """The peers and the four varprop settings, and for each varprop setting this version lacks, why."""
    inits: dict[str, setup.Init] = dict(setup.PEERS)
    unavailable: dict[str, str] = {}
    for name, (objective, distribution) in setup.VARPROP_SETTINGS.items():
        inits[name] = setup.varprop_init(objective, distribution)
        reason = setup.varprop_unavailable(objective, distribution)
        if reason is not None:
            unavailable[name] = reason
    return inits, unavailable


def run(
    config: Config, inits: dict[str, setup.Init], unavailable: dict[str, str], log: Callable[[str], None]
) -> Results:
    results = Results(config=config, inits=list(inits))
    for task in config.tasks:
        task_start = time.perf_counter()
        data = task.dataset()
        results.prior_loss[task.key] = data.prior_loss
        batches = _batches(data, config.seeds, task.steps, task.batch)
        for activation in task.activations:
            act = setup.ACTIVATIONS[activation]
            trainer = ReplicaTrainer(task.build(act, data), data)
            build = functools.partial(task.build, act, data)
            for name, init in inits.items():
                cells = [(task.key, activation, name, optimizer) for optimizer in config.learning_rates]
                if name in unavailable:
                    results.missing.update(dict.fromkeys(cells, "not available"))
                    continue
                per_seed: list[dict[str, torch.Tensor]] = []
                seconds = math.inf
                try:
                    for seed in config.seeds:
                        rows = torch.randperm(len(data.x_train), generator=torch.Generator().manual_seed(seed))
                        batch = data.x_train[rows[:CALIBRATION_ROWS]]
                        began = time.perf_counter()
                        model = setup.initialize(init, build, batch, seed, activation)
                        seconds = min(seconds, time.perf_counter() - began)
                        per_seed.append({key: value.detach().clone() for key, value in model.named_parameters()})
                except Exception as error:  # a peer's or varprop's refusal is a result: reported by name
                    results.missing.update(dict.fromkeys(cells, f"refused: {type(error).__name__}: {error}"))
                    log(f"{task.key} {activation} {name}: {type(error).__name__}: {error}")
                    continue
                results.init_seconds[task.key, activation, name] = seconds
                for optimizer, rates in config.learning_rates.items():
                    grid = trainer.train(per_seed, rates, optimizer, batches)
                    results.grids[task.key, activation, name, optimizer] = grid
                    best = grid.best_rate()
                    log(
                        f"{task.key:14s} {activation:5s} {name:19s} {optimizer:4s} "
                        f"test {100 * grid.test_accuracy[:, best].mean():5.1f} % at lr {rates[best]:.1e}, "
                        f"trains {grid.trains(data.prior_loss).mean():4.0%}, {grid.seconds:5.1f} s"
                    )
        results.task_seconds[task.key] = time.perf_counter() - task_start
    return results


# --- summaries and verdicts ---


@dataclass(frozen=True)
class Summary:
    """One (task, activation, init, optimizer) at its selected learning rate."""

    rate: float
    edge: str  # "" or a note when the selected rate is the grid's smallest / largest
    accuracy_mean: float  # test accuracy, %
    accuracy_std: float
    val_loss: float  # final validation loss, mean over seeds (nan when a seed diverged)
    trains: float  # fraction of the (seed, rate) grid that trains


def summarize(grid: Grid, prior_loss: float) -> Summary:
    best = grid.best_rate()
    accuracy = 100 * grid.test_accuracy[:, best]
    edge = "↓" if best == 0 else "↑" if best == len(grid.learning_rates) - 1 else ""
    return Summary(
        rate=grid.learning_rates[best],
        edge=edge,
        accuracy_mean=float(accuracy.mean()),
        accuracy_std=float(accuracy.std(ddof=1)) if len(accuracy) > 1 else 0.0,
        val_loss=float(grid.val_loss[:, best].mean()),
        trains=float(grid.trains(prior_loss).mean()),
    )


def recommended(results: Results, task: str, activation: str) -> str | None:
    """The first of ``RECOMMENDED[activation]`` with numbers in every optimizer's cell."""
    for name in RECOMMENDED[activation]:
        if all((task, activation, name, optimizer) in results.grids for optimizer in results.config.learning_rates):
            return name
    return None


def verdict(results: Results, task: str, activation: str, optimizer: str) -> tuple[bool | None, str]:
    """(met?, text): the recommended varprop setting against the best peer (by test accuracy) and the widest peer."""
    prior = results.prior_loss[task]
    choice = recommended(results, task, activation)
    peers = {
        name: summarize(results.grids[task, activation, name, optimizer], prior)
        for name in setup.PEERS
        if (task, activation, name, optimizer) in results.grids
    }
    if choice is None or not peers:
        return None, "no recommended varprop setting or no peer with numbers"
    mine = summarize(results.grids[task, activation, choice, optimizer], prior)
    best = max(peers, key=lambda name: peers[name].accuracy_mean)
    widest = max(peers, key=lambda name: peers[name].trains)
    spread = max(mine.accuracy_std, peers[best].accuracy_std)
    accurate = mine.accuracy_mean >= peers[best].accuracy_mean - spread
    wide = mine.trains >= peers[widest].trains
    text = (
        f"{choice}: {mine.accuracy_mean:.1f} vs {best} {peers[best].accuracy_mean:.1f} (spread {spread:.1f}) "
        f"{'ok' if accurate else 'BELOW'}; grid {mine.trains:.0%} vs {widest} {peers[widest].trains:.0%} "
        f"{'ok' if wide else 'BELOW'}"
    )
    return accurate and wide, text


def _cell(results: Results, key: tuple[str, str, str, str]) -> str:
    if key in results.missing:
        return "refused" if results.missing[key].startswith("refused") else "not available"
    summary = summarize(results.grids[key], results.prior_loss[key[0]])
    loss = f"{summary.val_loss:.2g}" if math.isfinite(summary.val_loss) else "nan"
    return (
        f"{summary.accuracy_mean:.1f} ± {summary.accuracy_std:.1f}<br>{summary.rate:.0e}{summary.edge} · {loss} · "
        f"{summary.trains:.0%}"
    )


def task_table(results: Results, task: Task) -> list[str]:
    names = results.inits
    lines = [
        f"| activation | optimizer | {' | '.join(names)} | verdict |",
        "|---|---|" + "---|" * len(names) + "---|",
    ]
    for activation in task.activations:
        for optimizer in results.config.learning_rates:
            met, text = verdict(results, task.key, activation, optimizer)
            mark = {True: "**meets**", False: "**below**", None: "n/a"}[met]
            cells = " | ".join(_cell(results, (task.key, activation, name, optimizer)) for name in names)
            lines.append(f"| {activation} | {optimizer} | {cells} | {mark}: {text} |")
    return lines


# --- figure ---


def plot(results: Results, task: Task, path: Path) -> None:
    """Test accuracy (mean ± std over seeds) against the learning rate; a ring marks each init's selected rate."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise SystemExit("the figure needs matplotlib: pip install 'varprop[plot]'") from error
    optimizers = list(results.config.learning_rates)
    rows = len(task.activations)
    figure, axes = plt.subplots(
        rows, len(optimizers), figsize=(5.0 * len(optimizers) + 2.4, 2.6 * rows + 0.6), squeeze=False, sharey=True
    )
    for row, activation in enumerate(task.activations):
        for column, optimizer in enumerate(optimizers):
            axis = axes[row, column]
            for index, name in enumerate(results.inits):
                grid = results.grids.get((task.key, activation, name, optimizer))
                if grid is None:
                    continue
                accuracy = 100 * grid.test_accuracy
                style = "-" if name.startswith("vp ") else "--"
                color = f"C{index % 10}"
                axis.errorbar(
                    grid.learning_rates,
                    accuracy.mean(axis=0),
                    yerr=accuracy.std(axis=0),
                    fmt=style,
                    color=color,
                    marker="o",
                    markersize=3,
                    capsize=2,
                    label=name,
                    linewidth=1.2,
                )
                best = grid.best_rate()
                axis.plot(
                    grid.learning_rates[best], accuracy[:, best].mean(), "o", markersize=9, mfc="none", color=color
                )
            axis.set_xscale("log")
            axis.set_ylim(0, 100)
            axis.grid(True, which="both", alpha=0.3)
            axis.set_title(f"{activation}, {optimizer}", fontsize=9)
            if row == rows - 1:
                axis.set_xlabel("learning rate")
            if column == 0:
                axis.set_ylabel("test accuracy, %")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="center right", fontsize=8, title="initialization")
    figure.suptitle(f"{task.title}: test accuracy vs learning rate ({len(results.config.seeds)} seeds)", fontsize=10)
    figure.tight_layout(rect=(0, 0, 1 - 2.4 / (5.0 * len(optimizers) + 2.4), 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


# --- report ---


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def versions() -> str:
    found = []
    for name in ["torch", "numpy", "scikit-learn", "lsuv", "anyinit", "varprop"]:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return f"Python {platform.python_version()}, " + ", ".join(found)


def git_commit() -> str:
    """The checkout's commit (short hash, "+ changes" when the tree differs from it), or "unknown"."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + (" + changes" if dirty.strip() else "")


def report(
    results: Results,
    unavailable: dict[str, str],
    command: str,
    load: tuple[float, float],
    total: float,
    cpu: float | None = None,
) -> str:
    config = results.config
    grids = "; ".join(
        f"{optimizer} " + ", ".join(f"{rate:.1e}" for rate in rates)
        for optimizer, rates in config.learning_rates.items()
    )
    lines = [
        "## Training",
        "",
        f"Command: `{command}`",
        "",
        "Does each initialization train, at its own best learning rate? Protocol (the docstring of "
        "`benchmarks/training.py` has every detail): SGD (momentum 0.9) and Adam, learning-rate grids "
        f"{grids}; {len(config.seeds)} seeds; all seeds x rates of one (init, optimizer) trained at once as "
        "replicas (`torch.func.vmap`), each seed's replicas from the same initial weights; the rate with the best "
        "mean validation accuracy is selected. No normalization layers, no weight decay, no schedule.",
        "",
        "A cell: test accuracy in % (mean ± std over seeds) at the selected rate; below it the selected rate "
        "(↓/↑: the grid's smallest/largest, so the optimum may lie outside), the final validation loss (mean over "
        "seeds) and the fraction of the grid (seeds x rates) that trains: final validation loss finite and at most "
        f"{TRAINS_FRACTION_OF_PRIOR} x that of the constant prediction by class frequencies. Verdict: varprop's "
        "recommended setting for the activation (below) meets the issue's criterion when its accuracy is at least the "
        "best peer's minus the larger of the two stds and it trains over at least the largest fraction of any peer.",
        "",
        "Peers: torch default (`reset_parameters`), He (`kaiming_normal_`, relu gain, zero bias), Glorot "
        "(`xavier_normal_`), orthogonal (`orthogonal_` with `calculate_gain` of tanh or relu, relu's for ELU/SiLU/"
        f"GELU; gain 1 on the output layer), LSUV (lsuv 0.3.0, on {CALIBRATION_ROWS} training rows), AnyInit "
        "(0.4.0, analytic). varprop: `init_model(model, batch, objective=..., distribution=...)` with the same "
        f"{CALIBRATION_ROWS} rows as example input (their variance is the input variance; no calibration).",
        "",
        "Recommended varprop setting per activation (fixed before the run, from theory; the first available one is "
        "used): " + "; ".join(f"{act}: {' → '.join(names)}" for act, names in RECOMMENDED.items()) + ".",
    ]
    if unavailable:
        lines += ["", "Not available in this varprop version:"]
        lines += [f"- {name}: `{reason}`" for name, reason in unavailable.items()]
    failures = sorted(
        {(key[0], key[1], key[2], reason) for key, reason in results.missing.items() if reason != "not available"}
    )
    if failures:
        lines += ["", "Initializations that refused a model:"]
        lines += [f"- {task}, {act}, {name}: `{reason}`" for task, act, name, reason in failures]
    met = [
        verdict(results, task.key, act, opt)[0]
        for task in config.tasks
        for act in task.activations
        for opt in config.learning_rates
    ]
    for task in config.tasks:
        task_met = [
            verdict(results, task.key, act, opt)[0] for act in task.activations for opt in config.learning_rates
        ]
        lines += [
            "",
            f"### {task.title}",
            "",
            f"{task.steps} steps of {task.batch} rows; constant-prediction validation loss "
            f"{results.prior_loss[task.key]:.3f}; {results.task_seconds[task.key]:.0f} s. Criterion met in "
            f"{sum(m is True for m in task_met)} of {len(task_met)} cells.",
            "",
            *task_table(results, task),
            "",
            f"![accuracy vs learning rate, {task.title}](figures/training_{task.key}.png)",
        ]
    lines += [
        "",
        f"Criterion met in {sum(m is True for m in met)} of {len(met)} cells over all tasks.",
        "",
        f"Machine: {cpu_model()}, {os.cpu_count()} cores, torch threads {THREADS}; load average {load[0]:.2f} at the "
        f"start, {load[1]:.2f} at the end (the machine is shared: other jobs slow the wall time, not the numbers); "
        f"{versions()}; commit {git_commit()}; total {total:.0f} s"
        + (
            "."
            if cpu is None
            else f", CPU time of both threads {cpu:.0f} s (other jobs inflate it less than the wall time)."
        ),
    ]
    return "\n".join(lines)


def print_grids(results: Results) -> None:
    """Every cell's per-(seed, rate) arrays: initial and final validation loss, validation and test accuracy."""
    with np.printoptions(precision=3, suppress=True, linewidth=120):
        for (task, activation, name, optimizer), grid in results.grids.items():
            print(f"\n{task} {activation} {name} {optimizer}; rows: seeds {list(results.config.seeds)}, columns: rates")
            print("  rates", ", ".join(f"{rate:.1e}" for rate in grid.learning_rates))
            for label, values in [
                ("initial val loss", grid.initial_val_loss),
                ("final val loss", grid.val_loss),
                ("val accuracy", grid.val_accuracy),
                ("test accuracy", grid.test_accuracy),
            ]:
                print(f"  {label}:\n{values}")


def select(config: Config, inits: dict[str, setup.Init], args: argparse.Namespace) -> tuple[Config, list[str]]:
    """The configuration restricted to ``--task`` / ``--activations`` / ``--inits`` (each a comma-separated list)."""
    keys = args.task.split(",") if args.task else [task.key for task in config.tasks]
    wanted_inits = args.inits.split(",") if args.inits else list(inits)
    for name in wanted_inits:
        if name not in inits:
            raise SystemExit(f"unknown init {name!r}; valid choices: {', '.join(inits)}")
    tasks = []
    for task in config.tasks:
        if task.key not in keys:
            continue
        activations = tuple(a for a in task.activations if not args.activations or a in args.activations.split(","))
        tasks.append(dataclasses.replace(task, activations=activations))
    if not tasks:
        raise SystemExit(f"unknown task {args.task!r}; valid choices: {', '.join(task.key for task in config.tasks)}")
    return dataclasses.replace(config, tasks=tuple(tasks)), wanted_inits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small models, 2 seeds, 3 learning rates")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md and the figures")
    parser.add_argument("--task", help="only these tasks (comma-separated keys, e.g. digits_mlp)")
    parser.add_argument("--activations", help="only these activations (comma-separated)")
    parser.add_argument("--inits", help="only these initializations (comma-separated names as in the table)")
    parser.add_argument("--grids", action="store_true", help="also print every cell's per-(seed, rate) arrays")
    args = parser.parse_args()
    partial = bool(args.task or args.activations or args.inits)
    if partial and args.write:
        parser.error("--write needs the whole configuration (no --task, --activations or --inits)")
    torch.set_num_threads(THREADS)
    torch.set_flush_denormal(True)  # diverging replicas must not slow the others with denormal arithmetic
    config = quick_config() if args.quick else full_config()
    start_load = os.getloadavg()[0]
    start, start_cpu = time.perf_counter(), time.process_time()
    inits, unavailable = default_inits()
    config, names = select(config, inits, args)
    inits = {name: inits[name] for name in names}
    results = run(config, inits, unavailable, lambda text: print(text, file=sys.stderr, flush=True))
    total = time.perf_counter() - start
    command = "python benchmarks/training.py " + " ".join(sys.argv[1:])
    cpu = time.process_time() - start_cpu
    section = report(results, unavailable, command.strip(), (start_load, os.getloadavg()[0]), total, cpu)
    print(section)
    if args.grids:
        print_grids(results)
    if args.write:
        for task in config.tasks:
            plot(results, task, FIGURES / f"training_{task.key}.png")
        replace_section("training", section)
        print("wrote docs/benchmarks.md and docs/figures/training_*.png", file=sys.stderr)


if __name__ == "__main__":
    main()
