"""Smart recording without a service: the pre-event cache, the clip writer, the recorder's
triggers and the store, on real H.264 made and decoded with PyAV."""

from __future__ import annotations

import ctypes
import dataclasses
import itertools
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests.support.tmpfs import small_tmpfs
from vigil.events.object_schema import BBox, ObjectAnalyticsInfo, ObjectInfo
from vigil.events.schema import (
    AnalyticsModuleInfo,
    Event,
    EventInfo,
    EventType,
    PlaceInfo,
    SensorInfo,
)
from vigil.record.cache import PreEventCache
from vigil.record.clip import ClipWriter
from vigil.record.recorder import NotRecordingError, Recorder, UnknownStreamError
from vigil.record.store import RecordingStore
from vigil.recording_settings import RecordingSettings, RecordRule, RetentionSettings
from vigil.sources.file import FileSource
from vigil.sources.packets import EncodedPacket

FPS = 10
GOP = 20  # 2 s at 10 fps
MOD = 50  # frame numbers are told apart modulo this
T0 = 1_700_000_000.0  # wall clock of the first packet in these tests


@pytest.fixture(scope="module")
def gop2s(tmp_path_factory) -> Path:
    """20 s of synthetic H.264 at 10 fps with a keyframe every 2 s exactly; each frame's
    brightness encodes its number modulo 50 (so decoded frames can be identified)."""
    path = tmp_path_factory.mktemp("clips") / "gop2s.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        stream.options = {"g": str(GOP), "keyint_min": str(GOP), "sc_threshold": "0", "bf": "0"}
        for i in range(200):
            image = np.full((96, 160, 3), (i % MOD) * 5, np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode())
    return path


def packets_of(path: Path) -> list[EncodedPacket]:
    """The file's packets through the real source's packet tap, arriving in real time from
    T0 (arrival = T0 + presentation time)."""
    got: list[EncodedPacket] = []
    source = FileSource("cam", path)
    source.packets = got.append
    source.open()
    for _ in source.frames():
        pass
    source.close()
    return [dataclasses.replace(p, arrival_s=T0 + float(p.pts * p.params.time_base)) for p in got]


def decode(path: Path) -> tuple[list[av.Packet], list[int]]:
    """The clip's packets and the frame numbers (modulo 50) its frames decode to."""
    with av.open(str(path)) as f:
        packets = [p for p in f.demux(f.streams.video[0]) if p.size]
    with av.open(str(path)) as f:
        numbers = [round(fr.to_ndarray(format="rgb24").mean() / 5) for fr in f.decode(video=0)]
    return packets, numbers


# --- the cache -------------------------------------------------------------------------------


def test_cache_is_keyframe_aligned_and_bounded_in_seconds(gop2s):
    cache = PreEventCache(max_seconds=5, max_bytes=10**9)
    for p in packets_of(gop2s):
        cache.push(p)
    held = cache.since(0)
    assert held[0].keyframe
    # the newest packet is at 19.9 s; 5 s back needs the group from 14 s on
    assert held[0].arrival_s == pytest.approx(T0 + 14.0)
    assert 5.0 <= cache.seconds < 5.0 + 2.0


def test_cache_byte_cap_drops_whole_groups(gop2s):
    packets = packets_of(gop2s)
    group_bytes = sum(p.size for p in packets[:GOP])
    cache = PreEventCache(max_seconds=60, max_bytes=int(group_bytes * 2.5))
    for p in packets:
        cache.push(p)
    assert cache.bytes <= group_bytes * 3
    assert cache.since(0)[0].keyframe
    assert len(cache) % GOP == 0 or cache.since(0)[-1] is packets[-1]


def test_cache_gives_the_last_keyframe_at_or_before_a_time(gop2s):
    cache = PreEventCache(max_seconds=60, max_bytes=10**9)
    for p in packets_of(gop2s):
        cache.push(p)
    assert cache.since(T0 + 7.9)[0].arrival_s == pytest.approx(T0 + 6.0)
    assert cache.since(T0 + 8.0)[0].arrival_s == pytest.approx(T0 + 8.0)
    assert cache.since(T0 - 100)[0].arrival_s == pytest.approx(T0)  # oldest held


# --- the recorder: the acceptance clip -------------------------------------------------------


def recorder_for(tmp_path: Path, **settings) -> Recorder:
    rec_settings = RecordingSettings(cache_seconds=30, **settings)
    return Recorder(rec_settings, RecordingStore(tmp_path / "recordings"))


@pytest.mark.parametrize("container", ["mp4", "mkv"])
def test_event_clip_starts_at_last_keyframe_before_preroll_and_is_not_reencoded(
    gop2s, tmp_path, container
):
    packets = packets_of(gop2s)
    recorder = recorder_for(tmp_path, container=container)
    push = recorder.sink("cam")
    event_t, pre, post = T0 + 11.3, 3.0, 2.0
    closed = []
    recorder.on_closed = closed.append
    for p in packets:
        if p.arrival_s > event_t and not closed and recorder.recording_now() == []:
            rec, created = recorder.start("cam", event_t, event_t, pre_roll_s=pre, post_roll_s=post)
            assert created
        push(p)
    assert len(closed) == 1
    rec = closed[0]
    assert rec.state == "complete"
    clip_packets, numbers = decode(recorder.store.path_of(rec))
    # start: the last keyframe at or before t - 3 s = 8.3 s is the one at 8.0 s (frame 80),
    # then every frame in order
    assert numbers == [(80 + k) % MOD for k in range(len(numbers))]
    # end: requested end + post-roll = 13.3 s; within one GOP of it
    last_s = (80 + len(numbers) - 1) / FPS
    assert 13.3 - 1 / FPS - 1e-9 <= last_s <= 13.3 + GOP / FPS
    assert clip_packets[0].pts == 0  # rebased to start at 0
    # not re-encoded: each packet's slice data is the source's, byte for byte
    source = {p.pts: p.data for p in packets}
    src_pts = [p.pts for p in packets if p.pts is not None]
    first = src_pts.index(80 * (src_pts[1] - src_pts[0]))
    for out, src_pts_i in zip(clip_packets, src_pts[first:], strict=False):
        data = source[src_pts_i]
        assert bytes(out).endswith(data[4:]), "a packet was changed"
    assert rec.duration_s == pytest.approx(len(numbers) / FPS, abs=0.15)


def test_overlapping_triggers_extend_one_clip(gop2s, tmp_path):
    packets = packets_of(gop2s)
    recorder = recorder_for(tmp_path)
    push = recorder.sink("cam")
    closed = []
    recorder.on_closed = closed.append
    firsts = []
    for p in packets:
        t = p.arrival_s - T0
        if 6.0 < t <= 6.1:
            firsts.append(
                recorder.start("cam", p.arrival_s, p.arrival_s, pre_roll_s=1, post_roll_s=2)
            )
        if 7.0 < t <= 7.1:
            firsts.append(
                recorder.start("cam", p.arrival_s, p.arrival_s, pre_roll_s=1, post_roll_s=2)
            )
        push(p)
    assert [created for _, created in firsts] == [True, False]
    assert firsts[0][0].id == firsts[1][0].id
    assert len(closed) == 1
    _, numbers = decode(recorder.store.path_of(closed[0]))
    # from the keyframe at 4 s, extended to the second trigger's end (7 + 2 s)
    assert numbers[0] == 40 % MOD
    assert (40 + len(numbers) - 1) / FPS >= 9.0


def test_reconnect_during_a_clip_keeps_one_clip_with_monotonic_timestamps(gop2s, tmp_path):
    packets = packets_of(gop2s)
    recorder = recorder_for(tmp_path, stall_timeout_s=30)
    push = recorder.sink("cam")
    closed = []
    recorder.on_closed = closed.append
    recorder.start("cam", T0, T0 + 8.0)
    for p in packets[:40]:
        push(p)
    # the camera comes back after 3 s with its clock restarted and new codec parameters
    params = dataclasses.replace(packets[0].params)
    for p in packets[:60]:
        push(dataclasses.replace(p, params=params, arrival_s=p.arrival_s + 7.0))
    assert len(closed) == 1
    clip_packets, numbers = decode(recorder.store.path_of(closed[0]))
    dts = [p.dts for p in clip_packets]
    assert all(b > a for a, b in itertools.pairwise(dts))
    assert numbers[:40] == list(range(40))
    assert numbers[40] == 0


def test_stop_and_errors(tmp_path, gop2s):
    recorder = recorder_for(tmp_path)
    with pytest.raises(UnknownStreamError):
        recorder.start("nope")
    push = recorder.sink("cam")
    with pytest.raises(NotRecordingError):
        recorder.stop("cam")
    for p in packets_of(gop2s)[:30]:
        push(p)
    rec, _ = recorder.start("cam", T0 + 2.5)
    assert recorder.stop("cam", T0 + 2.0).id == rec.id


def test_a_clip_with_no_video_fails_with_a_reason(tmp_path):
    recorder = recorder_for(tmp_path)
    recorder.sink("cam")
    closed = []
    recorder.on_closed = closed.append
    recorder.start("cam", None, None)
    recorder.stream_removed("cam")
    assert closed[0].state == "failed"
    assert "no video" in closed[0].error


# --- rules -----------------------------------------------------------------------------------


def event(kind: EventType, t: float, rule: str = "", cls: str = "person") -> Event:
    return Event(
        timestamp=datetime.fromtimestamp(t, UTC),
        sensor=SensorInfo(id="cam"),
        place=PlaceInfo(id="p"),
        analytics_module=AnalyticsModuleInfo(id="m"),
        object=ObjectInfo(
            id="1", class_name=cls, confidence=0.9, bbox=BBox.from_xyxy(0, 0, 1, 1),
            analytics=ObjectAnalyticsInfo(rule=rule),
        ),
        event=EventInfo(type=kind),
    )  # fmt: skip


def test_rules_start_clips_mark_their_events_and_respect_the_cooldown(gop2s, tmp_path):
    rules = [
        RecordRule(name="door", on="line_crossed", analytics_rule="door", pre_roll_s=2,
                   post_roll_s=1, cooldown_s=5),
        RecordRule(name="cars", on="class_seen", classes=["car"]),
    ]  # fmt: skip
    recorder = recorder_for(tmp_path, rules=rules)
    push = recorder.sink("cam")
    closed = []
    recorder.on_closed = closed.append
    marked = []
    for p in packets_of(gop2s):
        t = p.arrival_s - T0
        if 5.0 < t <= 5.1 or 8.0 < t <= 8.1 or 16.0 < t <= 16.1:
            events = [
                event(EventType.LINE_CROSSED, p.arrival_s, rule="door"),
                event(EventType.LINE_CROSSED, p.arrival_s, rule="window"),
                event(EventType.ENTRY, p.arrival_s, cls="person"),
            ]
            recorder.observe([], events)
            marked.append([e.video_path for e in events])
        push(p)
    # 5 s: a clip; 8 s: 2 s after it ended (6 s), in the cooldown; 16 s: a new clip
    assert len(closed) == 2
    assert marked[0][0] == closed[0].url
    assert marked[1][0] == ""
    assert marked[2][0] == closed[1].url
    assert all(m[1] == "" and m[2] == "" for m in marked)  # other line, no car
    assert closed[0].trigger_kind == "rule"
    assert closed[0].trigger_rule == "door"


def test_class_seen_needs_classes():
    with pytest.raises(ValueError, match="classes"):
        RecordRule(name="x", on="class_seen")


# --- the store -------------------------------------------------------------------------------


def test_store_finds_clips_only_through_its_index(tmp_path):
    store = RecordingStore(tmp_path)
    rec = store.new("cam", "mp4", "rest", None)
    assert store.get(rec.id) == rec
    for bad in ("../cam", f"cam/{rec.id}", "..", f"{rec.id}.json", "/etc/passwd"):
        assert store.get(bad) is None
    assert store.path_of(rec).parent == tmp_path / "cam"


def test_store_marks_clips_cut_short_as_interrupted(tmp_path):
    store = RecordingStore(tmp_path)
    rec = store.new("cam", "mp4", "kafka", None)
    again = RecordingStore(tmp_path)
    assert again.get(rec.id).state == "interrupted"


def test_retention_by_age_and_bytes_keeps_clips_being_written(tmp_path):
    store = RecordingStore(tmp_path)
    made = []
    for i, stream in enumerate(["a", "a", "a", "b", "b"]):
        rec = store.new(stream, "mp4", "rest", None)
        store.path_of(rec).write_bytes(b"x" * 1000)
        made.append(store.save(dataclasses.replace(rec, state="complete", created_s=1000.0 + i,
                                                   end_s=1000.0 + i)))  # fmt: skip
    writing = store.new("a", "mp4", "rest", None)
    store.path_of(writing).write_bytes(b"x" * 5000)
    store.save(writing)
    result = store.enforce(RetentionSettings(max_age_s=None, max_bytes_per_stream=6500,
                                             max_total_bytes=None))  # fmt: skip
    assert result.deleted == [made[0].id, made[1].id]  # a: 3000 + 5000 → the oldest two go
    result = store.enforce(RetentionSettings(max_age_s=None, max_total_bytes=6500))
    assert result.deleted == [made[2].id, made[3].id]
    assert store.get(writing.id) is not None  # never deleted while written
    result = store.enforce(RetentionSettings(max_age_s=10, max_total_bytes=None), now_s=1020)
    assert result.deleted == [made[4].id]
    assert not store.path_of(made[4]).exists()


# --- a full disk -------------------------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KiB tmpfs (needs root; skipped with the reason otherwise)."""
    with small_tmpfs(tmp_path / "tiny", "256k") as mount:
        yield mount


def test_disk_full_fails_the_clip_counts_it_and_recording_goes_on(tiny_disk, tmp_path, gop2s):
    path = tmp_path / "big.mp4"
    with av.open(str(path), "w") as out:  # noisy frames: large packets
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.options = {"g": "10", "crf": "0"}
        rng = np.random.default_rng(0)
        for _ in range(60):
            image = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode())
    packets = packets_of(path)
    assert sum(p.size for p in packets) > 512 * 1024
    recorder = Recorder(RecordingSettings(), RecordingStore(tiny_disk))
    push = recorder.sink("cam")
    closed = []
    recorder.on_closed = closed.append
    recorder.start("cam", T0, T0 + 100)
    for p in packets:
        push(p)  # must not raise
    assert closed
    assert closed[0].state == "failed"
    assert "disk full" in closed[0].error
    assert recorder.failures["no_space"] == 1
    assert recorder.cache_bytes()["cam"] > 0  # the cache goes on
    # after space is freed, the next clip (of a smaller stream) works
    recorder.store.delete(closed[0])
    recorder.stream_removed("cam")
    push = recorder.sink("cam")
    recorder.start("cam", None, None)
    for p in packets_of(gop2s)[:30]:
        push(p)
    recorder.stream_removed("cam")
    assert closed[-1].state == "complete", closed[-1].error


def test_a_clip_writer_refuses_a_changed_stream(tmp_path, gop2s):
    packets = packets_of(gop2s)
    writer = ClipWriter(tmp_path / "x.mp4", "mp4")
    writer.write(packets[0])
    other = dataclasses.replace(packets[0].params, width=320, time_base=Fraction(1, 90000))
    with pytest.raises(Exception, match="changed"):
        writer.write(dataclasses.replace(packets[20], params=other))
    writer.close()


# --- the NVDEC path's tap, without a GPU -------------------------------------------------------


def test_nvdec_tap_finds_keyframes_in_the_bitstream_and_makes_timestamps(gop2s):
    from vigil.sources.annexb import AnnexB, is_keyframe
    from vigil.sources.nvdec_packets import NvdecPacketTap

    packets = packets_of(gop2s)
    to_annex_b = AnnexB(packets[0].params)
    annex_b = [to_annex_b(p.data, p.keyframe) for p in packets]
    assert [is_keyframe(a, "h264") for a in annex_b] == [p.keyframe for p in packets]

    class FakePacket:  # what PyNvVideoCodec's PacketData exposes: an address and a size
        def __init__(self, data: bytes) -> None:
            self._buffer = ctypes.create_string_buffer(data, len(data))
            self.bsl_data = ctypes.addressof(self._buffer)
            self.bsl = len(data)

    got: list[EncodedPacket] = []
    tap = NvdecPacketTap(got.append, "cudaVideoCodec.H264", 160, 96, FPS)
    for a in annex_b:
        tap.tap(FakePacket(a))
    assert [g.data for g in got] == annex_b
    assert [g.keyframe for g in got] == [p.keyframe for p in packets]
    writer = ClipWriter(Path(gop2s).parent / "from-nvdec-tap.mkv", "mkv")
    for g in got:
        writer.write(g)
    writer.close()
    _, numbers = decode(Path(gop2s).parent / "from-nvdec-tap.mkv")
    assert numbers == [k % MOD for k in range(len(packets))]
