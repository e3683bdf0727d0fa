"""The packed ModernBERT forward: sequences back to back, no padding token computed, attention inside each
sequence (flash-attention's varlen kernels, or padded SDPA with the same masking), checked against Hugging
Face's forward and the library's own encoding on first use.

What the rest of embedkit uses, and nothing else (the modules of this package are private to it; a test reads
the imports):

- :func:`enable_packed`: swap the packed forward into a SentenceTransformer, MultiVectorEncoder or PyLate
  ColBERT (training, mining, and the library's own ``encode``);
- :class:`PackedTextEncoder` (dense: one pooled vector per text) and :class:`PackedDocumentEncoder` (ColBERT
  documents: token vectors), one encoder base; :func:`encode_packed` for one call;
  :func:`pylate_documents` / :func:`sentence_transformers_documents`, the document side of each ColBERT library;
- :class:`HostPipeline` / :class:`PreparedJobs`: the tokenising threads an encoder feeds from;
- :data:`KERNELS`: the attention-kernel registry; :data:`Pooling`: the pooling modes of packed texts.

Inside: ``layout`` (packed batches), ``kernels`` (attention kernels, the one place that names them),
``forward`` (the forward itself, compiled once), ``selfcheck``, ``swap`` + ``hints`` (inside a library's
model), ``tokenizing`` + ``host`` (texts to packed batches on worker threads), ``base`` + ``texts`` +
``documents`` (the encoders).
"""

from embedkit.models.packed.base import default_token_budget
from embedkit.models.packed.documents import PackedDocumentEncoder, pylate_documents, sentence_transformers_documents
from embedkit.models.packed.host import HostPipeline, PreparedJobs
from embedkit.models.packed.kernels import KERNELS
from embedkit.models.packed.layout import Pooling
from embedkit.models.packed.swap import enable_packed
from embedkit.models.packed.texts import PackedTextEncoder, dense_text_side, embedding_dimension, encode_packed

__all__ = [
    "KERNELS", "HostPipeline", "PackedDocumentEncoder", "PackedTextEncoder", "Pooling", "PreparedJobs",
    "default_token_budget", "dense_text_side", "embedding_dimension", "enable_packed", "encode_packed",
    "pylate_documents", "sentence_transformers_documents",
]
