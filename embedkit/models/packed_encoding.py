"""Fast inference with the packed ModernBERT forward: whole token-budget batches, no padding at all.

:func:`encode_packed` is what :class:`~embedkit.models.dense.DenseEncoder` (and so ``embedkit index``,
``embedkit eval`` and mining) runs for a ModernBERT SentenceTransformer. Per call (one shard of a corpus):

- the texts are tokenised in a background thread, chunk by chunk, into packed batches
  (:mod:`embedkit.models.prefetch`), while the device computes the previous ones;
- each batch goes to the device with a non-blocking copy from pinned memory (CUDA), through the packed
  forward (compiled where that pays, :class:`~embedkit.models.modernbert_unpadded.PackedForward`), pooling
  and the modules after it;
- embeddings stay on the device until the call is complete, then come back in one copy.

The first batch on a device is preceded by the self-check against HF's forward
(:mod:`embedkit.models.selfcheck`); on a mismatch the texts are encoded by ``SentenceTransformer.encode``
instead (or, with ``strict``, an error is raised).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from embedkit.models.modernbert_unpadded import PackedForward, Pooling, _base_model, is_modernbert
from embedkit.models.packing import Backend, pool_packed, resolve_backend
from embedkit.models.prefetch import HostBatch, Tokenize, packed_batches, prefetch
from embedkit.models.selfcheck import packed_path_ok

logger = logging.getLogger(__name__)


def _pooling_module(st_model: Any) -> tuple[int, Any]:
    """Index and module of the model's ``Pooling`` (``len(st_model), None`` when it has none)."""
    from sentence_transformers.models import Pooling as PoolingModule

    for i, module in enumerate(st_model):
        if isinstance(module, PoolingModule):
            return i, module
    return len(st_model), None


def _pooling_mode(module: Any) -> Pooling:
    if module is None:
        return "mean"
    if not module.include_prompt:
        raise ValueError("encode_packed does not support Pooling(include_prompt=False)")
    mode = module.get_pooling_mode_str()
    if mode not in ("mean", "cls"):
        raise ValueError(f"encode_packed supports mean or cls pooling, the model has {mode!r}")
    return mode


def compute_autocast(model: torch.nn.Module, cpu_bf16: bool = False) -> contextlib.AbstractContextManager:
    """bf16 autocast for fp32 weights on CUDA (and on CPU when asked); none for weights already in bf16/fp16,
    where autocast would turn every LayerNorm output, and with it the residual stream, back into fp32."""
    param = next(model.parameters())
    if param.dtype != torch.float32:
        return contextlib.nullcontext()
    if param.device.type == "cuda" or (param.device.type == "cpu" and cpu_bf16):
        return torch.autocast(param.device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _tokenizer_fn(transformer: Any, prompt: str | None, max_length: int | None = None,
                  prefix_id: int | None = None) -> Tokenize:
    """Texts -> token ids exactly as ``SentenceTransformer.encode`` tokenises them, without padding; with
    ``prefix_id``, that token is inserted after the first one, as PyLate does with its [D]/[Q] markers."""
    lower = getattr(transformer, "do_lower_case", False)
    max_length = transformer.max_seq_length if max_length is None else max_length

    def tokenize(texts: list[str]) -> list[list[int]]:
        texts = [str((prompt or "") + t).strip() for t in texts]
        if lower:
            texts = [t.lower() for t in texts]
        ids = transformer.tokenizer(texts, padding=False, truncation="longest_first", max_length=max_length,
                                    return_attention_mask=False, return_token_type_ids=False)["input_ids"]
        return ids if prefix_id is None else [x[:1] + [prefix_id] + x[1:] for x in ids]

    return tokenize


def _packed_hidden(model: torch.nn.Module, texts: list[str], tokenize: Tokenize, max_tokens: int,
                   forward: PackedForward, show_progress_bar: bool, desc: str,
                   ) -> Iterator[tuple[HostBatch, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``(batch, input_ids, cu_seqlens, hidden)`` on the device for every packed batch of ``texts``, tokenised
    ahead in a background thread; ``hidden`` is ``(tokens, hidden)``. Runs under ``inference_mode``."""
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    cuda = device.type == "cuda"
    batches = prefetch(packed_batches(texts, tokenize, max_tokens, pin_memory=cuda, bucket=forward.backend != "sdpa"))
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), tqdm(total=len(texts), desc=desc, disable=not show_progress_bar) as bar:
            for batch in batches:
                input_ids = batch.input_ids.to(device, non_blocking=cuda)
                cu_seqlens = batch.cu_seqlens.to(device, non_blocking=cuda)
                yield batch, input_ids, cu_seqlens, forward(input_ids, cu_seqlens, batch.max_seqlen)
                bar.update(len(batch.rows))
    finally:
        model.train(was_training)


def _checked_forward(model: torch.nn.Module, backend: Backend, compile: bool | None, strict: bool,
                     autocast: contextlib.AbstractContextManager) -> PackedForward | None:
    """The packed forward to use, or ``None`` when its first-use self-check failed (fall back to HF)."""
    device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
    with autocast:
        forward = PackedForward(model, resolve_backend(device, dtype, backend), compile=compile)
        return forward if packed_path_ok(model, forward, strict=strict) else None


def encode_packed(st_model: Any, texts: list[str], max_tokens_per_batch: int | None = None,
                  pooling: Pooling | None = None, normalize: bool = False, *, prompt: str | None = None,
                  show_progress_bar: bool = False, backend: Backend = "auto", strict: bool = False,
                  compile: bool | None = None, cpu_bf16: bool = False) -> np.ndarray:
    """Embed ``texts`` with a ModernBERT SentenceTransformer, packed into token-budget batches.

    Tokenises as ``SentenceTransformer.encode`` does (strip, optional prompt prefix, truncation at
    ``max_seq_length``) but without padding, packs the texts longest first into batches of at most
    ``max_tokens_per_batch`` tokens, runs the packed forward, pools every sequence and applies the modules
    after the model's ``Pooling`` (e.g. ``Dense``, ``Normalize``). fp32 weights run under bf16 autocast on
    CUDA (and on CPU with ``cpu_bf16``).

    Args:
        max_tokens_per_batch: real tokens per batch; ``None``: :func:`default_token_budget` for the device.
        pooling: ``"mean"`` or ``"cls"``; ``None`` takes the model's own ``Pooling`` mode.
        normalize: L2-normalise the embeddings.
        strict: when the first-use self-check finds the packed forward differs from HF's, raise
            :class:`~embedkit.errors.EmbedkitError` instead of encoding with ``SentenceTransformer.encode``.
        compile: ``torch.compile`` the forward; ``None`` decides per device
            (:func:`~embedkit.models.modernbert_unpadded.should_compile`).
        cpu_bf16: on CPU, compute in bf16 (fast on CPUs with AVX512-BF16/AMX); checked like any other path.

    Returns:
        ``(len(texts), dim)`` float32, in the input order.
    """
    transformer = st_model[0]
    model = _base_model(transformer.auto_model)
    if not is_modernbert(model):
        raise ValueError(f"encode_packed needs a ModernBERT backbone, got {type(model).__name__}")
    pooling_index, pooling_module = _pooling_module(st_model)
    mode = pooling or _pooling_mode(pooling_module)
    after = list(st_model)[pooling_index + 1:]  # e.g. Dense, Normalize
    if not texts:
        return np.zeros((0, st_model.get_sentence_embedding_dimension()), dtype=np.float32)
    autocast = compute_autocast(model, cpu_bf16)
    forward = _checked_forward(model, backend, compile, strict, autocast)
    if forward is None:
        emb = st_model.encode(texts, prompt=prompt, normalize_embeddings=normalize, batch_size=32,
                              convert_to_numpy=True, show_progress_bar=show_progress_bar)
        return np.ascontiguousarray(emb, dtype=np.float32)
    budget = max_tokens_per_batch or default_token_budget(next(model.parameters()).device)
    outputs: list[torch.Tensor] = []  # (n_b, dim) each, kept on the device until the call is done
    rows: list[np.ndarray] = []
    with autocast:
        for batch, _, cu_seqlens, hidden in _packed_hidden(model, texts, _tokenizer_fn(transformer, prompt), budget,
                                                           forward, show_progress_bar, "encode (packed)"):
            features = {"sentence_embedding": pool_packed(hidden, cu_seqlens, mode)}  # (n, hidden)
            for module in after:
                features = module(features)
            emb = features["sentence_embedding"].float()  # (n, dim)
            outputs.append(F.normalize(emb, p=2, dim=-1) if normalize else emb)
            rows.append(batch.rows)
    stacked = torch.cat(outputs).cpu().numpy()  # (len(texts), dim), in batch order: the one device->host copy
    result = np.empty_like(stacked)
    result[np.concatenate(rows)] = stacked
    return result


def default_token_budget(device: torch.device) -> int:
    """Real tokens per packed batch. On CPU the attention runs padded to each batch's longest text, so batches
    stay small enough to hold texts of similar length (they are packed longest first)."""
    return 16384 if device.type == "cuda" else 4096


def encode_packed_documents(colbert_model: Any, texts: list[str], max_tokens_per_batch: int | None = None, *,
                            show_progress_bar: bool = False, backend: Backend = "auto", strict: bool = False,
                            compile: bool | None = None, cpu_bf16: bool = False) -> list[np.ndarray]:
    """PyLate ColBERT document embeddings, packed: what ``model.encode(texts, is_query=False)`` returns.

    Tokenised as PyLate does (truncation at ``document_length`` with the [D] prefix token inserted after
    [CLS]); the modules after the backbone (PyLate ``Dense`` projections) run on the packed tokens, then
    skiplist tokens (punctuation) are dropped and every token vector is L2-normalised.

    Returns:
        One ``(tokens_i, dim)`` float32 array per text, in the input order.
    """
    transformer = colbert_model[0]
    model = _base_model(transformer.auto_model)
    if not is_modernbert(model):
        raise ValueError(f"encode_packed_documents needs a ModernBERT backbone, got {type(model).__name__}")
    if not texts:
        return []
    autocast = compute_autocast(model, cpu_bf16)
    forward = _checked_forward(model, backend, compile, strict, autocast)
    if forward is None:
        out = colbert_model.encode(texts, is_query=False, batch_size=32, convert_to_numpy=True,
                                   show_progress_bar=show_progress_bar)
        return [np.ascontiguousarray(e, dtype=np.float32) for e in out]
    prefix_id = getattr(colbert_model, "document_prefix_id", None)
    length = colbert_model.document_length - (1 if prefix_id is not None else 0)
    tokenize = _tokenizer_fn(transformer, None, max_length=length, prefix_id=prefix_id)
    device = next(model.parameters()).device
    skiplist = torch.tensor(list(getattr(colbert_model, "skiplist", None) or []), dtype=torch.long, device=device)
    budget = max_tokens_per_batch or default_token_budget(device)
    vectors, keeps, rows, lengths = [], [], [], []
    with autocast:
        for batch, input_ids, _, hidden in _packed_hidden(model, texts, tokenize, budget, forward,
                                                          show_progress_bar, "encode documents (packed)"):
            features = {"token_embeddings": hidden[None]}  # (1, tokens, hidden): modules expect a batch axis
            for module in list(colbert_model)[1:]:
                features = module(features)
            emb = F.normalize(features["token_embeddings"][0].float(), p=2, dim=-1)  # (tokens, dim)
            vectors.append(emb)
            keeps.append(~torch.isin(input_ids, skiplist))  # (tokens,): punctuation dropped, as PyLate does
            rows.append(batch.rows)
            lengths += batch.lengths
    flat = torch.cat(vectors).cpu().numpy()  # (all tokens, dim): one device->host copy
    keep = torch.cat(keeps).cpu().numpy()
    bounds = np.cumsum([0] + lengths)
    result: list[np.ndarray | None] = [None] * len(texts)
    for row, start, end in zip(np.concatenate(rows), bounds[:-1], bounds[1:]):
        result[row] = flat[start:end][keep[start:end]]
    return result
