"""What ``init_model`` does not propagate, said by name: operations without a rule, elementwise formulas that are not
finite on their input's range, weights kept by ``keep=``. The rules of ``_Propagation`` (``_propagate``) for them.

An operation without a rule is named in a ``VarpropWarning`` (and in ``report.unknown``); its output is ``Unknown``
(``_names``): every node computed from it is unknown too (its rule runs with unit moments in place of the unknown
input, so that the weight layers there still get weights, chosen as for E[x^2] = 1, and their rows have no
prediction), except normalizations, whose output moments do not depend on their input's.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

from torch import nn

from ... import VarpropError, VarpropWarning
from ..graph.foreign_modules import rms_norm_proxy
from ..graph.ir import Node
from ..graph.modules import NORM_TYPES
from .elementwise import Formula, finite_on, formula_activation
from .names import Unknown, canonical, kept_embedding
from .plan import ActivationUse, Context
from .stats import Stat, apply_activation, scalar_stat

__all__ = ["UnknownRules"]


class UnknownRules:
    """The ``_Propagation`` rules for what is not propagated (a mixin: the dispatcher is ``_propagate``'s)."""

    ctx: Context
    modules: dict[str, nn.Module]
    formulas: dict[str, Formula]
    users: dict[str, list[Node]]
    kept: frozenset[int]
    unknown_as_unit: bool

    def module(self, node: Node) -> Any:  # pragma: no cover - defined by _Propagation
        raise NotImplementedError

    def operation(self, node: Node) -> Any:  # pragma: no cover - defined by _Propagation
        raise NotImplementedError

    def value(self, item: Any) -> Any:  # pragma: no cover - defined by _Propagation
        raise NotImplementedError

    def raw_stat(self, value: Any, where: str) -> Stat:  # pragma: no cover - defined by _Propagation
        raise NotImplementedError

    @staticmethod
    def unit_if_unknown(value: Any) -> Any:
        if isinstance(value, Unknown):
            return scalar_stat(0.0, 1.0, value.ndim)
        if isinstance(value, tuple):
            return tuple(UnknownRules.unit_if_unknown(item) for item in value)
        return value

    def unknown(self, what: str, node: Node, args: Sequence[Any]) -> Any:
        """An operation or module without a rule: said by name (``report.unknown``, a ``VarpropWarning``), and its
        output ``Unknown``: no prediction is made downstream of it (weight layers there are still initialized)."""
        self.ctx.note_unknown(what, "not propagated: the predictions downstream of it are unknown")
        self.warn_unknown(f"{what}: varprop has no rule for it; the predictions downstream of it are marked unknown")
        return Unknown(what, getattr(node.meta, "ndim", None))

    def warn_unknown(self, message: str) -> None:
        if message not in self.ctx.warnings:
            self.ctx.warn(message)
            # stacklevel 7: warn_unknown <- unknown <- operation/module <- run <- propagate <- _initialize <- init_model
            warnings.warn(message, VarpropWarning, stacklevel=8)

    def keeping(self, node: Node) -> Any:
        """A node's rule when some parameters are kept: if it planned a kept one, its rows lose their predictions
        and its output is unknown (the moments assumed a value that will not be written)."""
        planned, layers = len(self.ctx.recipes), len(self.ctx.layers)
        value = self.module(node) if node.op == "module" else self.operation(node)
        new_keys = list(self.ctx.recipes)[planned:]
        touched = [key for key in new_keys if key in self.kept]
        if not touched:
            return value
        names = ", ".join(self.ctx.param_names.get(key, "<parameter>") for key in touched)
        module = self.modules.get(str(node.target)) if node.op == "module" else None
        if isinstance(module, nn.Embedding) and [id(module.weight)] == touched:
            # (a kept table, e.g. a sinusoid: its rows are known, so is its output)
            plans = self.ctx.layers[layers:]
            self.ctx.recipes.pop(id(module.weight), None)
            out = kept_embedding(self.value(node.args)[0], module.weight, node.meta)
            for plan in plans:
                plan.output, plan.std = out, float(module.weight.detach().double().std())
                plan.target_var, plan.realized_scale = out.variance, 1.0
                plan.notes.append(f"kept at its value (keep=): {names}; the output's moments are its rows'")
            return out
        for plan in self.ctx.layers[layers:]:
            plan.output = None
            plan.notes.append(f"kept at its value (keep=): {names}; no prediction")
        return Unknown(f"{names} (kept)", getattr(node.meta, "ndim", None))

    def through_unknown(self, node: Node, unknown: Unknown) -> Any:
        """A node fed by an ``Unknown``: its rule runs with unit moments in place of the unknown input (so that
        weight layers get their weights, chosen as for E[x^2] = 1), each layer it plans loses its prediction, and
        its output is unknown unless it is a normalization (whose output moments do not depend on its input's)."""
        before = len(self.ctx.layers)
        self.unknown_as_unit = True
        try:
            value = self.module(node) if node.op == "module" else self.operation(node)
        finally:
            self.unknown_as_unit = False
        for plan in self.ctx.layers[before:]:
            plan.input = plan.output = None
            note = f"input unknown (downstream of {unknown.reason}): weights as for E[x^2] = 1, no prediction"
            plan.notes.append(note)
        module = self.modules.get(str(node.target)) if node.op == "module" else None
        if module is not None and (isinstance(module, NORM_TYPES) or rms_norm_proxy(module) is not None):
            return value
        return Unknown(unknown.reason, getattr(node.meta, "ndim", None))

    def formula(self, node: Node, formula: Formula, source: Stat) -> Any:
        """A node computed as an elementwise formula of one earlier node (see ``_elementwise``): exact moments of
        the formula for the source's Gaussian, or ``Unknown`` when the formula is not finite on its range (``log``
        of a zero-mean signal), or ``None`` when the core cannot parse it (the per-operation rules then apply)."""
        try:
            act = formula_activation(formula.text)
        except VarpropError:
            return None
        x = self.raw_stat(source, formula.text)
        spread = math.sqrt(float(x.var.max()) + x.shared)
        if not (finite_on(act, float(x.mean.min()), spread) and finite_on(act, float(x.mean.max()), spread)):
            what = f"{canonical(node)}() in {act.name[len('expr:') :]}"
            self.ctx.note_unknown(what, "not finite on part of its input's range: no prediction downstream")
            self.warn_unknown(
                f"{what}: not finite (NaN or infinite) on part of its input's range (mean {x.pooled_mean:.4g}, "
                f"variance {x.variance:.4g}); the predictions downstream of it are marked unknown"
            )
            return Unknown(what, getattr(node.meta, "ndim", None))
        consumers = self.users.get(node.name, [])
        inner = consumers and all(
            (f := self.formulas.get(user.name)) is not None and f.needed and f.source == formula.source
            for user in consumers
        )
        if not inner:
            self.ctx.activations.append(ActivationUse(f"{node.name} ({act.name})", act, x.variance, x.pooled_mean))
            self.ctx.pre_activation[node.name] = (act, x)
        return apply_activation(act, x, self.ctx.unit_moments)
