"""Exceptions of the inference package: Triton's inference API, and the model registry."""

from __future__ import annotations


class InferError(RuntimeError):
    """A call to Triton failed (connection, load, shared-memory registration, inference)."""


class ModelNotFoundError(InferError):
    """The requested model is not in the repository.

    Attributes:
        available: The models the repository does have.
    """

    def __init__(self, name: str, available: list[str]) -> None:
        self.available = available
        listing = ", ".join(available) if available else "none"
        super().__init__(f"unknown model {name!r}; available models: {listing}")


class ModelLoadError(InferError):
    """Triton could not load a model; the message is Triton's."""


class UnsupportedModelError(InferError):
    """The model's inputs or outputs do not fit what its parser or preprocessing expects."""


class RegistryError(InferError):
    """A registry request cannot be done.

    Attributes:
        status: The HTTP status it maps to (404 unknown, 409 conflict, 413 too large,
            422 invalid content).
    """

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status
