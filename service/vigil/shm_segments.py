"""Which shared-memory segments are Vigil's, and removing them.

Every segment Vigil creates — the slot rings' regions, the embedded Triton's Python-backend
regions, the secondary classifiers' slots — is named ``vigil_<pid>_<token>_<purpose>``
(:func:`new_prefix`). The pid names the owner: the creating process removes its segments on
every exit path, and :func:`remove_stale_segments` removes those whose owner has died (killed
with SIGKILL, say) at the next start. This module knows names and files only, nothing of
Triton or of what the segments hold, so the inference client and the server launcher share it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from pathlib import Path

log = logging.getLogger(__name__)

SHM_DIR = Path("/dev/shm")
NAME_PREFIX = "vigil_"


def new_prefix(purpose: str) -> str:
    """A unique segment-name prefix owned by this process: ``vigil_<pid>_<token>_<purpose>``."""
    return f"{NAME_PREFIX}{os.getpid()}_{secrets.token_hex(4)}_{purpose}"


def owner_pid(name: str) -> int | None:
    """The pid in a name made from :func:`new_prefix` (``vigil_<pid>_...``); None for any
    other name. Triton region names follow the same scheme."""
    if not name.startswith(NAME_PREFIX):
        return None
    pid_text = name[len(NAME_PREFIX) :].split("_", 1)[0]
    return int(pid_text) if pid_text.isdigit() else None


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_segments_with_prefix(prefix: str) -> int:
    """Unlink every ``/dev/shm`` entry whose name starts with ``prefix``; returns the count."""
    removed = 0
    for entry in SHM_DIR.glob(f"{prefix}*"):
        with contextlib.suppress(FileNotFoundError):
            entry.unlink()
            removed += 1
    return removed


def remove_stale_segments() -> list[str]:
    """Unlink Vigil segments whose creating process no longer exists; returns their names."""
    removed = []
    for entry in SHM_DIR.glob(f"{NAME_PREFIX}*"):
        pid = owner_pid(entry.name)
        if pid is not None and not pid_alive(pid):
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                removed.append(entry.name)
    if removed:
        log.warning("removed %d stale shared-memory segments: %s", len(removed), removed[:5])
    return removed
