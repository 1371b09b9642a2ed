"""Which local files API clients may open as streams (``sources.file_roots``).

A ``file://`` URL from a REST call, a DeepStream body or a Kafka command could otherwise make
the service read any file its user can (``file:///etc/shadow``). Paths are compared after
resolving ``..`` and symbolic links, so neither leads out of a root.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from vigil.sources.urls import file_path
from vigil.specs import StreamSpec


class FileNotAllowedError(PermissionError):
    """A file stream's path lies outside every allowed directory."""


class FileRoots:
    """The directories file streams from clients must lie under.

    Args:
        roots: Allowed directories; each is resolved once (symbolic links followed).
            Empty: clients may not add file streams at all.
    """

    def __init__(self, roots: Iterable[Path]) -> None:
        self.roots = tuple(dict.fromkeys(Path(os.path.realpath(r)) for r in roots))

    @classmethod
    def of_streams(cls, specs: Iterable[StreamSpec]) -> FileRoots:
        """The directories holding the given file streams (the default: configured media)."""
        return cls(file_path(s.url).parent for s in specs if s.scheme == "file")

    def check(self, spec: StreamSpec) -> None:
        """Refuse a file stream outside the roots; other schemes pass.

        Raises:
            FileNotAllowedError: with the reason, naming the setting (never the roots).
        """
        if spec.scheme != "file":
            return
        path = Path(os.path.realpath(file_path(spec.url)))
        if not any(path.is_relative_to(root) for root in self.roots):
            hint = (
                "no directory is allowed"
                if not self.roots
                else "it lies outside the allowed directories"
            )
            raise FileNotAllowedError(
                f"url: file streams from clients must lie under sources.file_roots; {hint} "
                f"(links and '..' are resolved first)"
            )
