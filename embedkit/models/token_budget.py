"""How many tokens a batch should hold on the CPU: few enough that no layer's output outgrows ``malloc``'s heap.

glibc's ``malloc`` serves a block above 32 MiB with a fresh ``mmap`` and unmaps it when it is freed, so a layer
whose output is larger page-faults through all of it on every call: ``eval/cpu_kernels.py`` times a bf16 linear
layer below and above that size (per row, with its page faults per call) and MiniLM in bf16 in batches of 64 texts
of 256 tokens against batches of :func:`cpu_token_budget` tokens.
"""

from __future__ import annotations

from typing import Any

import torch

ACTIVATION_BYTES = 16 << 20  # a CPU batch's widest activation stays under this (half glibc's largest heap block)


def widest_per_token(model: torch.nn.Module, config: Any = None, eager_attention: bool = True) -> int:
    """Values per token of the widest tensor a layer of ``model`` makes: its widest linear layer's output, the
    fused-QKV and intermediate widths of ``config`` (a Hugging Face config), and the attention scores (heads x
    longest input) where ``config`` computes attention eagerly.

    >>> widest_per_token(torch.nn.Sequential(torch.nn.Linear(8, 96), torch.nn.Linear(96, 8)))
    96
    """
    widths = [int(m.out_features) for m in model.modules() if isinstance(getattr(m, "out_features", None), int)]
    if config is not None:
        widths += [3 * int(getattr(config, "hidden_size", 0) or 0), int(getattr(config, "intermediate_size", 0) or 0)]
        if eager_attention and getattr(config, "_attn_implementation", None) == "eager":
            longest = int(getattr(model, "max_seq_length", None) or getattr(config, "max_position_embeddings", 512))
            widths.append(int(getattr(config, "num_attention_heads", 0) or 0) * longest)
    return max(widths, default=0)


def cpu_token_budget(model: torch.nn.Module, bf16: bool | None = None, own_attention: bool = False) -> int | None:
    """Padded tokens per batch on the CPU: as many as keep the widest activation of ``model`` under
    :data:`ACTIVATION_BYTES`; ``None`` on other devices (larger batches only fill them better) or for a model with
    no layer to measure. ``bf16``: activations in bf16 (default: whether the weights are; a model whose
    transformer another runtime runs says so itself). ``own_attention``: the caller runs attention with its own
    kernels (the packed forward), so the config's eager attention does not count.

    >>> cpu_token_budget(torch.nn.Sequential(torch.nn.Linear(8, 1024)))  # fp32: 4 KiB a token
    4096
    """
    from embedkit.models.backends import RuntimeModel

    param = next(model.parameters(), None)
    if param is not None and param.device.type != "cpu":
        return None
    runtime = next((m for m in model.modules() if isinstance(m, RuntimeModel)), None)
    if runtime is not None:  # the exported graph: its own attention, its precision a run-time choice
        config, eager, bf16 = runtime.config, False, runtime.precision == "bf16" if bf16 is None else bf16
    else:
        config = next((c for c in (getattr(m, "config", None) for m in model.modules()) if hasattr(c, "hidden_size")),
                      None)
        eager = not own_attention
        if bf16 is None:
            bf16 = param is not None and param.dtype == torch.bfloat16
    width = widest_per_token(model, config, eager)
    return max(1, ACTIVATION_BYTES // (width * (2 if bf16 else 4))) if width else None
