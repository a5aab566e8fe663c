"""Imported by the driver when a put arrives, long after the plugin was loaded."""


def double(x):
    return 2 * x
