"""A plugin whose file name another plugin shares (same_a/ioc.py), with its own helper."""
from _common import PREFIX

prefix = PREFIX
pvdb = {"X": {"value": 1.0}}
