"""The dense backend: sentence-transformers encoder + FAISS."""

from __future__ import annotations

from pathlib import Path

from embedkit.index.faiss_index import FaissIndex, FaissOptions, build_faiss


class DenseBackend:
    name = "faiss"

    def load_encoder(self, model: str, batch_size: int, unpadded: str, max_length: int | None = None):
        from embedkit.models.dense import DenseEncoder, load_dense_model

        st_model = load_dense_model(model)
        if max_length:
            st_model.max_seq_length = max_length
        return DenseEncoder(st_model, batch_size=batch_size, unpadded=unpadded)

    def finalize(self, shards: list, encoder, options: FaissOptions | None, folder: Path) -> dict:
        return build_faiss(shards, encoder.dim, options or FaissOptions(), folder)

    def open(self, folder: Path, encoder) -> FaissIndex:
        return FaissIndex(folder, encoder, mmap=True)  # IVF lists stay on disk; Flat/HNSW load whole


BACKEND = DenseBackend()
