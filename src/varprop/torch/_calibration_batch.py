"""The batch ``init_model(..., calibrate=...)`` calibrates on: ``"gaussian"`` synthesizes one shaped like the example,
with enough rows for a per-layer variance; a tensor (or tuple) is used as given."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .. import VarpropTypeError, VarpropValueError

__all__ = ["calibration_batch", "example_tensors", "token_batch"]

# Index entries a synthesized token batch holds at least: calibrated on the 8 x 16 example ids of a 2-layer GPT-2 or
# Llama (vocabulary 128), a fresh batch measures attention outputs at 1.10-1.15x their targets; on 32 x 16 or
# 64 x 16 ids resampled from the example every layer of GPT-2, Llama and BERT is within [0.9, 1.1]
# (tests/test_zoo_hf.py::test_hf_model_calibrated).
TOKEN_ENTRIES = 1024

# Rows (leading dim) a synthesized floating batch holds at least. A layer's variance on the batch is pooled over its
# units and positions, but the positions of one row share their input (a convolution's neighbouring outputs, a
# classifier's 10 outputs of one image), so the rows are what make it precise. Calibrated on the 8 images of the zoo's
# DenseNet, one layer (denseblock2.denselayer3.conv2) measured 1.10-1.12x its target on five of six fresh batches of
# 64 images; calibrated on 64, every layer within [0.96, 1.04] on all six (tests/test_zoo_vision.py).
FLOAT_ROWS = 64


def example_tensors(name: str, value: Any) -> tuple[torch.Tensor, ...]:
    """``value`` (a tensor or a tuple/list of tensors) as a tuple, checked: floating or index dtypes, finite."""
    items = (value,) if isinstance(value, torch.Tensor) else value
    if not isinstance(items, (tuple, list)) or not items or not all(isinstance(t, torch.Tensor) for t in items):
        raise VarpropTypeError(
            f"{name} must be a tensor, a tuple of tensors or a shape (tuple of ints), got {type(value).__name__}"
            + (f" {value!r}" if not isinstance(value, torch.Tensor) and len(repr(value)) < 80 else "")
        )
    for position, tensor in enumerate(items):
        if tensor.is_complex() or tensor.dtype == torch.bool:
            raise VarpropTypeError(f"{name}[{position}] has dtype {tensor.dtype}; pass a floating (or index) tensor")
        if tensor.is_floating_point() and tensor.numel() and not bool(torch.isfinite(tensor).all()):
            raise VarpropValueError(f"{name}[{position}] contains NaN or infinite values")
    return tuple(items)


def token_batch(ids: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """``calibrate="gaussian"`` for one integer input (token ids): ids drawn i.i.d. from the example's own entries
    (its index histogram, the analogue of a Gaussian with the example's mean and variance), with as many rows
    (leading dim) as give at least ``TOKEN_ENTRIES`` entries, and never fewer than the example's."""
    per_row = max(ids[0].numel(), 1)
    rows = max(ids.shape[0], -(-TOKEN_ENTRIES // per_row))
    flat = ids.reshape(-1)
    if not flat.numel():
        return ids
    picks = torch.randint(0, flat.numel(), (rows * per_row,), generator=generator, device=torch.device("cpu"))
    return flat[picks.to(flat.device)].reshape(rows, *ids.shape[1:])


def _batch_rows(model: nn.Module, example: tuple[torch.Tensor, ...]) -> int | None:
    """The rows of the synthesized floating batch: ``max(FLOAT_ROWS, the example's)``, or ``None`` (the example's
    shapes kept) when dim 0 may not be the batch: the tensors' leading sizes differ, or a module reads dim 0 as time
    or sequence (a torch module with ``batch_first=False``: ``nn.LSTM``, ``nn.MultiheadAttention``, ...)."""
    leading = {tensor.shape[0] for tensor in example if tensor.dim() >= 1}
    if len(leading) != 1 or any(tensor.dim() == 0 for tensor in example):
        return None
    if any(getattr(module, "batch_first", True) is False for module in model.modules()):
        return None
    return max(FLOAT_ROWS, *leading)


def _gaussian_batch(
    model: nn.Module, example: tuple[torch.Tensor, ...], input_var: float | None, generator: torch.Generator | None
) -> tuple[torch.Tensor, ...]:
    """Each floating tensor of the example replaced by N(its mean, input_var or its variance), index tensors by rows
    of their own drawn at random (the same rows for all of them), all with ``_batch_rows`` rows."""
    rows = _batch_rows(model, example)
    picks = None
    if rows is not None and rows != example[0].shape[0]:
        picks = torch.randint(0, example[0].shape[0], (rows,), generator=generator, device=torch.device("cpu"))
    batch = []
    for tensor in example:
        if not tensor.is_floating_point():
            batch.append(tensor if picks is None else tensor[picks.to(tensor.device)])
            continue
        data = tensor.double()
        mean = float(data.mean())
        var = input_var if input_var is not None else (float(data.var()) if data.numel() > 1 else 1.0)
        del data  # (freed before the noise is drawn; the noise scaled in place: the same bits, no temporaries)
        shape = tensor.shape if rows is None else (rows, *tensor.shape[1:])
        noise = torch.randn(shape, generator=generator, device=tensor.device, dtype=torch.float32)
        batch.append(noise.mul_(math.sqrt(var)).add_(mean).to(tensor.dtype))
    return tuple(batch)


def calibration_batch(
    model: nn.Module,
    calibrate: Any,
    example: tuple[torch.Tensor, ...],
    input_var: float | None,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, ...] | None:
    """The batch for ``calibrate`` (``None``: no calibration).

    ``"gaussian"``: for one integer input (token ids) ``token_batch``; otherwise each floating input drawn from
    N(its mean, ``input_var`` or its variance) with at least ``FLOAT_ROWS`` rows (see ``_batch_rows``), index inputs
    resampled by rows. A tensor or tuple of tensors is used as given.

    Raises:
        VarpropValueError: an unknown string.
        VarpropTypeError: a batch that is not a tensor or tuple of tensors.
    """
    if calibrate is None:
        return None
    if isinstance(calibrate, str):
        if calibrate != "gaussian":
            raise VarpropValueError(
                f"unknown calibrate {calibrate!r}; valid choices: None, 'gaussian', or a batch tensor"
            )
        if len(example) == 1 and not example[0].is_floating_point() and example[0].dim() >= 1:
            return (token_batch(example[0], generator),)
        return _gaussian_batch(model, example, input_var, generator)
    return tuple(t.detach() for t in example_tensors("calibrate", calibrate))
