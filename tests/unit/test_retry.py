"""FailureRun: backoff doubling and one loud log line per outage, then one a minute."""

from __future__ import annotations

from vigil import retry
from vigil.retry import FailureRun


def test_backoff_doubles_per_failure_up_to_the_cap():
    run = FailureRun()
    delays = []
    for _ in range(6):
        delays.append(run.backoff_s(cap_s=5.0))
        run.failed()
    assert delays == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    run.succeeded()
    assert run.count == 0
    assert run.backoff_s(cap_s=5.0) == 0.5


def test_first_failure_is_loud_then_once_per_interval(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(retry.time, "monotonic", lambda: now[0])
    run = FailureRun(warn_every_s=60.0)
    loud = []
    for step in (0, 10, 20, 61, 70, 122):
        now[0] = 1000.0 + step
        loud.append(run.failed())
    assert loud == [True, False, False, True, False, True]
    run.succeeded()
    now[0] += 1
    assert run.failed(), "a new outage is announced at once"
