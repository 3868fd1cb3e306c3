"""The one fake clock of the test suite, injected wherever code takes a `clock` (the `clock` fixture)."""

from __future__ import annotations

import time


class FakeClock:
    """Injected time: starts at `start` (default: whole seconds of now) and moves only when told.

    Called like `time.time`; a test moves it with `advance` or `set`, or reads and writes `now`.
    """

    def __init__(self, start: float | None = None) -> None:
        self.now = float(int(time.time())) if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock `seconds` forward."""
        self.now += seconds

    def set(self, when: float) -> None:
        """Move the clock to `when` (a Unix timestamp)."""
        self.now = when
