"""Where the chart tests find Helm and kubernetes-validate (installed by `make test`)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest


def cache_dir() -> Path:
    """The Makefile's ``$(VIGIL_CACHE_DIR)`` (default ``~/.cache/vigil``)."""
    return Path(os.environ.get("VIGIL_CACHE_DIR") or Path.home() / ".cache" / "vigil")


def helm_binary() -> Path:
    """``$VIGIL_CACHE_DIR/tools/helm``, or a test failure saying how to get it.

    A failure, not a skip: the chart would otherwise go untested without anyone noticing.
    """
    helm = cache_dir() / "tools" / "helm"
    if not (helm.is_file() and os.access(helm, os.X_OK)):
        pytest.fail(f"helm not found at {helm}: run `make test` (it installs helm there)")
    return helm


def kubernetes_validate_binary() -> Path:
    """The ``kubernetes-validate`` command of this Python environment (the dev extra)."""
    beside = Path(sys.executable).parent / "kubernetes-validate"
    found = beside if beside.is_file() else shutil.which("kubernetes-validate")
    if not found:
        pytest.fail("kubernetes-validate not found: run `make test` (it installs the dev extra)")
    return Path(found)
