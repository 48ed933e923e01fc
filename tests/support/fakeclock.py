"""A fake monotonic clock and sleep for code that takes ``clock`` and ``sleep`` arguments."""

from __future__ import annotations


class Clock:
    """A monotonic clock that moves only when told (or when the fake sleep sleeps)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
