"""Operator choices of PVA exposure, kept across restarts.

Only choices that differ from the plugin's default are stored, per PV name, in
``<state-dir>/exposure.json`` (written to a temporary file and renamed, so a crash never
leaves a half-written file). Patterns are expanded when applied: a later PV that matches an
old pattern starts with its plugin's default.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import threading
from pathlib import Path
from typing import Iterable

log = logging.getLogger(__name__)

VERSION = 1


def match(pattern: str, names: Iterable[str]) -> list[str]:
    """PV names matching a glob pattern (``*``, ``?``, ``[..]``), case-sensitive like PV names."""
    if not any(c in pattern for c in "*?["):
        return [n for n in names if n == pattern]
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)]


class ExposureStore:
    """Persisted per-PV exposure overrides."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.overrides: dict[str, str] = {}
        if path is not None and path.exists():
            try:
                data = json.loads(path.read_text())
                self.overrides = {str(k): str(v) for k, v in data.get("overrides", {}).items()}
            except (OSError, ValueError, AttributeError) as e:
                log.warning("exposure state %s unreadable (%s): starting from plugin defaults", path, e)

    def get(self, name: str, default: str) -> str:
        return self.overrides.get(name, default)

    def set(self, changes: dict[str, str], defaults: dict[str, str]) -> None:
        """Record modes for PVs; a mode equal to the default removes the override."""
        with self.lock:
            for name, mode in changes.items():
                if mode == defaults.get(name):
                    self.overrides.pop(name, None)
                else:
                    self.overrides[name] = mode
            self._save()

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump({"version": VERSION, "overrides": self.overrides}, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
