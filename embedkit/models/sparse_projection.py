"""The vocabulary projection of SPLADE, a chunk of tokens at a time.

A SPLADE model's fill-mask transformer returns MLM logits for every token, (batch, tokens, vocabulary), and
SpladePooling max-pools them: at 8k tokens and ModernBERT's 50,368 terms that is 1.6 GB a document before pooling
starts (SpladePooling's own ``chunk_size`` only chunks the pooling of logits already made). Here the MLM head's
last layer (the hidden -> vocabulary linear map) is lifted out of the transformer and applied inside the pooling,
``chunk_tokens`` tokens at a time, so memory is bounded by ``chunk_tokens x vocabulary`` whatever the batch.
The result equals SpladePooling's (tests/models/test_sparse.py).

Used for encoding only (no gradients are kept per chunk differently, but a model changed this way no longer saves
as the original layout): embedkit's encoder applies it to the models it loads, never to a model being trained.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)


def _pooling_class() -> type:
    import torch
    from sentence_transformers.sparse_encoder.modules import SpladePooling

    class ChunkedSpladePooling(SpladePooling):
        """SpladePooling over the MLM head's hidden states, projected by ``decoder`` per chunk of tokens."""

        def __init__(self, pooling: SpladePooling, decoder: torch.nn.Module, chunk_tokens: int):
            super().__init__(pooling.pooling_strategy, pooling.activation_function,
                             pooling.embedding_dimension or decoder.out_features)
            self.decoder = decoder
            self.chunk_tokens = chunk_tokens

        def _activate(self, logits: torch.Tensor) -> torch.Tensor:
            out = logits.relu().log1p()
            return out.log1p() if self.activation_function == "log1p_relu" else out

        def _reduce(self, values: torch.Tensor, dim: int) -> torch.Tensor:
            return values.amax(dim=dim) if self.pooling_strategy == "max" else values.sum(dim=dim)

        def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            hidden = features["token_embeddings"]  # (batch, tokens, hidden): the head's output before the decoder
            if "cu_seq_lens_q" in features:  # unpadded: (1, total tokens, hidden), one segment a text
                bounds = features["cu_seq_lens_q"].tolist()
                pooled = torch.stack([self._pool(hidden[:, start:end], None)[0]
                                      for start, end in zip(bounds[:-1], bounds[1:])])
            else:
                pooled = self._pool(hidden, features["attention_mask"])
            if self.embedding_dimension is None:
                self.embedding_dimension = pooled.shape[1]
            features["sentence_embedding"] = pooled  # (batch, vocabulary)
            return features

        def _pool(self, hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
            batch, length, _ = hidden.shape
            step = max(1, self.chunk_tokens // batch)  # at most chunk_tokens rows of logits at a time
            # Max pooling: the activation (log1p of relu) never decreases, so the maximum of the activated logits
            # is the activation of the maximum logit: pool the raw logits (padding set to 0, which the relu makes
            # no term, as SpladePooling's mask does) and activate only the pooled (batch, vocabulary) values.
            pool_first = self.pooling_strategy == "max"
            pooled = None
            for start in range(0, length, step):
                logits = self.decoder(hidden[:, start:start + step])  # (batch, step, vocabulary)
                if mask is not None:
                    logits.masked_fill_(~mask[:, start:start + step, None].bool(), 0.0)
                part = self._reduce(logits if pool_first else self._activate(logits), dim=1)  # (batch, vocabulary)
                if pooled is None:
                    pooled = part
                elif self.pooling_strategy == "max":
                    pooled = torch.maximum(pooled, part)
                else:
                    pooled = pooled + part
            return self._activate(pooled) if pool_first else pooled

    return ChunkedSpladePooling


def _parent_of(root: Any, target: Any) -> tuple[Any, str] | None:
    for module in root.modules():
        for child_name, child in module.named_children():
            if child is target:
                return module, child_name
    return None


def bound_projection(model: Any, chunk_tokens: int) -> int:
    """Move the vocabulary projection of every (fill-mask Transformer, SpladePooling) pair of ``model`` (a
    SparseEncoder, an inference-free Router's document route included) into a chunked pooling. Returns the
    number of pairs changed (0 for CSR or static-only models, which never make token x vocabulary logits)."""
    import torch
    from sentence_transformers.sparse_encoder.modules import SpladePooling

    chunked = _pooling_class()
    changed = 0
    for container in list(model.modules()):
        children = list(container.named_children())
        for (_, first), (name, second) in zip(children, children[1:]):
            if type(second) is not SpladePooling or getattr(first, "transformer_task", None) != "fill-mask":
                continue
            hf_model = first.model
            decoder = hf_model.get_output_embeddings()
            place = _parent_of(hf_model, decoder) if decoder is not None else None
            if place is None:
                logger.debug("%s: no output embeddings found; SPLADE logits are made whole", type(hf_model).__name__)
                continue
            setattr(place[0], place[1], torch.nn.Identity())  # the transformer now returns the head's hidden states
            container._modules[name] = chunked(second, decoder, chunk_tokens)
            changed += 1
    return changed
