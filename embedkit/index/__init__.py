"""Indexes: sharded resumable encoding, FAISS (dense) and PLAID (ColBERT), with one manifest format."""
