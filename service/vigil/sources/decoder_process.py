"""The child side of :mod:`vigil.sources.isolated`: decode one stream, send frames on stdout.

Run as ``python -m vigil.sources.decoder_process '<json request>'`` by
:class:`~vigil.sources.isolated.IsolatedSource`, never by hand. The request names the stream
id, URL and timeouts; the child builds the real (in-process) PyAV source for it. It imports
no settings or pydantic: it starts fast and small.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import sys
from typing import Any, BinaryIO

from vigil.sources.errors import SourceError
from vigil.sources.ffmpeg import ffmpeg_source
from vigil.sources.packets import CodecParams, EncodedPacket

#: Each message starts with the length of its JSON header (little-endian uint32).
HEADER = struct.Struct("<I")


def send(out: BinaryIO, header: dict[str, Any], payload: bytes | memoryview = b"") -> None:
    """Write one message (header, then payload)."""
    data = json.dumps(header).encode()
    out.write(HEADER.pack(len(data)))
    out.write(data)
    if payload:
        out.write(payload)
    out.flush()


class _PacketSender:
    """The child's packet tap: each packet goes up the pipe (its codec once per opening)."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self._params: CodecParams | None = None

    def __call__(self, packet: EncodedPacket) -> None:
        if packet.params is not self._params:
            self._params = packet.params
            send(self.out, {"type": "codec", **packet.params.to_dict()})
        header = {
            "type": "packet",
            "pts": packet.pts,
            "dts": packet.dts,
            "duration": packet.duration,
            "keyframe": packet.keyframe,
            "arrival_s": packet.arrival_s,
            "bytes": packet.size,
        }
        send(self.out, header, packet.data)


def main(request: str) -> int:
    """Decode the requested stream to its end; errors are sent, not raised."""
    # The parent stops us; a terminal's Ctrl-C is for it (we are in a session of our own).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = os.fdopen(sys.stdout.fileno(), "wb", buffering=0, closefd=False)
    sys.stdout = sys.stderr  # nothing else may write to the pipe
    body = json.loads(request)
    source = ffmpeg_source(
        body["stream_id"],
        body["url"],
        open_timeout_s=body["open_timeout_s"],
        read_timeout_s=body["read_timeout_s"],
    )
    if body.get("packets"):
        source.packets = _PacketSender(out)
    try:
        info = source.open()
        send(out, {"type": "open", **info.__dict__})
        for frame in source.frames():
            image = frame.image
            pixels = memoryview(image).cast("B") if image.flags.c_contiguous else image.tobytes()
            header = {
                "type": "frame",
                "number": frame.frame_number,
                "pts_s": frame.pts_s,
                "capture_s": frame.capture_time_s,
                "decoded_s": frame.decoded_monotonic_s,
                "shape": list(image.shape),
                "decode_errors": source.decode_errors,
                "bytes": image.nbytes,
            }
            send(out, header, pixels)
        send(out, {"type": "end", "decode_errors": source.decode_errors})
    except BrokenPipeError:  # the parent closed the stream
        return 0
    except SourceError as e:
        send(out, {"type": "error", "url": e.url, "reason": e.reason})
    except Exception as e:  # a decoder bug: the parent gets the reason, not just an exit code
        send(out, {"type": "error", "reason": f"decoder failed: {e!r}"})
    finally:
        source.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
