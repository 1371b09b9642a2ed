"""FFmpeg (PyAV) sources by URL scheme, built from plain values.

Kept free of settings and pydantic so the decoder child process
(:mod:`vigil.sources.decoder_process`) starts with few imports.
"""

from __future__ import annotations

from vigil.sources.base import Source


def ffmpeg_source(
    stream_id: str, url: str, *, open_timeout_s: float, read_timeout_s: float
) -> Source:
    """A new, unopened PyAV source: a file for ``file://``, else a network stream."""
    if url.startswith("file:"):
        from vigil.sources.file import FileSource

        return FileSource(stream_id, url)
    from vigil.sources.network import NetworkSource

    return NetworkSource(
        stream_id, url, open_timeout_s=open_timeout_s, read_timeout_s=read_timeout_s
    )
