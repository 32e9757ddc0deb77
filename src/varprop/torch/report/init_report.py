"""``InitReport``: what ``init_model`` assumed, chose and measured, as a table, a dict or JSON."""

from __future__ import annotations

import functools
import json
import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any
from warnings import warn

import numpy as np

from ... import VarpropWarning
from ...activations import Activation
from ...dynamics import classify, depth_scale, escape_layers, predict_drift, stability, stability_verdict
from ...gains import gain
from ..propagation.plan import ActivationUse, LayerPlan

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
    """One activation spec, over every place it is used, with its depth-dynamics class when available.

    ``input_var`` and ``input_mean`` are the medians over the uses (the representative input), the ranges their
    min and max; ``kind``, ``slope`` and ``verdict`` are ``varprop.dynamics.stability`` at the median ``input_var``.
    ``chain_depth`` counts the weight layers of the longest plain chain layer -> this activation -> layer -> ...
    (consecutive weight layers, in propagation order, each followed directly by it; 0 or 1 when each use sits behind
    a normalization, inside a residual branch or in attention), ``width`` the median effective fan-in of that chain's
    layers after its first (the median over all layers when there is no chain): the width of a dense layer, fewer
    than torch's fan_in where zero padding cuts kernel taps off (``padded`` is then true, and the report says
    "effective fan-in" rather than "width"). Ranges left out default to the median.

    ``drift()`` is ``varprop.dynamics.predict_drift`` for a plain network of this activation with ``chain_depth``
    layers of width ``width`` at the mean-field gain: the 16-84% band of one input's pre-activation variance after
    the last of them, relative to ``input_var`` (computed on demand; a guide to how far depth can push the signal
    without calibration, not a prediction for the realized-weights init).
    """

    activation: str
    where: tuple[str, ...]
    input_var: float
    input_mean: float
    input_var_range: tuple[float, float] = (math.nan, math.nan)
    input_mean_range: tuple[float, float] = (math.nan, math.nan)
    kind: str | None = None
    slope: float | None = None
    verdict: str | None = None
    width: float = 0.0
    chain_depth: int = 0
    padded: bool = False
    phase: str | None = None
    chi1: float | None = None
    depth_scale_c: float | None = None
    # objective="critical": the point's (sigma_w, sigma_b) for the drift band (None: the exact gain, zero bias)
    weight_std: float | None = None
    bias_std: float = 0.0

    def __post_init__(self) -> None:
        for name, value in (("input_var_range", self.input_var), ("input_mean_range", self.input_mean)):
            if all(math.isnan(bound) for bound in getattr(self, name)):
                object.__setattr__(self, name, (value, value))

    @property
    def count(self) -> int:
        """Number of places (modules, functional calls, module calls) where the activation is applied."""
        return len(self.where)

    def drift(self) -> tuple[float, float] | None:
        return _drift_band(
            self.activation,
            self.chain_depth,
            round(self.width),
            round(self.input_var, 12),
            self.weight_std,
            self.bias_std,
        )

    @property
    def width_label(self) -> str:
        """How the report names ``width``: ``"width 64"``, or ``"effective fan-in 8.26562"`` when zero padding makes
        it differ from torch's fan_in."""
        return f"{'effective fan-in' if self.padded else 'width'} {self.width:g}"


def stability_of(act: Activation, var: float, critical: dict[str, Any] | None = None) -> dict[str, Any]:
    """``varprop.dynamics.stability(act, var)`` summarized (an empty dict for a variance that is not positive).

    ``critical``: the report's ``settings["critical"]`` (objective="critical"): for its activation the variance map
    is the point's, with biases (sigma_w, sigma_b), so its slope and chi1 are the point's at q*."""
    if not (var > 0 and math.isfinite(var)):
        return {}
    if critical is not None and critical.get("activation") == act.spec:
        slope, chi1 = float(critical["slope"]), float(critical["chi1"])
        kind = str(classify(slope))
        scale_q, scale_c = float(depth_scale(slope)), float(depth_scale(chi1))
        doubling = math.inf if math.isinf(scale_q) else abs(scale_q) * math.log(2.0)
        verdict = stability_verdict(kind, slope, doubling, float(critical["q*"]), chi1, scale_c)
        return {
            "kind": kind,
            "slope": slope,
            "verdict": verdict,
            "phase": "critical",
            "chi1": chi1,
            "depth_scale_c": scale_c,
        }
    try:
        result = stability(act, var)
    except Exception as error:
        return {"verdict": f"stability unavailable: {type(error).__name__}: {error}"}
    summary: dict[str, Any] = {}
    for field_name in ("kind", "slope", "verdict", "phase", "chi1", "depth_scale_c"):
        value = getattr(result, field_name, None)
        if value is not None:
            summary[field_name] = str(value) if field_name in ("kind", "verdict", "phase") else float(value)
    return summary


@functools.lru_cache(maxsize=256)
def _drift_band(
    spec: str, depth: int, width: int, var: float, weight_std: float | None = None, bias_std: float = 0.0
) -> tuple[float, float] | None:
    if depth < 2 or width < 2 or not (var > 0 and math.isfinite(var)):
        return None
    try:
        scale = float(gain(spec, var=var)) if weight_std is None else weight_std
        prediction = predict_drift(spec, depth, width, scale, bias_std, input_var=var)
        return float(prediction.lower[-1]) / var, float(prediction.upper[-1]) / var
    except Exception:  # a report must not fail on a diagnostic
        return None


# ------------------------------------------------------------------------------------ grouping and plain chains


def _bare_name(text: str) -> str:
    """How ``LayerRow.follows`` names an activation: ``'leaky_relu(negative_slope=0.01)'`` and ``'LeakyReLU'`` both
    give ``'leakyrelu'``."""
    return text.split("(", 1)[0].replace("_", "").strip().lower()


def _is_padded(plans: list[LayerPlan]) -> bool:
    """Whether any of the layers has an effective fan-in other than torch's fan_in (zero padding, strides)."""
    return any(plan.effective_fan_in != plan.fan_in for plan in plans)


def _plain_chains(plans: list[LayerPlan]) -> dict[str, tuple[int, float, bool]]:
    """Per activation name: (layers, width, padded) of the longest run of consecutive weight layers (propagation
    order) each followed directly by that activation; width is the median effective fan-in of the run's layers after
    the first (the first one's fan_in is whatever feeds the chain), padded whether any of those differs from torch's
    fan_in."""
    best: dict[str, tuple[int, int]] = {}  # name -> (start, length)
    start, name = 0, ""
    for index, plan in enumerate(plans):
        follows = _bare_name(plan.follows) if plan.follows and "," not in plan.follows else ""
        if not follows or follows != name:
            start, name = index, follows
        length = index - start + 1
        if follows and length > best.get(follows, (0, 0))[1]:
            best[follows] = (start, length)
    chains = {}
    for follows, (first, length) in best.items():
        run = plans[first : first + length]
        counted = run[1:] or run
        fans = [plan.effective_fan_in for plan in counted]
        chains[follows] = (length, float(statistics.median(fans)), _is_padded(counted))
    return chains


def _group(
    activations: list[ActivationUse], plans: list[LayerPlan], critical: dict[str, Any] | None = None
) -> tuple[list[ActivationRow], dict[str, Activation]]:
    """One ``ActivationRow`` per activation spec (in order of first use), and the ``Activation`` of each spec."""
    grouped: dict[str, list[ActivationUse]] = {}
    for use in activations:
        grouped.setdefault(use.act.spec, []).append(use)
    chains = _plain_chains(plans)
    wide = [plan for plan in plans if plan.effective_fan_in > 1]
    overall_width = float(statistics.median(plan.effective_fan_in for plan in wide)) if wide else 0.0
    rows = []
    for spec, uses in grouped.items():
        variances = [use.input_var for use in uses]
        means = [use.input_mean for use in uses]
        median_var = float(statistics.median(variances))
        summary = stability_of(uses[0].act, median_var, critical)
        depth, width, padded = chains.get(_bare_name(spec), (0, overall_width, _is_padded(wide)))
        rows.append(
            ActivationRow(
                activation=spec,
                where=tuple(use.name for use in uses),
                input_var=median_var,
                input_mean=float(statistics.median(means)),
                input_var_range=(min(variances), max(variances)),
                input_mean_range=(min(means), max(means)),
                kind=summary.get("kind"),
                slope=summary.get("slope"),
                verdict=summary.get("verdict"),
                width=width,
                chain_depth=depth,
                padded=padded,
                phase=summary.get("phase"),
                chi1=summary.get("chi1"),
                depth_scale_c=summary.get("depth_scale_c"),
                **_critical_scales(uses[0].act, critical),
            )
        )
    return rows, {spec: uses[0].act for spec, uses in grouped.items()}


def _critical_scales(act: Activation, critical: dict[str, Any] | None) -> dict[str, Any]:
    """``weight_std`` and ``bias_std`` of an activation row under objective="critical" (none otherwise)."""
    if critical is None or critical.get("activation") != act.spec:
        return {}
    return {"weight_std": float(critical["sigma_w"]), "bias_std": float(critical["sigma_b"])}


# ------------------------------------------------------------------------------------ deep unstable chains

# The band a plain chain must keep one input's variance in (x the target) before the report warns: beyond it a
# network is a factor 2 off for a sixth of the inputs on each side.
_BAND = 2.0
# Larger targets tried for an unstable activation (slope at 4 q and 16 q): the slope of SiLU, GELU and Mish falls
# towards 1 as the variance grows (varprop.dynamics.stability).
_LARGER_TARGETS = (4.0, 16.0)
_ESCAPES: dict[tuple[str, int, int, float], tuple[tuple[float, float, int | None], ...]] = {}


def _escapes(act: Activation, depth: int, width: int, var: float) -> tuple[tuple[float, float, int | None], ...]:
    """(var, slope, escape layer) at ``var`` and at each of ``_LARGER_TARGETS`` x ``var``; cached (two engine
    calls on three variances when computed)."""
    key = (act.spec, depth, width, var)
    cached = _ESCAPES.get(key)
    if cached is None:
        variances = np.array([var, *(factor * var for factor in _LARGER_TARGETS)])
        slopes = np.atleast_1d(np.asarray(stability(act, variances).slope, dtype=np.float64))
        layers = escape_layers(act, variances, slopes, depth, width, _BAND)
        cached = tuple((float(v), float(s), layer) for v, s, layer in zip(variances, slopes, layers, strict=True))
        if len(_ESCAPES) >= 256:
            _ESCAPES.clear()
        _ESCAPES[key] = cached
    return cached


def _deep_unstable_warning(
    row: ActivationRow, act: Activation, target_var: float, calibrated: bool = False
) -> str | None:
    """The warning for an activation that is unstable at its input variance, stacked deep enough in a plain chain
    that one input's variance leaves [1/2, 2] x the target (None otherwise).

    Uncalibrated, the analytic init cannot hold the chain, and calibration is the first remedy. Calibrated, every
    layer's variance is exact on the calibration batch, but the instability is the map's: another input's deviation
    from the target still grows by the slope per layer (a deep SiLU chain measures 1.3-2.7x the target on fresh
    batches, ``tests/test_zoo_failures.py``), so the message says so and names the remedies that change the map."""
    if row.kind != "unstable" or row.chain_depth < 2 or row.width < 2:
        return None
    if not (row.input_var > 0 and math.isfinite(row.input_var)):
        return None
    try:
        escapes = _escapes(act, row.chain_depth, round(row.width), float(f"{row.input_var:.3g}"))
    except Exception:  # a report must not fail on a diagnostic
        return None
    (var, slope, layer), *larger = escapes
    if layer is None:
        return None
    message = (
        f"{row.activation} is unstable at var {var:.4g} (slope {slope:.4g}): over {row.chain_depth} stacked layers "
        f"of {row.width_label} a finite-width deviation of one input's variance grows x{slope:.4g} per layer and "
        f"leaves [0.5, 2] x the target (16-84% band) after about {layer} layers; "
    )
    holds = [big for big, _, big_layer in larger if big_layer is None]
    delays = [(big, big_layer) for big, big_slope, big_layer in larger if big_slope < slope and big_layer is not None]
    if calibrated:
        message += (
            "calibration made each layer's variance exact on the calibration batch only and cannot hold it for "
            "other inputs (a fresh batch drifts) -- use normalization or residual connections"
        )
    else:
        message += "the analytic init cannot hold it -- use calibrate='gaussian' (or a batch), "
        message += "normalization or residual connections" if holds else "or normalization or residual connections"
    if holds:
        return (
            message + f", or a larger target_var "
            f"(at {target_var * holds[0] / var:.3g} it holds over all {row.chain_depth} layers)"
        )
    if delays:
        big, big_layer = delays[-1]
        message += f" (a larger target_var only delays it: ~{big_layer} layers at {target_var * big / var:.3g})"
    return message


# ------------------------------------------------------------------------------------ the report


def _round(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "-"
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.{digits}g}"
    return f"{value:.{max(digits - 1, 1)}e}"


def _span(low: float, high: float, median: float) -> str:
    if _round(low) == _round(high):
        return _round(median)
    return f"[{_round(low)}, {_round(high)}] (median {_round(median)})"


# (header, legend line) of the layer table, in column order; "measured" and "scale" only appear after calibration.
_COLUMNS = (
    ("layer", ""),
    ("type", ""),
    ("fan_in", "torch's fan_in: in_features, or in_channels / groups x kernel size (torch.nn.init's rule)"),
    (
        "effective fan_in",
        "inputs that reach an output unit on average: fan_in x the share of kernel taps off the zero padding",
    ),
    ("follows", "what consumes the layer's output: an activation, a normalization, a residual add, the output"),
    ("in E[x]", "predicted mean of the layer's input (pooled over its entries)"),
    ("in E[x^2]", "predicted second moment of the layer's input; Var[w] = target / (effective fan_in E[x^2])"),
    ("target", "output variance aimed at: target_var, or the residual policy's value at a branch end"),
    ("std", "std of the weights written (after the realized-weights correction and calibration)"),
    ("measured", "output variance measured on the calibration batch, before rescaling"),
    ("scale", "calibration's factor on the weights, sqrt(target / measured)"),
)


@dataclass
class InitReport:
    """Result of ``init_model``: one row per weight layer, the activations met, unknown operations and warnings.

    ``str(report)`` prints a table (with a legend of its columns); ``to_dict()`` and ``to_json()`` give the same
    content as data, ``from_dict`` reads it back.

    Attributes:
        layers: one ``LayerRow`` per weight layer (per projection for attention), in propagation order.
        activations: one ``ActivationRow`` per activation spec: where it is used, the range of its input variance and
            mean, its stability class at the median input variance and the plain chain it forms.
        unknown: ``(what, assumption)`` for every operation or module that was not recognized.
        warnings: notes such as parameters left unchanged, residual branches that could not be scaled, or an unstable
            activation stacked too deep for the analytic init (also emitted as a ``VarpropWarning``).
        outputs: predicted (mean, variance) of each model output (a recurrent module's: pooled over the steps).
        settings: the options used, how the graph was obtained (``torch.fx``, ``hooks`` or ``single module``);
            ``settings["step_variances"]``: for each recurrent module (``nn.RNN``, ``nn.LSTM``, ``nn.GRU``), by
            name, the predicted variance of its output's entries at each step of the sequence, from h0 = 0 (the
            first steps are below the stationary value).
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
        stacklevel: int = 3,
    ) -> InitReport:
        """The report of one ``init_model`` call; emits one ``VarpropWarning`` (attributed to the caller of
        ``init_model``, ``stacklevel`` frames up) when an unstable activation is stacked too deep in a plain chain
        (with or without calibration: ``_deep_unstable_warning``)."""
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
        activation_rows, acts = _group(activations, plans, settings.get("critical"))
        deep: list[str] = []
        target_var = float(settings.get("target_var", 1.0))
        calibrated = settings.get("calibrate") is not None
        for row in activation_rows:
            message = _deep_unstable_warning(row, acts[row.activation], target_var, calibrated)
            if message is not None:
                deep.append(message)
        if deep:
            warn("\n".join(deep), VarpropWarning, stacklevel=stacklevel)  # frames up to the user's call
        return cls(
            layers=tuple(rows),
            activations=tuple(activation_rows),
            unknown=tuple(unknown.items()),
            warnings=(*warnings, *deep),
            outputs=tuple(outputs),
            settings=settings,
            timings=timings,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, dicts, floats, strings); activations add their ``count`` and ``drift_band``."""
        return {
            "settings": dict(self.settings),
            "layers": [asdict(row) for row in self.layers],
            "activations": [{**asdict(row), "count": row.count, "drift_band": row.drift()} for row in self.activations],
            "unknown": [{"what": what, "assumption": assumption} for what, assumption in self.unknown],
            "warnings": list(self.warnings),
            "outputs": [{"mean": mean, "var": var} for mean, var in self.outputs],
            "timings": dict(self.timings),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InitReport:
        """The report ``to_dict()`` (or ``json.loads(to_json())``) describes; derived entries are recomputed.

        Example:
            >>> import torch
            >>> from varprop.torch import init_model
            >>> report = init_model(torch.nn.Linear(4, 4), (8, 4))
            >>> InitReport.from_dict(json.loads(report.to_json())) == report
            True
        """
        derived = {"count", "drift_band"}
        tuples = {"where", "input_var_range", "input_mean_range"}

        def activation_row(row: dict[str, Any]) -> ActivationRow:
            fields: dict[str, Any] = {key: tuple(v) if key in tuples else v for key, v in row.items()}
            return ActivationRow(**{key: v for key, v in fields.items() if key not in derived})

        return cls(
            layers=tuple(LayerRow(**{**row, "notes": tuple(row.get("notes", ()))}) for row in data["layers"]),
            activations=tuple(activation_row(row) for row in data["activations"]),
            unknown=tuple((entry["what"], entry["assumption"]) for entry in data["unknown"]),
            warnings=tuple(data["warnings"]),
            outputs=tuple((entry["mean"], entry["var"]) for entry in data["outputs"]),
            settings=dict(data.get("settings", {})),
            timings=dict(data.get("timings", {})),
        )

    def to_json(self, **kwargs: Any) -> str:
        """``to_dict()`` as JSON (``kwargs`` go to ``json.dumps``, e.g. ``indent=2``)."""
        return json.dumps(self.to_dict(), **kwargs)

    def _layer_table(self) -> list[str]:
        calibrated = any(row.measured_var is not None or row.calibration_scale is not None for row in self.layers)
        # the effective fan-in gets its own column where it differs from torch's fan_in (zero padding)
        padded = any(row.effective_fan_in != row.fan_in for row in self.layers)
        hidden = (() if calibrated else ("measured", "scale")) + (() if padded else ("effective fan_in",))
        columns = [column for column in _COLUMNS if column[0] not in hidden]
        table = [tuple(header for header, _ in columns)]
        for row in self.layers:
            cells = {
                "layer": row.name + (f" (x{row.calls})" if row.calls > 1 else ""),
                "type": row.layer_type,
                "fan_in": _round(row.fan_in, 5),
                "effective fan_in": _round(row.effective_fan_in, 5),
                "follows": row.follows,
                "in E[x]": _round(row.input_mean),
                "in E[x^2]": _round(row.input_second_moment),
                "target": _round(row.target_var),
                "std": _round(row.std),
                "measured": _round(row.measured_var),
                "scale": _round(row.calibration_scale),
            }
            table.append(tuple(cells[header] for header, _ in columns))
        widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
        lines = []
        for index, line in enumerate(table):
            lines.append("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
            if index == 0:
                lines.append("  ".join("-" * width for width in widths))
        if self.layers:
            legend = [(header, text) for header, text in columns if text]
            label = max(len(header) for header, _ in legend)
            lines.append("columns:")
            lines.extend(f"  {header.ljust(label)}  {text}" for header, text in legend)
        return lines

    def _activation_lines(self) -> list[str]:
        lines = ["activations (one line per spec; stability and drift at the median input variance):"]
        for act in self.activations:
            stability = "" if act.kind is None else f"; variance {act.kind} (slope {_round(act.slope)})"
            if act.phase is not None and act.chi1 is not None:
                depth = max(act.chain_depth, 1)
                stability = (
                    f"; {act.phase} (chi1 {_round(act.chi1)}: gradient second moment times "
                    f"{_round(act.chi1**depth)} over {depth} layer{'s' if depth != 1 else ''}){stability}"
                )
            band = act.drift()
            drift = (
                ""
                if band is None
                else (
                    f"; plain chain of {act.chain_depth} layers of {act.width_label}: "
                    f"drift [{_round(band[0])}, {_round(band[1])}] x the input var (16-84%)"
                )
            )
            lines.append(
                f"  {act.activation} x{act.count}: input var {_span(*act.input_var_range, act.input_var)}, "
                f"mean {_span(*act.input_mean_range, act.input_mean)}{stability}{drift}"
            )
        return lines

    def __str__(self) -> str:
        lines = [
            "varprop.torch.init_model: "
            + ", ".join(
                f"{key}={value}"
                for key, value in self.settings.items()
                if key not in ("note", "critical", "step_variances")
            ),
        ]
        if self.settings.get("note"):
            lines.append(f"note: {self.settings['note']}")
        point = self.settings.get("critical")
        if point:
            lines.append(
                f"edge of chaos for {point['activation']}: sigma_w {_round(point['sigma_w'], 6)}, sigma_b "
                f"{_round(point['sigma_b'], 6)}, q* {_round(point['q*'], 6)}, chi1 {_round(point['chi1'], 6)}, "
                f"xi_q {_round(point['xi_q'])}, xi_c {_round(point['xi_c'])}; predicted gradient factor chi1^"
                f"{point['depth']} = {_round(point['gradient_factor'], 6)} ({point['rule']})"
            )
        lines.extend(self._layer_table())
        if self.activations:
            lines.append("")
            lines.extend(self._activation_lines())
        if self.outputs:
            lines.append("")
            lines.append(
                "outputs (predicted mean, variance): "
                + ", ".join(f"({_round(m)}, {_round(v)})" for m, v in self.outputs)
            )
        for name, values in self.settings.get("step_variances", {}).items():
            lines.append(
                f"{name or '(the model)'}: output pooled over {len(values)} steps (from h0 = 0); predicted variance at "
                "each step: " + ", ".join(_round(value, 3) for value in values)
            )
        if not self.outputs and self.unknown:
            lines.append("")
            lines.append("outputs: unknown (downstream of an operation varprop does not propagate; see below)")
        noted = [(row.name, note) for row in self.layers for note in row.notes]
        if noted:
            lines.append("")
            lines.append("notes:")
            lines.extend(f"  {name or '(the model)'}: {note}" for name, note in noted)
        if self.unknown:
            lines.append("")
            lines.append("not recognized (assumption made):")
            lines.extend(f"  {what}: {assumption}" for what, assumption in self.unknown)
        if self.warnings:
            lines.append("")
            lines.append("warnings:")
            lines.extend(f"  {warning}" for warning in self.warnings)
        return "\n".join(lines)
