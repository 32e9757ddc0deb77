"""``Case``: a model of the zoo with its example input and a maker of fresh batches."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

Batch = tuple[torch.Tensor, ...]


@dataclass
class Case:
    """A zoo model ready for ``init_model(case.model, case.example)``.

    ``fresh(generator)`` returns a new batch drawn like the example (for the measurement: never the example itself).
    ``streams`` names the modules whose outputs are a residual stream (checked for boundedness), ``tied`` lists
    groups of parameter names that must stay one tensor, ``kind`` says where the model comes from.
    """

    name: str
    model: nn.Module
    example: Batch
    fresh: Callable[[torch.Generator], Batch]
    kind: str = ""
    streams: tuple[str, ...] = ()
    tied: tuple[tuple[str, ...], ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def gaussian(shape: tuple[int, ...]) -> Callable[[torch.Generator], Batch]:
    """Fresh N(0, 1) batches of ``shape``."""

    def make(generator: torch.Generator) -> Batch:
        return (torch.randn(shape, generator=generator),)

    return make


def token_ids(shape: tuple[int, ...], vocab: int) -> Callable[[torch.Generator], Batch]:
    """Fresh uniform token ids in [0, vocab) of ``shape``."""

    def make(generator: torch.Generator) -> Batch:
        return (torch.randint(0, vocab, shape, generator=generator),)

    return make


def example_of(fresh: Callable[[torch.Generator], Batch], seed: int = 0) -> Batch:
    """The example input: a batch drawn with its own seed (the fresh batches use others)."""
    return fresh(torch.Generator().manual_seed(seed))
