"""Exceptions raised at the boundary with video sources."""

from __future__ import annotations


class SourceError(RuntimeError):
    """A source could not be opened or read.

    Attributes:
        url: The source's location (file path or URL).
        reason: What went wrong, in the decoder's words where there are any.
    """

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"{url}: {reason}")
