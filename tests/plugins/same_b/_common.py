"""A helper module beside the plugin (same_a has its own of the same name)."""
PREFIX = "SAMEB:"
