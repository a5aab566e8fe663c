"""Rates and health derived from successive engine stats samples (no widgets)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .settings import SPARK_SAMPLES


@dataclass
class StatusModel:
    """What the status header shows; :meth:`sample` feeds it one ``EngineStats`` at a time.

    Attributes:
        stats: The newest engine stats (None before the first sample).
        ca_rates: CA posts per second, one per sample, oldest first.
        pva_rates: PVA posts per second, one per sample.
        worst_ms: Worst CA→PVA post time of each sample (the engine resets it per read).
        gone: Why the engine no longer serves (its process died), or "".
        failed_plugins: Plugins that were not loaded (their errors are in the server log).
    """

    samples: int = SPARK_SAMPLES
    stats: Any = None
    ca_rates: deque[float] = field(default_factory=deque)
    pva_rates: deque[float] = field(default_factory=deque)
    worst_ms: deque[float] = field(default_factory=deque)
    gone: str = ""
    failed_plugins: int = 0
    _last: tuple[float, int, int] | None = None

    def __post_init__(self) -> None:
        for d in (self.ca_rates, self.pva_rates, self.worst_ms):
            d.extend([0.0] * self.samples)
        self.ca_rates = deque(self.ca_rates, maxlen=self.samples)
        self.pva_rates = deque(self.pva_rates, maxlen=self.samples)
        self.worst_ms = deque(self.worst_ms, maxlen=self.samples)

    def sample(self, stats: Any, now: float) -> None:
        """Record one stats reading taken at ``now`` (seconds, any monotonic-ish clock)."""
        if self._last is not None:
            t0, ca0, pva0 = self._last
            dt = now - t0
            if dt > 0:
                self.ca_rates.append(max(0.0, (stats.ca_posts - ca0) / dt))
                self.pva_rates.append(max(0.0, (stats.pva_posts - pva0) / dt))
                self.worst_ms.append(float(stats.worst_post_ms))
        self._last = (now, stats.ca_posts, stats.pva_posts)
        self.stats = stats

    @property
    def ca_rate(self) -> float:
        """Newest CA post rate (per second)."""
        return self.ca_rates[-1] if self.ca_rates else 0.0

    @property
    def pva_rate(self) -> float:
        """Newest PVA post rate (per second)."""
        return self.pva_rates[-1] if self.pva_rates else 0.0

    @property
    def worst_lag_ms(self) -> float:
        """Worst CA→PVA post time over the sparkline window (ms)."""
        return max(self.worst_ms, default=0.0)
