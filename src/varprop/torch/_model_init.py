"""``init_model``: initialize every layer of a model so the signal keeps the target variance, then report."""

from __future__ import annotations

import contextlib
import functools
import gc
import math
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .. import VarpropTypeError, VarpropValueError, VarpropWarning
from ..validation import check_real
from ._calibration_batch import calibration_batch, example_tensors
from ._critical import OBJECTIVES, critical_settings, model_critical_point
from ._keep import resolve_keep
from .distributed import sharding as _distributed
from .graph.ir import Graph
from .graph.modules import DROPOUT_TYPES
from .graph.trace import build_graph
from .propagation.calibrate import calibrate as run_calibration
from .propagation.layers import input_stat
from .propagation.plan import Context, keeps_draws
from .propagation.propagate import canonical, output_stats, propagate
from .propagation.recurrent import FORGET_BIAS
from .propagation.residual import RESIDUAL_POLICIES, STREAM_OPS, analyze
from .propagation.tied import measure_tied_uses
from .report.init_report import InitReport
from .sampling.draws import (
    TORCH_DISTRIBUTIONS,
    check_choice,
    check_generator,
    check_materialized,
    is_dtensor,
    is_sharded,
)
from .sampling.sharded_random import fresh_seed

__all__ = ["init_model"]


def _is_shape(value: Any) -> bool:
    return isinstance(value, torch.Size) or (
        isinstance(value, (tuple, list))
        and len(value) > 0
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    )


def _model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    for param in model.parameters():
        if param.is_floating_point():
            return param.device, param.dtype
    return torch.device("cpu"), torch.get_default_dtype()


def _example(
    model: nn.Module, example_input: Any, input_var: float | None, generator: torch.Generator | None
) -> tuple[tuple[torch.Tensor, ...], bool]:
    """The example as a tuple of tensors, and whether it was synthesized from a shape."""
    if _is_shape(example_input):
        shape = tuple(int(v) for v in example_input)
        if any(size <= 0 for size in shape):
            raise VarpropValueError(f"example_input shape {shape} has a non-positive size")
        device, dtype = _model_device_dtype(model)
        first = next(
            (m for m in model.modules() if not isinstance(m, (nn.Sequential, nn.ModuleList)) and m is not model), None
        )
        if isinstance(first, nn.Embedding):
            return (torch.randint(0, first.num_embeddings, shape, generator=generator, device=device),), True
        sample = torch.randn(shape, generator=generator, device=device, dtype=torch.float32)
        return (sample.mul_(math.sqrt(1.0 if input_var is None else input_var)).to(dtype),), True  # (in place)
    return tuple(t.detach().clone() for t in example_tensors("example_input", example_input)), False


def _note_frozen(model: nn.Module, ctx: Context, kept: dict[int, str]) -> None:
    """A note on each row whose tensor has ``requires_grad=False`` and is redrawn (not kept): such a tensor is often a
    fixed table of the model (Whisper's sinusoidal ``embed_positions``, which HF freezes), and training will not
    change the new value. Redrawn by default -- after ``to_empty`` or under ``no_init_weights`` it holds no table
    to keep -- and ``keep="frozen"`` keeps it; the note says which happened."""
    frozen = {name for name, p in model.named_parameters(remove_duplicate=False) if not p.requires_grad}
    frozen -= set(kept.values())
    if not frozen:
        return
    for plan in ctx.layers:
        name = plan.param_name.split("[", 1)[0]
        if name in frozen:
            plan.notes.append(
                f"{name} has requires_grad=False (a fixed table of the model?): redrawn like a trained weight, and "
                "training will not change it; keep='frozen' keeps its value"
            )


def _describe_follows(graph: Graph, ctx: Context, modules: dict[str, nn.Module], residual_adds: set[str]) -> None:
    users = graph.consumers()
    nodes_by_target: dict[str, list[str]] = {}
    for node in graph.nodes:
        if node.op == "module":
            nodes_by_target.setdefault(str(node.target), []).append(node.name)
    by_name = {node.name: node for node in graph.nodes}
    for plan in ctx.layers:
        if plan.follows:
            continue
        suffix = plan.name.rsplit(".", 1)[-1]
        composite = {
            "q_proj": "attention logits",
            "k_proj": "attention logits",
            "v_proj": "attention values",
            "linear1": "feed-forward activation",
            "linear2": "residual add",
            "out_proj": "attention output",
        }
        if plan.name not in nodes_by_target:
            plan.follows = composite.get(suffix, "")
            continue
        described = []
        for start in nodes_by_target[plan.name]:
            current = start
            for _ in range(64):
                following = users.get(current, [])
                if not following:
                    described.append("nothing")
                    break
                nxt = following[0]
                if nxt.op == "output":
                    described.append("output")
                    break
                module = modules.get(str(nxt.target)) if nxt.op == "module" else None
                passes = (nxt.op in ("function", "method") and canonical(nxt) in STREAM_OPS) or isinstance(
                    module, (*DROPOUT_TYPES, nn.Identity, nn.Flatten)
                )
                if passes:
                    current = nxt.name
                    continue
                if module is not None:
                    described.append(type(module).__name__)
                else:
                    name = canonical(by_name[nxt.name])
                    described.append(f"{name} (residual)" if nxt.name in residual_adds else name)
                break
        plan.follows = ", ".join(dict.fromkeys(described))


def init_model(
    model: nn.Module,
    example_input: Any,
    *,
    target_var: float = 1.0,
    input_var: float | None = None,
    calibrate: Any = None,
    distribution: str = "normal",
    generator: torch.Generator | None = None,
    strict: bool = False,
    residual: str = "scaled",
    realized: bool | None = None,
    keep: Any = None,
    objective: str = "variance",
    forget_bias: float = FORGET_BIAS,
) -> InitReport:
    """Initialize every weight layer of ``model`` so that each pre-activation has variance ``target_var``.

    Analytic step: trace the model (torch.fx, or one recorded forward pass when fx fails), propagate the mean and
    second moment of the signal through every operation (closed forms / exact quadrature of
    ``varprop.moments`` for activations), and give each weight layer zero-mean weights with
    Var[w] = target / (fan * E[x^2]) (He et al. 2015) and a zero bias; normalizations get (gamma, beta) = (1, 0).
    With ``realized=True`` each drawn matrix is then rescaled so that the expected output variance *for the drawn
    weights* is exactly the target, propagating per-unit means and variances (removes most of the finite-width
    drift of deep networks). Residual branches follow ``residual`` (see ``varprop.torch.propagation.residual``).

    Calibration (optional): one forward pass on a batch in which every Linear/Conv/ConvTranspose/Embedding (and the
    output projection of attention) is rescaled, as its output appears, to output variance ``target_var`` on that
    batch (LSUV, Mishkin & Matas 2016, in one pass instead of one per layer).

    Tied weights (one tensor used by several layers, ``tie_word_embeddings``): the first use in the forward pass chooses
    the value; each later use gets its own row, with its output variance measured with the planned weights in one
    forward pass (see ``varprop.torch.propagation.tied``). An operation without a rule is named in a ``VarpropWarning``
    and the rows downstream of it have no prediction (``predicted_output_var`` is ``None``) until a normalization; their
    weights are still written.

    Atomic, in the memory of the model: every scale, statistic and calibration factor is found, and every check made,
    before the first write, from a plan that holds no weights (each new value is the parameter's seeded draw times its
    scales, made again from the seed where needed; see ``varprop.torch.propagation.plan``): an error during planning
    leaves the model untouched. Then each parameter in turn is made whole in a work buffer and stored by one tensor
    operation: a failure there (out of memory, an interrupt) raises ``InitWriteError`` (a ``VarpropError``) that names
    the parameters already written; none is half-written, and rerunning with the same seed (generator state) writes the
    same values. Peak memory: the model plus O(largest parameter) plus per-unit statistics (and, with calibration, the
    forward pass's activations); models of at most 64 MiB of parameters keep their draws between planning and writing
    instead of drawing twice. Buffers (BatchNorm statistics and counters), train/eval modes, ``requires_grad``, devices
    and dtypes are kept; with a ``generator`` the global RNG is not consumed. Python's cyclic garbage collector is
    paused for the call (and restored after it): the propagation's many short-lived objects would otherwise trigger full
    collections.

    Args:
        model: the ``nn.Module``.
        example_input: a tensor, a tuple of tensors (positional arguments of ``forward``) or a shape.
        target_var: variance of every weight layer's output (pre-activation).
        input_var: variance of the input; defaults to the example's measured variance (1 for a shape).
        calibrate: ``None``, ``"gaussian"`` (a fresh N(mean, input_var) batch shaped like the example, with at
            least 64 rows: one forward pass on them; for a single integer input, token ids, ids drawn from the
            example's own, with at least 1024 of them) or a batch (tensor or tuple of tensors).
        distribution: ``"normal"``, ``"truncated_normal"``, ``"uniform"``, ``"orthogonal"`` (each weight matrix a
            scaled Haar semi-orthogonal one, Saxe et al. 2014) or ``"delta_orthogonal"`` (convolutions: an orthogonal
            matrix at the kernel's centre tap, zero elsewhere, Xiao et al. 2018); all of the same std (see ``init_``).
            Attention's packed q/k/v rows are three orthogonal blocks.
        generator: ``torch.Generator`` for every random draw.
        strict: raise for operations and modules that are not recognized (instead of warning and marking the
            predictions downstream of them unknown).
        residual: ``"scaled"`` (default: the stream's variance doubles over a whole chain, at any depth), ``"none"``
            or ``"zero"``.
        realized: correct each layer for its drawn weights, or use the mean-field value only. Default (``None``):
            realized without calibration; mean-field with it (calibration measures the drawn weights on the batch
            and replaces the correction, so computing it first would only cost time).
        objective: ``"variance"`` (every pre-activation at ``target_var``, biases 0) or ``"critical"``: the edge of
            chaos of the model's activation (``varprop.dynamics.critical_point``; Poole et al. 2016, Schoenholz
            et al. 2017): every pre-activation at the fixed point q*, biases drawn from N(0, sigma_b^2) (a layer's
            weights then aim at q* - sigma_b^2), so that chi1 = sigma_w^2 E[phi'(sqrt(q*) z)^2] = 1 and the
            gradient keeps its size through depth. q* is the point's (1/64 for tanh-like activations: with
            ``distribution="orthogonal"`` dynamical isometry, Pennington et al. 2017), so ``target_var`` must stay
            1. One activation per model; for ReLU-like ones (no non-trivial point) a warning, and the
            variance-preserving weights. The report's ``settings["critical"]`` holds sigma_w, sigma_b, q*, chi1,
            xi_q, xi_c and chi1^depth. Not for sharded models yet, nor with ``calibrate`` (which assumes zero
            biases).
        forget_bias: the bias of every ``nn.LSTM`` forget gate (1.0: Jozefowicz et al. 2015; 0 for all-zero
            biases). Recurrent layers: see ``varprop.torch.propagation.recurrent``.
        keep: parameters to leave at their values: qualified names (``model.named_parameters()``), a predicate
            ``keep(name, parameter) -> bool``, or ``"frozen"`` (those with ``requires_grad=False``, such as Whisper's
            sinusoidal position table). They are listed in ``report.settings["kept_parameters"]``; a kept embedding
            propagates its own rows, other layers fed by a kept weight (and everything downstream) have no
            prediction. Every other parameter is written, or named in a ``VarpropWarning`` and in
            ``report.settings["untouched_parameters"]``.

    Random numbers: one seed is drawn from ``generator`` (the global RNG when ``None``); each parameter's values
    depend only on that seed and the parameter's qualified name, drawn in seeded blocks of rows
    (``varprop.torch.sampling.sharded_random``). So a sharded copy of the model gets the same global weights on any
    number of ranks, and the global RNG is not consumed when a generator is given.

    Sharded and meta-device models: for a model whose parameters are DTensors (sharded with FSDP2's
    ``fully_shard`` after ``to_empty``), every rank calls ``init_model`` with its own part of the batch (as in data
    parallel training: ``example_input`` and ``calibrate`` are the rank's local batches; the example's statistics and
    every calibration measurement are pooled over the ranks). Each rank draws only its shards; no weight is gathered
    by the analytic pass (the graph is traced on the parameters' global shapes; calibration runs one ordinary FSDP
    forward pass). Promised: from a ``generator`` (or global RNG) in the same state on the mesh's first rank (its
    seed is broadcast), the same global weights and the same report for any number of ranks, equal (up to float
    summation order) to ``init_model`` on the unsharded model with the whole batch. Parameters stay DTensors with
    their placements. Not supported there: ``nn.MultiheadAttention`` with sharded parameters, and realized=True on
    sharded grouped convolutions. Meta parameters raise (call ``model.to_empty(device=...)`` first).

    Returns:
        ``InitReport``.

    Raises:
        VarpropTypeError: ``model`` not an ``nn.Module``; bad ``example_input``/``calibrate``/``generator``; an
            integer tensor reaching a layer other than an embedding.
        VarpropValueError: an example that does not fit the model, bad option values, unknown operations with
            ``strict=True``, parameters on the meta device.
        InitWriteError: a failure while writing (after every check passed); ``.written`` and ``.pending`` list the
            parameters with new and with old values.

    Example:
        >>> net = nn.Sequential(nn.Linear(64, 64), nn.SiLU(), nn.Linear(64, 10))
        >>> report = init_model(net, (32, 64), generator=torch.Generator().manual_seed(0))
        >>> [row.name for row in report.layers]
        ['0', '2']
    """
    started = time.perf_counter()
    if not isinstance(model, nn.Module):
        raise VarpropTypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    target = check_real("target_var", target_var, minimum=0.0, strict=True)
    input_variance = None if input_var is None else check_real("input_var", input_var, minimum=0.0, strict=True)
    check_choice("distribution", distribution, TORCH_DISTRIBUTIONS)
    check_choice("residual", residual, RESIDUAL_POLICIES)
    forget = check_real("forget_bias", forget_bias)
    check_generator(generator)
    check_choice("objective", objective, OBJECTIVES)
    if objective == "critical" and calibrate is not None:
        raise VarpropValueError(
            "objective='critical' draws biases, and calibration rescales each layer's output as if its bias were 0 "
            "(LSUV); use objective='critical' without calibrate, or calibrate with objective='variance'"
        )
    if objective == "critical" and target != 1.0:
        raise VarpropValueError(
            f"objective='critical' chooses the pre-activation variance q* itself; got target_var={target_var!r}: "
            "leave target_var at 1, or use objective='variance' for a variance of your choice"
        )
    if not isinstance(strict, bool) or not isinstance(realized, (bool, type(None))):
        raise VarpropTypeError(f"strict must be a bool and realized a bool or None, got {strict!r} and {realized!r}")
    kept = resolve_keep(model, keep)
    for name, param in model.named_parameters():
        check_materialized(param, f"parameter {name!r}")
    # A sharded model (DTensor parameters, FSDP2 modules) takes the distributed path; an unsharded one never does.
    mesh = _distributed.prepare_model(model) if is_sharded(model) else None
    seed = fresh_seed(generator) if mesh is None else _distributed.agreed_seed(generator, mesh)
    example, synthetic = _example(model, example_input, input_variance, generator)
    batch = calibration_batch(model, calibrate, example, input_variance, generator)
    options = _Options(
        target=target,
        input_var=input_variance,
        calibrate=None if batch is None else ("gaussian" if isinstance(calibrate, str) else "batch"),
        distribution=distribution,
        residual=residual,
        realized=(batch is None) if realized is None else realized,
        strict=strict,
        kept=kept,
        objective=objective,
        forget_bias=forget,
    )
    with _collection_paused():
        return _initialize(model, example, synthetic, batch, seed, mesh, options, started)


@contextlib.contextmanager
def _collection_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for the call (and on again after it, if it was on). The propagation
    allocates thousands of small objects that reference counting frees at the end; a collection that starts midway
    promotes them to the oldest generation and, every few calls, triggers a full collection of the whole process:
    ~0.15 s with torch imported (300k objects), half the time of the call, freeing nothing of ours."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass(frozen=True)
class _Options:
    """The validated options of one ``init_model`` call."""

    target: float
    input_var: float | None
    calibrate: str | None
    distribution: str
    residual: str
    realized: bool
    strict: bool
    kept: dict[int, str] = field(default_factory=dict)  # (id of a parameter: its name) for keep=
    objective: str = "variance"
    forget_bias: float = FORGET_BIAS


def _initialize(
    model: nn.Module,
    example: tuple[torch.Tensor, ...],
    synthetic: bool,
    batch: tuple[torch.Tensor, ...] | None,
    seed: int,
    mesh: Any,
    options: _Options,
    started: float,
) -> InitReport:
    named = list(model.named_parameters())  # (one walk over the modules for the three uses below)
    names = {id(p): name for name, p in named}
    graph = build_graph(model, example) if mesh is None else _distributed.build_graph(model, example)
    traced = time.perf_counter()
    ctx = Context(
        target_var=options.target,
        distribution=options.distribution,
        realized=options.realized,
        residual=options.residual,
        param_names=names,
        seed=seed,
        sharding=None if mesh is None else _distributed.MeshSharding(mesh),
        forget_bias=options.forget_bias,
    )
    ctx.keep_draws = keeps_draws([param for _, param in named])
    for _, param in named:
        if not is_dtensor(param):
            where = (param.device, param.dtype)
            ctx.largest[where] = max(ctx.largest.get(where, 0), param.numel())
    point, critical_warning = None, None
    if options.objective == "critical":
        if mesh is not None:
            raise VarpropValueError(
                "objective='critical' is not supported on sharded models yet; initialize the unsharded model, "
                "then shard it"
            )
        point, critical_warning = model_critical_point(graph, model)
        if critical_warning is not None:
            ctx.warn(critical_warning)
            warnings.warn(critical_warning, VarpropWarning, stacklevel=3)  # _initialize <- init_model <- the caller
        if point is not None:
            ctx.target_var, ctx.bias_std = point.q, point.bias_std
    input_variance = options.input_var
    stat_of = input_stat if mesh is None else functools.partial(_distributed.pooled_input_stat, mesh=mesh)
    inputs = [
        stat_of(t, input_variance if not synthetic else (1.0 if input_variance is None else input_variance))
        for t in example
    ]
    output = propagate(graph, model, ctx, inputs, options.strict, frozenset(options.kept))
    modules = dict(model.named_modules(remove_duplicate=False))
    residual_adds = set(analyze(graph, modules, canonical).adds)
    _describe_follows(graph, ctx, modules, residual_adds)
    _note_frozen(model, ctx, options.kept)
    if mesh is not None:
        _distributed.plain_type_names(model, ctx)
    if options.strict and ctx.unknown:
        listed = "; ".join(f"{what}: {assumption}" for what, assumption in ctx.unknown.items())
        raise VarpropValueError(f"strict=True and {len(ctx.unknown)} operation(s) are not recognized: {listed}")
    propagated = time.perf_counter()
    for key in options.kept:  # (asked for: never written, nor used by calibration)
        ctx.recipes.pop(key, None)
    if batch is not None:
        run_calibration(model, ctx, batch)
    measured_uses = measure_tied_uses(model, ctx, example if batch is None else batch)
    calibrated = time.perf_counter()
    ctx.write()
    finished = time.perf_counter()
    untouched = [name for name, p in model.named_parameters() if not ctx.is_planned(p) and id(p) not in options.kept]
    settings: dict[str, Any] = {
        "target_var": options.target,
        "input_var": inputs[0].variance if inputs and hasattr(inputs[0], "variance") else None,
        "calibrate": options.calibrate,
        "distribution": options.distribution,
        "residual": options.residual,
        "realized": options.realized,
        "graph": graph.method,
    }
    if options.objective != "variance":
        settings["objective"] = options.objective
    if point is not None:
        settings["critical"] = critical_settings(point, len(ctx.layers))
    if graph.note:
        settings["note"] = graph.note
    if mesh is not None:
        settings["sharded"] = f"mesh {tuple(mesh.shape)} ({mesh.size()} ranks)"
    if untouched:
        settings["untouched_parameters"] = untouched
        message = (
            f"{len(untouched)} parameter(s) not written (no rule reached them on the example's forward pass): "
            f"{', '.join(untouched[:8])}{' ...' if len(untouched) > 8 else ''}; left at their values. Pass keep=[...] "
            "to say that this is meant"
        )
        ctx.warn(message)
        warnings.warn(message, VarpropWarning, stacklevel=3)  # (_initialize <- init_model <- the user's call)
    if ctx.step_variances:
        settings["step_variances"] = {key: list(values) for key, values in ctx.step_variances.items()}
    if options.kept:
        settings["kept_parameters"] = list(options.kept.values())
    outputs = [(s.pooled_mean, s.variance) for s in (measured_uses.get(id(s), s) for s in output_stats(output))]
    timings = {
        "trace_s": traced - started,
        "propagate_s": propagated - traced,
        "calibrate_s": calibrated - propagated,
        "write_s": finished - calibrated,
        "total_s": finished - started,
    }
    # stacklevel 4: InitReport.build <- _initialize <- init_model <- the user's call
    return InitReport.build(
        ctx.layers, ctx.activations, ctx.unknown, ctx.warnings, outputs, settings, timings, stacklevel=4
    )
