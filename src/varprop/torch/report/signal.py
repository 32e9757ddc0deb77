"""Signal propagation statistics of a PyTorch model, collected with hooks (Brock et al. 2021).

``signal_stats(model, batch)`` runs one forward pass (and, by default, one backward pass) and records,
for every selected module call in execution order, the statistics that Brock, De and Smith (2021),
"Characterizing signal propagation to close the performance gap in unnormalized ResNets", plot over
depth: the average channel squared mean and the average channel variance of the activations, beside
the plain mean and variance and the variance of the gradient flowing back into the module's output.
The model is left exactly as it was (see ``signal_stats``).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from ... import VarpropTypeError, VarpropValueError

__all__ = ["STATISTICS", "LayerSignal", "SignalStats", "signal_stats"]

#: The statistics of a ``LayerSignal`` that can be plotted over depth (``SignalStats.column``).
STATISTICS: tuple[str, ...] = ("mean", "variance", "channel_mean_sq", "channel_variance", "grad_variance")

INPUT_NAME = "(input)"  # the row of the model's first input; "(" cannot start a qualified module name in practice
ModuleSelection = Iterable[str] | type | tuple[type, ...] | Callable[[str, nn.Module], bool] | None


@dataclass(frozen=True)
class LayerSignal:
    """Statistics of one module call's output (one row of ``SignalStats``).

    For an output x of shape (N, C, ...) with channels on ``channel_dim`` (population moments, float64):

    - ``mean`` = (1/M) Σ x and ``variance`` = (1/M) Σ (x - mean)² over all M elements;
    - ``channel_mean_sq`` = (1/C) Σ_c μ_c², μ_c the mean of channel c over the batch and positions:
      Brock et al. (2021)'s "average channel squared mean";
    - ``channel_variance`` = (1/C) Σ_c σ_c², σ_c² the variance of channel c over the batch and
      positions: Brock et al.'s "average channel variance". Then
      ``variance = channel_variance + channel_mean_sq - mean²`` (law of total variance);
    - ``grad_variance``: the variance over all elements of ∂L/∂x, the gradient flowing back into this
      output (L is described in ``signal_stats``).

    Attributes:
        name: qualified module name (``"layers.3"``; ``""`` for the model itself, ``"(input)"`` for
            the model's first input).
        type: module class name (``"Linear"``), ``"input"`` for the input row.
        call: 1 for a module's first call in the pass, 2 for its second (shared modules), ...
        shape: shape of the recorded output.
        mean: mean of all elements.
        variance: variance of all elements.
        channel_mean_sq: average channel squared mean (``None`` for outputs with fewer than 2 dims or
            without the dimension ``channel_dim``).
        channel_variance: average channel variance (``None`` where ``channel_mean_sq`` is).
        grad_variance: variance of the gradient, ``None`` without a backward pass or where no gradient
            reaches this output.
    """

    name: str
    type: str
    call: int
    shape: tuple[int, ...]
    mean: float
    variance: float
    channel_mean_sq: float | None
    channel_variance: float | None
    grad_variance: float | None = None

    @property
    def label(self) -> str:
        """``name`` as shown in tables and figures: ``"(model)"`` for the root, ``"name#2"`` for a second call."""
        base = self.name or "(model)"
        return base if self.call == 1 else f"{base}#{self.call}"

    def to_dict(self) -> dict[str, Any]:
        """The row as a JSON-ready dict (``shape`` as a list)."""
        data = asdict(self)
        data["shape"] = list(self.shape)
        return data


@dataclass(frozen=True)
class SignalStats:
    """Per-layer signal statistics of one forward (and backward) pass, in execution order.

    Iterating gives the ``LayerSignal`` rows; ``str(stats)`` is a printable table; ``to_dict()`` is
    JSON-ready; ``column(statistic)`` gives one statistic over depth as an array (NaN where absent).

    Attributes:
        layers: one row per recorded module call (the input first when it is a floating tensor).
        input_shapes: shapes of the tensors passed to the model.
        training: whether the pass ran in training mode (the root module's mode during the pass).
        backward: whether gradients were collected.
        seed: seed of the random projection that defines the loss of the backward pass.
        channel_dim: the dimension treated as channels.
        notes: anything the reader should know (e.g. outputs without gradients).
    """

    layers: tuple[LayerSignal, ...]
    input_shapes: tuple[tuple[int, ...], ...]
    training: bool
    backward: bool
    seed: int
    channel_dim: int
    notes: tuple[str, ...] = field(default=())

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[LayerSignal]:
        return iter(self.layers)

    def __getitem__(self, index: int) -> LayerSignal:
        return self.layers[index]

    @property
    def labels(self) -> list[str]:
        """Row labels in execution order (see ``LayerSignal.label``)."""
        return [layer.label for layer in self.layers]

    def column(self, statistic: str) -> NDArray[np.float64]:
        """One statistic over depth, NaN where it is not defined.

        Args:
            statistic: one of ``STATISTICS``.

        Raises:
            VarpropValueError: unknown statistic.
        """
        if statistic not in STATISTICS:
            raise VarpropValueError(f"unknown statistic {statistic!r}; valid choices: {', '.join(STATISTICS)}")
        values = [getattr(layer, statistic) for layer in self.layers]
        return np.array([math.nan if value is None else value for value in values], dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: the settings of the pass, the loss used for gradients and one dict per row."""
        return {
            "input_shapes": [list(shape) for shape in self.input_shapes],
            "training": self.training,
            "backward": self.backward,
            "seed": self.seed,
            "channel_dim": self.channel_dim,
            "loss": _LOSS_TEXT if self.backward else None,
            "notes": list(self.notes),
            "layers": [layer.to_dict() for layer in self.layers],
        }

    def __str__(self) -> str:
        shapes = ", ".join("x".join(map(str, shape)) for shape in self.input_shapes)
        mode = "train" if self.training else "eval"
        head = f"signal statistics: input {shapes}, {mode} mode, channels on dim {self.channel_dim}"
        lines = [head]
        if self.backward:
            lines.append(f"gradients of {_LOSS_TEXT}, seed {self.seed}")
        columns = ("mean", "variance", "ch. mean²", "ch. variance", "grad variance")
        name_width = max([len("layer"), *(len(label) for label in self.labels)])
        type_width = max([len("type"), *(len(layer.type) for layer in self.layers)])
        shape_width = max([len("shape"), *(len("x".join(map(str, layer.shape))) for layer in self.layers)])
        header = f"{'#':>3}  {'layer':<{name_width}}  {'type':<{type_width}}  {'shape':<{shape_width}}  " + "  ".join(
            f"{column:>13}" for column in columns
        )
        lines += ["", header, "-" * len(header)]
        for index, layer in enumerate(self.layers):
            values = (layer.mean, layer.variance, layer.channel_mean_sq, layer.channel_variance, layer.grad_variance)
            shape = "x".join(map(str, layer.shape))
            lines.append(
                f"{index:>3}  {layer.label:<{name_width}}  {layer.type:<{type_width}}  {shape:<{shape_width}}  "
                + "  ".join(f"{_format_value(value):>13}" for value in values)
            )
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


_LOSS_TEXT = "L = sum(output * R), R ~ N(0, 1) i.i.d. (fixed), so dL/d(output) = R"


def _format_value(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4e}"


@dataclass
class _Row:
    """Mutable row filled by the hooks (the gradient arrives after the forward statistics)."""

    name: str
    type: str
    call: int
    shape: tuple[int, ...]
    moments: tuple[float, float, float | None, float | None]
    grad_variance: float | None = None

    def freeze(self) -> LayerSignal:
        mean, variance, channel_mean_sq, channel_variance = self.moments
        return LayerSignal(
            name=self.name,
            type=self.type,
            call=self.call,
            shape=self.shape,
            mean=mean,
            variance=variance,
            channel_mean_sq=channel_mean_sq,
            channel_variance=channel_variance,
            grad_variance=self.grad_variance,
        )


def _output_moments(tensor: torch.Tensor, channel_dim: int) -> tuple[float, float, float | None, float | None]:
    """(mean, variance, average channel squared mean, average channel variance) in float64."""
    data = tensor.detach().to(torch.float64)
    mean = float(data.mean())
    variance = float(data.var(correction=0))
    if data.ndim < 2 or not -data.ndim <= channel_dim < data.ndim:
        return mean, variance, None, None
    per_channel = data.movedim(channel_dim, 0).reshape(data.shape[channel_dim], -1)
    channel_mean_sq = float((per_channel.mean(dim=1) ** 2).mean())
    channel_variance = float(per_channel.var(dim=1, correction=0).mean())
    return mean, variance, channel_mean_sq, channel_variance


def _float_tensors(value: Any) -> list[torch.Tensor]:
    """Floating-point tensors inside ``value`` (a tensor, or nested tuples, lists and mappings), in order."""
    if isinstance(value, torch.Tensor):
        return [value] if value.is_floating_point() else []
    if isinstance(value, Mapping):
        return [tensor for item in value.values() for tensor in _float_tensors(item)]
    if isinstance(value, (tuple, list)):
        return [tensor for item in value for tensor in _float_tensors(item)]
    return []


def _as_inputs(batch: Any) -> tuple[torch.Tensor, ...]:
    if isinstance(batch, torch.Tensor):
        return (batch,)
    if isinstance(batch, (tuple, list)) and batch and all(isinstance(item, torch.Tensor) for item in batch):
        return tuple(batch)
    raise VarpropTypeError(
        f"batch must be a tensor or a non-empty tuple of tensors (passed as model(*batch)), got {type(batch).__name__}"
    )


def _select(model: nn.Module, modules: ModuleSelection) -> list[tuple[str, nn.Module]]:
    """The (qualified name, module) pairs to record, in ``named_modules`` order."""
    named = list(model.named_modules())
    if modules is None:
        return [(name, module) for name, module in named if next(module.children(), None) is None]
    if isinstance(modules, type) or (isinstance(modules, tuple) and all(isinstance(item, type) for item in modules)):
        classes = modules
        return [pair for pair in named if isinstance(pair[1], classes)]
    if callable(modules):
        predicate = modules
        return [(name, module) for name, module in named if predicate(name, module)]
    if isinstance(modules, str):
        raise VarpropTypeError(f"modules must be a list of qualified names, not the string {modules!r}: [{modules!r}]")
    wanted: list[object] = list(modules)
    by_name = dict(named)
    for name in wanted:
        if not isinstance(name, str):
            raise VarpropTypeError(f"modules must hold qualified module names (str), got {name!r}")
        if name not in by_name:
            close = difflib.get_close_matches(name, [key for key in by_name if key], n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise VarpropValueError(f"model has no submodule {name!r}{hint} (names as in model.named_modules())")
    return [(name, by_name[name]) for name in wanted if isinstance(name, str)]


def _cuda_devices(model: nn.Module, inputs: Sequence[torch.Tensor]) -> list[int]:
    tensors = [*model.parameters(), *model.buffers(), *inputs]
    return sorted({tensor.device.index or 0 for tensor in tensors if tensor.device.type == "cuda"})


def signal_stats(
    model: nn.Module,
    batch: torch.Tensor | Sequence[torch.Tensor],
    backward: bool = True,
    *,
    modules: ModuleSelection = None,
    channel_dim: int = 1,
    train: bool | None = None,
    seed: int = 0,
) -> SignalStats:
    """Per-layer signal statistics of a model on a batch: a signal propagation plot's data.

    Brock, De and Smith (2021), "Characterizing signal propagation to close the performance gap in
    unnormalized ResNets", follow three statistics over depth: the average channel squared mean
    (1/C) Σ_c μ_c², the average channel variance (1/C) Σ_c σ_c² (μ_c, σ_c² over batch and positions
    of channel c) and, for the backward pass, the gradients. This records them, with the overall mean
    and variance, for every selected module call in execution order (see ``LayerSignal``).

    Backward pass: the loss is L = Σ_outputs Σ output ⊙ R with R drawn i.i.d. N(0, 1) once from a
    generator seeded with ``seed``, so the gradient entering the model's output is R itself: unit
    variance, zero mean, independent of the output and of the batch size (He et al. 2015's backward
    analysis with unit-variance incoming gradients). ``grad_variance`` is then the variance of ∂L/∂y
    for each recorded output y, gathered with tensor hooks on the outputs.

    The model is left as it was: hooks are removed (even on error), train/eval modes and buffers
    (e.g. BatchNorm running statistics) are restored, the global RNG is not consumed (dropout runs
    under ``torch.random.fork_rng``), and gradients are taken with ``torch.autograd.grad``, so no
    parameter's ``.grad`` is touched and no parameter changes. The batch is not modified either.

    Args:
        model: the ``nn.Module``.
        batch: a tensor, or a tuple of tensors passed as ``model(*batch)``.
        backward: also collect gradient variances (one backward pass).
        modules: what to record: ``None`` for every leaf module (no children; the model itself if it
            has none), a list of qualified names (``["blocks.0", "blocks.1"]``; Brock et al. record
            residual block outputs), a module class or tuple of classes, or a predicate
            ``(name, module) -> bool``. A module called several times gives one row per call. The
            recorded output is the first floating-point tensor in what the module returns.
        channel_dim: the dimension of channels (1 for (N, C, ...) layouts, -1 for channels-last or
            (N, L, D) sequences).
        train: run in training (``True``) or evaluation (``False``) mode; ``None`` keeps the model's mode.
        seed: seed of the random projection R.

    Returns:
        ``SignalStats``: one ``LayerSignal`` per call, preceded by the model's first input when it is
        a floating tensor (row ``"(input)"``, whose gradient is ∂L/∂input).

    Raises:
        VarpropTypeError: ``model`` is not an ``nn.Module``, ``batch`` not a tensor or tuple of
            tensors, ``channel_dim`` or ``seed`` not an int, bad ``modules``.
        VarpropValueError: a name in ``modules`` that the model does not have.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(64, 64), nn.ELU(), nn.Linear(64, 64))
        >>> stats = signal_stats(model, torch.randn(256, 64))
        >>> [layer.label for layer in stats]
        ['(input)', '0', '1', '2']
    """
    if not isinstance(model, nn.Module):
        raise VarpropTypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    inputs = _as_inputs(batch)
    for name, value in (("channel_dim", channel_dim), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise VarpropTypeError(f"{name} must be an int, got {value!r} of type {type(value).__name__}")
    if train is not None and not isinstance(train, bool):
        raise VarpropTypeError(f"train must be True, False or None, got {train!r}")
    selected = _select(model, modules)

    rows: list[_Row] = []
    calls: dict[str, int] = {}
    notes: list[str] = []

    def record(name: str, type_name: str, tensor: torch.Tensor) -> None:
        if tensor.numel() == 0:
            return
        calls[name] = calls.get(name, 0) + 1
        row = _Row(name, type_name, calls[name], tuple(tensor.shape), _output_moments(tensor, channel_dim))
        rows.append(row)
        if backward and tensor.requires_grad:

            def store_gradient(grad: torch.Tensor) -> None:
                row.grad_variance = float(grad.detach().to(torch.float64).var(correction=0))

            tensor.register_hook(store_gradient)  # type: ignore[no-untyped-call]

    def make_hook(name: str) -> Callable[[nn.Module, Any, Any], None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            tensors = _float_tensors(output)
            if tensors:
                record(name, type(module).__name__, tensors[0])

        return hook

    modes = [(module, module.training) for module in model.modules()]
    saved_buffers = [
        (module, key, buffer, buffer.detach().clone())
        for module in model.modules()
        for key, buffer in module.named_buffers(recurse=False)
    ]
    saved_grads = [(parameter, parameter.grad) for parameter in model.parameters()]
    handles = []
    try:
        if train is not None:
            model.train(train)
        training = model.training
        for name, module in selected:
            handles.append(module.register_forward_hook(make_hook(name)))
        with (
            torch.random.fork_rng(devices=_cuda_devices(model, inputs)),
            torch.inference_mode(False),  # a caller's inference mode would silently disable the backward pass
            torch.set_grad_enabled(backward),
        ):
            leaves = [
                tensor.detach().clone().requires_grad_(backward) if tensor.is_floating_point() else tensor
                for tensor in inputs
            ]
            # The model sees a non-leaf copy, so that in-place operations on its input stay legal.
            model_inputs = [leaf.clone() if leaf.requires_grad else leaf for leaf in leaves]
            if model_inputs[0].is_floating_point():
                record(INPUT_NAME, "input", model_inputs[0])
            output = model(*model_inputs)
            if backward:
                notes += _backward(model, output, leaves, seed)
    finally:
        for handle in handles:
            handle.remove()
        for module, mode in modes:
            module.training = mode
        with torch.no_grad():
            for module, key, buffer, copy in saved_buffers:
                module._buffers[key] = buffer
                buffer.copy_(copy)
        for parameter, grad in saved_grads:
            if parameter.grad is not grad:
                parameter.grad = grad
    if backward:
        missing = [row.name or "(model)" for row in rows if row.grad_variance is None]
        if missing:
            shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
            notes.append(f"no gradient reaches {len(missing)} recorded output(s) ({shown}): grad variance shown as '-'")
    return SignalStats(
        layers=tuple(row.freeze() for row in rows),
        input_shapes=tuple(tuple(tensor.shape) for tensor in inputs),
        training=training,
        backward=backward,
        seed=seed,
        channel_dim=channel_dim,
        notes=tuple(notes),
    )


def _backward(model: nn.Module, output: Any, leaves: Sequence[torch.Tensor], seed: int) -> list[str]:
    """Run the backward pass of L = Σ output ⊙ R with ``torch.autograd.grad``; returns notes."""
    outputs = [tensor for tensor in _float_tensors(output) if tensor.requires_grad]
    if not outputs:
        return ["the model's output does not require grad: no gradient statistics"]
    generators: dict[torch.device, torch.Generator] = {}
    terms = []
    for tensor in outputs:
        if tensor.device not in generators:
            generators[tensor.device] = torch.Generator(device=tensor.device).manual_seed(seed)
        generator = generators[tensor.device]
        projection = torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype, device=tensor.device)
        terms.append((tensor * projection).sum().to(device=outputs[0].device, dtype=torch.float64))
    loss = torch.stack(terms).sum()
    # Gradients with respect to the inputs and trainable parameters reach every recorded output that
    # lies on a path to the loss, without accumulating anything into parameter .grad fields.
    targets = [leaf for leaf in leaves if leaf.requires_grad]
    targets += [parameter for parameter in model.parameters() if parameter.requires_grad]
    if not targets:
        return ["nothing in the model requires grad: no gradient statistics"]
    torch.autograd.grad(loss, targets, allow_unused=True)
    return []
