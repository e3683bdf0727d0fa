"""The packed ModernBERT forward inside a sentence-transformers (dense, multi-vector, sparse) / PyLate model, for
training and ``encode``.

- :class:`PackedModernBert`: a drop-in for the HF model that takes ordinary padded batches, runs them
  packed (:mod:`embedkit.models.packed.forward`) and returns padded outputs, with the same state-dict keys
  and ``save_pretrained`` as the wrapped model.
- :func:`enable_packed`: swap it into a SentenceTransformer, MultiVectorEncoder or PyLate ColBERT, then
  prove the swap took effect: a probe batch sent through the library's own ``Transformer`` module must
  reach the wrapper. sentence-transformers >= 5.4 keeps the model in ``Transformer.model`` (``auto_model``
  is a read-only property over it), older versions and PyLate in ``auto_model``; a library that routes its
  forward elsewhere is caught by the probe. ``mode="on"`` then raises, ``"auto"`` warns once and stays on
  HF's forward.

Fast inference over whole token-budget batches is :mod:`embedkit.models.packed.texts` (and ``documents``).

Outputs at padding positions (``attention_mask == 0``) are zeros, where HF returns values that every
pooling ignores. The one user of such outputs, ColBERT query expansion without attention to the
expansion tokens, is routed to the original padded forward: the caller passes the padded length that must keep
it (``padded_fallback``, which a ColBERT model's library gives; see ``ColbertLibrary.padded_query_length``).

Unpadding needs each row's length. On a GPU, reading it from the device mask (``torch.nonzero``) waits for
the device in every training forward, so :func:`enable_packed` also wraps the model's ``tokenize`` /
``preprocess`` to attach the lengths, computed on the host, to the features (:mod:`~embedkit.models.packed.hints`); the
``Transformer`` module hands them to the wrapper. Where a library drops or reshapes them, the device path is
used; on a GPU the hint is also checked against the mask, asynchronously (never waiting), and a mismatch
raises at the next forward.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, get_args

import torch
from torch import nn

from embedkit.config import PackedMode
from embedkit.errors import EmbedkitError
from embedkit.models.packed.forward import PackedForward, base_model, is_modernbert, packed_forward
from embedkit.models.packed.hints import HINT_KEY, HintingTokenize, LengthsHint
from embedkit.models.packed.kernels import AUTO, KernelChoice, pick_kernel, resolve_kernel
from embedkit.models.packed.layout import bucket_seqlen, repad, unpad, unpad_from_lengths
from embedkit.models.packed.selfcheck import packed_path_ok

if TYPE_CHECKING:
    from transformers import ModernBertModel

logger = logging.getLogger(__name__)



class _Probe(Exception):
    """Raised by the wrapper's forward while probing, so the probe costs no compute."""


class PackedModernBert(nn.Module):
    """Drop-in for a ``ModernBertModel`` that runs it packed on ordinary padded batches.

    The wrapped model's children are registered here under their own names, so parameters are shared
    and the state-dict keys are exactly the wrapped model's. Everything else (``config``,
    ``save_pretrained``, ``device``, ``gradient_checkpointing_enable``, ...) is delegated to it.
    ``packed_calls`` / ``padded_calls`` count the forwards that ran packed and those that went to HF's.

    Args:
        model: the ``ModernBertModel`` to wrap.
        padded_fallback_len: batches padded to at most this many tokens go through the original padded
            forward, whose outputs at masked positions are real (ColBERT query expansion needs them).
        kernel: attention kernel of the packed path (:mod:`embedkit.models.packed.kernels`).
        strict: a failed first-use self-check (:mod:`embedkit.models.packed.selfcheck`) raises instead of falling
            back to the HF forward.
        compile: run the packed forward through ``torch.compile`` (``None``: on CUDA).
    """

    def __init__(self, model: ModernBertModel, padded_fallback_len: int = 0, kernel: KernelChoice = AUTO,
                 strict: bool = False, compile: bool | None = None):
        super().__init__()
        model = base_model(model)
        if list(model.parameters(recurse=False)) or list(model.buffers(recurse=False)):
            raise ValueError("PackedModernBert expects all tensors of the model to live in its submodules")
        for name, child in model.named_children():
            self.add_module(name, child)
        object.__setattr__(self, "hf_model", model)  # not registered: no duplicate state-dict keys
        self.padded_fallback_len = padded_fallback_len
        self.kernel = kernel
        self.strict = strict
        self.compile = compile
        self.packed_calls = 0
        self.padded_calls = 0
        self.host_unpads = 0  # packed calls unpadded from the host-side hint
        self.hint: LengthsHint | None = None  # set by the Transformer module's pre-hook for one forward
        self._probing = False
        self.force_padded = False  # see hf_forward()
        self._pending: tuple[torch.Tensor, Any] | None = None  # (host flag, event) of the last hint check

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            hf_model = self.__dict__.get("hf_model")
            if hf_model is None:
                raise
            return getattr(hf_model, name)

    def _packed_forward(self, device: torch.device) -> PackedForward:
        """The model's one :class:`PackedForward` for this device and kernel (compiled once, shared)."""
        kernel = resolve_kernel(device, next(self.hf_model.parameters()).dtype, self.kernel)
        return packed_forward(self.hf_model, kernel, self.compile)

    def train(self, mode: bool = True) -> PackedModernBert:
        super().train(mode)
        self.hf_model.training = mode
        return self

    def _unpad(self, attention_mask: torch.Tensor, bound: int | None) -> tuple[torch.Tensor, torch.Tensor, int]:
        """``unpad`` of the mask; from the host-side hint when one matches the batch (no device sync)."""
        self._check_pending()
        hint, self.hint = self.hint, None
        batch, seq_len = attention_mask.shape
        if hint is None or len(hint) != batch or int((hint.starts + hint.lengths).max(initial=0)) > seq_len:
            return unpad(attention_mask, max_seqlen=bound)
        indices, cu_seqlens, longest = unpad_from_lengths(hint.starts, hint.lengths, seq_len)
        self.host_unpads += 1
        device = attention_mask.device
        if device.type == "cpu":  # cheap here, and it keeps the hint path honest in every CPU test
            if not torch.equal(indices, unpad(attention_mask)[0]):
                raise EmbedkitError("internal error: the host-side sequence lengths disagree with the attention "
                                    "mask; set packed to off or report this")
            return indices, cu_seqlens, bound or longest
        indices = indices.pin_memory().to(device, non_blocking=True)
        cu_seqlens = cu_seqlens.pin_memory().to(device, non_blocking=True)
        self._queue_check(attention_mask, indices)
        return indices, cu_seqlens, bound or longest

    def _queue_check(self, attention_mask: torch.Tensor, indices: torch.Tensor) -> None:
        """Compare the hint with the device mask on the device (every hinted position real, and as many as the
        mask has); the result is read at the next forward, once the device has it."""
        mask = attention_mask.bool().flatten()
        bad = ~mask[indices].all() | (mask.sum() != indices.numel())
        flag = torch.empty((), dtype=torch.bool, pin_memory=True)
        flag.copy_(bad, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        self._pending = (flag, event)

    def _check_pending(self) -> None:
        if self._pending is None or not self._pending[1].query():  # not done yet: look again next time
            return
        flag, _ = self._pending
        self._pending = None
        if bool(flag):
            raise EmbedkitError("internal error: the host-side sequence lengths of the previous batch disagreed with "
                                "its attention mask; set packed to off or report this")

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, inputs_embeds: torch.Tensor | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None, **kwargs: Any):
        """Same inputs and outputs as ``ModernBertModel.forward`` (``last_hidden_state``, ``hidden_states``).

        Also takes sentence-transformers' flattened batches (``cu_seq_lens_q`` / ``max_length_q``, input of
        shape ``(1, total_tokens)``), which are already packed, and returns them flat in the same way.
        """
        from transformers.modeling_outputs import BaseModelOutput

        if self._probing:
            raise _Probe
        reference = input_ids if input_ids is not None else inputs_embeds
        if reference is None:
            raise ValueError("You must specify exactly one of input_ids or inputs_embeds")
        batch, seq_len = reference.shape[:2]
        if output_hidden_states is None:
            output_hidden_states = bool(self.hf_model.config.output_hidden_states)
        forward = self._packed_forward(reference.device)
        flat = kwargs.get("cu_seq_lens_q")
        if flat is None and (seq_len <= self.padded_fallback_len or self.force_padded
                             or not packed_path_ok(self.hf_model, forward, strict=self.strict)):
            self.padded_calls += 1
            self.hint = None
            return self.hf_model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                 inputs_embeds=inputs_embeds, output_hidden_states=output_hidden_states,
                                 return_dict=return_dict, **kwargs)
        self.packed_calls += 1
        if flat is not None:  # already packed by sentence-transformers (positions restart at 0 per sequence)
            packed_ids = input_ids.flatten() if input_ids is not None else None
            packed_embeds = inputs_embeds.flatten(0, 1) if inputs_embeds is not None else None
            last, all_hidden = forward.full(packed_ids, flat.to(torch.int32), int(kwargs["max_length_q"]),
                                            inputs_embeds=packed_embeds, output_hidden_states=output_hidden_states)
            output = BaseModelOutput(last_hidden_state=last[None],  # (1, total_tokens, hidden)
                                     hidden_states=tuple(h[None] for h in all_hidden) if output_hidden_states else None)
            return output.to_tuple() if return_dict is False else output
        if position_ids is not None:
            raise ValueError("PackedModernBert restarts positions at 0 for every sequence; "
                             "position_ids are not supported")
        if attention_mask is None:
            attention_mask = torch.ones(batch, seq_len, dtype=torch.long, device=reference.device)
        # The flash kernels need only an upper bound on the longest sequence: the padded length, bucketed, costs
        # no device->host sync (padded SDPA pads to max_seqlen, so it gets the exact one).
        bound = bucket_seqlen(seq_len) if forward.kernel.buckets_lengths else None
        indices, cu_seqlens, max_seqlen = self._unpad(attention_mask, bound)
        packed_ids = input_ids.flatten()[indices] if input_ids is not None else None  # (tokens,)
        packed_embeds = inputs_embeds.flatten(0, 1)[indices] if inputs_embeds is not None else None
        last, all_hidden = forward.full(packed_ids, cu_seqlens.to(reference.device), max_seqlen,
                                        inputs_embeds=packed_embeds, output_hidden_states=output_hidden_states)
        output = BaseModelOutput(
            last_hidden_state=repad(last, indices, batch, seq_len),  # (batch, seq_len, hidden)
            hidden_states=tuple(repad(h, indices, batch, seq_len) for h in all_hidden) if output_hidden_states
            else None)
        return output.to_tuple() if return_dict is False else output


@contextlib.contextmanager
def hf_forward(st_model: Any) -> Iterator[None]:
    """Within the block, a swapped-in wrapper runs HF's own padded forward (the library's reference path)."""
    first = transformer_module(st_model)
    wrapper = wrapper_of(first) if first is not None else None
    if wrapper is None:
        yield
        return
    before, wrapper.force_padded = wrapper.force_padded, True
    try:
        yield
    finally:
        wrapper.force_padded = before


def transformer_module(st_model: Any) -> Any | None:
    """The library's ``Transformer`` module, which holds the HF model: the model's first module, or the one inside
    it (an inference-free SparseEncoder's ``Router``: its document route); ``None`` when there is none."""
    if not len(st_model):
        return None
    first = st_model[0]
    if getattr(first, "auto_model", None) is not None:
        return first
    return next((m for m in first.modules() if m is not first and getattr(m, "auto_model", None) is not None), None)


def _head_base(hf_model: Any) -> tuple[Any, str] | None:
    """``(head model, attribute)`` of the ``ModernBertModel`` inside a ModernBERT head model (SPLADE's fill-mask
    ``ModernBertForMaskedLM`` keeps it in ``model``, its ``base_model_prefix``); ``None`` for anything else."""
    prefix = getattr(hf_model, "base_model_prefix", None)
    inner = hf_model._modules.get(prefix) if prefix and isinstance(hf_model, nn.Module) else None
    if inner is None or inner is hf_model or not is_modernbert(inner):
        return None
    return hf_model, prefix


def wrapper_of(first: Any) -> PackedModernBert | None:
    """The packed wrapper a forward of the ``Transformer`` module ``first`` reaches: its HF model itself, or the
    base model of its head model; ``None`` when none is swapped in."""
    current = getattr(first, "auto_model", None)
    if isinstance(current, PackedModernBert):
        return current
    head = _head_base(current) if current is not None else None
    inner = getattr(head[0], head[1]) if head is not None else None
    return inner if isinstance(inner, PackedModernBert) else None


def _backbone_attr(first: Any) -> str:
    """Where the ``Transformer`` module keeps the HF model: ``model`` when ``auto_model`` is a property over it
    (sentence-transformers >= 5.4), else ``auto_model`` (older versions, PyLate)."""
    return "model" if isinstance(inspect.getattr_static(type(first), "auto_model", None), property) else "auto_model"


def _routing_problem(first: Any, wrapper: PackedModernBert) -> str | None:
    """Why a forward of the library's ``Transformer`` module would not reach ``wrapper`` (``None``: it does)."""
    if wrapper_of(first) is not wrapper:
        return f"{type(first).__name__}.auto_model still returns {type(first.auto_model).__name__} after the swap"
    device = next(wrapper.parameters()).device
    ids = torch.tensor([[wrapper.config.cls_token_id or 0, wrapper.config.sep_token_id or 0]], device=device)
    wrapper._probing = True
    try:
        first({"input_ids": ids, "attention_mask": torch.ones_like(ids)})
    except _Probe:
        return None
    except Exception as exc:  # the forward failed before reaching the wrapper
        return f"a probe batch failed in {type(first).__name__}.forward ({type(exc).__name__}: {exc})"
    finally:
        wrapper._probing = False
    return f"{type(first).__name__}.forward ran without calling the packed forward (it runs HF's padded one)"


def _hand_over_hint(module: Any, args: tuple) -> None:
    """``Transformer`` pre-hook: the features dict reaches every module, the HF model only some of its keys."""
    wrapper = wrapper_of(module)
    if wrapper is not None:
        features = args[0] if args else None
        wrapper.hint = features.get(HINT_KEY) if isinstance(features, Mapping) else None


def _install_hints(st_model: Any, first: Any) -> None:
    """Host-side lengths from tokenisation to the wrapper: wrap the model's ``tokenize`` / ``preprocess`` (the
    outermost, after PyLate's marker insertion) and hand the hint over in the ``Transformer`` pre-hook."""
    for name in ("tokenize", "preprocess"):
        fn = getattr(st_model, name, None)
        if fn is not None and not isinstance(fn, HintingTokenize):
            setattr(st_model, name, HintingTokenize(fn))
    if _hand_over_hint not in first._forward_pre_hooks.values():
        first.register_forward_pre_hook(_hand_over_hint)


def _remove_hints(st_model: Any, first: Any) -> None:
    for key in [k for k, hook in first._forward_pre_hooks.items() if hook is _hand_over_hint]:
        del first._forward_pre_hooks[key]
    for name in ("tokenize", "preprocess"):
        if isinstance(st_model.__dict__.get(name), HintingTokenize):
            del st_model.__dict__[name]


def enable_packed(st_model: Any, mode: PackedMode = "auto", padded_fallback: int = 0) -> bool:
    """Swap the packed forward into a SentenceTransformer, MultiVectorEncoder, PyLate ColBERT or SparseEncoder, in
    place.

    Applies when the ``Transformer`` module's HF model (:func:`transformer_module`) is a ModernBERT, the base model
    itself or a head model around it (SPLADE's ``ModernBertForMaskedLM``: the head reads the packed forward's
    outputs), and ``mode`` is ``"on"`` or ``"auto"``
    (on CPU too: packing skips the padding tokens' share of every GEMM, see docs/measurements). Returns whether the
    packed forward is in use. The swap is proven by a probe forward through the library's ``Transformer``
    module; where it does not take effect, ``"on"`` raises :class:`EmbedkitError` and ``"auto"`` warns and
    leaves HF's forward in place. Saving afterwards writes the same checkpoint as before (same state-dict
    keys, HF ``save_pretrained``). The packed forward's first use on a device checks itself against HF's
    (:mod:`embedkit.models.packed.selfcheck`): ``"auto"`` falls back to the HF forward on a mismatch, ``"on"`` raises.

    Args:
        padded_fallback: batches padded to at most this many tokens keep HF's padded forward: a ColBERT model's
            query length when its queries are padded with expansion tokens that are masked out of attention but
            scored (its library says: ``ColbertLibrary.padded_query_length``); 0 (the default) for a model whose
            outputs at masked positions are never used (dense).
    """
    if mode not in get_args(PackedMode):
        raise ValueError(f"packed mode must be one of {', '.join(get_args(PackedMode))}, got {mode!r}")
    first = transformer_module(st_model)
    current = getattr(first, "auto_model", None) if first is not None else None
    swapped = wrapper_of(first) if first is not None else None
    if swapped is not None:
        if mode == "off":
            disable_packed(st_model)
            return False
        swapped.strict = mode == "on"
        return True
    if mode == "off" or current is None or not is_modernbert(current):
        return False
    from transformers import ModernBertModel

    head = _head_base(current)
    if isinstance(current, ModernBertModel):  # dense, ColBERT: the Transformer module holds the base model
        owner, attr, base = first, _backbone_attr(first), current
    elif head is not None and isinstance(getattr(*head), ModernBertModel):  # SPLADE: inside the MLM head model
        owner, attr = head
        base = getattr(owner, attr)
    else:
        message = (f"the packed ModernBERT forward has no place in a {type(current).__name__} (it takes the place of "
                   "a ModernBertModel, alone or inside a head model)")
        if mode == "on":
            raise EmbedkitError(message + "; set packed to auto (stays on HF's forward) or off")
        logger.warning("%s; staying on the Hugging Face forward", message)
        return False
    wrapper = PackedModernBert(base, padded_fallback_len=padded_fallback, strict=mode == "on")
    setattr(owner, attr, wrapper)
    problem = _routing_problem(first, wrapper)
    if problem is not None:
        setattr(owner, attr, base)
        message = f"the packed ModernBERT forward could not be swapped into this model: {problem}"
        if mode == "on":
            raise EmbedkitError(message + "; set packed to auto (stays on HF's forward) or off")
        logger.warning("%s; staying on the Hugging Face forward", message)
        return False
    _install_hints(st_model, first)
    logger.info("packed ModernBERT forward enabled, attention kernel on this device: %s",
                pick_kernel(base.device, torch.float32).name)
    return True


def disable_packed(st_model: Any) -> bool:
    """Put the original ``ModernBertModel`` back; returns whether anything was swapped out."""
    first = transformer_module(st_model)
    wrapper = wrapper_of(first) if first is not None else None
    if wrapper is None:
        return False
    owner, attr = (first, _backbone_attr(first)) if first.auto_model is wrapper else _head_base(first.auto_model)
    setattr(owner, attr, wrapper.hf_model)
    _remove_hints(st_model, first)
    return True
