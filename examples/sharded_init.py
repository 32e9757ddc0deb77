"""Initialize a model built on the meta device and sharded with FSDP2, on 2 CPU processes (gloo backend).

Run with ``torchrun --nproc-per-node 2 examples/sharded_init.py``, or ``python examples/sharded_init.py``, which
starts the 2 processes itself. Rank 0 then checks the promise: the sharded model holds exactly the weights that one
process gives the unsharded model with the whole batch.
"""

from __future__ import annotations

import os
import sys
import tempfile

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.fsdp import fully_shard

import varprop.torch as vt

BATCH, WIDTH = 256, 128


def build() -> nn.Sequential:
    return nn.Sequential(nn.Linear(WIDTH, 512), nn.GELU(), nn.Linear(512, 512), nn.GELU(), nn.Linear(512, 10))


def main() -> None:
    rank, world = dist.get_rank(), dist.get_world_size()
    with torch.device("meta"):  # no memory for the weights yet
        model = build()
    for layer in model:
        if isinstance(layer, nn.Linear):
            fully_shard(layer)
    fully_shard(model)
    model.to_empty(device="cpu")  # each rank allocates its shards, uninitialized

    # Each rank passes its own part of the batch, as in data-parallel training.
    batch = torch.randn(BATCH, WIDTH, generator=torch.Generator().manual_seed(1))
    calibration = torch.randn(BATCH, WIDTH, generator=torch.Generator().manual_seed(2))
    report = vt.init_model(
        model,
        batch.chunk(world)[rank],
        calibrate=calibration.chunk(world)[rank],
        generator=torch.Generator().manual_seed(0),
    )
    weight = model[2].weight
    line = f"rank {rank}: {type(weight).__name__} {weight.placements}, local {tuple(weight.to_local().shape)}"
    lines = [""] * world
    dist.all_gather_object(lines, line)
    full = {name: p.full_tensor().detach() for name, p in model.named_parameters()}  # for this check only
    if rank != 0:
        return
    print(report)
    print("\n".join(lines))
    single = build()
    vt.init_model(single, batch, calibrate=calibration, generator=torch.Generator().manual_seed(0))
    difference = max(float((full[name] - p.detach()).abs().max()) for name, p in single.named_parameters())
    print(f"largest difference to one process with the whole batch: {difference:.1e}")


def _spawned(rank: int, world: int, init_method: str) -> None:
    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world)
    try:
        main()
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    if "RANK" in os.environ:  # started by torchrun
        dist.init_process_group("gloo")
        try:
            main()
        finally:
            dist.destroy_process_group()
    else:
        with tempfile.TemporaryDirectory() as folder:
            rendezvous = f"file://{os.path.join(folder, 'rendezvous')}"
            torch.multiprocessing.spawn(_spawned, args=(2, rendezvous), nprocs=2)
        sys.exit(0)
