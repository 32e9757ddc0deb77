"""Small instances of the models people use, written for the tests of ``varprop.torch.init_model`` (issue 10).

- ``zoo.hf``: Hugging Face transformers built from small configs (offline, no download), also on the meta device.
- ``zoo.vision``: ResNet v1/v2, ConvNeXt, MobileNetV3, DenseNet, U-Net and ViT, written as torchvision / timm define
  them (same module structure, names and forward; small widths), since neither loads beside the CPU build of torch.
- ``zoo.recurrent``: ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` wrappers.
- ``zoo.failures``: one small reproducer per row of issue 10's table.
- ``zoo.oracle``: ``init_model`` then forward hooks on a fresh batch: each weight layer's measured output variance
  against the report's prediction, untouched weights, tied weights, stream variances.

Every builder returns a ``Case``: the model, an example input for ``init_model`` and a maker of fresh batches.
"""

from __future__ import annotations

from .case import Case

__all__ = ["Case"]
