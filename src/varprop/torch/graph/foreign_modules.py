"""Modules of other libraries written as tensor code, recognized by what they compute.

Hugging Face writes its RMS normalizations (``LlamaRMSNorm``, ``MistralRMSNorm``, ``Qwen2RMSNorm``, ``T5LayerNorm``)
as ``weight * x * rsqrt(mean(x^2, -1) + eps)`` in tensor code instead of ``torch.nn.RMSNorm``. Traced through, that
is a product of the signal with a function of its own mean square, which no elementwise rule can propagate; recorded
as one module, it is exactly ``nn.RMSNorm`` (Zhang & Sennrich 2019, "Root Mean Square Layer Normalization"):

    y = weight * x / sqrt(mean(x^2 over the last dim) + eps)

A module is taken for one when it owns exactly one parameter, a 1-D ``weight`` of size n, an ``eps`` or
``variance_epsilon`` attribute, no buffers and no submodules, and when its forward on a random (2, 3, n) input, with
a random positive weight put in for the check (its own may be uninitialized memory), equals that formula to 1e-5
relative (float32 rounding). Variants that differ (Gemma's ``(1 + weight)``, a mean-centred norm) fail the check and
are traced through as before.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["rms_norm_proxy"]

# The check's tolerance: float32 rounding of a mean of n squares, a rsqrt and two products (~1e-7 each), with room.
_RMS_RTOL = 1e-5


def _eps_of(module: nn.Module) -> float | None:
    for attribute in ("variance_epsilon", "eps"):
        value = getattr(module, attribute, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            return float(value)
    return None


def rms_norm_proxy(module: nn.Module) -> nn.RMSNorm | None:
    """An ``nn.RMSNorm`` that holds ``module``'s own ``weight`` parameter (the same tensor object, so that whatever
    is planned for it is planned for the module), when ``module`` is an RMS normalization written as tensor code (see
    the module docstring); ``None`` otherwise (``torch.nn`` modules included: those have their own rules).

    Example:
        >>> class Norm(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.weight, self.variance_epsilon = nn.Parameter(torch.ones(8)), 1e-6
        ...     def forward(self, x):
        ...         return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        >>> rms_norm_proxy(Norm()).normalized_shape
        (8,)
    """
    if type(module).__module__.startswith("torch.") or module._modules or module._buffers:
        return None
    params = dict(module.named_parameters(recurse=False))
    weight = params.get("weight")
    eps = _eps_of(module)
    if len(params) != 1 or weight is None or weight.dim() != 1 or eps is None or not weight.is_floating_point():
        return None
    if not _computes_rms_norm(type(module), module, int(weight.shape[0]), eps):
        return None
    proxy = nn.RMSNorm(int(weight.shape[0]), eps=eps, device="meta")
    proxy.weight = weight  # (the module's own Parameter: planned values are keyed by its id)
    return proxy


# Results of the check by (class, size, eps): instances of one class compute the same function of their weight.
_CHECKED: dict[tuple[type[nn.Module], int, float], bool] = {}


def _computes_rms_norm(kind: type[nn.Module], module: nn.Module, size: int, eps: float) -> bool:
    """The numerical check of the module docstring, once per (class, size, eps)."""
    key = (kind, size, eps)
    if key not in _CHECKED:
        _CHECKED[key] = _check(module, size, eps)
    return _CHECKED[key]


def _check(module: nn.Module, size: int, eps: float) -> bool:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn((2, 3, size), generator=generator, dtype=torch.float32)
    weight = torch.rand(size, generator=generator, dtype=torch.float32) + 0.5
    try:
        with torch.no_grad():
            out = torch.func.functional_call(module, {"weight": weight}, (x,))
    except Exception:  # a forward that needs other arguments: not a plain normalization
        return False
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        return False
    expected = weight * x * torch.rsqrt(x.double().pow(2).mean(-1, keepdim=True) + eps).float()
    return bool(torch.allclose(out.float(), expected, rtol=_RMS_RTOL, atol=1e-6))
