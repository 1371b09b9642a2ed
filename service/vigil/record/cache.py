"""The pre-event cache: the last seconds of one stream's encoded video, keyframe-aligned.

A clip of an event must start *before* the event, on a keyframe, without re-encoding: the
cache keeps whole groups of pictures (a keyframe and the packets up to the next one) and gives
out the packets from the last keyframe at or before a requested time. It is bounded in
seconds and in bytes; whole groups are dropped from the front, never part of one, except that
the group being received is always kept.
"""

from __future__ import annotations

from collections import deque

from vigil.sources.packets import EncodedPacket


class PreEventCache:
    """One stream's recent packets, from a keyframe on.

    Not thread-safe: the recorder calls it under its stream's lock.

    Args:
        max_seconds: Keep at least this many seconds when the bytes allow (by arrival time).
        max_bytes: Never keep more bytes than this (older groups go first).
    """

    def __init__(self, max_seconds: float, max_bytes: int) -> None:
        self.max_seconds = max_seconds
        self.max_bytes = max_bytes
        self._groups: deque[list[EncodedPacket]] = deque()
        self._bytes = 0

    @property
    def bytes(self) -> int:
        """Bytes of encoded video held."""
        return self._bytes

    @property
    def seconds(self) -> float:
        """Seconds of video held (arrival of the first packet to the last)."""
        if not self._groups:
            return 0.0
        return self._groups[-1][-1].arrival_s - self._groups[0][0].arrival_s

    def __len__(self) -> int:
        return sum(len(g) for g in self._groups)

    def push(self, packet: EncodedPacket) -> None:
        """Add a packet; packets before the first keyframe are dropped (undecodable)."""
        if packet.keyframe:
            self._groups.append([packet])
        elif self._groups:
            self._groups[-1].append(packet)
        else:
            return
        self._bytes += packet.size
        self._trim(packet.arrival_s)

    def since(self, time_s: float) -> list[EncodedPacket]:
        """Packets from the last keyframe that arrived at or before ``time_s`` (the oldest
        keyframe held when none did) to the newest."""
        groups = list(self._groups)
        start = 0
        for i, group in enumerate(groups):
            if group[0].arrival_s <= time_s:
                start = i
            else:
                break
        return [p for group in groups[start:] for p in group]

    def clear(self) -> None:
        """Forget everything (a reconnect with other codec parameters)."""
        self._groups.clear()
        self._bytes = 0

    def _trim(self, now_s: float) -> None:
        # A group may go once the next one starts early enough to cover max_seconds alone.
        while len(self._groups) > 1 and (
            self._bytes > self.max_bytes or self._groups[1][0].arrival_s <= now_s - self.max_seconds
        ):
            dropped = self._groups.popleft()
            self._bytes -= sum(p.size for p in dropped)
