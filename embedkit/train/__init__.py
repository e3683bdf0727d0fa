"""Training: data loading, losses by name, the dense (sentence-transformers) and ColBERT (PyLate) drivers."""
