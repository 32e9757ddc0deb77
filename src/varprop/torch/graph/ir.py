"""The small IR of a traced model: ``Node`` in execution (topological) order, whose arguments refer to earlier nodes
through ``Ref``; ``TensorMeta`` for what the example run produced (shape, dtype, small values)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["Graph", "Node", "Ref", "TensorMeta", "iter_refs", "map_refs", "shape_of"]


@dataclass(frozen=True)
class Ref:
    """A reference to the output of the node called ``node``."""

    node: str


@dataclass(frozen=True)
class TensorMeta:
    shape: tuple[int, ...]
    dtype: torch.dtype
    value: torch.Tensor | None = None

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def numel(self) -> int:
        return math.prod(int(size) for size in self.shape)


@dataclass
class Node:
    """One operation.

    ``op`` is ``input``, ``module`` (target: qualified name), ``function`` (target: the callable), ``method`` (target:
    tensor method name), ``attr`` (target: qualified name of a parameter or buffer) or ``output``.
    """

    name: str
    op: str
    target: Any
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    meta: Any = None


@dataclass
class Graph:
    nodes: list[Node]
    method: str
    note: str = ""

    def consumers(self) -> dict[str, list[Node]]:
        users: dict[str, list[Node]] = {node.name: [] for node in self.nodes}
        for node in self.nodes:
            for ref in iter_refs((node.args, node.kwargs)):
                if node not in users[ref.node]:
                    users[ref.node].append(node)
        return users


def iter_refs(value: Any) -> Iterator[Ref]:
    if isinstance(value, Ref):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from iter_refs(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from iter_refs(item)


def map_refs(value: Any, function: Callable[[Ref], Any]) -> Any:
    """Replace every ``Ref`` inside nested tuples, lists and dicts by ``function(ref)``."""
    if isinstance(value, Ref):
        return function(value)
    if isinstance(value, tuple):
        return tuple(map_refs(item, function) for item in value)
    if isinstance(value, list):
        return [map_refs(item, function) for item in value]
    if isinstance(value, dict):
        return {key: map_refs(item, function) for key, item in value.items()}
    return value


def shape_of(meta: object) -> tuple[int, ...] | None:
    """The shape of a ``TensorMeta``, ``None`` for anything else."""
    return meta.shape if isinstance(meta, TensorMeta) else None
