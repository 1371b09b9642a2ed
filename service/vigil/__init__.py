"""Vigil: intelligent video analytics as a service, built around NVIDIA Triton."""

__version__ = "0.1.0"
