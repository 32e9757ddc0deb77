"""Recurrent layers as users call them: ``nn.RNN`` (tanh, relu), ``nn.LSTM``, ``nn.GRU`` -- two layers, batch first
or not, one or two directions -- on sequences of 32 steps (input 16 features, hidden 32, batch 16)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .case import Batch, Case, example_of

STEPS = 32
FEATURES = 16
HIDDEN = 32
BATCH = 16


def sequences(batch_first: bool) -> Callable[[torch.Generator], Batch]:
    shape = (BATCH, STEPS, FEATURES) if batch_first else (STEPS, BATCH, FEATURES)

    def make(generator: torch.Generator) -> Batch:
        return (torch.randn(shape, generator=generator),)

    return make


RECURRENT: dict[str, Callable[[], nn.RNNBase]] = {
    "rnn_tanh": lambda: nn.RNN(FEATURES, HIDDEN, num_layers=2, nonlinearity="tanh", batch_first=True),
    "rnn_relu": lambda: nn.RNN(FEATURES, HIDDEN, num_layers=2, nonlinearity="relu", batch_first=False),
    "lstm": lambda: nn.LSTM(FEATURES, HIDDEN, num_layers=2, batch_first=True),
    "lstm_bidirectional": lambda: nn.LSTM(FEATURES, HIDDEN, num_layers=2, batch_first=False, bidirectional=True),
    "gru": lambda: nn.GRU(FEATURES, HIDDEN, num_layers=2, batch_first=False),
    "gru_bidirectional": lambda: nn.GRU(FEATURES, HIDDEN, num_layers=2, batch_first=True, bidirectional=True),
}


def recurrent_case(name: str, seed: int = 0) -> Case:
    torch.manual_seed(seed)
    model = RECURRENT[name]()
    fresh = sequences(model.batch_first)
    return Case(name, model.eval(), example_of(fresh, seed), fresh, kind="recurrent")


def step_variances(model: nn.RNNBase, batch: Batch) -> list[float]:
    """Variance of the output hidden state at each of the sequence's steps (all units, directions and samples)."""
    with torch.no_grad():
        output = model(*batch)[0]
    per_step = output if not model.batch_first else output.transpose(0, 1)
    return [float(per_step[t].double().var()) for t in range(per_step.shape[0])]


def gate_blocks(model: nn.RNNBase) -> dict[str, list[torch.Tensor]]:
    """{hidden-to-hidden parameter: its per-gate square blocks} (LSTM 4 gates, GRU 3, RNN 1)."""
    gates = {"LSTM": 4, "GRU": 3}.get(type(model).__name__, 1)
    found = {}
    for name, p in model.named_parameters():
        if name.startswith("weight_hh"):
            found[name] = list(p.detach().chunk(gates, dim=0))
    return found


def print_table() -> None:
    """The table of docs/torch.md ("Recurrent layers"): per model, the predicted output variance against the one
    measured on a fresh sequence (pooled over the 32 steps), and each step's measurement against the report's
    prediction for that step (``settings["step_variances"]``: smallest and largest ratio). Run:
    ``PYTHONPATH=src:tests python -c "from zoo.recurrent import print_table; print_table()"``."""
    from .oracle import run_case

    print(
        "| model | predicted | measured (32 steps pooled) | ratio | step 0 predicted, measured | step ratios "
        "(min, max) |"
    )
    print("|---|---|---|---|---|---|")
    for name in RECURRENT:
        case = recurrent_case(name)
        outcome = run_case(case)
        assert outcome.report is not None, outcome.summary()
        predicted = outcome.report.outputs[0][1]
        (per_step,) = outcome.report.settings["step_variances"].values()
        measured = step_variances(case.model, case.fresh(torch.Generator().manual_seed(7)))
        pooled = sum(measured) / len(measured)
        ratios = [value / step for value, step in zip(measured, per_step, strict=True)]
        print(
            f"| {name} | {predicted:.4f} | {pooled:.4f} | {pooled / predicted:.3f} | {per_step[0]:.4f}, "
            f"{measured[0]:.4f} | {min(ratios):.3f}, {max(ratios):.3f} |"
        )
