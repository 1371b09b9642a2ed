"""Exceptions raised at the boundary with the Triton server process."""

from __future__ import annotations


class TritonServerError(RuntimeError):
    """The embedded Triton server could not be started, or stopped working.

    Attributes:
        log_tail: The last lines of Triton's log, to show the user why.
    """

    def __init__(self, message: str, log_tail: str = "", log_path: str = "") -> None:
        self.log_tail = log_tail
        self.log_path = log_path
        full = message
        if log_tail:
            full += f"\n--- tail of Triton's log ({log_path or 'log file'}) ---\n{log_tail}"
        super().__init__(full)


class TritonNotInstalledError(TritonServerError):
    """The embedded server directory is missing (run `make triton`)."""


class TritonStartError(TritonServerError):
    """Triton exited or did not become ready during start-up."""


class TritonDiedError(TritonServerError):
    """Triton exited while Vigil was using it."""


class RepositoryError(ValueError):
    """A model in the repository is malformed (bad config.pbtxt, missing files)."""
