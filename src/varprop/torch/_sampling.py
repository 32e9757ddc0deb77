"""Random weights for ``init_model``: one seed per parameter, and seeded blocks of rows.

``init_model`` draws every weight tensor once, as a unit-std sample that it scales afterwards (the scale depends on
the propagated statistics, the sample does not). One 62-bit seed is taken from the caller's generator (or from the
global RNG); the sample of a parameter depends only on that seed, the parameter's qualified name and its shape, not
on the order in which layers are reached. Blocks of rows (dim 0) have seeds of their own, so any range of rows can
be drawn alone and agrees with the whole tensor's draw: a row-sharded parameter gets the same global tensor whatever
the number of shards. Seeding a block costs ~10 us against ~0.2 ms for its 65536 values.
"""

from __future__ import annotations

import hashlib
import math

import torch

from ._tensor_init import LOW_PRECISION, fill

__all__ = ["Sampler", "block_rows", "unit_sample"]

# Rows per seeded block: at least this many values, so that seeding costs nothing next to sampling.
_BLOCK_VALUES = 1 << 16


def block_rows(shape: tuple[int, ...]) -> int:
    """Rows (dim 0) per seeded block of a tensor of this global shape (a function of the shape only)."""
    row_values = math.prod(shape[1:]) if len(shape) > 1 else 1
    return max(1, -(-_BLOCK_VALUES // max(row_values, 1)))


def _mix(*parts: object) -> int:
    """A 62-bit seed from the parts (stable across processes and Python versions, unlike ``hash``)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 2


def unit_sample(
    shape: tuple[int, ...],
    seed: int,
    distribution: str,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    rows: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Rows ``rows = (start, stop)`` (default: all) of the unit-std sample of a tensor of global ``shape``.

    Block b of ``block_rows(shape)`` rows is drawn by its own generator seeded with ``_mix(seed, b)``; a range of
    rows draws the blocks it overlaps and keeps its part. Half-precision dtypes are sampled in float32 (the caller
    rounds once after scaling).
    """
    shape = tuple(int(size) for size in shape)
    total_rows = shape[0] if shape else 1
    start, stop = (0, total_rows) if rows is None else rows
    work_dtype = torch.float32 if dtype in LOW_PRECISION else dtype
    out = torch.empty((stop - start, *shape[1:]) if shape else (), dtype=work_dtype, device=device)
    if out.numel() == 0:
        return out
    per_block = block_rows(shape)
    generator = torch.Generator(device=out.device)
    flat = out.reshape(stop - start, -1) if shape else out.reshape(1, 1)
    for block in range(start // per_block, -(-stop // per_block)):
        low, high = block * per_block, min((block + 1) * per_block, total_rows)
        generator.manual_seed(_mix(seed, block))
        if low >= start and high <= stop:
            fill(flat[low - start : high - start], 1.0, distribution, generator)
        else:  # a block cut by the range: draw it whole, keep the overlap
            whole = torch.empty((high - low, flat.shape[1]), dtype=work_dtype, device=out.device)
            fill(whole, 1.0, distribution, generator)
            keep_low, keep_high = max(low, start), min(high, stop)
            flat[keep_low - start : keep_high - start] = whole[keep_low - low : keep_high - low]
    return out


class Sampler:
    """Unit-std samples for the parameters of one ``init_model`` call (see the module docstring).

    Args:
        distribution: ``"normal"``, ``"truncated_normal"`` or ``"uniform"``.
        generator: source of the one seed (``None``: the global RNG, consumed once).
    """

    def __init__(self, distribution: str, generator: torch.Generator | None) -> None:
        self.distribution = distribution
        self.seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())

    def unit(self, name: str, param: torch.Tensor, rows: tuple[int, int] | None = None) -> torch.Tensor:
        """A new tensor holding the unit-std sample of ``param`` (qualified ``name``), or of its rows ``rows``."""
        return unit_sample(
            tuple(param.shape),
            _mix(self.seed, name),
            self.distribution,
            dtype=param.dtype,
            device=param.device,
            rows=rows,
        )
