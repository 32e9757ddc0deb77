"""``init_model(keep=...)``: parameters the user asks to leave at their values, and the rule that nothing else is.

``keep`` is an iterable of qualified parameter names (as ``model.named_parameters()`` spells them; a tied tensor by
any of its names), a predicate ``keep(name, parameter) -> bool``, or ``"frozen"``: the parameters with
``requires_grad=False`` (Whisper's sinusoidal ``embed_positions``: a table its model defines, not an initialization).
A kept parameter is never written; a kept embedding table propagates its own rows' moments. When a rule
would have written it (a weight layer, a normalization's gamma), the layers it feeds have no prediction: their rows
say so and everything downstream is unknown (the moments assumed a new value that is not there).

Every parameter that is neither written nor kept is named in a ``VarpropWarning`` and in
``report.settings["untouched_parameters"]``: nothing is left at its old value silently.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from .. import VarpropTypeError, VarpropValueError

__all__ = ["resolve_keep"]


def resolve_keep(model: nn.Module, keep: Any) -> dict[int, str]:
    """``{id(parameter): name}`` of the parameters ``keep`` names (see the module docstring).

    Raises:
        VarpropTypeError: ``keep`` is neither ``None``, an iterable of names nor a callable.
        VarpropValueError: a name that is not a parameter of ``model`` (the message suggests the nearest ones).
    """
    if keep is None:
        return {}
    named = list(model.named_parameters(remove_duplicate=False))
    first = {id(p): name for name, p in reversed(named)}  # (a tied tensor under its first name)
    if keep == "frozen":
        return {id(p): first[id(p)] for _name, p in named if not p.requires_grad}
    if callable(keep):
        predicate: Callable[[str, torch.Tensor], Any] = keep
        return {id(p): first[id(p)] for name, p in named if bool(predicate(name, p))}
    if isinstance(keep, (str, bytes)) or not isinstance(keep, Iterable):
        raise VarpropTypeError(
            f"keep must be None, 'frozen', an iterable of parameter names or a callable (name, parameter) -> bool, got "
            f"{type(keep).__name__} {keep!r}"[:300]
        )
    by_name = dict(named)
    kept: dict[int, str] = {}
    for name in keep:
        if not isinstance(name, str):
            raise VarpropTypeError(f"keep holds {name!r} ({type(name).__name__}); give parameter names (str)")
        if name not in by_name:
            near = difflib.get_close_matches(name, list(by_name), n=3)
            hint = f"; did you mean {', '.join(repr(n) for n in near)}?" if near else ""
            raise VarpropValueError(
                f"keep names {name!r}, which is not a parameter of the model{hint} (names as in "
                "model.named_parameters())"
            )
        kept[id(by_name[name])] = first[id(by_name[name])]
    return kept
