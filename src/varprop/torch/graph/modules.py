"""The module types the adapter knows by type, one table per kind, and the leaves of a trace (``LEAF_TYPES``:
recorded as one node each, never traced through).

A rule for a new layer type starts here: its type in the table of its kind (or in ``LEAF_TYPES``), then its
propagation rule in ``varprop.torch.propagation`` (see docs/architecture.md, "How to add a layer type").
"""

from __future__ import annotations

from torch import nn

__all__ = [
    "CONV_LAYERS",
    "CONV_TRANSPOSE_LAYERS",
    "DROPOUT_TYPES",
    "LEAF_TYPES",
    "NORM_TYPES",
    "POOL_TYPES",
    "RECURRENT_TYPES",
]

CONV_LAYERS: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
CONV_TRANSPOSE_LAYERS: tuple[type[nn.Module], ...] = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
RECURRENT_TYPES: tuple[type[nn.Module], ...] = (nn.RNN, nn.LSTM, nn.GRU)
NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.RMSNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
)
POOL_TYPES: tuple[type[nn.Module], ...] = (
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
)
DROPOUT_TYPES: tuple[type[nn.Module], ...] = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)
LEAF_TYPES: tuple[type[nn.Module], ...] = (
    nn.Linear,
    *CONV_LAYERS,
    *CONV_TRANSPOSE_LAYERS,
    nn.Embedding,
    *NORM_TYPES,
    *POOL_TYPES,
    *DROPOUT_TYPES,
    nn.Flatten,
    nn.Unflatten,
    nn.Identity,
    nn.Softmax,
    nn.MultiheadAttention,
    nn.TransformerEncoderLayer,
    nn.TransformerEncoder,
    *RECURRENT_TYPES,
)
