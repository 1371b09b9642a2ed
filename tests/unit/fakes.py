"""Small fakes for unit tests (integration tests use the real components)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np

from vigil.frame import Frame
from vigil.sources.base import Source, VideoInfo
from vigil.sources.errors import SourceError


class ScriptedSource(Source):
    """Yields ``frames`` frames, then fails (live) or ends (file); can fail on open."""

    def __init__(
        self,
        stream_id: str = "s",
        *,
        frames: int = 3,
        live: bool = False,
        fail_open: str | None = None,
        fail_after: str | None = None,
        delay_s: float = 0.0,
    ) -> None:
        super().__init__(stream_id, f"fake://{stream_id}")
        self.is_live = live
        self.n = frames
        self.fail_open = fail_open
        self.fail_after = fail_after
        self.delay_s = delay_s
        self.closed = False

    def open(self) -> VideoInfo:
        if self.fail_open:
            raise SourceError(self.url, self.fail_open)
        return VideoInfo(4, 4, 10.0, self.n)

    def frames(self) -> Iterator[Frame]:
        for i in range(self.n):
            if self.delay_s:
                time.sleep(self.delay_s)
            yield Frame(
                self.stream_id,
                i,
                i / 10,
                time.time(),
                time.monotonic(),
                np.zeros((4, 4, 3), np.uint8),
            )
        if self.fail_after:
            raise SourceError(self.url, self.fail_after)

    def close(self) -> None:
        self.closed = True
