"""TritonRecovery and the client's channel handling with fakes: no recovery step may hang.

Regression for a hang seen under a CPU hog: recovery attempts stopped being made while an
external Triton was down, and the streams never resumed once it was back.
"""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import ClassVar

import pytest

from vigil.config import RecoverySettings
from vigil.infer import client as client_module
from vigil.infer.client import TritonClient
from vigil.infer.errors import InferError
from vigil.recovery import TritonRecovery


class StallingClient:
    """An external server that goes away, comes back, and then stalls ``restore()`` calls
    (it accepted the connection and never answers) ``stalls`` times."""

    def __init__(self, stalls: int = 0, restore_error: Exception | None = None) -> None:
        self.url = "127.0.0.1:1"
        self.loaded: dict[str, frozenset[int]] = {}
        self.live = True
        self.stalls = stalls
        self.restore_error = restore_error
        self.restores = 0

    async def is_live(self, timeout_s: float = 2.0) -> bool:
        return self.live

    async def is_ready(self, timeout_s: float = 2.0) -> bool:
        return self.live

    async def retarget(self, url: str) -> None:
        self.url = url

    async def restore(self) -> None:
        self.restores += 1
        if self.restore_error is not None:
            error, self.restore_error = self.restore_error, None
            raise error
        if self.stalls > 0:
            self.stalls -= 1
            await asyncio.Event().wait()  # never returns


class FakePipeline:
    def __init__(self) -> None:
        self.route = object()
        self.paused = asyncio.Event()
        self.resumed = asyncio.Event()
        self.failure: BaseException | None = None

    def pause(self, reason: str) -> None:
        self.paused.set()

    def resume(self, outage_s: float = 0.0) -> None:
        self.resumed.set()

    async def warm_up(self, route: object, rounds: int = 2) -> None:
        return None

    def fail(self, error: BaseException) -> None:
        self.failure = error


async def _outage(client: StallingClient) -> tuple[TritonRecovery, FakePipeline]:
    """Run one outage of an external server through a recovery; returns when it resumed."""
    pipeline = FakePipeline()
    settings = RecoverySettings(check_interval_s=0.02, failed_checks=1, restore_timeout_s=0.3)
    recovery = TritonRecovery(
        SimpleNamespace(server=None, client=client),  # type: ignore[arg-type]
        settings,
        pipeline,  # type: ignore[arg-type]
        statuses=lambda: [],
    )
    recovery.start()
    try:
        client.live = False
        async with asyncio.timeout(5):
            await pipeline.paused.wait()
        client.live = True
        async with asyncio.timeout(5):
            await pipeline.resumed.wait()
    finally:
        await recovery.close()
    return recovery, pipeline


async def test_recovery_when_restore_stalls_fails_that_attempt_and_tries_again() -> None:
    client = StallingClient(stalls=2)
    recovery, pipeline = await _outage(client)
    (outage,) = recovery.history
    assert outage.attempts == 2, "each stalled restore is one failed attempt"
    assert client.restores == 3
    assert pipeline.failure is None


async def test_recovery_when_an_attempt_raises_something_unexpected_logs_it_and_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = StallingClient(restore_error=asyncio.CancelledError())
    with caplog.at_level(logging.WARNING, logger="vigil.recovery"):
        recovery, pipeline = await _outage(client)
    assert recovery.history[0].attempts == 1
    failed = [r for r in caplog.records if "attempt 1 failed" in r.getMessage()]
    assert failed
    assert failed[0].exc_info is not None, "an unexpected error shows its traceback"
    assert pipeline.failure is None


class FakeChannel:
    """Stands in for a ``grpc.aio.Channel``: ``close(grace)`` waits for the calls in flight
    (up to ``grace``), then cancels what is left, as grpc.aio does."""

    def __init__(self) -> None:
        self.closed = False
        self.calls: set[asyncio.Future[None]] = set()

    async def close(self, grace: float | None = None) -> None:
        pending = [c for c in self.calls if not c.done()]
        if grace and pending:
            await asyncio.wait(pending, timeout=grace)
        self.closed = True
        for call in self.calls:
            call.cancel()


class FakeChannelClient:
    """Stands in for ``tritonclient.grpc.aio.InferenceServerClient`` (its ``_channel`` is
    a :class:`FakeChannel`)."""

    made: ClassVar[list[FakeChannelClient]] = []

    def __init__(self, url: str) -> None:
        self.url = url
        self._channel = FakeChannel()
        FakeChannelClient.made.append(self)

    @property
    def closed(self) -> bool:
        return self._channel.closed

    async def infer(self, *args: object, **kwargs: object) -> None:
        call = asyncio.get_running_loop().create_future()
        self._channel.calls.add(call)
        await call

    def answer(self) -> None:
        """Complete every call in flight."""
        for call in self._channel.calls:
            if not call.done():
                call.set_result(None)

    async def close(self) -> None:
        await self._channel.close()


@pytest.fixture
def fake_channels(monkeypatch: pytest.MonkeyPatch) -> list[FakeChannelClient]:
    FakeChannelClient.made = []
    monkeypatch.setattr(client_module.aioclient, "InferenceServerClient", FakeChannelClient)
    return FakeChannelClient.made


async def _request_in_flight(client: TritonClient) -> asyncio.Task[None]:
    """An inference request that the fake server never answers by itself."""
    model = SimpleNamespace(name="m", version="1", inputs=[], outputs=[])
    request = asyncio.create_task(client.infer(model, None, 1))  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
    return request


async def test_client_retarget_closes_the_old_channel_when_its_calls_end(
    fake_channels: list[FakeChannelClient],
) -> None:
    client = TritonClient("127.0.0.1:1")
    request = await _request_in_flight(client)
    await client.retarget("127.0.0.1:2")
    old, new = fake_channels
    await asyncio.sleep(0.05)
    assert not old.closed, "closing at once would cancel the call in flight on it"
    old.answer()
    await request  # it completed normally on the old channel
    async with asyncio.timeout(5):
        await asyncio.gather(*client._retired.values())
    assert old.closed, "closed once its call ended"
    assert client.url == "127.0.0.1:2"
    assert not new.closed


async def test_client_retarget_without_calls_in_flight_closes_the_old_channel_at_once(
    fake_channels: list[FakeChannelClient],
) -> None:
    client = TritonClient("127.0.0.1:1")
    for port in range(2, 50):  # an outage retargets every 0.25 s: no channel may pile up
        await client.retarget(f"127.0.0.1:{port}")
    await asyncio.sleep(0.05)
    assert all(c.closed for c in fake_channels[:-1])
    assert client._retired == {}
    await client.close()
    assert fake_channels[-1].closed


async def test_client_infer_cancelled_by_its_channel_raises_infer_error(
    fake_channels: list[FakeChannelClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = TritonClient("127.0.0.1:1")
    monkeypatch.setattr(client_module, "RETIRE_GRACE_S", 0.05)
    request = await _request_in_flight(client)
    await client.retarget("127.0.0.1:2")  # the old channel closes after the grace
    with pytest.raises(InferError, match="connection to Triton was closed"):
        async with asyncio.timeout(5):
            await request
    await client.close()


async def test_client_infer_when_its_caller_is_cancelled_stays_cancelled(
    fake_channels: list[FakeChannelClient],
) -> None:
    client = TritonClient("127.0.0.1:1")
    request = await _request_in_flight(client)
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    await client.close()
