"""Result taps: what else sees each batch's results after the stage chain.

Besides the sinks, two features read the pipeline's output: the live view (the latest frame and
what was found in it, for whoever watches) and smart recording (analytics events that start
clips, and the clip id they then carry). Both are :class:`ResultTap`\\ s: the pipeline calls
them in the stage chain's thread, after the events of a batch are built and before the sinks
get them, so a tap may annotate events. A tap must be quick (it runs once per batch on the
pipeline's path) and must not keep frames it is not asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from vigil.events.schema import Event
from vigil.retry import FailureRun
from vigil.stages.base import FrameResult

log = logging.getLogger(__name__)


class ResultTap(Protocol):
    """Sees every batch's results and events, in the stage chain's thread."""

    def observe(self, results: Sequence[FrameResult], events: list[Event]) -> None:
        """Called once per batch (frames in order per stream); may replace items of ``events``
        (events are frozen: ``event.model_copy(update=...)``)."""
        ...


class ResultTaps:
    """The pipeline's taps; a tap that raises is logged (loudly once a minute), never fatal."""

    def __init__(self) -> None:
        self._taps: list[ResultTap] = []
        self._failures: dict[int, FailureRun] = {}

    def add(self, tap: ResultTap) -> None:
        """Call ``tap`` for every batch from now on."""
        self._taps.append(tap)

    def remove(self, tap: ResultTap) -> None:
        """Stop calling ``tap``."""
        self._taps.remove(tap)

    def observe(self, results: Sequence[FrameResult], events: list[Event]) -> None:
        """Show one batch to every tap."""
        for tap in self._taps:
            try:
                tap.observe(results, events)
            except Exception:
                run = self._failures.setdefault(id(tap), FailureRun())
                if run.failed():
                    log.exception("%s failed (%d times so far)", type(tap).__name__, run.count)
