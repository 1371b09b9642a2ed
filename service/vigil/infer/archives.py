"""Unpacking an uploaded model archive (zip or tar) without trusting it.

Sizes are checked before anything is written, every member's path must stay inside the
destination, and links (or anything that is not a file or a directory) are refused.
"""

from __future__ import annotations

import contextlib
import shutil
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from vigil.infer.errors import RegistryError


def _member_path(dest: Path, member: str) -> Path:
    """Where an archive member goes, refusing anything that escapes ``dest``."""
    pure = PurePosixPath(member)
    if pure.is_absolute() or ".." in pure.parts or member.startswith(("/", "\\")):
        raise RegistryError(f"archive member {member!r} escapes the version directory", 422)
    target = (dest / pure).resolve()
    if not target.is_relative_to(dest.resolve()):
        raise RegistryError(f"archive member {member!r} escapes the version directory", 422)
    return target


@dataclass(frozen=True)
class _Member:
    """An archive member, whatever the archive format."""

    name: str
    size: int
    kind: str  # "file", "dir" or anything else (refused)
    open: Callable[[], Any]


def _extract(members: list[_Member], dest: Path, limit: int) -> None:
    """Unpack members into ``dest``: sizes checked first, paths confined, links refused."""
    if sum(m.size for m in members) > limit:
        raise RegistryError(f"archive content exceeds model.max_upload_bytes ({limit})", 413)
    for m in members:
        target = _member_path(dest, m.name)
        if m.kind == "dir":
            target.mkdir(parents=True, exist_ok=True)
        elif m.kind == "file":
            target.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.closing(m.open()) as src, target.open("wb") as out:
                shutil.copyfileobj(src, out)
        else:
            raise RegistryError(f"archive member {m.name!r} is not a file or directory", 422)


def extract_zip(archive: Path, dest: Path, limit: int) -> None:
    """Unpack a zip archive into ``dest`` (at most ``limit`` bytes; see :func:`_extract`).

    Raises:
        RegistryError: (422) not a zip archive, a link or an escaping member; (413) too large.
    """

    def kind(info: zipfile.ZipInfo) -> str:
        if (info.external_attr >> 16) & 0o170000 == 0o120000:
            return "link"
        return "dir" if info.is_dir() else "file"

    try:
        with zipfile.ZipFile(archive) as zf:
            members = [
                _Member(i.filename, i.file_size, kind(i), lambda i=i: zf.open(i))
                for i in zf.infolist()
            ]
            _extract(members, dest, limit)
    except zipfile.BadZipFile as e:
        raise RegistryError(f"not a valid zip archive: {e}", 422) from e


def extract_tar(archive: Path, dest: Path, limit: int) -> None:
    """Unpack a tar archive into ``dest`` (at most ``limit`` bytes; see :func:`_extract`).

    Raises:
        RegistryError: (422) not a tar archive, a link or an escaping member; (413) too large.
    """

    def kind(info: tarfile.TarInfo) -> str:
        return "dir" if info.isdir() else "file" if info.isfile() else "other"

    try:
        with tarfile.open(archive) as tf:
            members = [
                _Member(i.name, i.size, kind(i), lambda i=i: tf.extractfile(i))
                for i in tf.getmembers()
            ]
            _extract(members, dest, limit)
    except tarfile.TarError as e:
        raise RegistryError(f"not a valid tar archive: {e}", 422) from e
