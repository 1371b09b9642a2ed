import pytest

from vigil.pipeline.stream import IllegalTransitionError, StreamState, StreamStatus


def test_stream_lifecycle_normal_path():
    status = StreamStatus("cam", "file.mp4")
    status.transition(StreamState.RUNNING)
    status.transition(StreamState.STOPPED, "end of stream")
    assert status.state is StreamState.STOPPED
    assert status.reason == "end of stream"


@pytest.mark.parametrize(
    ("path", "illegal"),
    [
        ([StreamState.ERROR], StreamState.RUNNING),
        ([StreamState.RUNNING, StreamState.STOPPED], StreamState.RUNNING),
        ([StreamState.RUNNING], StreamState.STARTING),
    ],
)
def test_stream_transition_when_not_allowed_raises(path, illegal):
    status = StreamStatus("cam", "x")
    for state in path:
        status.transition(state)
    with pytest.raises(IllegalTransitionError, match="cannot go from"):
        status.transition(illegal)
    assert not status.try_transition(illegal)


def test_stream_stats_latency_percentiles():
    status = StreamStatus("cam", "x")
    assert status.stats.latency_percentile_ms(50) is None
    status.stats.latencies_s.extend([0.010] * 98 + [0.5, 0.5])
    assert status.stats.latency_percentile_ms(50) == pytest.approx(10)
    assert status.stats.latency_percentile_ms(99) == pytest.approx(500)
