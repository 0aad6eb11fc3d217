"""Per-token submission limits: a token bucket per API token (in this process) and a rolling daily quota (counted
in the database, so it holds across processes and restarts)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass
class TokenBuckets:
    """`rate_per_minute` submissions per token, bursts up to `burst`."""

    rate_per_minute: float
    burst: int
    _state: dict[str, tuple[float, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, key: str, now: float | None = None) -> float | None:
        """Spend one submission; None if allowed, else the seconds until one is available."""
        if self.rate_per_minute <= 0:
            return None
        now = time.monotonic() if now is None else now
        rate = self.rate_per_minute / 60.0
        with self._lock:
            tokens, last = self._state.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * rate)
            if tokens < 1.0:
                self._state[key] = (tokens, now)
                return (1.0 - tokens) / rate
            self._state[key] = (tokens - 1.0, now)
            if len(self._state) > 10_000:  # bounded: forget the fullest buckets first
                for stale in [k for k, (t, _) in self._state.items() if t >= self.burst - 1][:1000]:
                    self._state.pop(stale, None)
            return None
