"""Build the right CPU-decoding source for a stream spec, by URL scheme.

The PyAV-based sources are imported when first needed, so a host that decodes on the GPU
(see :mod:`vigil.accel`) runs without PyAV.
"""

from __future__ import annotations

from vigil.config import SourceSettings
from vigil.sources.base import Source
from vigil.specs import StreamSpec


def make_source(spec: StreamSpec, settings: SourceSettings) -> Source:
    """A new, unopened source for ``spec``."""
    scheme = spec.scheme
    if scheme == "file":
        from vigil.sources.file import FileSource

        return FileSource(spec.id, spec.url)
    if scheme == "test":
        from vigil.sources.testpattern import TestPatternSource

        return TestPatternSource(spec.id, spec.url)
    from vigil.sources.stream import NetworkSource

    return NetworkSource(
        spec.id,
        spec.url,
        open_timeout_s=settings.open_timeout_s,
        read_timeout_s=settings.read_timeout_s,
    )
