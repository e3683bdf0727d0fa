"""Multi-vector (ColBERT) models: a registry of libraries (sentence-transformers' ``MultiVectorEncoder``, PyLate),
models built or loaded through the chosen one, the encoder indexes use, and the export to PyLate's format."""

from embedkit.models.colbert.encoder import ColbertEncoder, build_colbert_model, load_colbert_model
from embedkit.models.colbert.registry import AUTO, LIBRARIES, ColbertLibrary, get_library, library_of

__all__ = ["AUTO", "LIBRARIES", "ColbertEncoder", "ColbertLibrary", "build_colbert_model", "get_library",
           "library_of", "load_colbert_model"]
