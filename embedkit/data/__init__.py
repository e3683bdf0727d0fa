"""Readers: corpora, BEIR folders, training pairs, and the offline code corpus."""
