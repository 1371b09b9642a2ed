"""The run of failures of something that retries (a camera, a Kafka connection).

Vigil retries forever where users expect it (cameras reconnect, Kafka comes back), so a long
outage must neither flood the log nor go silent: one warning when it starts, then one a
minute, with the attempts in between logged at DEBUG.
"""

from __future__ import annotations

import time

#: How often a continuing outage is logged loudly.
WARN_EVERY_S = 60.0


class FailureRun:
    """Consecutive failures since the last success, and when to log them loudly.

    Attributes:
        count: Failures since the last success (0: things work).
    """

    def __init__(self, warn_every_s: float = WARN_EVERY_S) -> None:
        self.warn_every_s = warn_every_s
        self.count = 0
        self._last_loud = 0.0

    def backoff_s(self, cap_s: float, first_s: float = 0.5) -> float:
        """The wait before the next attempt: ``first_s`` doubled per failure so far, capped."""
        return min(cap_s, first_s * 2**self.count)

    def failed(self) -> bool:
        """Count a failure; True when it should be logged loudly (the first of a run, then
        at most one per ``warn_every_s``)."""
        self.count += 1
        now = time.monotonic()
        loud = self.count == 1 or now - self._last_loud >= self.warn_every_s
        if loud:
            self._last_loud = now
        return loud

    def succeeded(self) -> None:
        """Things work again: the next failure starts a new run."""
        self.count = 0
