"""Tensor-level initializers in the style of ``torch.nn.init``: ``init_``, ``init_module_``, ``calculate_gain``."""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import nn

from .. import VarpropTypeError, VarpropWarning
from ..gains import MODES, gain
from ..validation import check_real
from .distributed import sharding
from .graph.activations import resolve
from .graph.modules import CONV_LAYERS, CONV_TRANSPOSE_LAYERS
from .sampling.draws import TORCH_DISTRIBUTIONS, check_choice, check_generator, check_materialized, draw, is_dtensor
from .sampling.fans import fans
from .sampling.orthogonal import ORTHOGONAL_DISTRIBUTIONS, check_shape
from .sampling.sharded_random import draw_region, fresh_seed

__all__ = [
    "calculate_gain",
    "init_",
    "init_module_",
    "std_for_fans",
]

# torch.nn.init.calculate_gain's names; its other constants are what ``calculate_gain`` below documents.
_TORCH_GAIN_ROWS: tuple[tuple[str, str], ...] = (
    ("linear", "1"),
    ("sigmoid", "1"),
    ("tanh", "5/3"),
    ("relu", "sqrt(2)"),
    ("leaky_relu", "sqrt(2/(1+0.01^2))"),
    ("selu", "3/4"),
)


def gain_table() -> str:
    """The table of ``calculate_gain``'s docstring, computed (regenerate with ``python -c "from
    varprop.torch._tensor_init import gain_table; print(gain_table())"``)."""
    lines = ["    ============  ====================  ===================  ========", ""]
    lines[1] = "    name          torch                 varprop (var = 1)    ratio"
    lines.insert(2, lines[0])
    for name, torch_text in _TORCH_GAIN_ROWS:
        torch_value = float(torch.nn.init.calculate_gain(name))  # type: ignore[arg-type]  # torch's Literal names
        ours = calculate_gain(name)
        lines.append(f"    {name:<12}  {torch_text:<20}  {ours:<19.12f}  {torch_value / ours:.4f}")
    lines.append(lines[0])
    return "\n".join(lines)


def calculate_gain(nonlinearity: Any, param: Any = None, *, var: float = 1.0) -> float:
    """The exact variance-preserving gain of a nonlinearity: a drop-in for ``torch.nn.init.calculate_gain``.

    gain = sqrt(var / E[phi(y)^2]) with y ~ N(0, var) (He et al. 2015, "Delving deep into rectifiers", eq. 10 with the
    exact second moment in place of ReLU's 1/2), so that zero-mean weights of std gain / sqrt(fan_in) keep the
    pre-activation variance at ``var``. torch's table is exact for the ReLU family and identity only: its tanh 5/3 is
    empirical (after LeCun et al.'s scaled tanh in "Efficient BackProp", 1998), its selu 3/4 an empirical compromise
    for gradient flow (torch's docs recommend ``"linear"`` for self-normalizing networks), and its sigmoid 1 ignores
    the sigmoid's mean of 1/2. Where they differ:

    ============  ====================  ===================  ========
    name          torch                 varprop (var = 1)    ratio
    ============  ====================  ===================  ========
    linear        1                     1.000000000000       1.0000
    sigmoid       1                     1.846228545339       0.5416
    tanh          5/3                   1.592537419723       1.0465
    relu          sqrt(2)               1.414213562373       1.0000
    leaky_relu    sqrt(2/(1+0.01^2))    1.414142856998       1.0000
    selu          3/4                   1.000000000000       0.7500
    ============  ====================  ===================  ========

    (computed by ``gain_table()``; a test checks this text against it).

    Args:
        nonlinearity: one of torch's names (``"linear"``, ``"conv1d"`` ... ``"conv_transpose3d"``, ``"sigmoid"``,
            ``"tanh"``, ``"relu"``, ``"leaky_relu"``, ``"selu"``), any registry spec (``"elu(alpha=0.5)"``,
            ``"gelu(approximate='tanh')"``), an ``Activation``, an activation module instance (``nn.ELU(alpha=0.5)``,
            ``nn.LeakyReLU(0.2)``), a torch function (``F.gelu``, ``torch.tanh``) or a numpy-vectorized callable.
        param: the activation's single parameter (the negative slope for ``"leaky_relu"``, as in torch).
        var: the pre-activation variance to preserve (keyword only; torch's constants are for var = 1).

    Returns:
        The gain, a float.

    Raises:
        VarpropValueError: unknown nonlinearity (with suggestions), ``param`` for an activation without exactly one
            parameter, negative ``var``.
        VarpropTypeError: ``param`` or ``var`` that is not a number.

    Example:
        >>> round(calculate_gain("elu"), 12)
        1.245198300701
        >>> round(calculate_gain(nn.LeakyReLU(0.2)), 12) == round(calculate_gain("leaky_relu", 0.2), 12)
        True
    """
    var_value = check_real("var", var, minimum=0.0)
    act = resolve(nonlinearity, param)
    return float(gain(act, var=var_value, mode="fan_in"))


def std_for_fans(act: Any, fan_in: float, fan_out: float, var: float, mode: str) -> float:
    """Standard deviation of the weights for the given (possibly non-integer) fans; see ``varprop.weight_std``."""
    if mode == "fan_in":
        return float(gain(act, var=var, mode="fan_in")) / math.sqrt(fan_in)
    if mode == "fan_out":
        return float(gain(act, var=var, mode="fan_out")) / math.sqrt(fan_out)
    forward = float(gain(act, var=var, mode="fan_in"))
    backward = float(gain(act, var=var, mode="fan_out"))
    # Glorot & Bengio's compromise, as varprop.weight_std defines fan_avg.
    return math.sqrt(2.0 / (fan_in / forward**2 + fan_out / backward**2))


def _check_tensor(tensor: Any) -> torch.Tensor:
    if not isinstance(tensor, torch.Tensor):
        raise VarpropTypeError(f"tensor must be a torch.Tensor, got {type(tensor).__name__}")
    if not (tensor.is_floating_point()):
        raise VarpropTypeError(
            f"tensor must have a floating dtype to hold weights, got {tensor.dtype}; create it with a float dtype"
        )
    return tensor


def init_(
    tensor: torch.Tensor,
    act: Any = "elu",
    var: float = 1.0,
    mode: str = "fan_in",
    distribution: str = "normal",
    generator: torch.Generator | None = None,
    *,
    module: nn.Module | None = None,
    rank_invariant: bool = False,
) -> torch.Tensor:
    r"""Fill ``tensor`` in place with variance-preserving weights for the activation ``act``; returns ``tensor``.

    Var[w] = var / (fan_in E[phi(y)^2]), y ~ N(0, var) (He et al. 2015 with the exact second moment): a layer
    y' = W phi(y) then has Var[y'] = var. ``fan_out`` uses 1 / (fan_out E[phi'(y)^2]) (the backward pass), ``fan_avg``
    Glorot & Bengio's compromise (see ``varprop.weight_std``). ``act`` is the activation that *precedes* the layer
    (what ``nonlinearity`` means for ``torch.nn.init.kaiming_normal_``).

    Args:
        tensor: weight tensor, at least 2-D (``[out, in, *k]``; ``[in, out/groups, *k]`` for ``ConvTranspose``).
        act: anything ``calculate_gain`` accepts.
        var: pre-activation variance to preserve.
        mode: ``"fan_in"``, ``"fan_out"`` or ``"fan_avg"``.
        distribution: ``"normal"``, ``"truncated_normal"`` (cut at +-2 std, rescaled so the realized std is exact),
            ``"uniform"``, ``"orthogonal"`` or ``"delta_orthogonal"``, all of the same std (root mean square).
            ``"orthogonal"`` (Saxe et al. 2014): the tensor flattened to ``[shape[0], prod(shape[1:])]`` (as
            ``torch.nn.init.orthogonal_``) is s Q, Q Haar-random semi-orthogonal (QR of a standard normal draw with
            the sign fix of R's diagonal), s = std sqrt(max(rows, cols)): with rows <= cols (fan_in mode, square or
            wide) every output unit has Var[y_i] = gain^2 E[x^2] exactly, n Var[w] = gain^2. It equals
            ``torch.nn.init.orthogonal_(tensor, gain=s, generator=generator)`` (same generator state) up to
            rounding.
            ``"delta_orthogonal"`` (Xiao et al. 2018, for convolutions): zero except at the kernel's centre tap, an
            orthogonal ``[shape[0], shape[1]]`` matrix with the same root mean square over the whole tensor.
        generator: a ``torch.Generator`` on the tensor's device; the global RNG is not touched when given.
        module: the module owning ``tensor``; makes the fans right for ``ConvTranspose`` and grouped/strided
            convolutions (see ``varprop.torch.fans``).
        rank_invariant: draw with the scheme used for sharded tensors (blocks of rows, each from a seed derived from
            one draw of ``generator``), so that this plain tensor equals the global tensor that sharded copies of it
            receive, on any number of ranks, from a generator in the same state. Off by default: a plain tensor is
            otherwise filled by one ``normal_``/``uniform_`` call, a different (equally distributed) tensor.

    Sharded and meta tensors: a ``DTensor`` (e.g. a parameter of a model sharded with FSDP2's ``fully_shard``) gets
    fans from its global shape, and each rank draws only the elements it holds, always with the rank-invariant
    scheme: from the generator (the global RNG when ``None``) of the mesh's first rank, whose seed is broadcast, the
    global tensor is the same for any number of ranks and any ``Shard``/``Replicate`` placement; every rank must call
    ``init_`` on the tensor (one broadcast). A tensor on the ``meta`` device has no storage: ``init_`` raises, call
    ``model.to_empty(device=...)`` first (see the README's "Sharded and meta-device models").

    Returns:
        ``tensor``, filled in place (under ``torch.no_grad``).

    Raises:
        VarpropTypeError: not a tensor, integer dtype, bad ``generator``.
        VarpropValueError: unknown ``mode``/``distribution``/activation, fewer than 2 dimensions, a meta tensor.

    Example:
        >>> w = init_(torch.empty(256, 512), "elu", generator=torch.Generator().manual_seed(0))
        >>> abs(float(w.std()) * 512**0.5 - 1.2452) < 0.01
        True
        >>> q = init_(torch.empty(256, 512), "tanh", distribution="orthogonal") / calculate_gain("tanh") * 512**0.5
        >>> torch.allclose(q @ q.t(), 512 * torch.eye(256), atol=1e-2)
        True
    """
    _check_tensor(tensor)
    check_choice("mode", mode, MODES)
    check_choice("distribution", distribution, TORCH_DISTRIBUTIONS)
    if distribution in ORTHOGONAL_DISTRIBUTIONS:
        check_shape(tuple(tensor.shape), distribution)
    check_generator(generator)
    var_value = check_real("var", var, minimum=0.0)
    if not isinstance(rank_invariant, bool):
        raise VarpropTypeError(f"rank_invariant must be a bool, got {type(rank_invariant).__name__}")
    act_value = resolve(act)
    if tensor.numel() == 0:
        warnings.warn("Initializing zero-element tensors is a no-op", VarpropWarning, stacklevel=2)
        return tensor
    fan_in, fan_out = fans(tensor, module)
    std = std_for_fans(act_value, fan_in, fan_out, var_value, mode)
    check_materialized(tensor, "tensor")
    if is_dtensor(tensor):
        new = sharding.rank_invariant_value(tensor, std, distribution, generator)
    elif rank_invariant:
        shape = tuple(tensor.shape)
        new = draw_region(
            shape,
            [None] * len(shape),
            std,
            dtype=tensor.dtype,
            device=tensor.device,
            distribution=distribution,
            seed=fresh_seed(generator),
        )
    else:
        new = draw(
            tensor.shape, std, dtype=tensor.dtype, device=tensor.device, distribution=distribution, generator=generator
        )
    with torch.no_grad():
        tensor.copy_(new)
    return tensor


def init_module_(
    module: nn.Module,
    act: Any = "elu",
    var: float = 1.0,
    mode: str = "fan_in",
    distribution: str = "normal",
    generator: torch.Generator | None = None,
    *,
    rank_invariant: bool = False,
) -> nn.Module:
    """Initialize a ``Linear``/``ConvNd``/``ConvTransposeNd``/``Embedding`` with ``init_`` (module-aware fans), bias 0.

    ``Embedding`` gets N(0, var) rows (fan_in 1; its padding row stays zero, as torch's ``reset_parameters`` does).
    DTensor (sharded) weights and ``rank_invariant`` as for ``init_``.

    Example:
        >>> layer = init_module_(nn.Linear(512, 256), "gelu", generator=torch.Generator().manual_seed(0))
        >>> float(layer.bias.detach().abs().max())
        0.0
    """
    supported = (nn.Linear, nn.Embedding, *CONV_LAYERS, *CONV_TRANSPOSE_LAYERS)
    if not isinstance(module, supported):
        names = ", ".join(cls.__name__ for cls in supported)
        raise VarpropTypeError(
            f"init_module_ supports {names}; got {type(module).__name__} (use init_model for models)"
        )
    weight = module.weight
    if not isinstance(weight, torch.Tensor):  # pragma: no cover - every supported module owns a weight tensor
        raise VarpropTypeError(f"{type(module).__name__}.weight is not a tensor")
    if isinstance(module, nn.Embedding):
        init_(weight, "identity", var, "fan_in", distribution, generator, module=module, rank_invariant=rank_invariant)
        if module.padding_idx is not None:
            with torch.no_grad():
                if is_dtensor(weight):
                    sharding.zero_row_(weight, module.padding_idx)
                else:
                    weight[module.padding_idx].zero_()
        return module
    init_(weight, act, var, mode, distribution, generator, module=module, rank_invariant=rank_invariant)
    bias = getattr(module, "bias", None)
    if isinstance(bias, torch.Tensor):
        with torch.no_grad():
            bias.zero_()
    return module
