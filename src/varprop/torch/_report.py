"""``InitReport``: what ``init_model`` assumed, chose and measured, as a table, a dict or JSON."""

from __future__ import annotations

import functools
import importlib
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from .._activation import Activation
from ._plan import ActivationUse, LayerPlan

__all__ = ["ActivationRow", "InitReport", "LayerRow", "stability_of"]


@dataclass(frozen=True)
class LayerRow:
    """One weight layer. Moments are pooled over all entries; ``predicted_output_var`` is what the analytic step
    expects (the target, unless a shared module's later call or a zero branch), ``measured_var`` what calibration saw
    before rescaling (``None`` without calibration)."""

    name: str
    layer_type: str
    param: str
    fan_in: float
    effective_fan_in: float
    follows: str
    input_mean: float | None
    input_second_moment: float | None
    predicted_output_mean: float | None
    predicted_output_var: float | None
    target_var: float
    std: float
    realized_scale: float
    measured_var: float | None
    calibration_scale: float | None
    calls: int
    branch: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ActivationRow:
    """One activation (grouped by spec and input variance) with its depth-dynamics class when available.

    ``drift()`` is ``varprop._drift.predict_drift`` for a plain network of this activation with ``len(where)`` layers
    of width ``width`` at the mean-field gain: the 16-84% band of one input's pre-activation variance after the last
    of them, relative to ``input_var`` (computed on demand; a guide to how far depth can push the signal without
    calibration, not a prediction for the realized-weights init).
    """

    activation: str
    where: tuple[str, ...]
    input_var: float
    input_mean: float
    kind: str | None = None
    slope: float | None = None
    verdict: str | None = None
    width: float = 0.0

    def drift(self) -> tuple[float, float] | None:
        return _drift_band(self.activation, len(self.where), round(self.width), round(self.input_var, 12))


def _load(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def stability_of(act: Activation, var: float) -> dict[str, Any]:
    """``varprop._dynamics.stability(act, var)`` summarized, or an empty dict while that module does not exist."""
    dynamics = _load("varprop._dynamics")
    function = getattr(dynamics, "stability", None)
    if function is None or not (var > 0 and math.isfinite(var)):
        return {}
    try:
        result = function(act, var)
    except Exception as error:
        return {"verdict": f"stability unavailable: {type(error).__name__}: {error}"}
    summary: dict[str, Any] = {}
    for field_name in ("kind", "slope", "verdict"):
        value = getattr(result, field_name, None)
        if value is not None:
            summary[field_name] = float(value) if field_name == "slope" else str(value)
    return summary


@functools.lru_cache(maxsize=256)
def _drift_band(spec: str, depth: int, width: int, var: float) -> tuple[float, float] | None:
    drift = _load("varprop._drift")
    predict = getattr(drift, "predict_drift", None)
    if predict is None or depth < 2 or width < 2 or not (var > 0 and math.isfinite(var)):
        return None
    try:
        from .._gains import gain

        prediction = predict(spec, depth, width, float(gain(spec, var=var)), input_var=var)
        return float(prediction.lower[-1]) / var, float(prediction.upper[-1]) / var
    except Exception:  # a report must not fail on a diagnostic
        return None


def _round(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "-"
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.{digits}g}"
    return f"{value:.{max(digits - 1, 1)}e}"


@dataclass
class InitReport:
    """Result of ``init_model``: one row per weight layer, the activations met, unknown operations and warnings.

    ``str(report)`` prints a table; ``to_dict()`` and ``to_json()`` give the same content as data.

    Attributes:
        layers: one ``LayerRow`` per weight layer (per projection for attention), in propagation order.
        activations: ``ActivationRow`` per activation spec and input variance, with its stability class.
        unknown: ``(what, assumption)`` for every operation or module that was not recognized.
        warnings: notes such as parameters left unchanged or residual branches that could not be scaled.
        outputs: predicted (mean, variance) of each model output.
        settings: the options used, how the graph was obtained (``torch.fx``, ``hooks`` or ``single module``).
        timings: seconds spent tracing, propagating, calibrating and writing.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from varprop.torch import init_model
        >>> report = init_model(nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 2)), (16, 8))
        >>> report.to_dict()["layers"][1]["follows"]
        'output'
    """

    layers: tuple[LayerRow, ...]
    activations: tuple[ActivationRow, ...]
    unknown: tuple[tuple[str, str], ...]
    warnings: tuple[str, ...]
    outputs: tuple[tuple[float, float], ...]
    settings: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        plans: list[LayerPlan],
        activations: list[ActivationUse],
        unknown: dict[str, str],
        warnings: list[str],
        outputs: list[tuple[float, float]],
        settings: dict[str, Any],
        timings: dict[str, float],
    ) -> InitReport:
        rows = []
        for plan in plans:
            rows.append(
                LayerRow(
                    name=plan.name,
                    layer_type=plan.layer_type,
                    param=plan.param_name,
                    fan_in=plan.fan_in,
                    effective_fan_in=plan.effective_fan_in,
                    follows=plan.follows,
                    input_mean=None if plan.input is None else plan.input.pooled_mean,
                    input_second_moment=None if plan.input is None else plan.input.second_moment,
                    predicted_output_mean=None if plan.output is None else plan.output.pooled_mean,
                    predicted_output_var=None if plan.output is None else plan.output.variance,
                    target_var=plan.target_var,
                    std=plan.std,
                    realized_scale=plan.realized_scale,
                    measured_var=plan.measured_var,
                    calibration_scale=plan.calibration_scale,
                    calls=plan.calls,
                    branch=plan.branch,
                    notes=tuple(plan.notes),
                )
            )
        grouped: dict[tuple[str, float], list[ActivationUse]] = {}
        for use in activations:
            grouped.setdefault((use.act.spec, round(use.input_var, 3)), []).append(use)
        fans = sorted(plan.effective_fan_in for plan in plans if plan.effective_fan_in > 1)
        width = fans[len(fans) // 2] if fans else 0.0
        activation_rows = []
        for (spec, _), uses in grouped.items():
            mean_var = sum(u.input_var for u in uses) / len(uses)
            summary = stability_of(uses[0].act, mean_var)
            activation_rows.append(
                ActivationRow(
                    activation=spec,
                    where=tuple(u.name for u in uses),
                    input_var=mean_var,
                    input_mean=sum(u.input_mean for u in uses) / len(uses),
                    kind=summary.get("kind"),
                    slope=summary.get("slope"),
                    verdict=summary.get("verdict"),
                    width=width,
                )
            )
        return cls(
            layers=tuple(rows),
            activations=tuple(activation_rows),
            unknown=tuple(unknown.items()),
            warnings=tuple(warnings),
            outputs=tuple(outputs),
            settings=settings,
            timings=timings,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, dicts, floats, strings)."""
        return {
            "settings": dict(self.settings),
            "layers": [asdict(row) for row in self.layers],
            "activations": [{**asdict(row), "drift_band": row.drift()} for row in self.activations],
            "unknown": [{"what": what, "assumption": assumption} for what, assumption in self.unknown],
            "warnings": list(self.warnings),
            "outputs": [{"mean": mean, "var": var} for mean, var in self.outputs],
            "timings": dict(self.timings),
        }

    def to_json(self, **kwargs: Any) -> str:
        """``to_dict()`` as JSON (``kwargs`` go to ``json.dumps``, e.g. ``indent=2``)."""
        return json.dumps(self.to_dict(), **kwargs)

    def __str__(self) -> str:
        header = ("layer", "type", "fan_in", "follows", "in E[x]", "in E[x^2]", "target", "std", "measured", "scale")
        table = [header]
        for row in self.layers:
            table.append(
                (
                    row.name + (f" (x{row.calls})" if row.calls > 1 else ""),
                    row.layer_type,
                    _round(row.effective_fan_in, 5),
                    row.follows,
                    _round(row.input_mean),
                    _round(row.input_second_moment),
                    _round(row.target_var),
                    _round(row.std),
                    _round(row.measured_var),
                    _round(row.calibration_scale),
                )
            )
        widths = [max(len(str(line[i])) for line in table) for i in range(len(header))]
        lines = [
            "varprop.torch.init_model: "
            + ", ".join(f"{key}={value}" for key, value in self.settings.items() if key != "note"),
        ]
        if self.settings.get("note"):
            lines.append(f"note: {self.settings['note']}")
        for index, line in enumerate(table):
            lines.append("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=False)).rstrip())
            if index == 0:
                lines.append("  ".join("-" * width for width in widths))
        if self.activations:
            lines.append("")
            lines.append("activations (input variance, stability at that variance):")
            for act in self.activations:
                stability = "" if act.kind is None else f", {act.kind} (slope {_round(act.slope)})"
                band = act.drift()
                drift = (
                    ""
                    if band is None
                    else (
                        f"; plain-network drift after {len(act.where)} layers of width {act.width:g}: "
                        f"{_round(band[0])}-{_round(band[1])} x (16-84%)"
                    )
                )
                lines.append(
                    f"  {act.activation}: x{len(act.where)}, input var {_round(act.input_var)}{stability}{drift}"
                )
        if self.outputs:
            lines.append("")
            lines.append(
                "outputs (predicted mean, variance): "
                + ", ".join(f"({_round(m)}, {_round(v)})" for m, v in self.outputs)
            )
        if self.unknown:
            lines.append("")
            lines.append("not recognized (assumption made):")
            lines.extend(f"  {what}: {assumption}" for what, assumption in self.unknown)
        if self.warnings:
            lines.append("")
            lines.append("warnings:")
            lines.extend(f"  {warning}" for warning in self.warnings)
        return "\n".join(lines)
