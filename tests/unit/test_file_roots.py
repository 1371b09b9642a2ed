"""sources.file_roots: client file streams confined, with '..' and links resolved."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil.pipeline.manager import StreamManager
from vigil.sources.confine import FileNotAllowedError, FileRoots
from vigil.specs import StreamSpec


def spec(url: str) -> StreamSpec:
    return StreamSpec(id="cam", url=url)


@pytest.fixture
def media(tmp_path: Path) -> Path:
    root = tmp_path / "media"
    root.mkdir()
    (root / "clip.mp4").write_bytes(b"x")
    (root / "with space.mp4").write_bytes(b"x")
    (tmp_path / "secret.mp4").write_bytes(b"x")
    return root


def test_files_under_a_root_pass(media: Path) -> None:
    roots = FileRoots([media])
    roots.check(spec((media / "clip.mp4").as_uri()))
    roots.check(spec((media / "with space.mp4").as_uri()))  # percent-encoded in the URL
    roots.check(spec((media / "not-there-yet.mp4").as_uri()))  # existence is the source's job


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/shadow",
        "file://localhost/etc/passwd",
        "MEDIA/../secret.mp4",
        "MEDIA/%2E%2E/secret.mp4",
        "MEDIA/sub/../../secret.mp4",
    ],
)
def test_files_outside_every_root_are_refused(media: Path, url: str) -> None:
    url = url.replace("MEDIA", media.as_uri())
    with pytest.raises(FileNotAllowedError, match=r"^url: .*sources\.file_roots"):
        FileRoots([media]).check(spec(url))


def test_a_link_inside_a_root_to_a_file_outside_is_refused(media: Path) -> None:
    (media / "link.mp4").symlink_to(media.parent / "secret.mp4")
    (media / "dir-link").symlink_to(media.parent)
    roots = FileRoots([media])
    for url in [(media / "link.mp4").as_uri(), (media / "dir-link" / "secret.mp4").as_uri()]:
        with pytest.raises(FileNotAllowedError):
            roots.check(spec(url))


def test_a_root_that_is_a_link_is_resolved(media: Path, tmp_path: Path) -> None:
    (tmp_path / "media-link").symlink_to(media)
    FileRoots([tmp_path / "media-link"]).check(spec((media / "clip.mp4").as_uri()))


def test_a_sibling_with_the_root_as_prefix_is_not_under_it(media: Path) -> None:
    sibling = media.parent / "media-other"
    sibling.mkdir()
    with pytest.raises(FileNotAllowedError):
        FileRoots([media]).check(spec((sibling / "clip.mp4").as_uri()))


def test_no_roots_refuse_every_file_and_other_schemes_always_pass() -> None:
    with pytest.raises(FileNotAllowedError, match="no directory is allowed"):
        FileRoots([]).check(spec("file:///tmp/clip.mp4"))
    FileRoots([]).check(spec("rtsp://camera.local/stream"))
    FileRoots([]).check(spec("test://pattern"))


def test_default_roots_are_the_configured_file_streams_directories(media: Path) -> None:
    roots = FileRoots.of_streams(
        [spec((media / "clip.mp4").as_uri()), spec("rtsp://camera.local/s")]
    )
    assert roots.roots == (media.resolve(),)


async def test_the_manager_refuses_a_client_file_outside_the_roots(media: Path) -> None:
    manager = StreamManager(None, None, None, file_roots=FileRoots([media]))  # type: ignore[arg-type]
    with pytest.raises(FileNotAllowedError):
        await manager.add(spec("file:///etc/shadow"))
    assert len(manager.list()) == 0
