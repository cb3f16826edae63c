"""jaxrec: graph-based recommendation in JAX, aligned with language-model text."""

__version__ = "0.1.0"
