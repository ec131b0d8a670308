"""sesame: build, pre-train, compress, fine-tune and apply Transformer language models."""
from sesame.errors import SesameError

__version__ = "0.1.0"
__all__ = ["SesameError", "__version__"]
