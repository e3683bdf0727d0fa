"""The packed ModernBERT forward, eager or compiled once per model and device.

HF's ModernBERT with SDPA computes every padding token and pays attention cost quadratic in the padded
length. Here sequences are packed back to back (no padding token is computed), attention runs inside
each sequence through flash-attention's varlen kernels (``window_size=(w, w)`` with
``w = local_attention // 2`` on local layers, full on global ones), and rotary positions restart at 0
for every sequence, as in the original ModernBERT training code.

Nothing is copied into a new architecture: :func:`run_packed_forward` calls the modules of an existing
``transformers.ModernBertModel`` (embeddings, ``Wqkv``, ``Wo``, MLP, norms, its rotary embedding), so
standard checkpoints load and save unchanged.

:func:`packed_forward` hands out one :class:`PackedForward` per model, device and attention kernel, kept on
the model: its ``torch.compile`` graph is built once and reused by every call (encoding, the self-check, the
training wrapper), a failed compilation is remembered, and a recompilation is counted and reported.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from embedkit.models.packed.kernels import AUTO, AttentionKernel, KernelChoice, attend, resolve_kernel
from embedkit.models.packed.layout import PackedLayout, positions

if TYPE_CHECKING:
    from transformers import ModernBertModel

logger = logging.getLogger(__name__)

_FORWARDS_ATTR = "_embedkit_packed_forwards"


def base_model(model: Any) -> ModernBertModel:
    """The ``ModernBertModel`` itself, also when given the training wrapper around it."""
    return model.__dict__.get("hf_model", model)


def is_modernbert(module: Any) -> bool:
    """True for a ``ModernBertModel`` (or anything whose config says ``model_type == "modernbert"``)."""
    return getattr(getattr(base_model(module), "config", None), "model_type", None) == "modernbert"


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """HF ModernBERT's ``apply_rotary_pos_emb`` (float32 arithmetic) for packed ``(tokens, heads, head_dim)``."""
    x1, x2 = x.float().chunk(2, dim=-1)
    rotated = torch.cat((-x2, x1), dim=-1)  # (tokens, heads, head_dim)
    return (x.float() * cos + rotated * sin).to(x.dtype)


def _layer_forward(layer: nn.Module, hidden: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                   cu_seqlens: torch.Tensor, max_seqlen: int, window: int | None, layout: PackedLayout,
                   kernel: AttentionKernel) -> torch.Tensor:
    """One ``ModernBertEncoderLayer`` on packed tokens, using the layer's own modules."""
    attn = layer.attn
    tokens = hidden.shape[0]
    qkv = attn.Wqkv(layer.attn_norm(hidden))  # (tokens, 3 * heads * head_dim)
    qkv = qkv.view(tokens, 3, -1, attn.head_dim)  # (tokens, 3, heads, head_dim)
    q, k = _rotate(qkv[:, :2], cos[:, None], sin[:, None]).unbind(dim=1)  # both in one pass; (tokens, heads, head_dim)
    v = qkv[:, 2]  # (tokens, heads, head_dim), a strided view: the padded kernels copy it, the flash ones compact it
    out = attend(q, k, v, cu_seqlens, max_seqlen, window=window,
                 dropout_p=attn.attention_dropout if layer.training else 0.0,
                 scale=attn.head_dim ** -0.5, kernel=kernel, layout=layout)  # (tokens, heads, head_dim)
    hidden = hidden + attn.out_drop(attn.Wo(out.reshape(tokens, -1)))  # (tokens, hidden)
    return hidden + layer.mlp(layer.mlp_norm(hidden))


def _forward_packed(model: ModernBertModel, input_ids: torch.Tensor | None, cu_seqlens: torch.Tensor,
                    max_seqlen: int, inputs_embeds: torch.Tensor | None = None, output_hidden_states: bool = False,
                    kernel: AttentionKernel | KernelChoice = AUTO) -> tuple[torch.Tensor, list[torch.Tensor]]:
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
        args = (layer, hidden, *rope[layer.attention_type], cu_seqlens, max_seqlen, window, layout, kernel)
        if getattr(layer, "gradient_checkpointing", False) and layer.training and torch.is_grad_enabled():
            hidden = checkpoint(_layer_forward, *args, use_reentrant=False)
        else:
            hidden = _layer_forward(*args)
    hidden = model.final_norm(hidden)
    if output_hidden_states:
        all_hidden.append(hidden)  # HF's last entry is the final-norm output
    return hidden, all_hidden


def run_packed_forward(model: ModernBertModel, input_ids: torch.Tensor, cu_seqlens: torch.Tensor,
                       max_seqlen: int, kernel: KernelChoice | AttentionKernel = AUTO) -> torch.Tensor:
    """ModernBERT on packed sequences.

    Args:
        model: a ``transformers.ModernBertModel`` (or the training wrapper around one).
        input_ids: ``(total_tokens,)``, the sequences back to back.
        cu_seqlens: ``(n + 1,)`` int32 offsets of the sequences in ``input_ids``.
        max_seqlen: length of the longest sequence.
        kernel: attention kernel (see :mod:`embedkit.models.packed.kernels`); ``auto`` picks flash-attn, then
            torch's ``varlen_attn`` on CUDA with fp16/bf16, else padded SDPA with the same masking.

    Returns:
        ``(total_tokens, hidden)``: the final-norm hidden states, what HF returns as ``last_hidden_state``
        at the non-padding positions.
    """
    hidden, _ = _forward_packed(base_model(model), input_ids, cu_seqlens, max_seqlen, kernel=kernel)
    return hidden


def should_compile(device: torch.device) -> bool:
    """Whether :class:`PackedForward` compiles by default: on CUDA. On CPU compiling costs minutes up front and
    pays back only on large inputs (see docs/measurements, "CPU throughput"), so it is asked for explicitly there."""
    return device.type == "cuda"


def _compile(fn: Any, backend: Any) -> Any:
    # dynamic=True: the token count, the number of sequences and max_seqlen are symbolic, one graph serves
    # every batch shape (a batch of one sequence is padded to two, see PackedForward.full).
    return torch.compile(fn, dynamic=True, backend=backend)


class PackedForward:
    """The packed forward of one model on one device, compiled or eager, with the attention kernel fixed.

    ``torch.compile`` fuses the elementwise work around the GEMMs (rotary embedding of q and k, GeGLU,
    residual adds, LayerNorms). Get instances from :func:`packed_forward`, which keeps one per model, device
    and kernel, so the graph is compiled once. If compiling fails (no C++ compiler, an op it cannot lower),
    one warning is logged and the eager forward, the same math, is used from then on. ``graphs`` counts the
    graphs compiled; one compiled after the first call is a recompilation, logged once as a warning
    (``torch._dynamo`` errors about recompiling are raised, not swallowed).
    """

    def __init__(self, model: Any, kernel: AttentionKernel | KernelChoice = AUTO, compile: bool | None = None):
        self.model = base_model(model)
        if not isinstance(kernel, AttentionKernel) or compile is None:  # (a deep copy passes both: the model's
            param = next(self.model.parameters())                     # parameters are not there yet)
            kernel = resolve_kernel(param.device, param.dtype, kernel)
            compile = should_compile(param.device) if compile is None else compile
        self.kernel: AttentionKernel = kernel
        self.compile = compile
        self.graphs = 0  # graphs handed to the compiler backend
        self.calls = 0
        self._settled: dict[tuple, int] = {}  # graphs after the first compiled call in each grad/autocast mode
        self._compiled: Any = None
        self._requested = self.compile

    def __deepcopy__(self, memo: dict) -> PackedForward:
        """A copy of the model gets its own forward (and compiles its own graph); nothing compiled is copied."""
        import copy

        return PackedForward(copy.deepcopy(self.model, memo), self.kernel, self._requested)

    def _backend(self, gm: torch.fx.GraphModule, example_inputs: list) -> Any:
        from torch._dynamo.backends.registry import lookup_backend

        self.graphs += 1
        return lookup_backend("inductor")(gm, example_inputs)

    def full(self, input_ids: torch.Tensor | None, cu_seqlens: torch.Tensor, max_seqlen: int,
             inputs_embeds: torch.Tensor | None = None,
             output_hidden_states: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """:func:`_forward_packed`'s outputs: final hidden states ``(tokens, hidden)`` and the hidden-states list."""
        self.calls += 1
        if self.compile:
            if cu_seqlens.numel() == 2:  # one sequence: add an empty one, as a size-1 axis would specialise
                cu_seqlens = torch.cat([cu_seqlens, cu_seqlens[-1:]])  # (3,); no token, same outputs
            if torch.is_inference_mode_enabled():  # graphs guard on it: make every input an inference tensor
                input_ids, cu_seqlens, inputs_embeds = (
                    t if t is None or t.is_inference() else t.clone() for t in (input_ids, cu_seqlens, inputs_embeds))
            try:
                if self._compiled is None:
                    self._compiled = _compile(_forward_packed, self._backend)
                out = self._compiled(self.model, input_ids, cu_seqlens, max_seqlen, inputs_embeds,
                                     output_hidden_states, self.kernel)
            except torch._dynamo.exc.RecompileError:
                raise
            except Exception as exc:  # the eager forward below is the same computation
                self.compile = False
                logger.warning("torch.compile of the packed ModernBERT forward failed (%s: %s); running eagerly",
                               type(exc).__name__, (str(exc).splitlines() or [""])[0])
            else:
                self._note_graphs()
                return out
        return _forward_packed(self.model, input_ids, cu_seqlens, max_seqlen, inputs_embeds, output_hidden_states,
                               self.kernel)

    def _note_graphs(self) -> None:
        """The first call in a mode (inference, no-grad, training; autocast dtype) may compile a graph of its own;
        a graph compiled by a later call in the same mode is a recompilation: counted, and logged once each."""
        device = next(self.model.parameters()).device.type
        mode = (torch.is_grad_enabled(), torch.is_inference_mode_enabled(),
                torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None)
        if mode not in self._settled:
            self._settled[mode] = self.graphs
        elif self.graphs > self._settled[mode]:
            logger.warning("the packed ModernBERT forward was recompiled (%d graphs in all, %d before this call); run "
                           "with TORCH_LOGS=recompiles to see why", self.graphs, self._settled[mode])
            self._settled = dict.fromkeys(self._settled, self.graphs)

    def __call__(self, input_ids: torch.Tensor, cu_seqlens: torch.Tensor, max_seqlen: int) -> torch.Tensor:
        return self.full(input_ids, cu_seqlens, max_seqlen)[0]


def packed_forward(model: Any, kernel: AttentionKernel | KernelChoice, compile: bool | None = None) -> PackedForward:
    """The :class:`PackedForward` of ``model`` on its current device for ``kernel`` (resolve it under the caller's
    autocast first: :func:`~embedkit.models.packed.kernels.resolve_kernel`), created once and kept on the model."""
    model = base_model(model)
    device = next(model.parameters()).device
    compile = should_compile(device) if compile is None else compile
    forwards: dict[tuple[str, str, bool], PackedForward] = model.__dict__.setdefault(_FORWARDS_ATTR, {})
    kernel = resolve_kernel(device, next(model.parameters()).dtype, kernel)
    key = (str(device), kernel.name, compile)
    if key not in forwards:
        forwards[key] = PackedForward(model, kernel, compile)
    return forwards[key]
