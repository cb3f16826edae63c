"""jaxrec's own small Flax language models, loaded from local files."""
