"""Orthogonal and delta-orthogonal weights, made from a Gaussian draw: the unit-scale tensors of ``init_``'s
``distribution="orthogonal"`` and ``"delta_orthogonal"``.

Every varprop draw is ``std`` times a unit draw whose elements have mean square 1; for these two distributions the
unit draw is computed from the seeded standard Gaussian draw of ``distribution="normal"`` (same seed, same Gaussian),
so the sharded and the plain paths, which share that Gaussian, give the same orthogonal tensor.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch

from ... import VarpropValueError

__all__ = ["ORTHOGONAL_DISTRIBUTIONS", "check_shape", "haar_orthogonal", "orthogonal_unit"]

ORTHOGONAL_DISTRIBUTIONS: tuple[str, ...] = ("orthogonal", "delta_orthogonal")


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """torch's intra-op threads set to 1 for the block (and restored after it, also on error)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _qr(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.linalg.qr``, on CPU in one thread: LAPACK's blocked QR rounds differently with the number of threads
    (from 64 x 64 on, measured), and every rank of a sharded model, whatever its thread count, must make the same Q
    of the same draw."""
    if matrix.device.type != "cpu":
        factors = torch.linalg.qr(matrix)
    else:
        with _one_thread():
            factors = torch.linalg.qr(matrix)
    return factors.Q, factors.R


def haar_orthogonal(gaussian: torch.Tensor) -> torch.Tensor:
    """The (semi-)orthogonal factor of a ``[rows, cols]`` matrix of iid standard normals: Haar-distributed.

    Q of the QR decomposition of the matrix (of its transpose when rows < cols), each column multiplied by the sign
    of R's diagonal entry (Mezzadri 2007, "How to generate random matrices from the classical compact groups": without
    the sign fix, Q is not Haar-distributed). The result has orthonormal rows when rows <= cols (Q Q^T = I) and
    orthonormal columns otherwise (Q^T Q = I). The same computation as ``torch.nn.init.orthogonal_``.

    Args:
        gaussian: a 2-D floating tensor of iid N(0, 1) values.

    Returns:
        A new tensor of the same shape, dtype and device.
    """
    rows, cols = gaussian.shape
    matrix = gaussian.t() if rows < cols else gaussian
    unitary, triangular = _qr(matrix)
    signs = torch.sign(torch.diagonal(triangular))
    q: torch.Tensor = unitary * torch.where(signs == 0, torch.ones_like(signs), signs)  # zero pivot: probability 0
    return q.t() if rows < cols else q


def check_shape(shape: tuple[int, ...], distribution: str) -> None:
    """Raise ``VarpropValueError`` unless ``shape`` has the 2+ dimensions that an orthogonal matrix needs."""
    if len(shape) < 2:
        raise VarpropValueError(
            f"distribution={distribution!r} needs a tensor with at least 2 dimensions, got shape {shape}; "
            "use 'normal' for vectors"
        )


def orthogonal_unit(gaussian: torch.Tensor, distribution: str) -> torch.Tensor:
    r"""The unit-scale (mean square 1) orthogonal or delta-orthogonal tensor made from a standard Gaussian draw.

    ``"orthogonal"`` (Saxe, McClelland & Ganguli 2014, "Exact solutions to the nonlinear dynamics of learning in deep
    linear neural networks"): the tensor flattened to ``[shape[0], prod(shape[1:])]`` (as ``torch.nn.init.orthogonal_``
    does) is sqrt(max(rows, cols)) Q with Q Haar-random semi-orthogonal (``haar_orthogonal``): for rows <= cols every
    row has squared norm exactly cols, so a layer of std sigma = gain / sqrt(cols) maps inputs x of iid entries to
    outputs of variance exactly gain^2 E[x^2]: n Var[w] = gain^2, as for the Gaussian, with no spread between units.

    ``"delta_orthogonal"`` (Xiao et al. 2018, "Dynamical isometry and a mean field theory of CNNs"): zero at every
    kernel tap except the spatial centre (index k // 2 along each kernel dim), which holds
    sqrt(taps) sqrt(max(shape[0], shape[1])) Q, Q Haar semi-orthogonal ``[shape[0], shape[1]]``; the mean square over
    the whole tensor is 1, so a convolution of std sigma = gain / sqrt(in taps) has outputs of variance gain^2 E[x^2]
    (away from zero padding wider than k // 2). A 2-D tensor gets the plain orthogonal matrix.

    Args:
        gaussian: iid N(0, 1) values, at least 2-D.
        distribution: ``"orthogonal"`` or ``"delta_orthogonal"``.

    Returns:
        A new tensor of the same shape, dtype and device, of mean square 1.

    Raises:
        VarpropValueError: fewer than 2 dimensions, or another distribution.

    Example:
        >>> w = orthogonal_unit(torch.randn(3, 5, generator=torch.Generator().manual_seed(0)), "orthogonal")
        >>> torch.allclose(w @ w.t(), 5 * torch.eye(3), atol=1e-5)
        True
    """
    shape = tuple(gaussian.shape)
    check_shape(shape, distribution)
    if distribution == "orthogonal" or (distribution == "delta_orthogonal" and len(shape) == 2):
        rows, cols = shape[0], math.prod(shape[1:])
        if rows * cols == 0:
            return gaussian.clone()
        q = haar_orthogonal(gaussian.reshape(rows, cols))
        return (q * math.sqrt(max(rows, cols))).reshape(shape)
    if distribution != "delta_orthogonal":
        raise VarpropValueError(
            f"unknown orthogonal distribution {distribution!r}; valid choices: "
            + ", ".join(map(repr, ORTHOGONAL_DISTRIBUTIONS))
        )
    out = torch.zeros_like(gaussian)
    if out.numel() == 0:
        return out
    centre: tuple[slice | int, ...] = (slice(None), slice(None), *(size // 2 for size in shape[2:]))
    rows, cols, taps = shape[0], shape[1], math.prod(shape[2:])
    q = haar_orthogonal(gaussian[centre])
    out[centre] = q * math.sqrt(taps * max(rows, cols))
    return out
