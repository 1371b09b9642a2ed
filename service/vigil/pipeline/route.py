"""A route: where batches go — one model version with everything that depends on it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from vigil.events.builder import EventBuilder
from vigil.infer.errors import UnsupportedModelError
from vigil.infer.model import ModelInfo
from vigil.infer.shm import SlotRing
from vigil.parsers.base import Parser
from vigil.preprocess.base import Preprocessor


@dataclass(eq=False)
class Route:
    """Where batches go: one model version with its preprocessing, ring, parser and events.

    Attributes:
        model: The model version requests go to.
        parser: Its output parser.
        events: Builds its events (``analyticsModule.version`` is this version).
        preprocess: Writes frames into its input tensor.
        ring: Shared-memory slots for its requests (shared with the previous route when
            the tensors are the same).
        inflight: Requests started and not yet emitted.
        emitted: Frames emitted on this route.
        first_emit: Done when the first batch of this route has been emitted.
    """

    model: ModelInfo
    parser: Parser
    events: EventBuilder
    preprocess: Preprocessor
    ring: SlotRing
    inflight: int = 0
    emitted: int = 0
    first_emit: asyncio.Future[float] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    _idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._idle.set()

    @property
    def label(self) -> str:
        """``name:version`` for logs."""
        return f"{self.model.name}:{self.model.version}"

    def started(self) -> None:
        """A request on this route was started."""
        self.inflight += 1
        self._idle.clear()

    def finished(self) -> None:
        """A request on this route was emitted (or lost)."""
        self.inflight -= 1
        if self.inflight == 0:
            self._idle.set()

    async def drained(self) -> None:
        """Wait until no request of this route is in flight."""
        await self._idle.wait()


def check_model(model: ModelInfo) -> None:
    """Refuse a model Vigil cannot route frames to.

    Raises:
        UnsupportedModelError: the model has more than one input.
    """
    if len(model.inputs) != 1:
        raise UnsupportedModelError(f"model {model.name!r} must have one image input")


def same_tensors(a: ModelInfo, b: ModelInfo) -> bool:
    """True when two model versions take and give the same tensors: their routes can share
    a ring."""
    return (a.inputs, a.outputs, a.max_batch_size) == (b.inputs, b.outputs, b.max_batch_size)
