"""Hugging Face transformers from small configs (offline: ``Model(config)`` / ``AutoModel*.from_config``; no
tokenizer, no download). Each builder gives the model as ``from_config`` makes it (HF's own ``post_init`` has run), or
built under ``torch.device("meta")`` and materialized with ``to_empty`` (``meta=True``: parameters and buffers hold
garbage until something writes them).

Sizes: hidden 64, 2 layers, 4 heads, batch 8 x 16 tokens (vision: 8 images of 3 x 32 x 32; audio: 8 x 32 frames of
16 mel bins, or 8 x 800 samples).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # (tests/conftest.py sets them first; benchmarks/zoo.py too)
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from collections.abc import Callable
from typing import Any

import torch
import transformers
from torch import nn

from .case import Case, example_of, gaussian, token_ids

transformers.logging.set_verbosity_error()

VOCAB = 128
HIDDEN = 64
LAYERS = 2
HEADS = 4
BATCH = 8
TOKENS = 16
TEXT = (BATCH, TOKENS)


def _gpt2() -> tuple[Any, Callable[[Any], nn.Module]]:
    config = transformers.GPT2Config(
        vocab_size=VOCAB, n_positions=64, n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS, tie_word_embeddings=True
    )
    return config, transformers.AutoModelForCausalLM.from_config


def _bert() -> tuple[Any, Callable[[Any], nn.Module]]:
    config = transformers.BertConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=4 * HIDDEN,
        max_position_embeddings=64,
    )
    return config, transformers.BertModel


def _llama() -> tuple[Any, Callable[[Any], nn.Module]]:
    config = transformers.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        intermediate_size=3 * HIDDEN,  # SwiGLU: silu(gate(x)) * up(x)
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=HEADS // 2,  # grouped-query attention
        max_position_embeddings=64,
        tie_word_embeddings=False,
    )
    return config, transformers.AutoModelForCausalLM.from_config


def _mistral() -> tuple[Any, Callable[[Any], nn.Module]]:
    config = transformers.MistralConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        intermediate_size=3 * HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=HEADS // 2,
        max_position_embeddings=64,
        sliding_window=8,
    )
    return config, transformers.AutoModelForCausalLM.from_config


def _qwen2() -> tuple[Any, Callable[[Any], nn.Module]]:
    config = transformers.Qwen2Config(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        intermediate_size=3 * HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=HEADS // 2,
        max_position_embeddings=64,
        tie_word_embeddings=True,  # (Qwen2's small checkpoints tie; q/k/v have biases)
    )
    return config, transformers.AutoModelForCausalLM.from_config


def _t5_encoder() -> tuple[Any, Callable[[Any], nn.Module]]:
    config = transformers.T5Config(
        vocab_size=VOCAB, d_model=HIDDEN, d_kv=HIDDEN // HEADS, d_ff=4 * HIDDEN, num_layers=LAYERS, num_heads=HEADS
    )
    return config, transformers.T5EncoderModel


def _vit() -> tuple[Any, Callable[[Any], nn.Module]]:
    config = transformers.ViTConfig(
        image_size=32,
        patch_size=8,
        num_channels=3,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=4 * HIDDEN,
    )
    return config, transformers.ViTModel


def _whisper_encoder() -> tuple[Any, Callable[[Any], nn.Module]]:
    config = transformers.WhisperConfig(
        vocab_size=VOCAB,
        num_mel_bins=16,
        d_model=HIDDEN,
        encoder_layers=LAYERS,
        encoder_attention_heads=HEADS,
        encoder_ffn_dim=4 * HIDDEN,
        decoder_layers=1,
        decoder_attention_heads=HEADS,
        decoder_ffn_dim=4 * HIDDEN,
        max_source_positions=16,  # input frames = 2 x 16 (conv2 has stride 2)
        max_target_positions=16,
    )
    return config, transformers.models.whisper.modeling_whisper.WhisperEncoder


def _wav2vec2() -> tuple[Any, Callable[[Any], nn.Module]]:
    config = transformers.Wav2Vec2Config(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=4 * HIDDEN,
        conv_dim=(32, 32, 32),
        conv_kernel=(10, 3, 3),
        conv_stride=(5, 2, 2),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        mask_time_prob=0.0,
    )
    return config, transformers.Wav2Vec2Model


# name -> (config and constructor, fresh-batch maker, what the case exercises)
BUILDERS: dict[str, tuple[Callable[[], tuple[Any, Callable[[Any], nn.Module]]], Callable[..., Any], str]] = {
    "gpt2": (_gpt2, token_ids(TEXT, VOCAB), "GPT2LMHeadModel: Conv1D (addmm), gelu_new, tied lm_head"),
    "bert": (_bert, token_ids(TEXT, VOCAB), "BertModel: post-norm, position/token-type buffers, pooler"),
    "llama": (_llama, token_ids(TEXT, VOCAB), "LlamaForCausalLM: GQA, RMSNorm, SwiGLU, rotary"),
    "mistral": (_mistral, token_ids(TEXT, VOCAB), "MistralForCausalLM: GQA, sliding window"),
    "qwen2": (_qwen2, token_ids(TEXT, VOCAB), "Qwen2ForCausalLM: GQA, q/k/v biases, tied embeddings"),
    "t5_encoder": (_t5_encoder, token_ids(TEXT, VOCAB), "T5EncoderModel: relative position bias, T5LayerNorm"),
    "vit": (_vit, gaussian((BATCH, 3, 32, 32)), "ViTModel: patch convolution, class token, position embedding"),
    "whisper_encoder": (
        _whisper_encoder,
        gaussian((BATCH, 16, 32)),
        "WhisperEncoder: Conv1d front end, sinusoidal positions",
    ),
    "wav2vec2": (_wav2vec2, gaussian((BATCH, 800)), "Wav2Vec2Model: conv feature encoder, weight-norm pos conv"),
}
TIED = {
    "gpt2": (("transformer.wte.weight", "lm_head.weight"),),
    "qwen2": (("model.embed_tokens.weight", "lm_head.weight"),),
}


def restore_buffers(model: nn.Module) -> None:
    """After ``to_empty``: the buffers (BERT's position ids, rotary ``inv_freq``, ...) as HF's own ``_init_weights``
    computes them, applied to the modules that own buffers only (their parameters are rewritten too, by HF's rule:
    the weights are then ``init_model``'s job). Without it, BERT's forward fails on garbage position ids."""
    init = getattr(model, "_init_weights", None)
    if init is None:
        return
    with torch.no_grad():
        for module in model.modules():
            if any(True for _ in module.buffers(recurse=False)):
                init(module)


def hf_case(name: str, *, meta: bool = False, seed: int = 0) -> Case:
    """The zoo's Hugging Face model ``name`` (see ``BUILDERS``), in eval mode, as ``from_config`` makes it (HF's
    ``post_init`` has initialized and tied it). ``meta=True``: built under ``torch.device("meta")``, materialized with
    ``to_empty(device="cpu")`` (parameters hold uninitialized memory), buffers restored (``restore_buffers``) and
    ``tie_weights()`` called, as HF's own meta-device path does."""
    make, fresh, _ = BUILDERS[name]
    config, construct = make()
    torch.manual_seed(seed)
    if meta:
        with torch.device("meta"):
            model = construct(config)
        model.to_empty(device="cpu")
        restore_buffers(model)
        tie = getattr(model, "tie_weights", None)
        if tie is not None:
            tie()
    else:
        model = construct(config)
    model.eval()
    return Case(name, model, example_of(fresh, seed), fresh, kind="hf", tied=TIED.get(name, ()))
