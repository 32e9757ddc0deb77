"""Sharded (FSDP2 / DTensor) and meta-device initialization, run on 2 CPU processes with the gloo backend.

This file is also the worker: the module fixture starts ``python tests/test_torch_sharded.py RANK WORLD INIT OUT``
twice (a ``file://`` rendezvous in ``tmp_path``, a timeout so that a hang fails instead of blocking), each process
runs every distributed step of ``_CHECKS`` and saves what it saw; the tests compare that with the same steps done
here, in one process, on unsharded models (independent code paths: plain tensors, no collectives).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import traceback
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import varprop  # noqa: E402
import varprop.torch as vt  # noqa: E402
from varprop import VarpropValueError  # noqa: E402

WORLD = 2
TIMEOUT_S = 240
# Linear of the std checks: 383 rows do not split evenly over 2 ranks (192 + 191).
ROWS, COLS = 383, 300
BATCH, WIDTH, OUT = 64, 64, 17
DISTRIBUTIONS = ("normal", "truncated_normal", "uniform", "orthogonal")


def _std_tolerance(count: int) -> float:
    """5 relative standard errors of a sample std of ``count`` normal draws, 1/sqrt(2n) (delta method on the
    chi-square variance); uniform and truncated normal draws have a smaller kurtosis, so the bound holds for them."""
    return 5.0 / math.sqrt(2.0 * count)


# --- models and data shared by the workers and the tests -----------------------------------------------------------


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(WIDTH, WIDTH), nn.ELU(), nn.Linear(WIDTH, WIDTH), nn.ELU(), nn.Linear(WIDTH, OUT))


def _cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 13, 3, stride=2, padding=1),
        nn.GELU(),
        nn.ConvTranspose2d(13, 6, 4, stride=2, padding=1),
        nn.ELU(),
        nn.Flatten(),
        nn.Linear(6 * 8 * 8, 10),
    )


def _embedder() -> nn.Module:
    return nn.Sequential(nn.Embedding(40, 24, padding_idx=0), nn.Linear(24, 24), nn.Tanh(), nn.Linear(24, 5))


class _Gated(nn.Module):
    """A forward with data-dependent control flow: torch.fx can not trace it (init_model records a forward pass)."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Linear(WIDTH, WIDTH)
        self.act = nn.SiLU()
        self.out = nn.Linear(WIDTH, OUT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.act(self.inner(x))
        if bool(hidden.abs().sum() >= 0):
            hidden = hidden * 1.0
        return self.out(hidden)


def _batch(kind: str, seed: int) -> torch.Tensor:
    """The whole batch of a check; rank r uses rows [r B / W, (r + 1) B / W)."""
    generator = torch.Generator().manual_seed(seed)
    if kind == "cnn":
        return torch.randn(8, 3, 8, 8, generator=generator) + 0.2
    if kind == "embedder":
        return torch.randint(0, 40, (BATCH, 6), generator=generator)
    return torch.randn(BATCH, WIDTH, generator=generator) * 1.3 + 0.4


def _part(batch: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    return batch.chunk(world)[rank]


FACTORIES: dict[str, Callable[[], nn.Module]] = {"mlp": _mlp, "cnn": _cnn, "embedder": _embedder, "gated": _Gated}


def _rows(report: Any) -> list[tuple[str, float, float | None, float | None]]:
    """(name, layer type and what follows, std, measured variance, calibration scale) of each report row."""
    return [
        (f"{row.name} {row.layer_type} {row.follows}", row.std, row.measured_var, row.calibration_scale)
        for row in report.layers
    ]


# --- the worker ----------------------------------------------------------------------------------------------------


def _sharded(factory: Callable[[], nn.Module], mesh: Any) -> nn.Module:
    """Built on the meta device, every module with parameters and the root sharded with FSDP2, then allocated."""
    from torch.distributed.fsdp import fully_shard

    with torch.device("meta"):
        model = factory()
    for module in model.children():
        if any(True for _ in module.parameters()):
            fully_shard(module, mesh=mesh)
    fully_shard(model, mesh=mesh)
    model.to_empty(device="cpu")
    return model


def _full_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: param.full_tensor().detach().clone() for name, param in model.named_parameters()}


def _placements(model: nn.Module) -> dict[str, str]:
    return {
        name: f"{type(param).__name__} {getattr(param, 'placements', None)}" for name, param in model.named_parameters()
    }


def _check_init(rank: int, world: int, mesh: Any) -> dict[str, Any]:
    """init_ on the weight of an FSDP2-sharded Linear built on the meta device, each distribution, seeded."""
    out: dict[str, Any] = {}
    for distribution in DISTRIBUTIONS:
        layer = _sharded(lambda: nn.Linear(COLS, ROWS), mesh)
        generator = torch.Generator().manual_seed(5)
        vt.init_(layer.weight, "elu", distribution=distribution, generator=generator)
        out[distribution] = layer.weight.full_tensor().detach()
        out[f"{distribution}/local_rows"] = layer.weight.to_local().shape[0]
    # init_module_ on a sharded Embedding with a padding row held by rank 1 only
    table = _sharded(lambda: nn.Embedding(9, 4, padding_idx=7), mesh)
    vt.init_module_(table, generator=torch.Generator().manual_seed(6))
    out["embedding"] = table.weight.full_tensor().detach()
    return out


def _check_global_rng(rank: int, world: int, mesh: Any) -> dict[str, Any]:
    """No generator: ranks seeded differently (as data loaders often are) still agree on rank 0's draw."""
    layer = _sharded(lambda: nn.Linear(COLS, ROWS - 1), mesh)
    torch.manual_seed(100 + rank)
    vt.init_(layer.weight, "gelu")
    return {"full": layer.weight.full_tensor().detach(), "local": layer.weight.to_local().detach().clone()}


def _check_placements(rank: int, world: int, mesh: Any) -> dict[str, Any]:
    """init_ on DTensors with Shard(1) and Replicate placements (not FSDP's): same global tensor."""
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor

    out = {}
    for label, placement in (("shard1", Shard(1)), ("replicate", Replicate())):
        weight = distribute_tensor(torch.zeros(ROWS, COLS), mesh, [placement])
        vt.init_(weight, "elu", generator=torch.Generator().manual_seed(5))
        out[label] = weight.full_tensor()
    return out


def _check_one_rank(rank: int, world: int, mesh: Any) -> dict[str, Any]:
    """The same seeded init_ on a mesh of one rank (a subgroup holding rank 0)."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import DeviceMesh

    group = dist.new_group([0])
    if rank != 0:
        return {}
    layer = _sharded(lambda: nn.Linear(COLS, ROWS), DeviceMesh.from_group(group, "cpu"))
    vt.init_(layer.weight, "elu", generator=torch.Generator().manual_seed(5))
    return {"full": layer.weight.full_tensor().detach()}


def _count_gathers() -> Callable[[], int]:
    """Count FSDP unshards (parameter all-gathers) and DTensor redistributions from now on."""
    from torch.distributed.fsdp._fully_shard._fsdp_param_group import FSDPParamGroup
    from torch.distributed.tensor import DTensor

    calls = [0]
    for owner, name in ((FSDPParamGroup, "unshard"), (DTensor, "redistribute"), (DTensor, "full_tensor")):
        original = getattr(owner, name)

        def counted(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            calls[0] += 1
            return _original(*args, **kwargs)

        setattr(owner, name, counted)
    return lambda: calls[0]


def _check_models(rank: int, world: int, mesh: Any) -> dict[str, Any]:
    """init_model analytic and calibrated on sharded models, each rank passing its part of the batch."""
    gathers = _count_gathers()
    out: dict[str, Any] = {}
    for kind, factory in FACTORIES.items():
        batch = _batch(kind, seed=3)
        model = _sharded(factory, mesh)
        before = gathers()
        report = vt.init_model(model, _part(batch, rank, world), generator=torch.Generator().manual_seed(11))
        out[f"{kind}/analytic/gathers"] = gathers() - before
        out[f"{kind}/analytic/rows"] = _rows(report)
        out[f"{kind}/analytic/settings"] = dict(report.settings)
        out[f"{kind}/analytic/placements"] = _placements(model)
        out[f"{kind}/analytic/state"] = _full_state(model)
        model = _sharded(factory, mesh)
        calibration = _batch(kind, seed=4)
        report = vt.init_model(
            model,
            _part(batch, rank, world),
            calibrate=_part(calibration, rank, world),
            generator=torch.Generator().manual_seed(11),
        )
        out[f"{kind}/calibrated/rows"] = _rows(report)
        out[f"{kind}/calibrated/placements"] = _placements(model)
        out[f"{kind}/calibrated/state"] = _full_state(model)
    for kind in ("mlp", "cnn"):  # issue 11: orthogonal matrices are QRs of the whole global draw on every rank
        model = _sharded(FACTORIES[kind], mesh)
        batch = _batch(kind, seed=3)
        report = vt.init_model(
            model, _part(batch, rank, world), distribution="orthogonal", generator=torch.Generator().manual_seed(11)
        )
        out[f"{kind}/orthogonal/rows"] = _rows(report)
        out[f"{kind}/orthogonal/state"] = _full_state(model)
    return out


def _check_hsdp(rank: int, world: int, mesh: Any) -> dict[str, Any]:
    """HSDP on a 2-D mesh (replicate 2, shard 1): every rank holds whole tensors, the batch is still split."""
    from torch.distributed.device_mesh import init_device_mesh

    mesh2d = init_device_mesh("cpu", (world, 1), mesh_dim_names=("replicate", "shard"))
    model = _sharded(_mlp, mesh2d)
    report = vt.init_model(
        model,
        _part(_batch("mlp", 3), rank, world),
        calibrate=_part(_batch("mlp", 4), rank, world),
        generator=torch.Generator().manual_seed(11),
    )
    return {"rows": _rows(report), "state": _full_state(model), "placements": _placements(model)}


def _check_column_sharded(rank: int, world: int, mesh: Any) -> dict[str, Any]:
    """Analytic init_model on an MLP whose weights are DTensors sharded along dim 1 (per-unit sums all-reduced)."""
    from torch.distributed.tensor import Shard, distribute_tensor

    model = _mlp()
    for module in model:
        if isinstance(module, nn.Linear):
            module.weight = nn.Parameter(distribute_tensor(module.weight.detach(), mesh, [Shard(1)]))
            module.bias = nn.Parameter(distribute_tensor(module.bias.detach(), mesh, [Shard(0)]))
    report = vt.init_model(model, _part(_batch("mlp", 3), rank, world), generator=torch.Generator().manual_seed(11))
    return {"rows": _rows(report), "state": _full_state(model)}


def _check_errors(rank: int, world: int, mesh: Any) -> dict[str, Any]:
    """Meta tensors are refused; a calibration batch that does not fit leaves the sharded model as it was."""
    out: dict[str, Any] = {}
    with torch.device("meta"):
        meta_model = _mlp()
    for label, call in (
        ("init_", lambda: vt.init_(meta_model[0].weight)),
        ("init_model", lambda: vt.init_model(meta_model, (8, WIDTH))),
    ):
        try:
            call()
            out[label] = "no error"
        except VarpropValueError as error:
            out[label] = str(error)
    model = _sharded(_mlp, mesh)
    vt.init_model(model, _part(_batch("mlp", 3), rank, world), generator=torch.Generator().manual_seed(1))
    locals_before = {name: p.to_local().clone() for name, p in model.named_parameters()}
    placements_before = _placements(model)
    try:
        vt.init_model(model, _part(_batch("mlp", 3), rank, world), calibrate=torch.randn(4, WIDTH + 1))
        out["bad_batch"] = "no error"
    except VarpropValueError as error:
        out["bad_batch"] = str(error)
    out["unchanged"] = all(torch.equal(p.to_local(), locals_before[name]) for name, p in model.named_parameters())
    out["placements_kept"] = _placements(model) == placements_before
    return out


_CHECKS: dict[str, Callable[[int, int, Any], dict[str, Any]]] = {
    "init": _check_init,
    "global_rng": _check_global_rng,
    "placements": _check_placements,
    "one_rank": _check_one_rank,
    "models": _check_models,
    "column_sharded": _check_column_sharded,
    "hsdp": _check_hsdp,
    "errors": _check_errors,
}


def _worker(rank: int, world: int, init_method: str, out_dir: str) -> None:
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world, timeout=timedelta(seconds=60))
    mesh = init_device_mesh("cpu", (world,))
    results: dict[str, Any] = {}
    for name, check in _CHECKS.items():
        try:
            results[name] = check(rank, world, mesh)
        except Exception:
            results[name] = {"error": traceback.format_exc()}
    torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    dist.destroy_process_group()


# --- the tests -----------------------------------------------------------------------------------------------------


def _distributed_unavailable() -> str | None:
    if not torch.distributed.is_available():
        return "this torch build has no torch.distributed"
    if not torch.distributed.is_gloo_available():
        return "this torch build has no gloo backend"
    return None


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    reason = _distributed_unavailable()
    if reason is not None:
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("sharded")
    init_method = f"file://{folder / 'rendezvous'}"
    env = dict(os.environ)
    source = str(Path(varprop.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([source, env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    processes = [
        subprocess.Popen(
            [sys.executable, __file__, str(rank), str(WORLD), init_method, str(folder)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(WORLD)
    ]
    logs = []
    try:
        for process in processes:
            logs.append(process.communicate(timeout=TIMEOUT_S)[0])
    except subprocess.TimeoutExpired:
        for process in processes:
            process.kill()
        pytest.fail(f"the {WORLD} gloo worker processes did not finish within {TIMEOUT_S} s")
    for rank, process in enumerate(processes):
        if process.returncode != 0:
            pytest.fail(f"worker {rank} exited with {process.returncode}:\n{logs[rank][-4000:]}")
    return [torch.load(folder / f"rank{rank}.pt", weights_only=False) for rank in range(WORLD)]


def _check(ranks: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    for rank, results in enumerate(ranks):
        if "error" in results[name]:
            pytest.fail(f"rank {rank}, check {name!r} raised:\n{results[name]['error']}")
    return [results[name] for results in ranks]


def _plain_init(distribution: str = "normal", seed: int = 5, rows: int = ROWS) -> torch.Tensor:
    return vt.init_(
        torch.empty(rows, COLS),
        "elu",
        distribution=distribution,
        generator=torch.Generator().manual_seed(seed),
        rank_invariant=True,
    )


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_sharded_init_std_matches_target(ranks: list[dict[str, Any]], distribution: str) -> None:
    first, second = _check(ranks, "init")
    assert (first[f"{distribution}/local_rows"], second[f"{distribution}/local_rows"]) == (192, 191)
    full = first[distribution]
    torch.testing.assert_close(second[distribution], full, rtol=0, atol=0)  # every rank sees one global tensor
    target = vt.calculate_gain("elu") / math.sqrt(COLS)
    ratio = float(full.double().std()) / target
    assert abs(ratio - 1.0) < _std_tolerance(full.numel()), f"std / target = {ratio:.5f}"
    assert abs(float(full.double().mean())) < 5.0 * target / math.sqrt(full.numel())


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_sharded_init_equals_one_process_rank_invariant_draw(ranks: list[dict[str, Any]], distribution: str) -> None:
    first, _ = _check(ranks, "init")
    assert torch.equal(first[distribution], _plain_init(distribution))


def test_one_rank_mesh_gives_the_same_global_tensor(ranks: list[dict[str, Any]]) -> None:
    first, second = _check(ranks, "one_rank")
    assert second == {}
    assert torch.equal(first["full"], _check(ranks, "init")[0]["normal"])


def test_other_placements_give_the_same_global_tensor(ranks: list[dict[str, Any]]) -> None:
    first, second = _check(ranks, "placements")
    expected = _plain_init()
    for label in ("shard1", "replicate"):
        assert torch.equal(first[label], expected), label
        assert torch.equal(second[label], expected), label


def test_sharded_embedding_keeps_its_padding_row_zero(ranks: list[dict[str, Any]]) -> None:
    first, _ = _check(ranks, "init")
    table = first["embedding"]
    assert float(table[7].abs().max()) == 0.0
    assert float(table[6].abs().min()) > 0.0
    expected = vt.init_module_(
        nn.Embedding(9, 4, padding_idx=7), generator=torch.Generator().manual_seed(6), rank_invariant=True
    )
    assert torch.equal(table, expected.weight.detach())


def test_without_generator_ranks_agree_on_rank_zero_seed(ranks: list[dict[str, Any]]) -> None:
    first, second = _check(ranks, "global_rng")
    torch.testing.assert_close(first["full"], second["full"], rtol=0, atol=0)
    assert not torch.equal(first["local"][:100], second["local"][:100])  # no two ranks draw the same values
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(100)  # rank 0's global seed
        expected = vt.init_(torch.empty(ROWS - 1, COLS), "gelu", rank_invariant=True)
    finally:
        torch.random.set_rng_state(state)
    assert torch.equal(first["full"], expected)
    target = vt.calculate_gain("gelu") / math.sqrt(COLS)
    ratio = float(first["full"].double().std()) / target
    assert abs(ratio - 1.0) < _std_tolerance(first["full"].numel()), f"std / target = {ratio:.5f}"


def _single_process(kind: str, calibrated: bool) -> tuple[Any, nn.Module]:
    model = FACTORIES[kind]()
    batch = _batch(kind, seed=3)
    report = vt.init_model(
        model,
        batch,
        calibrate=_batch(kind, seed=4) if calibrated else None,
        generator=torch.Generator().manual_seed(11),
    )
    return report, model


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_sharded_orthogonal_model_equals_the_unsharded_one(ranks: list[dict[str, Any]], kind: str) -> None:
    first, second = _check(ranks, "models")
    model = FACTORIES[kind]()
    report = vt.init_model(
        model, _batch(kind, seed=3), distribution="orthogonal", generator=torch.Generator().manual_seed(11)
    )
    for results in (first, second):
        _compare_rows(results[f"{kind}/orthogonal/rows"], _rows(report), _RTOL)
        state = results[f"{kind}/orthogonal/state"]
        for name, param in model.named_parameters():
            torch.testing.assert_close(state[name], param.detach(), rtol=_RTOL, atol=1e-7, msg=name)
    weight = next(p for name, p in model.named_parameters() if name.endswith("weight")).detach().double()
    matrix = weight.reshape(weight.shape[0], -1)
    gram = matrix @ matrix.t() if matrix.shape[0] <= matrix.shape[1] else matrix.t() @ matrix
    torch.testing.assert_close(gram, gram[0, 0] * torch.eye(gram.shape[0], dtype=torch.float64), atol=1e-5, rtol=0)


def _compare_rows(sharded: list[Any], single: list[Any], rtol: float) -> None:
    assert [row[0] for row in sharded] == [row[0] for row in single]
    for got, want in zip(sharded, single, strict=True):
        for position in (1, 2, 3):
            if want[position] is None:
                assert got[position] is None, got
            else:
                assert got[position] == pytest.approx(want[position], rel=rtol, abs=0), (got, want)


# Float32 weights: per-unit sums and the all-reduced aggregates are summed in another order than in one process
# (a few float32 roundings, ~1e-7 each); calibration variances are summed in float64 over ranks.
_RTOL = 1e-5


@pytest.mark.parametrize("kind", list(FACTORIES))
@pytest.mark.parametrize("calibrated", [False, True], ids=["analytic", "calibrated"])
def test_sharded_init_model_equals_single_process(ranks: list[dict[str, Any]], kind: str, calibrated: bool) -> None:
    first, second = _check(ranks, "models")
    mode = "calibrated" if calibrated else "analytic"
    report, model = _single_process(kind, calibrated)
    single_rows = _rows(report)
    for results in (first, second):
        _compare_rows(results[f"{kind}/{mode}/rows"], single_rows, _RTOL)
        state = results[f"{kind}/{mode}/state"]
        for name, param in model.named_parameters():
            torch.testing.assert_close(state[name], param.detach(), rtol=_RTOL, atol=1e-7, msg=name)
    if calibrated:
        assert all(row[3] is not None for row in single_rows)


@pytest.mark.parametrize("kind", list(FACTORIES))
def test_analytic_pass_gathers_no_weight(ranks: list[dict[str, Any]], kind: str) -> None:
    """Traceable models: no all-gather and no redistribution. A model fx can not trace is recorded in one forward
    pass, in which FSDP gathers each unit's weights as in training (one unshard per FSDP unit)."""
    first, second = _check(ranks, "models")
    expected = 2 if kind == "gated" else 0  # its two Linear units (the root holds no parameter of its own)
    assert first[f"{kind}/analytic/gathers"] == expected
    assert second[f"{kind}/analytic/gathers"] == expected
    assert first[f"{kind}/analytic/settings"]["graph"] == ("hooks" if kind == "gated" else "torch.fx")
    assert first[f"{kind}/analytic/settings"]["sharded"] == f"mesh ({WORLD},) ({WORLD} ranks)"


@pytest.mark.parametrize("kind", list(FACTORIES))
def test_parameters_stay_dtensors_with_their_placements(ranks: list[dict[str, Any]], kind: str) -> None:
    first, _ = _check(ranks, "models")
    for mode in ("analytic", "calibrated"):
        placements = first[f"{kind}/{mode}/placements"]
        assert placements, mode
        assert all(text == "DTensor (Shard(dim=0),)" for text in placements.values()), placements


def test_column_sharded_weights_equal_single_process(ranks: list[dict[str, Any]]) -> None:
    first, second = _check(ranks, "column_sharded")
    report, model = _single_process("mlp", calibrated=False)
    for results in (first, second):
        _compare_rows(results["rows"], _rows(report), _RTOL)
        for name, param in model.named_parameters():
            torch.testing.assert_close(results["state"][name], param.detach(), rtol=_RTOL, atol=1e-7, msg=name)


def test_hsdp_equals_single_process(ranks: list[dict[str, Any]]) -> None:
    first, second = _check(ranks, "hsdp")
    report, model = _single_process("mlp", calibrated=True)
    for results in (first, second):
        _compare_rows(results["rows"], _rows(report), _RTOL)
        assert all(text == "DTensor (Replicate(), Shard(dim=0))" for text in results["placements"].values())
        for name, param in model.named_parameters():
            torch.testing.assert_close(results["state"][name], param.detach(), rtol=_RTOL, atol=1e-7, msg=name)


def test_meta_tensors_and_failed_calibration(ranks: list[dict[str, Any]]) -> None:
    for results in _check(ranks, "errors"):
        assert "meta device" in results["init_"] and "to_empty" in results["init_"], results["init_"]
        assert "parameter '0.weight' is on the meta device" in results["init_model"], results["init_model"]
        assert "does not fit the model" in results["bad_batch"], results["bad_batch"]
        assert results["unchanged"] is True
        assert results["placements_kept"] is True


def test_meta_tensor_refused_without_distribution() -> None:
    with pytest.raises(VarpropValueError, match=r"meta device .*to_empty"):
        vt.init_(torch.empty(4, 3, device="meta"))


def test_rank_invariant_plain_draw_is_reproducible_and_not_the_default() -> None:
    first = _plain_init(rows=ROWS)
    assert torch.equal(first, _plain_init(rows=ROWS))
    default = vt.init_(torch.empty(ROWS, COLS), "elu", generator=torch.Generator().manual_seed(5))
    assert not torch.equal(first, default)


_PER_BLOCK = 219  # rows_per_block((ROWS, COLS)) = ceil(65536 / 300)
_INDEX_PATTERNS = {
    "scattered rows": (torch.tensor([ROWS - 1, 0, _PER_BLOCK, _PER_BLOCK - 1, 5]), None),
    "range across a block edge": (torch.arange(150, 300), None),
    "range and columns": (torch.arange(200, 230), torch.tensor([299, 0, 17])),
    "scattered rows and columns": (torch.tensor([300, 2]), torch.arange(100, 150)),
    "columns only": (None, torch.arange(150, 300)),
}


@pytest.mark.parametrize("pattern", list(_INDEX_PATTERNS))
def test_draw_region_equals_the_same_part_of_the_whole_draw(pattern: str) -> None:
    """What a rank holding those rows / columns draws is exactly that part of the whole tensor."""
    from varprop.torch.sampling.sharded_random import draw_region, rows_per_block

    assert rows_per_block((ROWS, COLS)) == _PER_BLOCK
    rows, cols = _INDEX_PATTERNS[pattern]
    options: dict[str, Any] = {"dtype": torch.float32, "device": torch.device("cpu"), "distribution": "normal"}
    whole = draw_region((ROWS, COLS), [None, None], 1.0, seed=9, **options)
    part = draw_region((ROWS, COLS), [rows, cols], 1.0, seed=9, **options)
    expected = whole if rows is None else whole[rows]
    expected = expected if cols is None else expected[:, cols]
    assert torch.equal(part, expected)


if __name__ == "__main__":
    _worker(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
