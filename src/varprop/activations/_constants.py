"""Constants of the built-in activations, written once with their source (the definitions and the closed forms
import them from here)."""

from __future__ import annotations

import math

__all__ = ["GELU_TANH_BETA", "GELU_TANH_KAPPA", "SELU_ALPHA", "SELU_SCALE"]

# SELU constants of torch.nn.SELU (Klambauer et al., 2017, "Self-Normalizing Neural Networks",
# eq. 14: the fixed point of mean 0 and variance 1), to the digits torch's documentation gives.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
# GELU tanh approximation (Hendrycks & Gimpel, 2016, sec. 2), as in torch: sqrt(2/pi) and 0.044715.
GELU_TANH_BETA = math.sqrt(2.0 / math.pi)
GELU_TANH_KAPPA = 0.044715
