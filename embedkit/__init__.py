"""embedkit: turn ModernBERT (or any encoder) into production retrievers."""

from embedkit.errors import EmbedkitError

__version__ = "0.1.0"
__all__ = ["EmbedkitError", "__version__"]
