"""Widgets of the console, one module per feature."""
