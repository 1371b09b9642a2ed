"""Test support: real servers started by tests (RTSP cameras)."""
