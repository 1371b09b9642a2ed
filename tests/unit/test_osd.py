"""The on-screen display: the frame tap's semantics and the renderer's pixels."""

from __future__ import annotations

import asyncio
import threading
import time

import cv2
import numpy as np
import pytest

from tests.support.nv12 import to_nv12
from vigil.analytics import AnalyticsConfig, AnalyticsCounts
from vigil.detections import Detections
from vigil.frame import Frame, PixelFormat
from vigil.masks import MASKS, InstanceMask
from vigil.osd import (
    FrameTap,
    LiveFrame,
    LiveView,
    Overlay,
    StreamGoneError,
    View,
    ViewerLimitError,
    class_colour,
    grid,
    render,
)
from vigil.osd.render import ZONE_COLOURS, encode_jpeg, output_size, to_host_bgr
from vigil.osd.view import next_tick
from vigil.stages.base import FrameResult

BACKGROUND = 30
NOTHING = Overlay(bbox=False, labels=False, masks=False, zones=False, timestamp=False)
BOXES_ONLY = Overlay(bbox=True, labels=False, masks=False, zones=False, timestamp=False)


def _frame(sid: str = "cam", number: int = 0, width: int = 640, height: int = 360) -> Frame:
    image = np.full((height, width, 3), BACKGROUND, np.uint8)
    return Frame.captured_now(sid, number, None, image)


def _detections(*boxes: tuple[float, float, float, float], class_id: int = 3) -> Detections:
    n = len(boxes)
    return Detections(
        xyxy=np.array(boxes, np.float32).reshape(n, 4),
        confidence=np.full(n, 0.9, np.float32),
        class_id=np.full(n, class_id, np.int32),
        tracker_id=np.arange(1, n + 1, dtype=np.int64),
    )


def _live(frame: Frame | None = None, detections: Detections | None = None, **kw) -> LiveFrame:
    return LiveFrame(1, frame or _frame(), detections or Detections.empty(), **kw)


def _bgr(rgb: tuple[int, int, int]) -> np.ndarray:
    return np.array(rgb[::-1])


# --- renderer ----------------------------------------------------------------------------------


def test_a_box_is_drawn_in_its_class_colour_where_it_is() -> None:
    live = _live(detections=_detections((100, 80, 300, 280), class_id=3))
    image = render(live, BOXES_ONLY, (640, 360))
    colour = _bgr(class_colour(3))
    for x, y in ((100, 180), (300, 180), (200, 80), (200, 280)):  # the four edges' middles
        assert (image[y, x] == colour).all(), (x, y, image[y, x])
    assert (image[180, 200] == BACKGROUND).all()  # inside: untouched
    assert (image[10, 10] == BACKGROUND).all()


def test_the_box_follows_a_resize_and_survives_jpeg() -> None:
    live = _live(detections=_detections((100, 80, 300, 280), class_id=0))
    size = output_size(640, 360, 720, 720)
    assert size == (1280, 720)
    image = render(live, BOXES_ONLY, size)
    decoded = cv2.imdecode(np.frombuffer(encode_jpeg(image, 90), np.uint8), cv2.IMREAD_COLOR)
    # the left edge is at x = 200 in the doubled picture
    assert np.abs(decoded[360, 200].astype(int) - _bgr(class_colour(0))).max() < 40
    assert np.abs(decoded[360, 400].astype(int) - BACKGROUND).max() < 10


def test_colours_are_fixed_per_class_and_documented() -> None:
    assert class_colour(0) == (255, 56, 56)
    assert class_colour(20) == class_colour(0)
    assert len({class_colour(c) for c in range(20)}) == 20


def test_nothing_is_drawn_when_every_part_is_off() -> None:
    masks = np.array([InstanceMask(100, 80, np.ones((200, 200), bool))], object)
    det = _detections((100, 80, 300, 280))
    det = Detections(det.xyxy, det.confidence, det.class_id, det.tracker_id, {MASKS: masks})
    image = render(_live(detections=det), NOTHING, (640, 360))
    assert (image == BACKGROUND).all()


def test_labels_timestamp_and_masks_draw_where_expected() -> None:
    masks = np.array([InstanceMask(100, 80, np.ones((200, 200), bool))], object)
    det = _detections((100, 80, 300, 280), class_id=5)
    det = Detections(det.xyxy, det.confidence, det.class_id, det.tracker_id, {MASKS: masks})
    only_masks = Overlay(bbox=False, labels=False, masks=True, zones=False, timestamp=False)
    image = render(_live(detections=det), only_masks, (640, 360))
    expected = BACKGROUND * 0.55 + _bgr(class_colour(5)) * 0.45
    assert np.abs(image[180, 200].astype(int) - expected).max() <= 1
    assert (image[10, 10] == BACKGROUND).all()

    labels = render(_live(detections=det), Overlay(bbox=False, masks=False, zones=False,
                                                  timestamp=False), (640, 360))  # fmt: skip
    above = labels[70:79, 100:130]  # the label sits on top of the box, in the class colour
    assert (above == _bgr(class_colour(5))).all(axis=2).mean() > 0.5
    stamp = render(_live(), Overlay(bbox=False, labels=False, masks=False, zones=False),
                   (640, 360))  # fmt: skip
    assert (stamp[0:20, 0:200] != BACKGROUND).any()  # top left: black box, white text
    assert (stamp[200:, :] == BACKGROUND).all()


def test_zones_lines_and_a_raised_crowding_zone() -> None:
    config = AnalyticsConfig.model_validate(
        {
            "coordinates": "normalized",
            "lines": [{"name": "door", "line": [[0.5, 0.1], [0.5, 0.9]]}],
            "crowding": [
                {
                    "name": "hall",
                    "polygon": [[0.05, 0.5], [0.3, 0.5], [0.3, 0.95]],
                    "threshold": 2,
                }
            ],
        }
    )
    counts = AnalyticsCounts(
        lines={"door": {"in": {"0": 3}, "out": {"0": 1, "1": 1}}},
        crowding={"hall": {"count": 2, "raised": 1, "episodes": 1}},
        dwell={},
        rois={},
    )
    zones = Overlay(bbox=False, labels=False, masks=False, zones=True, timestamp=False)
    image = render(_live(counts=counts), zones, (640, 360), config)
    assert (image[100, 320] == _bgr(ZONE_COLOURS["line"])).all()  # the line at x = 0.5
    inside = image[300, 150].astype(int)  # inside the raised zone: tinted red
    assert inside[2] > BACKGROUND + 40
    assert inside[1] < BACKGROUND + 10
    assert (render(_live(counts=counts), NOTHING, (640, 360), config) == BACKGROUND).all()


def test_nv12_and_gpu_frames_are_brought_to_the_host() -> None:
    rgb = np.zeros((64, 96, 3), np.uint8)
    rgb[:] = (200, 60, 30)
    nv12 = to_nv12(rgb)

    class FakeCudaTensor:  # what Frame and the renderer use of a torch tensor
        def __init__(self, array: np.ndarray) -> None:
            self.array, self.shape, self.dtype, self.device = array, array.shape, "uint8", "cuda"
            self.copies = 0

        def cpu(self) -> FakeCudaTensor:
            self.copies += 1
            return self

        def numpy(self) -> np.ndarray:
            return self.array

    tensor = FakeCudaTensor(nv12)
    frame = Frame("gpu", 0, None, time.time(), time.monotonic(), tensor, PixelFormat.NV12)
    assert frame.on_gpu
    assert (frame.width, frame.height) == (96, 64)
    out = to_host_bgr(frame, (48, 32))
    assert out.shape == (32, 48, 3)
    assert np.abs(out[16, 24].astype(int) - _bgr((200, 60, 30))).max() < 12
    assert tensor.copies == 1


def test_grid_matches_deepstream_apps_tiler() -> None:
    assert [grid(n) for n in (1, 2, 3, 4, 5, 9, 10, 16)] == [
        (1, 1), (1, 2), (1, 3), (2, 2), (2, 3), (3, 3), (3, 4), (4, 4)
    ]  # fmt: skip


# --- tap ---------------------------------------------------------------------------------------


class _Untouchable(list):
    """A batch that fails the test if anything reads it."""

    def __iter__(self):
        raise AssertionError("the tap read a batch nobody watches")

    def __reversed__(self):
        raise AssertionError("the tap read a batch nobody watches")


def _result(sid: str = "cam", number: int = 0) -> FrameResult:
    return FrameResult(_frame(sid, number, 64, 36), _detections((1, 1, 5, 5)))


def test_with_no_watcher_a_batch_costs_nothing() -> None:
    calls = []
    tap = FrameTap(counts_of=lambda sid: calls.append(sid))
    tap.observe(_Untouchable([_result()]), [])
    assert calls == []
    assert tap.watched == []


async def test_latest_wins_and_only_watched_streams_are_kept() -> None:
    tap = FrameTap()
    with tap.watching(["cam"]) as (watch,):
        for n in range(5):
            tap.observe([_result("cam", n), _result("other", n)], [])
        assert tap.watched == ["cam"]
        live = await watch.next(0, 1.0)
        assert live is not None
        assert live.frame.frame_number == 4
        assert live.seq == 5
        assert await watch.next(live.seq, 0.05) is None  # nothing newer: waits, times out
        tap.observe([_result("cam", 5), _result("cam", 6)], [])  # one batch, two frames
        newest = await watch.next(live.seq, 1.0)
        assert newest is not None
        assert newest.frame.frame_number == 6
    assert tap.watched == []
    tap.observe([_result("cam", 7)], [])
    assert watch.latest is newest  # a watch nobody holds gets nothing more


async def test_a_viewer_is_woken_from_the_chain_thread_without_polling() -> None:
    tap = FrameTap()
    with tap.watching(["cam"]) as (watch,):
        waiting = asyncio.ensure_future(watch.next(0))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        threading.Thread(target=tap.observe, args=([_result("cam", 9)], [])).start()
        live = await asyncio.wait_for(waiting, 2)
        assert live is not None
        assert live.frame.frame_number == 9


async def test_a_slow_viewer_never_blocks_or_queues_the_publisher() -> None:
    tap = FrameTap()
    loop = asyncio.get_running_loop()
    scheduled = []
    real = loop.call_soon_threadsafe

    def counting(*args, **kwargs):
        scheduled.append(args[0])
        return real(*args, **kwargs)

    loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
    try:
        with tap.watching(["cam"]) as (watch,):
            # The viewer is "busy" (never reads) while the chain publishes 2000 batches from
            # its own thread: each publish returns at once and at most one wake-up waits.
            results = [[_result("cam", n)] for n in range(2000)]
            took: list[float] = []

            def chain() -> None:
                start = time.perf_counter()
                for batch in results:
                    tap.observe(batch, [])
                took.append(time.perf_counter() - start)

            thread = threading.Thread(target=chain)
            thread.start()
            thread.join(10)
            assert took, "the chain thread did not finish"
            assert took[0] / 2000 < 0.001, took  # well under a millisecond each
            assert len(scheduled) == 1  # the loop never ran: one pending wake-up, no queue
            live = await watch.next(0, 1)
            assert live is not None
            assert live.frame.frame_number == 1999
    finally:
        loop.call_soon_threadsafe = real  # type: ignore[method-assign]


async def test_stream_removal_ends_viewers_and_frees_state() -> None:
    tap = FrameTap()
    with tap.watching(["cam"]) as (watch,), tap.watching(["cam"]) as (same,):
        assert same is watch
        tap.observe([_result("cam")], [])
        waiting = asyncio.ensure_future(watch.next(watch.latest.seq))
        await asyncio.sleep(0)
        tap.stream_removed("cam")
        with pytest.raises(StreamGoneError):
            await asyncio.wait_for(waiting, 2)
        assert tap.watched == []
        assert watch.latest is None
        tap.observe([_result("cam")], [])  # frames still in flight: dropped
        assert watch.latest is None
        # the id comes back (a new stream): a new watch, not the dead one
        with tap.watching(["cam"]) as (fresh,):
            assert fresh is not watch
            assert tap.watched == ["cam"]
    assert tap.watched == []
    assert tap.viewer_count == 0


async def test_churn_leaves_nothing_behind() -> None:
    tap = FrameTap()
    for i in range(200):
        sid = f"s{i % 7}"
        with tap.watching([sid], viewer=True):
            tap.observe([_result(sid, i)], [])
            if i % 3 == 0:
                tap.stream_removed(sid)
    assert tap.watched == []
    assert tap.viewer_count == 0
    assert tap.metrics.viewers._value.get() == 0


async def test_viewer_limits() -> None:
    tap = FrameTap(max_viewers_per_stream=2, max_viewers=3)
    with tap.watching(["a"], viewer=True), tap.watching(["a"], viewer=True):
        with pytest.raises(ViewerLimitError, match="max_viewers_per_stream"):
            tap.check_room(["a"])
        with tap.watching(["a"]):  # a snapshot is not a viewer
            pass
        with (
            tap.watching(["b"], viewer=True),
            pytest.raises(ViewerLimitError, match="max_viewers = 3"),
        ):
            tap.check_room(["c"])
    assert tap.viewer_count == 0


# --- views -------------------------------------------------------------------------------------


async def test_mjpeg_sends_each_frame_once_at_most_fps_and_ends_on_removal() -> None:
    tap = FrameTap()
    view = LiveView(tap, lambda _: None)
    request = View(BOXES_ONLY, None, 4.0, 80, 720)
    body = view.mjpeg("cam", request)
    assert await anext(body) == b"--frame\r\n"
    getting = asyncio.ensure_future(anext(body))
    await asyncio.sleep(0.05)
    assert not getting.done()  # no frame yet: waits
    tap.observe([_result("cam", 1)], [])
    first = await asyncio.wait_for(getting, 5)
    assert first.startswith(b"Content-Type: image/jpeg\r\nContent-Length: ")
    assert first.endswith(b"\r\n--frame\r\n")
    jpeg = first.split(b"\r\n\r\n", 1)[1][: -len(b"\r\n--frame\r\n")]
    assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (36, 64, 3)
    start = time.monotonic()
    getting = asyncio.ensure_future(anext(body))
    tap.observe([_result("cam", 2)], [])
    await asyncio.wait_for(getting, 5)
    # 4 fps: on the shared 250 ms ticks, at least half a tick after the first part
    assert time.monotonic() - start >= 0.12
    getting = asyncio.ensure_future(anext(body))
    await asyncio.sleep(0.1)
    tap.stream_removed("cam")
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(getting, 5)
    assert tap.viewer_count == 0
    assert tap.watched == []


async def test_viewers_of_a_stream_at_one_rate_share_the_rendering_of_each_frame() -> None:
    tap = FrameTap()
    view = LiveView(tap, lambda _: None)
    request = View(BOXES_ONLY, None, 20.0, 80, 720)
    viewers = [view.mjpeg("cam", request), view.mjpeg("cam", request)]
    for body in viewers:
        assert await anext(body) == b"--frame\r\n"
    rendered = tap.metrics.frames_rendered._value.get()
    parts = 0

    async def read(body, delay: float) -> None:
        nonlocal parts
        await asyncio.sleep(delay)  # viewers connect at different moments
        for _ in range(6):
            await anext(body)
            parts += 1

    async def publish() -> None:  # a stream faster than the viewers' 20 fps
        number = 0
        while True:
            number += 1
            tap.observe([_result("cam", number)], [])
            await asyncio.sleep(0.007)

    publisher = asyncio.ensure_future(publish())
    try:
        await asyncio.wait_for(asyncio.gather(read(viewers[0], 0), read(viewers[1], 0.023)), 10)
    finally:
        publisher.cancel()
        for body in viewers:
            await body.aclose()
    drawn = tap.metrics.frames_rendered._value.get() - rendered
    assert parts == 12
    assert drawn <= 8, f"{drawn} renderings for {parts} parts: the viewers do not share"


def test_ticks_are_shared_and_never_closer_than_half_an_interval() -> None:
    assert next_tick(10.01, 0.1) == pytest.approx(10.1)
    assert next_tick(10.07, 0.1) == pytest.approx(10.2)
    assert next_tick(10.1000001, 0.1) == pytest.approx(10.2)


async def test_snapshot_waits_a_bounded_time_and_tiles_show_placeholders() -> None:
    tap = FrameTap()
    view = LiveView(tap, lambda _: None, snapshot_timeout_s=0.1)
    request = View(BOXES_ONLY, 180, 10.0, 80, 720)
    assert await view.snapshot("cam", request) is None
    assert tap.watched == []

    async def publish_soon() -> None:
        await asyncio.sleep(0.05)
        tap.observe([FrameResult(_frame("cam"), _detections((100, 80, 300, 280), class_id=0))], [])

    publisher = asyncio.ensure_future(publish_soon())
    view.snapshot_timeout_s = 2
    data = await view.snapshot("cam", request)
    await publisher
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (180, 320, 3)
    assert np.abs(image[90, 50].astype(int) - _bgr(class_colour(0))).max() < 60

    view.snapshot_timeout_s = 0.1
    tiled = await view.tiled_snapshot(["cam", "none"], View(NOTHING, 360, 10.0, 80, 720))
    picture = cv2.imdecode(np.frombuffer(tiled, np.uint8), cv2.IMREAD_COLOR)
    assert picture.shape == (360, 640, 3)  # 16:9, one row of two tiles
    assert (np.abs(picture[180, 480].astype(int) - 48) < 8).all()  # placeholder grey
