"""A token bucket: ``burst`` messages at once, then ``per_minute`` on average."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True, kw_only=True)
class TokenBucket:
    """``take()`` spends a token if one is there; ``per_minute == 0`` means no limit.

    ``clock`` is a monotonic clock in seconds, injected so tests step time by hand.
    """

    per_minute: float
    burst: int
    clock: Callable[[], float] = time.monotonic
    _tokens: float = field(init=False)
    _at: float = field(init=False)

    def __post_init__(self) -> None:
        self._tokens = float(self.burst)
        self._at = self.clock()

    def _refill(self) -> None:
        now = self.clock()
        earned = (now - self._at) * self.per_minute / 60
        self._tokens = min(float(self.burst), self._tokens + earned)
        self._at = now

    def take(self) -> bool:
        if self.per_minute <= 0:
            return True
        self._refill()
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def wait(self) -> float:
        """Seconds until ``take()`` can succeed (0 if it can now)."""
        if self.per_minute <= 0:
            return 0.0
        self._refill()
        return max(0.0, (1 - self._tokens) * 60 / self.per_minute)
