"""Serves T:FLOAT, which alltypes already serves."""
prefix = "T:"
pvdb = {"FLOAT": {}, "OTHER": {}}
