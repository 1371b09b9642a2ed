"""Build the right source for a stream spec, by URL scheme."""

from __future__ import annotations

from vigil.config import SourceSettings
from vigil.sources.base import Source
from vigil.sources.file import FileSource
from vigil.sources.stream import NetworkSource
from vigil.sources.testpattern import TestPatternSource
from vigil.specs import StreamSpec


def make_source(spec: StreamSpec, settings: SourceSettings) -> Source:
    """A new, unopened source for ``spec``."""
    scheme = spec.scheme
    if scheme == "file":
        return FileSource(spec.id, spec.url)
    if scheme == "test":
        return TestPatternSource(spec.id, spec.url)
    return NetworkSource(
        spec.id,
        spec.url,
        open_timeout_s=settings.open_timeout_s,
        read_timeout_s=settings.read_timeout_s,
    )
