"""The pool of idle NVDEC decoders: bounded, per device, idle ones ended after a while."""

from __future__ import annotations

import threading

import pytest

from vigil.sources.nvdec_pool import DecoderPool


class FakeDecoder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.ended = 0

    def end(self) -> None:
        self.ended += 1


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_given_decoder_is_taken_by_the_next_stream_of_its_device_only():
    pool = DecoderPool(capacity=4)
    a = FakeDecoder("a")
    pool.give(0, a)
    assert pool.take(1) is None
    assert pool.take(0) is a
    assert pool.take(0) is None
    assert (pool.reused, a.ended) == (1, 0)


def test_the_most_recently_idle_decoder_is_taken_first():
    pool = DecoderPool(capacity=4)
    first, second = FakeDecoder("first"), FakeDecoder("second")
    pool.give(0, first)
    pool.give(0, second)
    assert pool.take(0) is second
    assert pool.take(0) is first


def test_a_full_pool_ends_its_oldest_decoder():
    pool = DecoderPool(capacity=2)
    decoders = [FakeDecoder(str(i)) for i in range(3)]
    for decoder in decoders:
        pool.give(0, decoder)
    assert len(pool) == 2
    assert [d.ended for d in decoders] == [1, 0, 0]
    assert pool.ended == 1


def test_capacity_zero_keeps_nothing():
    pool = DecoderPool(capacity=0)
    decoder = FakeDecoder("a")
    pool.give(0, decoder)
    assert len(pool) == 0
    assert decoder.ended == 1


def test_decoders_idle_too_long_are_ended_at_the_next_visit():
    clock = Clock()
    pool = DecoderPool(capacity=4, idle_s=60.0, clock=clock)
    old, recent = FakeDecoder("old"), FakeDecoder("recent")
    pool.give(0, old)
    clock.now += 50
    pool.give(1, recent)
    clock.now += 20  # old: idle 70 s; recent: 20 s
    assert pool.take(0) is None
    assert old.ended == 1
    assert pool.take(1) is recent
    assert recent.ended == 0


def test_clear_ends_every_idle_decoder_even_when_one_fails():
    pool = DecoderPool(capacity=4)

    class Broken(FakeDecoder):
        def end(self) -> None:
            raise RuntimeError("driver gone")

    good = FakeDecoder("good")
    pool.give(0, Broken("broken"))
    pool.give(0, good)
    pool.clear()
    assert len(pool) == 0
    assert good.ended == 1
    assert pool.ended == 2


def test_decoders_are_ended_outside_the_lock():
    """Ending a decoder joins its native thread; another stream must not wait on that."""
    pool = DecoderPool(capacity=0)
    seen: list[bool] = []

    class Probe(FakeDecoder):
        def end(self) -> None:
            seen.append(pool._lock.acquire(blocking=False))
            pool._lock.release()

    pool.give(0, Probe("p"))
    assert seen == [True]


def test_many_threads_give_and_take_without_losing_or_doubling_a_decoder():
    pool = DecoderPool(capacity=1000)
    decoders = [FakeDecoder(str(i)) for i in range(400)]
    taken: list[FakeDecoder] = []
    lock = threading.Lock()

    def worker(part: list[FakeDecoder]) -> None:
        for decoder in part:
            pool.give(0, decoder)
            got = pool.take(0)
            assert got is not None
            with lock:
                taken.append(got)

    threads = [threading.Thread(target=worker, args=(decoders[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(d.name for d in taken) == sorted(d.name for d in decoders)
    assert len(pool) == 0


@pytest.mark.parametrize("capacity", [0, 32])
def test_the_gpu_path_gives_file_sources_the_process_pool_unless_turned_off(capacity, monkeypatch):
    from vigil.accel import Acceleration
    from vigil.config import SourceSettings
    from vigil.sources.nvdec_pool import DECODERS
    from vigil.specs import StreamSpec

    monkeypatch.setattr(DECODERS, "capacity", DECODERS.capacity)  # restored afterwards

    accel = Acceleration(shared_memory="cuda", decode="gpu", nvdec_idle_decoders=capacity)
    source = accel.make_source(StreamSpec(id="cam", url="file:///tmp/x.mp4"), SourceSettings())
    assert source.pool is (DECODERS if capacity else None)
    assert DECODERS.capacity == capacity


class FakeThreadedDecoder(FakeDecoder):
    """PyNvVideoCodec's ThreadedDecoder as the source uses it; its ``__len__`` is the
    container's frame count, 0 when the container does not say."""

    def __init__(self, name: str, frames: int = 0) -> None:
        super().__init__(name)
        self.frames = frames
        self.sources: list[str] = []

    def __len__(self) -> int:
        return self.frames

    def reconfigure_decoder(self, source: str) -> None:
        self.sources.append(source)

    def get_stream_metadata(self) -> object:
        return type("Meta", (), {"width": 1920, "height": 1080, "average_fps": 30.0})()


class FakeNvc:
    """The part of the PyNvVideoCodec module the threaded open uses."""

    OutputColorType = type("OutputColorType", (), {"NATIVE": 0})

    def __init__(self) -> None:
        self.created: list[FakeThreadedDecoder] = []

    def ThreadedDecoder(self, path: str, *args: object, **kwargs: object) -> FakeThreadedDecoder:  # noqa: N802
        decoder = FakeThreadedDecoder(f"new {path}")
        self.created.append(decoder)
        return decoder


def test_an_idle_decoder_is_reused_even_when_its_frame_count_is_unknown(tmp_path):
    """A ThreadedDecoder of a file without a frame count has len() 0: it is still reused,
    not dropped (and leaked) for a new session."""
    from vigil.sources.nvdec import NvdecFileSource

    pool = DecoderPool(capacity=4)
    idle = FakeThreadedDecoder("idle", frames=0)
    pool.give(0, idle)
    nvc = FakeNvc()
    source = NvdecFileSource("cam", tmp_path / "b.mp4", pool=pool)
    assert source._open_threaded(nvc) == (1920, 1080, 30.0)
    assert nvc.created == []
    assert idle.sources == [str(tmp_path / "b.mp4")]
    source._reusable = True  # decoded to the end
    source.close()
    assert len(pool) == 1
    assert idle.ended == 0


def test_a_decoder_that_did_not_reach_the_end_or_cannot_switch_is_ended(tmp_path):
    from vigil.sources.nvdec import NvdecFileSource

    pool = DecoderPool(capacity=4)
    nvc = FakeNvc()
    source = NvdecFileSource("cam", tmp_path / "a.mp4", pool=pool)
    source._open_threaded(nvc)
    source.close()  # stopped half-way: not reusable
    assert len(pool) == 0
    assert nvc.created[0].ended == 1

    class Stuck(FakeThreadedDecoder):
        def reconfigure_decoder(self, source: str) -> None:
            raise RuntimeError("cannot reconfigure")

    stuck = Stuck("stuck")
    pool.give(0, stuck)
    source = NvdecFileSource("cam", tmp_path / "b.mp4", pool=pool)
    source._open_threaded(nvc)
    assert stuck.ended == 1
    assert len(nvc.created) == 2
    source.close()
