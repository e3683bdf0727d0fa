"""The fast packed (unpadded) ModernBERT forward.

HF's ModernBERT with SDPA computes every padding token and pays attention cost quadratic in the padded
length. Here sequences are packed back to back (no padding token is computed), attention runs inside
each sequence through flash-attention's varlen kernels (``window_size=(w, w)`` with
``w = local_attention // 2`` on local layers, full on global ones), and rotary positions restart at 0
for every sequence, as in the original ModernBERT training code.

Nothing is copied into a new architecture: :func:`unpadded_forward` calls the modules of an existing
``transformers.ModernBertModel`` (embeddings, ``Wqkv``, ``Wo``, MLP, norms, its rotary embedding), so
standard checkpoints load and save unchanged.

- :func:`unpadded_forward`: packed ``input_ids`` + ``cu_seqlens`` -> packed final hidden states.
- :class:`UnpaddedModernBert`: a drop-in ``auto_model`` for sentence-transformers / PyLate that takes
  ordinary padded batches, with the same state-dict keys and ``save_pretrained`` as the wrapped model.
- :func:`enable_unpadded`: swap it into a SentenceTransformer (or PyLate ColBERT) in place.

Fast inference over whole token-budget batches is :mod:`embedkit.models.packed_encoding`.

Outputs at padding positions (``attention_mask == 0``) are zeros, where HF returns values that every
pooling ignores. The one user of such outputs, PyLate query expansion without attention to the
expansion tokens, is routed to the original padded forward (see :func:`enable_unpadded`).
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from embedkit.models.packing import (Backend, PackedLayout, bucket_seqlen, pick_backend, positions, repad,
                                     resolve_backend, unpad, varlen_attention)
from embedkit.models.selfcheck import packed_path_ok

if TYPE_CHECKING:
    from transformers import ModernBertModel

logger = logging.getLogger(__name__)

Mode = Literal["auto", "on", "off"]
Pooling = Literal["mean", "cls"]


def is_modernbert(module: Any) -> bool:
    """True for a ``ModernBertModel`` (or anything whose config says ``model_type == "modernbert"``)."""
    if isinstance(module, UnpaddedModernBert):
        return True
    return getattr(getattr(module, "config", None), "model_type", None) == "modernbert"


def _base_model(model: Any) -> ModernBertModel:
    return model.hf_model if isinstance(model, UnpaddedModernBert) else model


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """HF ModernBERT's ``apply_rotary_pos_emb`` (float32 arithmetic) for packed ``(tokens, heads, head_dim)``."""
    x1, x2 = x.float().chunk(2, dim=-1)
    rotated = torch.cat((-x2, x1), dim=-1)  # (tokens, heads, head_dim)
    return (x.float() * cos + rotated * sin).to(x.dtype)


def _layer_forward(layer: nn.Module, hidden: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                   cu_seqlens: torch.Tensor, max_seqlen: int, window: int | None, layout: PackedLayout,
                   backend: Backend) -> torch.Tensor:
    """One ``ModernBertEncoderLayer`` on packed tokens, using the layer's own modules."""
    attn = layer.attn
    tokens = hidden.shape[0]
    qkv = attn.Wqkv(layer.attn_norm(hidden))  # (tokens, 3 * heads * head_dim)
    qkv = qkv.view(tokens, 3, -1, attn.head_dim)  # (tokens, 3, heads, head_dim)
    q, k = _rotate(qkv[:, :2], cos[:, None], sin[:, None]).unbind(dim=1)  # both in one pass; (tokens, heads, head_dim)
    v = qkv[:, 2]  # (tokens, heads, head_dim)
    out = varlen_attention(q, k, v.contiguous(), cu_seqlens, max_seqlen, window=window,
                           dropout_p=attn.attention_dropout if layer.training else 0.0,
                           scale=attn.head_dim ** -0.5, backend=backend, layout=layout)  # (tokens, heads, head_dim)
    hidden = hidden + attn.out_drop(attn.Wo(out.reshape(tokens, -1)))  # (tokens, hidden)
    return hidden + layer.mlp(layer.mlp_norm(hidden))


def _forward_packed(model: ModernBertModel, input_ids: torch.Tensor | None, cu_seqlens: torch.Tensor,
                    max_seqlen: int, inputs_embeds: torch.Tensor | None = None, output_hidden_states: bool = False,
                    backend: Backend = "auto") -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Final-norm hidden states ``(tokens, hidden)`` and, if asked, HF's ``hidden_states`` list (packed)."""
    config = model.config
    hidden = model.embeddings(input_ids=input_ids, inputs_embeds=inputs_embeds)  # (tokens, hidden)
    tokens = hidden.shape[0]
    cu_seqlens = cu_seqlens.to(device=hidden.device, dtype=torch.int32)
    pos = positions(cu_seqlens, tokens)  # (tokens,), restarting at 0 in every sequence
    span = torch.arange(max_seqlen, device=hidden.device)[None]  # (1, max_seqlen)
    rope = {}
    for layer_type in set(config.layer_types):
        cos, sin = model.rotary_emb(hidden, span, layer_type)  # each (1, max_seqlen, head_dim)
        rope[layer_type] = cos[0, pos][:, None], sin[0, pos][:, None]  # each (tokens, 1, head_dim)
    layout = PackedLayout(cu_seqlens, max_seqlen, tokens)
    all_hidden: list[torch.Tensor] = []
    for layer in model.layers:
        if output_hidden_states:
            all_hidden.append(hidden)
        window = config.sliding_window if layer.attention_type == "sliding_attention" else None
        args = (layer, hidden, *rope[layer.attention_type], cu_seqlens, max_seqlen, window, layout, backend)
        if getattr(layer, "gradient_checkpointing", False) and layer.training and torch.is_grad_enabled():
            hidden = checkpoint(_layer_forward, *args, use_reentrant=False)
        else:
            hidden = _layer_forward(*args)
    hidden = model.final_norm(hidden)
    if output_hidden_states:
        all_hidden.append(hidden)  # HF's last entry is the final-norm output
    return hidden, all_hidden


def unpadded_forward(model: ModernBertModel, input_ids: torch.Tensor, cu_seqlens: torch.Tensor,
                     max_seqlen: int, backend: Backend = "auto") -> torch.Tensor:
    """ModernBERT on packed sequences.

    Args:
        model: a ``transformers.ModernBertModel`` (or an :class:`UnpaddedModernBert` around one).
        input_ids: ``(total_tokens,)``, the sequences back to back.
        cu_seqlens: ``(n + 1,)`` int32 offsets of the sequences in ``input_ids``.
        max_seqlen: length of the longest sequence.
        backend: attention backend (see :mod:`embedkit.models.packing`); ``auto`` picks flash-attn, then
            torch's ``varlen_attn`` on CUDA with fp16/bf16, else padded SDPA with the same masking.

    Returns:
        ``(total_tokens, hidden)``: the final-norm hidden states, what HF returns as ``last_hidden_state``
        at the non-padding positions.
    """
    hidden, _ = _forward_packed(_base_model(model), input_ids, cu_seqlens, max_seqlen, backend=backend)
    return hidden


def should_compile(device: torch.device) -> bool:
    """Whether :class:`PackedForward` compiles by default: on CUDA. On CPU compiling costs minutes up front and
    pays back only on large inputs (see README, "Measured"), so it is asked for explicitly there."""
    return device.type == "cuda"


@functools.cache
def _compiled_forward_packed() -> Any:
    # dynamic=True: the token count, the number of sequences and max_seqlen are symbolic, one graph serves
    # every batch; parameters are inputs of the graph, so every model of the same architecture shares it too.
    return torch.compile(_forward_packed, dynamic=True)


class PackedForward:
    """The packed forward of one model, compiled or eager, with the attention backend fixed up front.

    ``torch.compile`` fuses the elementwise work around the GEMMs (rotary embedding of q and k, GeGLU,
    residual adds, LayerNorms). If compiling fails (no C++ compiler, an op it cannot lower), one warning is
    logged and the eager forward, the same math, is used from then on.
    """

    def __init__(self, model: Any, backend: Backend = "auto", compile: bool | None = None):
        self.model, self.backend = _base_model(model), backend
        self.compile = should_compile(next(self.model.parameters()).device) if compile is None else compile

    def full(self, input_ids: torch.Tensor | None, cu_seqlens: torch.Tensor, max_seqlen: int,
             inputs_embeds: torch.Tensor | None = None,
             output_hidden_states: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """:func:`_forward_packed`'s outputs: final hidden states ``(tokens, hidden)`` and the hidden-states list."""
        args = (self.model, input_ids, cu_seqlens, max_seqlen, inputs_embeds, output_hidden_states, self.backend)
        if self.compile:
            try:
                return _compiled_forward_packed()(*args)
            except Exception as exc:  # the eager forward below is the same computation
                self.compile = False
                logger.warning("torch.compile of the packed ModernBERT forward failed (%s: %s); running eagerly",
                               type(exc).__name__, (str(exc).splitlines() or [""])[0])
        return _forward_packed(*args)

    def __call__(self, input_ids: torch.Tensor, cu_seqlens: torch.Tensor, max_seqlen: int) -> torch.Tensor:
        return self.full(input_ids, cu_seqlens, max_seqlen)[0]


class UnpaddedModernBert(nn.Module):
    """Drop-in ``auto_model`` that runs a ``ModernBertModel`` packed on ordinary padded batches.

    The wrapped model's children are registered here under their own names, so parameters are shared
    and the state-dict keys are exactly the wrapped model's. Everything else (``config``,
    ``save_pretrained``, ``device``, ``gradient_checkpointing_enable``, ...) is delegated to it.

    Args:
        model: the ``ModernBertModel`` to wrap.
        padded_fallback_len: batches padded to at most this many tokens go through the original padded
            forward, whose outputs at masked positions are real (PyLate query expansion needs them).
        backend: attention backend for the packed path.
        strict: a failed first-use self-check (:mod:`embedkit.models.selfcheck`) raises instead of falling
            back to the HF forward.
        compile: run the packed forward through ``torch.compile`` (``None``: :func:`should_compile`).
    """

    def __init__(self, model: ModernBertModel, padded_fallback_len: int = 0, backend: Backend = "auto",
                 strict: bool = False, compile: bool | None = None):
        super().__init__()
        model = _base_model(model)
        if list(model.parameters(recurse=False)) or list(model.buffers(recurse=False)):
            raise ValueError("UnpaddedModernBert expects all tensors of the model to live in its submodules")
        for name, child in model.named_children():
            self.add_module(name, child)
        object.__setattr__(self, "hf_model", model)  # not registered: no duplicate state-dict keys
        self.padded_fallback_len = padded_fallback_len
        self.backend = backend
        self.strict = strict
        self.compile = compile

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            hf_model = self.__dict__.get("hf_model")
            if hf_model is None:
                raise
            return getattr(hf_model, name)

    def _packed_forward(self, device: torch.device) -> PackedForward:
        """One :class:`PackedForward` per backend, kept, so a failed compilation is tried (and logged) once."""
        backend = resolve_backend(device, next(self.hf_model.parameters()).dtype, self.backend)
        forward = self.__dict__.get("_forward")
        if forward is None or forward.backend != backend:
            forward = self.__dict__["_forward"] = PackedForward(self.hf_model, backend, self.compile)
        return forward

    def train(self, mode: bool = True) -> UnpaddedModernBert:
        super().train(mode)
        self.hf_model.training = mode
        return self

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, inputs_embeds: torch.Tensor | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None, **kwargs: Any):
        """Same inputs and outputs as ``ModernBertModel.forward`` (``last_hidden_state``, ``hidden_states``)."""
        from transformers.modeling_outputs import BaseModelOutput

        reference = input_ids if input_ids is not None else inputs_embeds
        if reference is None:
            raise ValueError("You must specify exactly one of input_ids or inputs_embeds")
        batch, seq_len = reference.shape[:2]
        if output_hidden_states is None:
            output_hidden_states = bool(self.hf_model.config.output_hidden_states)
        forward = self._packed_forward(reference.device)
        if seq_len <= self.padded_fallback_len or not packed_path_ok(self.hf_model, forward, strict=self.strict):
            return self.hf_model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                 inputs_embeds=inputs_embeds, output_hidden_states=output_hidden_states,
                                 return_dict=return_dict, **kwargs)
        if position_ids is not None:
            raise ValueError("UnpaddedModernBert restarts positions at 0 for every sequence; "
                             "position_ids are not supported")
        if attention_mask is None:
            attention_mask = torch.ones(batch, seq_len, dtype=torch.long, device=reference.device)
        # The flash kernels need only an upper bound on the longest sequence: the padded length, bucketed, costs
        # no device->host sync (padded SDPA pads to max_seqlen, so it gets the exact one).
        bound = None if forward.backend == "sdpa" else bucket_seqlen(seq_len)
        indices, cu_seqlens, max_seqlen = unpad(attention_mask, max_seqlen=bound)
        packed_ids = input_ids.flatten()[indices] if input_ids is not None else None  # (tokens,)
        packed_embeds = inputs_embeds.flatten(0, 1)[indices] if inputs_embeds is not None else None
        last, all_hidden = forward.full(packed_ids, cu_seqlens.to(reference.device), max_seqlen,
                                        inputs_embeds=packed_embeds, output_hidden_states=output_hidden_states)
        output = BaseModelOutput(
            last_hidden_state=repad(last, indices, batch, seq_len),  # (batch, seq_len, hidden)
            hidden_states=tuple(repad(h, indices, batch, seq_len) for h in all_hidden) if output_hidden_states
            else None)
        return output.to_tuple() if return_dict is False else output


def _colbert_fallback_len(st_model: Any) -> int:
    """PyLate pads queries to ``query_length`` with expansion tokens whose outputs it uses even when they are
    masked out of attention; such batches (never longer than ``query_length``) keep the padded forward."""
    if getattr(st_model, "do_query_expansion", False) and not getattr(st_model, "attend_to_expansion_tokens", True):
        return int(getattr(st_model, "query_length", 0) or 0)
    return 0


def enable_unpadded(st_model: Any, mode: Mode = "auto") -> bool:
    """Swap the packed forward into a SentenceTransformer (or PyLate ColBERT) in place.

    Applies when the first module's ``auto_model`` is a ModernBERT and ``mode`` is ``"on"`` or ``"auto"``
    (on CPU too: packing skips the padding tokens' share of every GEMM, see README "Measured"). Returns
    whether the packed forward is in use. Saving afterwards writes the same checkpoint as before (same
    state-dict keys, HF ``save_pretrained``). Its first forward on a device checks itself against HF's
    (:mod:`embedkit.models.selfcheck`): ``"auto"`` falls back to the HF forward on a mismatch, ``"on"`` raises.
    """
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"unpadded mode must be 'auto', 'on' or 'off', got {mode!r}")
    first = st_model[0] if len(st_model) else None
    auto_model = getattr(first, "auto_model", None)
    if isinstance(auto_model, UnpaddedModernBert):
        if mode == "off":
            disable_unpadded(st_model)
            return False
        auto_model.strict = mode == "on"
        return True
    if mode == "off" or auto_model is None or not is_modernbert(auto_model):
        return False
    from transformers import ModernBertModel

    if not isinstance(auto_model, ModernBertModel):
        return False
    first.auto_model = UnpaddedModernBert(auto_model, padded_fallback_len=_colbert_fallback_len(st_model),
                                          strict=mode == "on")
    logger.info("packed (unpadded) ModernBERT forward enabled, attention backend on this device: %s",
                pick_backend(torch.empty(0, device=auto_model.device)))
    return True


def disable_unpadded(st_model: Any) -> bool:
    """Put the original ``ModernBertModel`` back; returns whether anything was swapped out."""
    first = st_model[0] if len(st_model) else None
    if isinstance(getattr(first, "auto_model", None), UnpaddedModernBert):
        first.auto_model = first.auto_model.hf_model
        return True
    return False
