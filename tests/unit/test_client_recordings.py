"""VigilClient's recording calls against a fake of the recordings API (it follows the agreed
contract, and can break a download or ignore Range on demand): requests, results, errors, and
the download with resume through HTTP Range. tests/integration/test_client_api.py runs the
calls against the real server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from tests.support.fake_recordings import T0, FakeRecordingsServer
from vigil_client import (
    ConflictError,
    ConnectionFailed,
    NotFoundError,
    RecordingInfo,
    ValidationError,
    VigilClient,
    VigilError,
)

BASE_URL = "http://vigil.test:8080"
CLIP = bytes(range(256)) * 40  # 10 KiB that show any misplaced byte


@pytest.fixture
def fake() -> FakeRecordingsServer:
    return FakeRecordingsServer(streams=("cam-1", "cam-2"))


@pytest.fixture
def client(fake: FakeRecordingsServer) -> VigilClient:
    with VigilClient(BASE_URL, transport=fake.transport()) as vigil:
        yield vigil


def body_of(request: httpx.Request) -> dict:
    return json.loads(request.content)


# --------------------------------------------------------------------------- start / stop


def test_start_recording_sends_only_given_fields(client, fake):
    recording = client.start_recording("cam-1", duration_s=20, pre_roll_s=5)

    assert fake.requests[-1].method == "POST"
    assert fake.requests[-1].url.path == "/api/v1/streams/cam-1/recordings"
    assert body_of(fake.requests[-1]) == {"duration_s": 20, "pre_roll_s": 5}
    assert isinstance(recording, RecordingInfo)
    assert recording.stream_id == "cam-1"
    assert recording.state == "recording"
    assert recording.start == T0
    assert recording.end == T0 + timedelta(seconds=20)
    assert recording.extended is False


def test_start_recording_with_no_arguments_sends_empty_object(client, fake):
    client.start_recording("cam-1")

    assert body_of(fake.requests[-1]) == {}


def test_start_recording_when_active_clip_is_extended(client, fake):
    first = client.start_recording("cam-1")
    second = client.start_recording("cam-1", duration_s=30)

    assert second.id == first.id
    assert second.extended is True
    assert second.end == T0 + timedelta(seconds=30)


def test_start_recording_formats_datetimes_as_iso_utc(client, fake):
    start = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    end = datetime(2026, 11, 21, 14, 0, 20, tzinfo=timezone(timedelta(hours=2)))

    client.start_recording("cam-1", start=start, end=end, post_roll_s=0)

    assert body_of(fake.requests[-1]) == {
        "start": "2026-11-21T12:00:00Z",
        "end": "2026-11-21T14:00:20+02:00",
        "post_roll_s": 0,
    }


def test_start_recording_when_datetime_is_naive_sends_nothing(client, fake):
    with pytest.raises(ValueError, match="no time zone"):
        client.start_recording("cam-1", start=datetime(2026, 11, 21, 12, 0))
    assert fake.requests == []


def test_start_recording_when_stream_unknown(client):
    with pytest.raises(NotFoundError, match="stream 'nope' not found"):
        client.start_recording("nope")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"duration_s": 0}, "duration_s"),
        ({"pre_roll_s": -1}, "pre_roll_s"),
        ({"start": "yesterday"}, "start"),
    ],
)
def test_start_recording_when_times_are_bad_names_the_field(client, kwargs, field):
    with pytest.raises(ValidationError) as caught:
        client.start_recording("cam-1", **kwargs)

    assert [e.field for e in caught.value.errors] == [field]
    assert field in str(caught.value)


def test_stop_recording_returns_the_finished_clip(client, fake):
    started = client.start_recording("cam-1")

    stopped = client.stop_recording("cam-1")

    assert fake.requests[-1].url.path == "/api/v1/streams/cam-1/recordings/stop"
    assert stopped.id == started.id
    assert stopped.state == "complete"
    assert stopped.duration_s == 5.0
    assert stopped.size_bytes == 100


def test_stop_recording_when_nothing_records(client):
    with pytest.raises(ConflictError, match="not recording") as caught:
        client.stop_recording("cam-1")
    assert caught.value.status_code == 409


# --------------------------------------------------------------------------- list / get / delete


def test_list_recordings_sends_filters_and_parses_newest_first(client, fake):
    fake.add_clip("cam-1", CLIP, minutes=0)
    newer = fake.add_clip("cam-1", CLIP, minutes=10, trigger={"kind": "rule", "rule": "door"})
    fake.add_clip("cam-2", CLIP, minutes=20)

    found = client.list_recordings(
        stream_id="cam-1", since=T0, until="2026-11-22T00:00:00Z", state="complete", limit=5
    )

    params = fake.requests[-1].url.params
    assert dict(params) == {
        "stream_id": "cam-1",
        "since": "2026-11-21T12:00:00Z",
        "until": "2026-11-22T00:00:00Z",
        "state": "complete",
        "limit": "5",
    }
    assert [r.id for r in found] == [newer.id, "rec-1"]
    assert found[0].trigger.kind == "rule"
    assert found[0].trigger.rule == "door"
    assert found[0].start == T0 + timedelta(minutes=10)
    assert found[0].size_bytes == len(CLIP)


def test_list_recordings_without_filters_sends_no_parameters(client, fake):
    assert client.list_recordings() == []
    assert str(fake.requests[-1].url) == f"{BASE_URL}/api/v1/recordings"


def test_get_recording_round_trips_server_json_with_unknown_keys(fake):
    clip = fake.add_clip("cam-1", CLIP).to_json()
    data = {**clip, "thumbnail_url": "/x.jpg"}
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=data))
    with VigilClient(BASE_URL, transport=transport) as vigil:
        recording = vigil.get_recording(clip["id"])

    assert recording.extra == {"thumbnail_url": "/x.jpg"}
    assert recording.to_dict() == data  # "extended" is the client's, not the server's


def test_get_recording_when_unknown(client):
    with pytest.raises(NotFoundError, match="recording 'rec-9' not found"):
        client.get_recording("rec-9")


def test_get_recording_when_response_is_malformed():
    bad = {"id": "rec-1", "stream_id": "cam-1", "state": "complete", "start": "soon"}
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=bad))
    with (
        VigilClient(BASE_URL, transport=transport) as vigil,
        pytest.raises(VigilError, match=r"unexpected response from GET .*rec-1"),
    ):
        vigil.get_recording("rec-1")


def test_delete_recording_when_still_recording_then_after_stop(client, fake):
    clip = client.start_recording("cam-1")

    with pytest.raises(ConflictError, match="still recording"):
        client.delete_recording(clip.id)
    client.stop_recording("cam-1")
    assert client.delete_recording(clip.id) is None
    assert fake.requests[-1].method == "DELETE"
    with pytest.raises(NotFoundError):
        client.get_recording(clip.id)


# --------------------------------------------------------------------------- download


def test_download_into_directory_names_file_after_id(client, fake, tmp_path):
    clip = fake.add_clip("cam-1", CLIP)

    result = client.download_recording(clip.id, tmp_path)

    assert result.path == tmp_path / f"{clip.id}.mp4"
    assert result.path.read_bytes() == CLIP
    assert (result.size_bytes, result.resumed_from_bytes) == (len(CLIP), 0)
    assert "Range" not in fake.requests[-1].headers
    assert list(tmp_path.iterdir()) == [result.path]  # no .part left


def test_download_when_interrupted_keeps_part_and_resumes_with_range(client, fake, tmp_path):
    clip = fake.add_clip("cam-1", CLIP)
    dest = tmp_path / "clip.mp4"
    fake.break_after = 3000

    with pytest.raises(ConnectionFailed, match="connection reset"):
        client.download_recording(clip.id, dest)
    part = tmp_path / "clip.mp4.part"
    assert part.read_bytes() == CLIP[:3000]
    assert not dest.exists()

    result = client.download_recording(clip.id, dest)

    assert fake.requests[-1].headers["Range"] == "bytes=3000-"
    assert dest.read_bytes() == CLIP
    assert (result.resumed_from_bytes, result.fetched_bytes) == (3000, len(CLIP) - 3000)
    assert not part.exists()


def test_download_when_server_ignores_range_replaces_part(client, fake, tmp_path):
    clip = fake.add_clip("cam-1", CLIP)
    dest = tmp_path / "clip.mp4"
    (tmp_path / "clip.mp4.part").write_bytes(b"stale bytes")
    fake.ignore_range = True

    result = client.download_recording(clip.id, dest)

    assert fake.requests[-1].headers["Range"] == "bytes=11-"
    assert dest.read_bytes() == CLIP
    assert result.resumed_from_bytes == 0


def test_download_when_part_is_already_complete(client, fake, tmp_path):
    clip = fake.add_clip("cam-1", CLIP)
    dest = tmp_path / "clip.mp4"
    (tmp_path / "clip.mp4.part").write_bytes(CLIP)

    result = client.download_recording(clip.id, dest)

    assert fake.requests[-1].headers["Range"] == f"bytes={len(CLIP)}-"  # answered 416
    assert dest.read_bytes() == CLIP
    assert result.resumed_from_bytes == len(CLIP)


def test_download_when_part_is_longer_than_file_starts_again(client, fake, tmp_path):
    clip = fake.add_clip("cam-1", CLIP)
    dest = tmp_path / "clip.mp4"
    (tmp_path / "clip.mp4.part").write_bytes(b"y" * (len(CLIP) + 7))

    result = client.download_recording(clip.id, dest)

    assert "Range" not in fake.requests[-1].headers
    assert dest.read_bytes() == CLIP
    assert result.resumed_from_bytes == 0


def test_download_without_resume_fetches_everything(client, fake, tmp_path):
    clip = fake.add_clip("cam-1", CLIP)
    (tmp_path / "clip.mp4.part").write_bytes(CLIP[:100])

    client.download_recording(clip.id, tmp_path / "clip.mp4", resume=False)

    assert "Range" not in fake.requests[-1].headers
    assert (tmp_path / "clip.mp4").read_bytes() == CLIP


def test_download_when_still_recording_saves_what_is_written(client, fake, tmp_path):
    clip = client.start_recording("cam-1")
    fake.clips[clip.id].data = CLIP[:2000]  # the fragments written so far

    result = client.download_recording(clip.id, tmp_path)

    assert result.complete is False
    assert result.path.read_bytes() == CLIP[:2000]


def test_recording_when_start_is_not_known_yet(client, fake):
    clip = client.start_recording("cam-1")
    data = {**fake.clips[clip.id].to_json(), "start": None, "codec": None}
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=data))
    with VigilClient(BASE_URL, transport=transport) as vigil:
        recording = vigil.get_recording(clip.id)

    assert (recording.start, recording.codec) == (None, "")


def test_download_when_unknown(client, tmp_path):
    with pytest.raises(NotFoundError):
        client.download_recording("rec-9", tmp_path)


def test_download_when_range_answer_starts_elsewhere_starts_again(tmp_path):
    """A 206 that does not continue the partial file must not be appended to it."""
    clip = {**FakeRecordingsServer().add_clip("cam-1", CLIP).to_json(), "id": "rec-1"}
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if not request.url.path.endswith("/file"):
            return httpx.Response(200, json=clip)
        if "Range" in request.headers:
            headers = {"Content-Range": f"bytes 0-99/{len(CLIP)}"}
            return httpx.Response(206, headers=headers, content=CLIP[:100])
        return httpx.Response(200, content=CLIP)

    (tmp_path / "c.mp4.part").write_bytes(CLIP[:50])
    with VigilClient(BASE_URL, transport=httpx.MockTransport(handler)) as vigil:
        result = vigil.download_recording("rec-1", tmp_path / "c.mp4")

    assert [r.headers.get("Range") for r in seen[1:]] == ["bytes=50-", None]
    assert (tmp_path / "c.mp4").read_bytes() == CLIP
    assert result.resumed_from_bytes == 0


def test_download_when_destination_cannot_be_written(client, fake, tmp_path: Path):
    clip = fake.add_clip("cam-1", CLIP)
    missing_dir = tmp_path / "no" / "such" / "dir" / "clip.mp4"

    with pytest.raises(VigilError, match="cannot write") as caught:
        client.download_recording(clip.id, missing_dir)
    assert caught.value.path == missing_dir.with_name("clip.mp4.part")
