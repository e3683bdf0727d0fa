"""Training: data loading, losses by name, the dense (sentence-transformers) and ColBERT (the recipe's ColBERT
library) parts of the one driver."""
