"""Files served over HTTP on a free port (an HTTP camera or stream for the sources)."""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def served(directory: Path) -> Iterator[str]:
    """An HTTP server for ``directory`` on a free port; its base URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))

    class Quiet(http.server.ThreadingHTTPServer):
        def handle_error(self, request, client_address) -> None:  # clients that hang up
            pass

    server = Quiet(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def faststart_copy(clip: Path, directory: Path) -> Path:
    """A copy of an MP4 with its index (``moov``) in front, in ``directory``.

    ``served`` is Python's plain file server, which ignores Range requests; FFmpeg reading an
    MP4 whose index is at the end has to seek back for it and fails with EIO. HTTP cameras
    and streaming servers send a streamable file, so the tests serve one. Packets are copied,
    not re-encoded (still length-prefixed H.264 with its avcC parameter sets)."""
    import av  # only where the tests that serve MP4 run

    target = directory / clip.name
    with (
        av.open(str(clip)) as source,
        av.open(str(target), "w", options={"movflags": "faststart"}) as out,
    ):
        video = source.streams.video[0]
        stream = out.add_stream_from_template(video)
        for packet in source.demux(video):
            if packet.dts is None:  # the demuxer's final flush packet
                continue
            packet.stream = stream
            out.mux(packet)
    return target
