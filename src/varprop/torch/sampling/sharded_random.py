"""Rank-invariant random draws: a tensor filled block of rows by block of rows, each block from its own generator.

The value of every element depends only on (seed, global shape, the element's global index, std, distribution, dtype,
device type), never on which process draws it. A process that holds some rows (and columns) of a sharded tensor draws
the blocks that cover its rows and keeps its part, so the assembled global tensor is the same for 1, 2 or any number
of ranks, and equals the whole tensor drawn here in one process. It is a different tensor from the one a single
``normal_`` call on the whole tensor gives (one generator stream), and CPU and CUDA generators give different values.

Blocks: dim 0 is cut into blocks of ``rows_per_block(shape)`` rows (at least ``BLOCK_ELEMENTS`` elements each, one row
when a row is larger), so a rank holding a range of rows draws at most two blocks it only partly keeps. Block ``b``
is drawn by ``torch.Generator().manual_seed(block_seed(seed, b))``.
"""

from __future__ import annotations

import functools
import hashlib
import math
from concurrent.futures import ThreadPoolExecutor

import torch

from .draws import LOW_PRECISION, draw, fill
from .orthogonal import ORTHOGONAL_DISTRIBUTIONS, orthogonal_unit

__all__ = [
    "BLOCK_ELEMENTS",
    "block_seed",
    "draw_region",
    "draw_rows_into",
    "fresh_seed",
    "name_seed",
    "rows_per_block",
]

# Part of the promise "same seed, same tensor": changing it changes every rank-invariant draw.
BLOCK_ELEMENTS = 1 << 16
_MASK64 = (1 << 64) - 1
# Below this many values a tensor is sampled in the calling thread (a thread pool costs ~50 us per call).
_PARALLEL_VALUES = 1 << 18
# Seeds are drawn in [0, 2^63 - 1), the range of a non-negative int64 (torch.randint's dtype).
_SEED_HIGH = (1 << 63) - 1


def _splitmix64(value: int) -> int:
    """One step of SplitMix64 (Steele, Lea & Flood 2014, "Fast splittable pseudorandom number generators"; constants
    from Vigna's reference implementation, prng.di.unimi.it/splitmix64.c): a bijective 64-bit mixer."""
    z = (value + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def block_seed(seed: int, index: int) -> int:
    """The seed of block (or stream position) ``index`` under ``seed``: distinct inputs give unrelated seeds."""
    return _splitmix64((seed & _MASK64) ^ _splitmix64(index))


def fresh_seed(generator: torch.Generator | None) -> int:
    """One 63-bit seed drawn from ``generator`` (the global CPU RNG when ``None``); advances it by one draw."""
    device = generator.device if generator is not None else torch.device("cpu")
    return int(torch.randint(0, _SEED_HIGH, (1,), generator=generator, device=device).item())


def name_seed(seed: int, name: str) -> int:
    """The seed of the parameter called ``name`` under the master ``seed`` (``init_model``): a 64-bit digest of the
    name (stable across processes and Python versions, unlike ``hash``) mixed into ``seed``."""
    digest = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")
    return block_seed(seed, digest)


def rows_per_block(shape: tuple[int, ...]) -> int:
    """Rows of dim 0 per block: enough rows for ``BLOCK_ELEMENTS`` elements (one row when a row is larger)."""
    row = math.prod(shape[1:])
    return max(1, -(-BLOCK_ELEMENTS // max(row, 1)))


def _block_generator(seed: int, block: int, device: torch.device) -> torch.Generator:
    """The generator of block ``block`` under ``seed`` (the one place the block seeds are applied)."""
    return torch.Generator(device=device).manual_seed(block_seed(seed, block))


def _draw_block(
    shape: tuple[int, ...],
    block: int,
    per_block: int,
    std: float,
    dtype: torch.dtype,
    device: torch.device,
    distribution: str,
    seed: int,
) -> torch.Tensor:
    start = block * per_block
    rows = min(per_block, shape[0] - start)
    generator = _block_generator(seed, block, device)
    return draw((rows, *shape[1:]), std, dtype=dtype, device=device, distribution=distribution, generator=generator)


# One block to fill: (seed of its tensor, block index, the block's rows of the output tensor).
_Block = tuple[int, int, torch.Tensor]


def _fill_blocks(blocks: list[_Block], std: float, distribution: str, device: torch.device) -> None:
    """Whole blocks sampled straight into their rows (the same values as ``_draw_block``, without a copy). On the CPU,
    with more than one torch thread and enough values, the blocks are cut into one run of consecutive blocks per
    thread, of about equal size, each run sampled by one thread of a pool: each block has its own generator, so the
    values do not depend on the schedule, and PyTorch's samplers release the GIL (a single CPU sampler is serial, and
    sampling is most of the cost of initializing a large model). One task per thread, not one per block: a thread
    that waits for the GIL between blocks while the caller runs Python code loses ~5 ms (the switch interval)."""

    def sample(run: list[_Block]) -> None:
        for seed, block, rows in run:
            fill(rows, std, distribution, _block_generator(seed, block, device))

    total = sum(rows.numel() for _, _, rows in blocks)
    workers = min(torch.get_num_threads(), len(blocks))
    if device.type != "cpu" or workers < 2 or total < _PARALLEL_VALUES:
        sample(blocks)
        return
    runs: list[list[_Block]] = [[] for _ in range(workers)]
    done = 0
    for item in blocks:  # run k takes the blocks that start in the k-th of `workers` equal slices of the values
        runs[min(workers - 1, done * workers // total)].append(item)
        done += item[2].numel()
    list(_pool(workers).map(sample, runs))


@functools.cache
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="varprop-sampler")


def draw_rows_into(
    out: torch.Tensor, shape: tuple[int, ...], first: int, std: float, distribution: str, seed: int
) -> None:
    """Fill ``out`` in place with rows ``first`` to ``first + out.shape[0]`` of the rank-invariant draw of a tensor of
    shape ``shape`` (``out``: contiguous, those rows' shape, not float16/bfloat16): the values of ``draw_region`` on
    that range. Whole blocks are sampled straight into ``out`` (on the sampler threads when large), a block cut by
    the range's ends is drawn whole and its rows copied (one block of extra memory)."""
    if out.numel() == 0:
        return
    per_block = rows_per_block(shape)
    stop = first + out.shape[0]
    whole: list[_Block] = []
    for block in range(first // per_block, -(-stop // per_block)):
        low, high = max(first, block * per_block), min(stop, (block + 1) * per_block)
        if high - low == min(per_block, shape[0] - block * per_block):
            whole.append((seed, block, out[low - first : high - first]))
            continue
        values = _draw_block(shape, block, per_block, std, out.dtype, out.device, distribution, seed)
        out[low - first : high - first] = values[low - block * per_block : high - block * per_block]
    _fill_blocks(whole, std, distribution, out.device)


def draw_region(
    shape: tuple[int, ...],
    index: list[torch.Tensor | None],
    std: float,
    *,
    dtype: torch.dtype,
    device: torch.device,
    distribution: str,
    seed: int,
) -> torch.Tensor:
    """The part ``global[index[0]][:, index[1]]...`` of the rank-invariant draw of a tensor of shape ``shape``.

    ``index[d]`` holds the global indices (int64, any order) kept along dim ``d``, or ``None`` for the whole dim.
    Memory: the result plus one block. Cost: the blocks that cover ``index[0]`` (a rank that holds columns only, as
    with a ``Shard(1)`` placement, draws every block and keeps its columns of each).
    """
    if distribution in ORTHOGONAL_DISTRIBUTIONS:
        return _orthogonal_region(shape, index, std, dtype=dtype, device=device, distribution=distribution, seed=seed)
    if len(shape) == 0:
        return draw_region((1,), [None], std, dtype=dtype, device=device, distribution=distribution, seed=seed)[0]
    local_shape = tuple(
        size if positions is None else int(positions.numel()) for size, positions in zip(shape, index, strict=True)
    )
    out = torch.empty(local_shape, dtype=dtype, device=device)
    if out.numel() == 0:
        return out
    per_block = rows_per_block(shape)
    rows = index[0].to("cpu", torch.int64) if index[0] is not None else None
    first = 0 if rows is None else int(rows[0])
    if rows is None or torch.equal(rows, torch.arange(first, first + rows.numel())):
        # a range of rows (FSDP's Shard(0), or the whole tensor): each block's kept rows are one slice
        if all(kept is None for kept in index[1:]) and dtype not in LOW_PRECISION:
            draw_rows_into(out, shape, first, std, distribution, seed)
            return out
        stop = shape[0] if rows is None else first + rows.numel()
        for block in range(first // per_block, -(-stop // per_block)):
            low, high = max(first, block * per_block), min(stop, (block + 1) * per_block)
            values = _keep_columns(_draw_block(shape, block, per_block, std, dtype, device, distribution, seed), index)
            out[low - first : high - first] = values[low - block * per_block : high - block * per_block]
        return out
    blocks, order = torch.sort(rows // per_block, stable=True)
    unique, counts = torch.unique_consecutive(blocks, return_counts=True)
    start = 0
    for block, count in zip(unique.tolist(), counts.tolist(), strict=True):
        positions = order[start : start + count]
        start += count
        values = _draw_block(shape, block, per_block, std, dtype, device, distribution, seed)
        values = _keep_columns(values.index_select(0, (rows[positions] - block * per_block).to(device)), index)
        out.index_copy_(0, positions.to(device), values)
    return out


def _orthogonal_region(
    shape: tuple[int, ...],
    index: list[torch.Tensor | None],
    std: float,
    *,
    dtype: torch.dtype,
    device: torch.device,
    distribution: str,
    seed: int,
) -> torch.Tensor:
    """``draw_region`` for (delta-)orthogonal weights: the whole unit-std normal draw of the global tensor (in float32
    for half precision), made orthogonal (``orthogonal_unit``), scaled, then the part ``index``. A QR needs the whole
    matrix, so each rank holding a part of a sharded tensor computes the whole one: memory and time of the global
    tensor on every rank (same global tensor for any number of ranks)."""
    work = torch.float32 if dtype in LOW_PRECISION else dtype
    gaussian = draw_region(shape, [None] * len(shape), 1.0, dtype=work, device=device, distribution="normal", seed=seed)
    values = orthogonal_unit(gaussian, distribution).mul_(std)
    if index and index[0] is not None:
        values = values.index_select(0, index[0].to(values.device, torch.int64))
    return _keep_columns(values, index).to(dtype)


def _keep_columns(values: torch.Tensor, index: list[torch.Tensor | None]) -> torch.Tensor:
    for dim, kept in enumerate(index[1:], start=1):
        if kept is not None:
            values = values.index_select(dim, kept.to(values.device, torch.int64))
    return values
