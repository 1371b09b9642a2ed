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


#: A corrupt packet is skipped and counted; this many failures in a row end the stream.
MAX_CONSECUTIVE_DECODE_ERRORS = 25


class PacketDecodeError(RuntimeError):
    """One packet did not decode (the decoder skips it; too many in a row end the stream)."""


class DecodeErrors:
    """Packets of one source that failed to decode.

    Each failed packet is skipped and counted; :attr:`limit` failures in a row mean the stream
    is broken rather than damaged in places, and the source should end with an error.

    Attributes:
        total: Failed packets so far.
        in_a_row: Failed packets since the last one that decoded.
    """

    def __init__(self, limit: int = MAX_CONSECUTIVE_DECODE_ERRORS) -> None:
        self.limit = limit
        self.total = 0
        self.in_a_row = 0

    def failed(self) -> bool:
        """Count a packet that failed; True when the source should give up."""
        self.total += 1
        self.in_a_row += 1
        return self.in_a_row >= self.limit

    def decoded(self) -> None:
        """A packet decoded: the run of failures is over."""
        self.in_a_row = 0

    def reason(self, detail: str) -> str:
        """The error reason when the source gives up (``detail``: the last failure)."""
        return f"{self.in_a_row} packets in a row failed: {detail}"
