"""``varprop.torch.init_model`` on a Hugging Face model built from a config, in place of its own ``_init_weights``
(the README's "Your model" section prints this script's output). Offline: no download, no tokenizer.

    python examples/hf_model.py
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
import transformers
from transformers.initialization import no_init_weights

import varprop.torch as vt

transformers.logging.set_verbosity_error()
config = transformers.LlamaConfig(
    vocab_size=1000,
    hidden_size=128,
    intermediate_size=384,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
)
torch.manual_seed(0)
with no_init_weights():  # (skip the model's own _init_weights: init_model writes every weight)
    model = transformers.AutoModelForCausalLM.from_config(config).eval()
ids = torch.randint(0, config.vocab_size, (8, 64), generator=torch.Generator().manual_seed(0))
report = vt.init_model(model, ids, generator=torch.Generator().manual_seed(0))
print(report)

# Check: the variance of every weight layer's output on a fresh batch, against the report's prediction.
fresh = torch.randint(0, config.vocab_size, (8, 64), generator=torch.Generator().manual_seed(1))
measured: dict[str, float] = {}
modules = dict(model.named_modules())


def record(name: str):
    def hook(module: torch.nn.Module, args: object, out: torch.Tensor) -> None:
        measured.setdefault(name, float(out.double().var()))

    return hook


handles = [modules[row.name].register_forward_hook(record(row.name)) for row in report.layers if row.name in modules]
with torch.no_grad():
    model(fresh)
for handle in handles:
    handle.remove()
ratios = [measured[row.name] / row.predicted_output_var for row in report.layers if row.predicted_output_var]
print(
    f"\nfresh batch: measured / predicted output variance over {len(ratios)} weight layers: "
    f"min {min(ratios):.3f}, median {sorted(ratios)[len(ratios) // 2]:.3f}, max {max(ratios):.3f}"
)
