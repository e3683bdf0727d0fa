"""Model loading and saving: dense (sentence-transformers), ColBERT (a registry of libraries: sentence-transformers'
MultiVectorEncoder, PyLate), and the packed ModernBERT forward."""
