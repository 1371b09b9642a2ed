import pytest

from vigil.pipeline.stream_state import (
    IllegalTransitionError,
    LatencyWindow,
    StreamState,
    StreamStatus,
)

S = StreamState


def test_stream_lifecycle_normal_path():
    status = StreamStatus("cam", "file.mp4")
    status.transition(S.RUNNING)
    status.transition(S.STOPPED, "end of stream")
    assert status.state is S.STOPPED
    assert status.reason == "end of stream"


def test_stream_lifecycle_reconnect_path_records_last_error():
    status = StreamStatus("cam", "rtsp://x")
    status.transition(S.RUNNING)
    status.transition(S.RECONNECTING, "stream ended (disconnected)")
    status.transition(S.RUNNING)
    assert status.last_error == "stream ended (disconnected)"
    status.transition(S.STOPPED)
    status.transition(S.STARTING)


@pytest.mark.parametrize(
    ("path", "illegal"),
    [
        ([S.ERROR], S.RUNNING),
        ([S.RUNNING, S.STOPPED], S.RUNNING),
        ([S.RUNNING], S.STARTING),
        ([S.STOPPED], S.RECONNECTING),
    ],
)
def test_stream_transition_when_not_allowed_raises(path, illegal):
    status = StreamStatus("cam", "x")
    for state in path:
        status.transition(state)
    with pytest.raises(IllegalTransitionError, match="cannot go from"):
        status.transition(illegal)
    assert not status.try_transition(illegal)


def test_transition_if_checks_the_current_state():
    status = StreamStatus("cam", "x")
    assert not status.transition_if({S.RECONNECTING}, S.RUNNING)
    assert status.transition_if({S.STARTING}, S.RUNNING)
    assert status.state is S.RUNNING


def test_stream_stats_latency_percentiles():
    status = StreamStatus("cam", "x")
    assert status.stats.latency_percentile_ms(50) is None
    for latency in [0.010] * 98 + [0.5, 0.5]:
        status.stats.latencies_s.append(latency)
    assert status.stats.latency_percentile_ms(50) == pytest.approx(10)
    assert status.stats.latency_percentile_ms(99) == pytest.approx(500)


def test_latency_window_keeps_the_last_frames_in_fixed_memory():
    window = LatencyWindow(size=100)
    before = window._values.nbytes
    for _ in range(1000):
        window.append(5.0)  # an old, slow phase...
    for _ in range(100):
        window.append(0.02)  # ...entirely overwritten by the last 100 frames
    assert len(window) == 100
    assert window.percentile_ms(100) == pytest.approx(20)
    assert window._values.nbytes == before
