"""The training benchmark (``benchmarks/training.py``): its replica training, selection, "trains" and verdicts.

Oracles: ``torch.optim.SGD`` / ``torch.optim.Adam`` stepping one model per replica (the vmap'ed replica trainer
must give the same weights); numpy's argmax over the validation accuracies (the selection); the exact
cross-entropy ln 10 of all-zero logits (the broken all-zeros initialization); hand-built grids for the verdict.
A tiny configuration (4-layer width-32 MLP, 2 seeds, 2 rates per optimizer) runs every initialization.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import _training_setup as setup
import training

SEEDS = (0, 1)
RATES = {"SGD": [1e-2, 1e-1], "Adam": [1e-3, 1e-2]}


def tiny_task() -> training.Task:
    return training.Task(
        key="tiny",
        title="digits, plain MLP, 4 layers, width 32",
        dataset=setup.digits,
        build=lambda act, data: setup.plain_mlp(act, 64, data.classes, 4, 32),
        activations=("tanh",),
        steps=24,
        batch=128,
    )


@pytest.fixture(scope="module")
def tiny_run() -> tuple[training.Results, dict[str, str]]:
    torch.set_num_threads(1)
    inits, unavailable = training.default_inits()
    inits["zeros"] = setup.init_zeros
    config = training.Config(tasks=(tiny_task(),), seeds=SEEDS, learning_rates=RATES)
    return training.run(config, inits, unavailable, lambda text: None), unavailable


def test_every_peer_and_varprop_setting_is_reported(tiny_run: tuple[training.Results, dict[str, str]]) -> None:
    results, unavailable = tiny_run
    for name in [*setup.PEERS, *setup.VARPROP_SETTINGS, "zeros"]:
        for optimizer in RATES:
            key = ("tiny", "tanh", name, optimizer)
            if name in unavailable:
                assert results.missing[key] == "not available", key
                assert key not in results.grids
            else:
                assert key in results.grids, (key, results.missing.get(key))
                assert results.grids[key].val_loss.shape == (len(SEEDS), len(RATES[optimizer]))
    assert "vp variance normal" not in unavailable  # the default setting always runs
    # Availability is detected by calling init_model, not assumed: it agrees with a direct call.
    for name, (objective, distribution) in setup.VARPROP_SETTINGS.items():
        assert (name in unavailable) == (setup.varprop_unavailable(objective, distribution) is not None)
    text = training.report(results, unavailable, "python benchmarks/training.py", (0.0, 0.0), 1.0)
    header = next(line for line in text.splitlines() if line.startswith("| activation | optimizer |"))
    assert all(f" {name} |" in header for name in results.inits)
    rows = [line for line in text.splitlines() if line.startswith("| tanh |")]
    assert len(rows) == len(RATES)
    assert all(row.count("not available") == len(unavailable) for row in rows)


def test_selection_is_the_validation_best(tiny_run: tuple[training.Results, dict[str, str]]) -> None:
    results, _ = tiny_run
    for key, grid in results.grids.items():
        best = grid.best_rate()
        mean_val = grid.val_accuracy.mean(axis=0)
        assert mean_val[best] == mean_val.max(), key
        summary = training.summarize(grid, results.prior_loss["tiny"])
        assert summary.rate == RATES[key[3]][best]
        assert summary.accuracy_mean == pytest.approx(100 * grid.test_accuracy[:, best].mean(), rel=1e-12)
        assert summary.val_loss == pytest.approx(grid.val_loss[:, best].mean(), rel=1e-12, nan_ok=True)


def grid_of(
    val_accuracy: list[list[float]], test_accuracy: list[list[float]], val_loss: list[list[float]]
) -> training.Grid:
    shape = np.array(val_accuracy).shape
    return training.Grid(
        learning_rates=[10.0**-index for index in range(shape[1])],
        initial_val_loss=np.full(shape, 2.3),
        val_loss=np.array(val_loss, dtype=float),
        val_accuracy=np.array(val_accuracy, dtype=float),
        test_accuracy=np.array(test_accuracy, dtype=float),
        seconds=0.0,
    )


def test_selection_ignores_the_test_set_and_breaks_ties_by_validation_loss() -> None:
    # Rate 1 is best on validation (mean 0.9), rate 2 on test: the selection must take rate 1.
    grid = grid_of([[0.5, 0.9, 0.8], [0.5, 0.9, 0.7]], [[0.5, 0.6, 0.99], [0.5, 0.6, 0.99]], [[1.0, 0.3, 0.4]] * 2)
    assert grid.best_rate() == 1
    assert training.summarize(grid, 2.3).accuracy_mean == pytest.approx(60.0, rel=1e-12)
    # Equal validation accuracy: the lower mean validation loss wins; a diverged (nan) loss never does.
    tie = grid_of([[0.9, 0.9, 0.9]] * 2, [[0.1, 0.2, 0.3]] * 2, [[0.5, 0.2, math.nan], [0.5, 0.2, 0.01]])
    assert tie.best_rate() == 1


def test_trains_is_finite_and_at_most_half_the_constant_predictor() -> None:
    grid = grid_of([[0.9, 0.9, 0.9, 0.9]], [[0.9] * 4], [[0.49, 0.5, 0.51, math.nan]])
    assert grid.trains(1.0).tolist() == [[True, True, False, False]]


def test_all_zeros_init_is_reported_as_not_training(tiny_run: tuple[training.Results, dict[str, str]]) -> None:
    results, _ = tiny_run
    prior = results.prior_loss["tiny"]
    for optimizer in RATES:
        zeros = results.grids["tiny", "tanh", "zeros", optimizer]
        # All-zero weights and biases: every logit is 0, the cross-entropy is exactly ln 10.
        np.testing.assert_allclose(zeros.initial_val_loss, math.log(10), rtol=1e-6)
        assert zeros.trains(prior).sum() == 0, zeros.val_loss
        # Only the output bias learns: the net predicts one class for every input (at most 10.3 % of the test set).
        assert training.summarize(zeros, prior).accuracy_mean < 11.0
    # The criterion is not vacuous: on this shallow net the peers do train.
    trained = [
        results.grids["tiny", "tanh", name, optimizer].trains(prior).mean()
        for name in setup.PEERS
        for optimizer in RATES
    ]
    assert max(trained) == 1.0, trained


@pytest.mark.parametrize("optimizer", ["SGD", "Adam"])
def test_replica_training_matches_torch_optim(optimizer: str) -> None:
    torch.set_num_threads(1)
    data = setup.digits()
    template = setup.plain_mlp(nn.Tanh, 64, 10, 3, 16)
    models = []
    for seed in SEEDS:
        torch.manual_seed(seed)
        models.append(setup.plain_mlp(nn.Tanh, 64, 10, 3, 16))
    per_seed = [{name: p.detach().clone() for name, p in model.named_parameters()} for model in models]
    rates = RATES[optimizer]
    batches = training._batches(data, SEEDS, steps=5, batch=64)  # [steps, seeds, batch]
    trainer = training.ReplicaTrainer(template, data)
    lr = torch.tensor(rates, dtype=torch.float32).repeat(len(SEEDS))
    stacked = trainer.fit(training._stack(per_seed, len(rates)), lr, optimizer, batches.repeat_interleave(2, dim=1))
    for seed_index, model in enumerate(models):
        for rate_index, rate in enumerate(rates):
            reference = copy.deepcopy(model)
            if optimizer == "SGD":
                torch_optimizer: torch.optim.Optimizer = torch.optim.SGD(
                    reference.parameters(), lr=rate, momentum=training.MOMENTUM
                )
            else:
                torch_optimizer = torch.optim.Adam(
                    reference.parameters(), lr=rate, betas=training.ADAM_BETAS, eps=training.ADAM_EPS
                )
            for rows in batches[:, seed_index]:
                torch_optimizer.zero_grad()
                nn.functional.cross_entropy(reference(data.x_train[rows]), data.y_train[rows]).backward()
                torch_optimizer.step()
            replica = seed_index * len(rates) + rate_index
            for name, parameter in reference.named_parameters():
                torch.testing.assert_close(stacked[name][replica], parameter.detach(), rtol=1e-5, atol=1e-6)


def test_batches_are_per_seed_epochs_without_repeats() -> None:
    data = setup.digits()
    batches = training._batches(data, SEEDS, steps=10, batch=128)  # 1077 rows: 8 full batches per epoch
    assert batches.shape == (10, len(SEEDS), 128)
    for seed_index in range(len(SEEDS)):
        epoch = batches[:8, seed_index].reshape(-1)
        assert len(torch.unique(epoch)) == 8 * 128  # an epoch never repeats a row
    assert not torch.equal(batches[:, 0], batches[:, 1])  # each seed has its own order


def verdict_results(mine: tuple[list[float], list[float]], peer: tuple[list[float], list[float]]) -> training.Results:
    """One cell where the recommended setting has test accuracies mine[0] and validation losses mine[1] (3 seeds,
    one rate), and one peer (He) likewise."""
    config = training.Config(tasks=(tiny_task(),), seeds=(0, 1, 2), learning_rates={"SGD": [0.1]})
    results = training.Results(config=config, inits=["He", "vp variance normal"], prior_loss={"tiny": 2.0})
    for name, (accuracy, loss) in [("vp variance normal", mine), ("He", peer)]:
        column = [[value] for value in accuracy]
        results.grids["tiny", "tanh", name, "SGD"] = grid_of(column, column, [[value] for value in loss])
    return results


def test_verdict_within_the_seed_spread_and_over_the_grid() -> None:
    # 0.90 +- 0.01 against 0.91 +- 0.02: within the larger std (0.02); both train on every seed.
    met, text = training.verdict(
        verdict_results(([0.89, 0.90, 0.91], [0.3] * 3), ([0.89, 0.91, 0.93], [0.3] * 3)), "tiny", "tanh", "SGD"
    )
    assert met is True, text
    # 0.80 against 0.91 +- 0.02: below.
    met, text = training.verdict(
        verdict_results(([0.79, 0.80, 0.81], [0.3] * 3), ([0.89, 0.91, 0.93], [0.3] * 3)), "tiny", "tanh", "SGD"
    )
    assert met is False and "BELOW" in text.split(";")[0], text
    # As accurate, but one seed's loss is above half the prior (2.0 / 2): trains over 2/3 of the grid vs 3/3.
    met, text = training.verdict(
        verdict_results(([0.9] * 3, [0.3, 0.3, 1.5]), ([0.9] * 3, [0.3] * 3)), "tiny", "tanh", "SGD"
    )
    assert met is False and "BELOW" in text.split(";")[1], text


def test_select_restricts_the_configuration_and_names_bad_choices() -> None:
    config = training.full_config()
    inits = dict(setup.PEERS)
    args = argparse.Namespace(task="digits_mlp", activations="tanh,elu", inits="LSUV,He")
    selected, names = training.select(config, inits, args)
    assert [task.key for task in selected.tasks] == ["digits_mlp"]
    assert selected.tasks[0].activations == ("elu", "tanh")  # the configuration's order
    assert names == ["LSUV", "He"]
    with pytest.raises(SystemExit, match="unknown init 'lsuv'; valid choices: torch default, He"):
        training.select(config, inits, argparse.Namespace(task=None, activations=None, inits="lsuv"))
    with pytest.raises(SystemExit, match="unknown task 'digits'; valid choices: digits_mlp, digits_resmlp"):
        training.select(config, inits, argparse.Namespace(task="digits", activations=None, inits=None))
