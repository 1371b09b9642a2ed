"""Build the right CPU-decoding source for a stream spec, by URL scheme.

The PyAV-based sources are imported when first needed, so a host that decodes on the GPU
(see :mod:`vigil.accel`) runs without PyAV.
"""

from __future__ import annotations

from vigil.config import SourceSettings
from vigil.sources.base import Source
from vigil.sources.ffmpeg import ffmpeg_source
from vigil.sources.isolated import ISOLATED_SCHEMES, IsolatedSource
from vigil.specs import StreamSpec


def make_source(spec: StreamSpec, settings: SourceSettings) -> Source:
    """A new, unopened source for ``spec``; FFmpeg decoders run in a child process unless
    ``settings.decoder_isolation`` is ``none``."""
    source = make_inprocess_source(spec, settings)
    if settings.decoder_isolation == "process" and spec.scheme in ISOLATED_SCHEMES:
        return IsolatedSource(spec, settings, source.is_live)
    return source


def make_inprocess_source(spec: StreamSpec, settings: SourceSettings) -> Source:
    """A new, unopened source for ``spec`` that decodes in this process."""
    if spec.scheme == "test":
        from vigil.sources.testpattern import TestPatternSource

        return TestPatternSource(spec.id, spec.url)
    return ffmpeg_source(
        spec.id,
        spec.url,
        open_timeout_s=settings.open_timeout_s,
        read_timeout_s=settings.read_timeout_s,
    )
