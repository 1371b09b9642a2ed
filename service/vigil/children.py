"""Child processes that die with the thread that started them (Triton, decoder processes)."""

from __future__ import annotations

import shutil


def death_signal_prefix() -> list[str]:
    """``setpriv --pdeathsig KILL --`` when util-linux's setpriv is there, else nothing.

    Put before a command line, it makes the child get SIGKILL when the *thread* that started
    it exits (``PR_SET_PDEATHSIG``), so a Vigil killed with SIGKILL leaves no child behind. It
    is set by setpriv rather than a Python ``preexec_fn``: no Python code runs between fork and
    exec, which gRPC's fork handlers do not survive.
    """
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []
