"""A child process that reports by printing one JSON object per line on stdout (a cluster
member in the tests, a consumer in the group probe): its records and stderr lines, collected
as they come by reader threads."""

from __future__ import annotations

import json
import subprocess
import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class JsonLinesProcess:
    """One such process and what it printed so far (read ``events`` under ``lock``).

    Attributes:
        name: The name it was started under.
        process: The child.
        events: Its stdout records, in order.
        log: Its stderr lines, in order.
        lock: Guards ``events`` (appended by the reader thread).
    """

    name: str
    process: subprocess.Popen[str]
    events: list[dict[str, Any]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def spawn(
        cls, name: str, argv: list[str], lock: threading.Lock | None = None, **popen: Any
    ) -> JsonLinesProcess:
        """Start ``argv`` and its two reader threads (``lock``: one shared with other
        processes, so that all their records can be read at one instant)."""
        process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen
        )
        child = cls(name, process, lock=lock or threading.Lock())
        threading.Thread(target=child._read, daemon=True).start()
        threading.Thread(target=child._read_log, daemon=True).start()
        return child

    @property
    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.process.poll() is None

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self.lock:
                self.events.append(json.loads(line))

    def _read_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line.rstrip())
