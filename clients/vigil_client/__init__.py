"""Python client for Vigil's REST API (the SDK and the ``vigilctl`` command grow here)."""

__version__ = "0.1.0"
