"""Host-side sequence lengths, from tokenisation to the packed forward (no device sync to unpad a batch).

On a GPU, reading each row's length from the device mask (``torch.nonzero``) waits for the device in every
training forward. :class:`HintingTokenize` wraps a model's ``tokenize`` / ``preprocess`` so that the features it
returns carry a :class:`LengthsHint` under :data:`HINT_KEY`, computed on the host; the packed model wrapper
(:mod:`embedkit.models.packed.swap`) takes it from there.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

HINT_KEY = "embedkit_lengths"


@dataclass
class LengthsHint:
    """Host-side ``starts`` / ``lengths`` of every row of a padded batch; sliced with the batch (GradCache)."""

    starts: np.ndarray   # (batch,) first real position of each row
    lengths: np.ndarray  # (batch,) real tokens of each row

    @classmethod
    def from_mask(cls, attention_mask: torch.Tensor) -> LengthsHint | None:
        """From a CPU mask whose rows are contiguous runs of ones; ``None`` for anything else."""
        if not isinstance(attention_mask, torch.Tensor) or attention_mask.device.type != "cpu" \
                or attention_mask.ndim != 2:
            return None
        mask = attention_mask.bool().numpy()
        lengths = mask.sum(axis=1)
        starts = mask.argmax(axis=1)
        ends = mask.shape[1] - mask[:, ::-1].argmax(axis=1)
        if np.any(np.where(lengths > 0, ends - starts, 0) != lengths):  # a hole inside a row
            return None
        return cls(np.where(lengths > 0, starts, 0), lengths)

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, rows: slice) -> LengthsHint:
        return LengthsHint(self.starts[rows], self.lengths[rows])


class HintingTokenize:
    """``tokenize`` / ``preprocess`` that also attaches the :class:`LengthsHint` of the features it returns. An
    object (not a closure), so that a deep copy of the model calls the copy's own method."""

    def __init__(self, fn: Any):
        self.__wrapped__ = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        features = self.__wrapped__(*args, **kwargs)
        if isinstance(features, MutableMapping) and "attention_mask" in features:
            hint = LengthsHint.from_mask(features["attention_mask"])
            if hint is not None:
                features[HINT_KEY] = hint
        return features
