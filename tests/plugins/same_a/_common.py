"""A helper module beside the plugin (same_b has its own of the same name)."""
PREFIX = "SAMEA:"
