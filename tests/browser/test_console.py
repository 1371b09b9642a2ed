"""The web console in real headless Chromium against a real `vigil serve` (real Triton).

The service runs the exact synthetic detector (tests/support/synthetic_detector.py) on a
rendered clip: a green rectangle that stands still (so its box is at a known place) and a
blue one that moves (so the picture changes). Keys are on and reads are protected, so the
console must ask for the key and everything it shows — the MJPEG tiles, the event feed, the
video — goes through the session cookie. Every test ends with the browser's log free of
JavaScript errors; screenshots are kept in test-artifacts/console/.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from tests.integration.helpers import ServiceProcess, wait_for
from tests.support.scenes import Mover, Scene, render
from tests.support.synthetic_detector import NAME, write_detector

pytestmark = pytest.mark.integration

KEY = "console-test-key"
WIDTH, HEIGHT, FPS = 320, 192, 5
STILL = (200, 60, 240, 140)  # the green rectangle's box (x1, y1, x2, y2), source pixels
PERSON_BOX_RGB = (255, 56, 56)  # class 0's box colour (docs/live-view.md: CLASS_COLOURS[0])


def _scene() -> Scene:
    duration = 240.0
    x1, y1, x2, y2 = STILL
    still = Mover(1, (x2 - x1, y2 - y1), [(0.0, x1, y1), (duration, x1, y1)])
    path = [(t, 10.0 if (t // 4) % 2 == 0 else 150.0, 100.0) for t in range(0, int(duration), 4)]
    moving = Mover(2, (24, 48), path)
    return Scene(width=WIDTH, height=HEIGHT, fps=FPS, duration_s=duration, movers=[still, moving])


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceProcess, Any]]:
    base = tmp_path_factory.mktemp("console")
    repository = base / "repository"
    write_detector(repository, WIDTH, HEIGHT)
    # the same detector again as version 2: something to swap to in the models view
    shutil.copytree(repository / NAME / "1", repository / NAME / "2")
    clip = base / "scene.mp4"
    render(_scene(), clip)
    config = {
        # its own state: the swap it makes and the clips it records stay in the test's dir
        "data_dir": str(base / "data"),
        "triton": {"model_repository": str(repository)},
        "model": {"name": NAME, "version": 1},
    }
    env = {"VIGIL_API__API_KEYS": f'["{KEY}"]', "VIGIL_API__PROTECT_READS": "true"}
    with (
        ServiceProcess(base, config, **env) as svc,
        httpx.Client(base_url=svc.url, headers={"X-API-Key": KEY}, timeout=30) as api,
    ):
        body = {"id": "cam", "url": clip.as_uri(), "max_fps": FPS}
        added = api.post("/api/v1/streams", json=body)
        assert added.status_code == 201, added.text
        yield svc, api


@pytest.fixture(scope="module")
def console(service, chromium, artifacts: Path) -> Iterator[Any]:
    """The console loaded and signed in with the key (the sign-in dialog is asserted)."""
    svc, _ = service
    driver = chromium
    driver.get(svc.url + "/")
    dialog = _wait(driver, lambda: _visible(driver, "#key-dialog"), 30, "the key dialog")
    assert dialog
    driver.find_element("id", "key-input").send_keys(KEY)
    driver.find_element("id", "key-ok").click()
    _wait(driver, lambda: not _visible(driver, "#key-dialog"), 15, "the dialog to close")
    _wait(driver, lambda: driver.execute_script("return document.body.dataset.ready"), 30, "ready")
    yield driver
    _shot(driver, artifacts, "last")


# --- helpers ---------------------------------------------------------------------------------


def _wait(driver, predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = predicate()
        except StaleElementReferenceException:  # a refresh replaced the element: look again
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            message = driver.execute_script(
                "const m = document.getElementById('messages');"
                "return m && !m.hidden ? m.textContent.trim() : ''"
            )
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}; page says: {message!r}")
        time.sleep(0.25)


def _click(driver, selector: str) -> None:
    """Click the element ``selector`` names (found again if a refresh replaced it)."""
    from selenium.common.exceptions import StaleElementReferenceException

    def click() -> bool:
        try:
            driver.find_element("css selector", selector).click()
        except StaleElementReferenceException:
            return False
        return True

    _wait(driver, click, 10, f"a click on {selector}")


def _cells(driver, row: str) -> list[str]:
    """The texts of the first row ``row`` names, read at once (refreshes replace rows)."""
    return driver.execute_script(
        "const r = document.querySelector(arguments[0]);"
        "return r ? [...r.cells].map(c => c.textContent.trim()) : []",
        row,
    )


def _visible(driver, selector: str) -> bool:
    return bool(
        driver.execute_script(
            "const e = document.querySelector(arguments[0]);"
            "return !!e && (e.tagName === 'DIALOG' ? e.open : e.offsetParent !== null)",
            selector,
        )
    )


def _tab(driver, name: str) -> None:
    driver.find_element("css selector", f"#tabs button[data-view='{name}']").click()


def _shot(target, artifacts: Path, name: str) -> np.ndarray:
    """Save a PNG screenshot of the page or an element; returns its pixels (RGB)."""
    grab = getattr(target, "get_screenshot_as_png", None)  # the page (a WebElement: a property)
    png = grab() if grab is not None else target.screenshot_as_png
    (artifacts / f"{name}.png").write_bytes(png)
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _metric(api, name: str) -> float:
    for line in api.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not exported")


def _console_errors(driver, allowed: tuple[str, ...] = ()) -> list[str]:
    """SEVERE entries of the browser log (JS errors, failed loads) not expected by the test."""
    return [
        f"{e['source']}: {e['message']}"
        for e in driver.get_log("browser")
        if e["level"] == "SEVERE" and not any(a in e["message"] for a in allowed)
    ]


def _has_colour(image: np.ndarray, x: float, y: float, rgb: tuple[int, ...], radius: int = 4):
    """Whether a pixel near (x, y) is within 60 of ``rgb`` on every channel (JPEG, scaling)."""
    h = image.shape[0]
    xs, ys = round(x), round(y)
    window = image[
        max(0, ys - radius) : min(h, ys + radius + 1), max(0, xs - radius) : xs + radius + 1
    ]
    close = np.all(np.abs(window.astype(int) - np.array(rgb)) <= 60, axis=2)
    return bool(close.any())


# --- tests -------------------------------------------------------------------------------------


def test_console_asks_for_the_key_shows_the_streams_and_swaps_models(
    console, service, artifacts
) -> None:
    driver = console
    _, api = service
    assert "signed in" in driver.find_element("id", "auth-state").text
    row = "#streams-table tr[data-stream='cam']"
    _wait(driver, lambda: driver.find_elements("css selector", row), 20, "the stream row")

    def running_with_fps() -> list[str] | None:
        cells = _cells(driver, row)
        return cells if cells[2] == "running" and float(cells[3]) > 0 else None

    cells = _wait(driver, running_with_fps, 60, "cam running with fps > 0")
    assert int(cells[4]) > 0, cells  # frames processed
    assert cells[6] == "0", cells  # reconnects
    _shot(driver, artifacts, "streams")

    _tab(driver, "models")
    _wait(
        driver,
        lambda: f"Serving {NAME} version 1" in driver.find_element("id", "models-serving").text,
        30,
        "the serving model",
    )
    version_two = f".model[data-model='{NAME}'] tr[data-version='2']"
    _click(driver, f"{version_two} button")
    _wait(
        driver,
        lambda: f"Serving {NAME} version 2" in driver.find_element("id", "models-serving").text,
        90,
        "the swap to version 2",
    )
    assert driver.find_elements("css selector", f"{version_two}.serving")
    _shot(driver, artifacts, "models-swapped")
    rollback = driver.find_element("id", "models-rollback")
    _wait(driver, rollback.is_enabled, 10, "the rollback button")
    rollback.click()
    _wait(
        driver,
        lambda: f"Serving {NAME} version 1" in driver.find_element("id", "models-serving").text,
        90,
        "the rollback to version 1",
    )
    assert api.get("/api/v1/models").json()["serving"] == {"model": NAME, "version": 1}
    _shot(driver, artifacts, "models")
    assert _console_errors(driver) == []


def test_live_tile_updates_and_draws_the_box_in_its_colour(console, service, artifacts) -> None:
    driver = console
    _, api = service
    _tab(driver, "live")
    tile = "#tiles img[data-stream='cam']"
    _wait(
        driver,
        lambda: driver.execute_script(
            "const i = document.querySelector(arguments[0]); return i && i.naturalWidth > 0", tile
        ),
        60,
        "the live tile's first frame",
    )
    img = driver.find_element("css selector", tile)
    time.sleep(1.0)  # a few frames in: the detector has found both rectangles
    first = _shot(img, artifacts, "live-tile-1")
    time.sleep(1.5)
    second = _shot(img, artifacts, "live-tile-2")
    assert first.shape == second.shape
    assert np.abs(first.astype(int) - second.astype(int)).max() > 40, "the tile did not change"

    h, w = second.shape[:2]
    sx, sy = w / WIDTH, h / HEIGHT
    x1, y1, x2, y2 = STILL
    for name, (x, y) in {
        "bottom edge": ((x1 + x2) / 2, y2),
        "left edge": (x1, (y1 + y2) / 2),
        "right edge": (x2, (y1 + y2) / 2),
    }.items():
        assert _has_colour(second, x * sx, y * sy, PERSON_BOX_RGB), f"no box colour on the {name}"
    assert not _has_colour(second, 300 * sx, 180 * sy, PERSON_BOX_RGB, radius=8), "control spot"
    _shot(driver, artifacts, "live")
    assert _metric(api, "vigil_live_viewers") == 1

    # Another view: the tile's connection closes, and nobody watching means no drawing.
    _tab(driver, "streams")
    assert wait_for(lambda: _metric(api, "vigil_live_viewers") == 0, 15)
    assert _console_errors(driver) == []


def test_event_feed_receives_the_streams_events(console, artifacts) -> None:
    driver = console
    _tab(driver, "events")
    _wait(
        driver,
        lambda: driver.find_element("id", "events-status").text == "connected",
        20,
        "the event feed to connect",
    )
    rows = "#events-table tbody tr"
    _wait(driver, lambda: len(driver.find_elements("css selector", rows)) >= 5, 30, "events")
    first = _cells(driver, rows)
    assert first[1] == "cam"
    assert first[2] in {"entry", "moving", "stopped", "exit", "detection"}, first
    assert first[3].startswith("person"), first
    _shot(driver, artifacts, "events")
    assert _console_errors(driver) == []


def test_recording_started_in_the_console_plays_in_the_page(console, service, artifacts) -> None:
    driver = console
    _, api = service
    _tab(driver, "recordings")
    _wait(
        driver,
        lambda: driver.execute_script(
            "return [...document.getElementById('record-stream').options]"
            ".some(o => o.value === 'cam')"
        ),
        20,
        "the stream in the recording form",
    )
    before = {r["id"] for r in api.get("/api/v1/recordings").json()["recordings"]}
    duration = driver.find_element("id", "record-duration")
    duration.clear()
    duration.send_keys("3")
    driver.find_element("id", "record-start").click()

    def new_complete_clip() -> str | None:
        ids = driver.execute_script(
            "return [...document.querySelectorAll(\"#recordings-table tr[data-state='complete']\")]"
            ".map(r => r.dataset.recording)"
        )
        return next((i for i in ids if i not in before), None)

    recording_id = _wait(driver, new_complete_clip, 60, "the new recording to complete")
    row = f"#recordings-table tr[data-recording='{recording_id}']"
    # The clip's `recording` event reached the event feed (opened by the events test).
    _tab(driver, "events")
    _wait(
        driver,
        lambda: (
            recording_id
            in driver.execute_script(
                "const r = document.querySelector(\"#events-table tr[data-type='recording']\");"
                "return r ? r.textContent : ''"
            )
        ),
        20,
        "the recording event in the feed",
    )
    _tab(driver, "recordings")
    _click(driver, f"{row} button.play")
    _wait(
        driver,
        lambda: driver.execute_script(
            "const v = document.getElementById('player-video');"
            "return v.readyState >= 2 && v.currentTime > 0.5"
        ),
        30,
        "the video to play",
    )
    _shot(driver, artifacts, "recording")
    assert api.get(f"/api/v1/recordings/{recording_id}").status_code == 200

    _click(driver, f"{row} button.delete")
    _wait(
        driver,
        lambda: not driver.find_elements("css selector", row),
        20,
        "the deleted recording to leave the list",
    )
    assert api.get(f"/api/v1/recordings/{recording_id}").status_code == 404
    assert _console_errors(driver) == []


def _click_at(driver, canvas, x: float, y: float) -> None:
    """Click the canvas at source pixel (x, y) (Selenium offsets are from its centre)."""
    from selenium.webdriver import ActionChains

    rect = canvas.rect
    dx = x * rect["width"] / WIDTH - rect["width"] / 2
    dy = y * rect["height"] / HEIGHT - rect["height"] / 2
    ActionChains(driver).move_to_element_with_offset(canvas, round(dx), round(dy)).click().perform()


def test_line_drawn_in_the_editor_changes_the_streams_analytics(
    console, service, artifacts
) -> None:
    driver = console
    _, api = service
    _tab(driver, "analytics")
    canvas = driver.find_element("id", "editor-canvas")
    _wait(
        driver,
        lambda: driver.execute_script("return arguments[0].width", canvas) == WIDTH,
        30,
        "the snapshot under the editor",
    )
    name = driver.find_element("id", "editor-name")
    name.clear()
    name.send_keys("door")
    _click_at(driver, canvas, 120, 10)
    _click_at(driver, canvas, 120, 180)
    driver.find_element("id", "editor-save").click()
    _wait(
        driver,
        lambda: driver.find_elements("css selector", "#editor-rules li[data-name='door']"),
        20,
        "the saved rule",
    )
    _shot(driver, artifacts, "editor")
    config = api.get("/api/v1/streams/cam/analytics").json()["config"]
    (line,) = config["lines"]
    assert line["name"] == "door"
    scale = (
        (1.0, 1.0)
        if not config["reference_size"]
        else (WIDTH / config["reference_size"][0], HEIGHT / config["reference_size"][1])
    )
    drawn = [(x * scale[0], y * scale[1]) for x, y in line["line"]]
    assert np.allclose(drawn, [(120, 10), (120, 180)], atol=2), line

    # A line of zero length: the API's 422 detail is shown in the page, nothing changes.
    name.clear()
    name.send_keys("dot")
    _click_at(driver, canvas, 50, 50)
    _click_at(driver, canvas, 50, 50)
    driver.find_element("id", "editor-save").click()
    _wait(
        driver,
        lambda: "zero length" in driver.find_element("id", "messages").text,
        20,
        "the API's error in the page",
    )
    _shot(driver, artifacts, "editor-error")
    assert [
        r["name"] for r in api.get("/api/v1/streams/cam/analytics").json()["config"]["lines"]
    ] == ["door"]
    # The browser logs the refused request itself (a 422), nothing else.
    assert _console_errors(driver, allowed=("/api/v1/streams/cam/analytics",)) == []
