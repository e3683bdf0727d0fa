"""Model loading and saving: dense (sentence-transformers), ColBERT (PyLate), and the packed ModernBERT forward."""
