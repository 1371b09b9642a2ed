"""The console's session cookie: signed, expiring tokens that authorize reads (GET) only."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from tests.unit.test_api_security import FakeRegistry, FakeStreams
from vigil.api.app import create_app
from vigil.api.sessions import COOKIE, issue_token, verify_token
from vigil.config import ApiSettings, Settings, key_id
from vigil.console import STATIC_DIR

KEY, OTHER_KEY = "s3cret-key-number-one", "another-key"
KEYS = [(key_id(KEY), KEY)]
NOW = 1_800_000_000.0


def test_token_verifies_for_its_key_until_it_expires() -> None:
    token = issue_token(key_id(KEY), KEY, ttl_s=60, now=NOW)
    assert verify_token(token, KEYS, now=NOW) == key_id(KEY)
    assert verify_token(token, KEYS, now=NOW + 59) == key_id(KEY)
    assert verify_token(token, KEYS, now=NOW + 60) is None, "expired"
    assert KEY not in token, "the token never holds the key"


def test_two_tokens_differ_and_each_verifies() -> None:
    first, second = (issue_token(key_id(KEY), KEY, 60, now=NOW) for _ in range(2))
    assert first != second
    assert verify_token(first, KEYS, now=NOW)
    assert verify_token(second, KEYS, now=NOW)


@pytest.mark.parametrize("part", [0, 1, 2, 3])
def test_tampered_token_is_refused(part: int) -> None:
    token = issue_token(key_id(KEY), KEY, 60, now=NOW)
    pieces = token.split(".")
    if part == 1:  # a later expiry, the MAC kept
        pieces[1] = str(int(pieces[1]) + 3600)
    else:
        pieces[part] = pieces[part][:-1] + ("0" if pieces[part][-1] != "0" else "1")
    assert verify_token(".".join(pieces), KEYS, now=NOW) is None


def test_token_of_another_or_removed_key_is_refused() -> None:
    # signed with another key but claiming this key's id
    forged = issue_token(key_id(KEY), OTHER_KEY, 60, now=NOW)
    assert verify_token(forged, KEYS, now=NOW) is None
    # a genuine token of a key that is no longer configured
    revoked = issue_token(key_id(OTHER_KEY), OTHER_KEY, 60, now=NOW)
    assert verify_token(revoked, KEYS, now=NOW) is None
    assert verify_token(revoked, [(key_id(OTHER_KEY), OTHER_KEY)], now=NOW) == key_id(OTHER_KEY)


@pytest.mark.parametrize("junk", ["", "a.b.c", "a.b.c.d.e", "k.notdigits.n.m", "x" * 300])
def test_malformed_token_is_refused(junk: str) -> None:
    assert verify_token(junk, KEYS, now=NOW) is None


def client(**api: object) -> TestClient:
    settings = Settings(api=ApiSettings(**api))  # type: ignore[arg-type]
    runtime = SimpleNamespace(
        settings=settings, streams=FakeStreams(), registry=FakeRegistry(), cluster=None
    )
    return TestClient(create_app(runtime), raise_server_exceptions=False)  # type: ignore[arg-type]


def test_session_cookie_is_httponly_strict_and_authorizes_reads() -> None:
    api = client(api_keys=[KEY], protect_reads=True)
    assert api.get("/api/v1/streams").status_code == 401
    state = api.get("/api/v1/session").json()
    assert state == {"keys_required": True, "reads_protected": True, "session_key_id": None}

    assert api.post("/api/v1/session").status_code == 401
    assert api.post("/api/v1/session", headers={"X-API-Key": "wrong"}).status_code == 403
    opened = api.post("/api/v1/session", headers={"X-API-Key": KEY})
    assert opened.status_code == 200, opened.text
    assert opened.json()["key_id"] == key_id(KEY)
    cookie = opened.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Max-Age=28800" in cookie
    assert KEY not in cookie

    assert api.get("/api/v1/streams").status_code == 200, "the cookie authorizes a read"
    assert api.get("/api/v1/session").json()["session_key_id"] == key_id(KEY)

    assert api.delete("/api/v1/session").status_code == 204
    assert api.get("/api/v1/streams").status_code == 401, "signed out"


def test_session_cookie_never_authorizes_a_mutation() -> None:
    api = client(api_keys=[KEY], protect_reads=True)
    api.post("/api/v1/session", headers={"X-API-Key": KEY})
    assert COOKIE in api.cookies
    body = {"id": "cam-1", "url": "test://pattern"}
    refused = api.post("/api/v1/streams", json=body)
    assert refused.status_code == 401, "a cookie alone cannot add a stream"
    assert "X-API-Key" in refused.json()["detail"]
    assert api.delete("/api/v1/streams/cam-1").status_code == 401
    assert api.put("/api/v1/streams/cam-1/analytics", json={}).status_code == 401
    assert api.post("/api/v1/session").status_code == 401, "nor renew itself"
    assert api.post("/api/v1/streams", json=body, headers={"X-API-Key": KEY}).status_code == 201


def test_expired_or_forged_cookie_is_401_saying_so() -> None:
    api = client(api_keys=[KEY], protect_reads=True)
    api.cookies.set(COOKIE, issue_token(key_id(KEY), KEY, 60, now=time.time() - 3600))
    expired = api.get("/api/v1/streams")
    assert expired.status_code == 401
    assert "session cookie has expired or is invalid" in expired.json()["detail"]
    api.cookies.set(COOKIE, issue_token(key_id(KEY), OTHER_KEY, 60))
    assert api.get("/api/v1/streams").status_code == 401


def test_without_keys_a_session_needs_no_cookie() -> None:
    api = client()
    state = api.get("/api/v1/session").json()
    assert state["keys_required"] is False
    assert state["reads_protected"] is False
    opened = api.post("/api/v1/session")
    assert opened.status_code == 200
    assert opened.json()["expires_in_s"] is None
    assert "set-cookie" not in opened.headers


def test_console_is_served_at_the_root_with_a_same_origin_policy() -> None:
    api = client()
    page = api.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self'" in policy
    assert 'src="console/app.js"' in page.text
    script = api.get("/console/app.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    # Nothing in the console names another origin, and every file is served.
    for path in sorted(STATIC_DIR.iterdir()):
        text = api.get(f"/console/{path.name}").text
        assert text == path.read_text(), path.name
        assert "http://" not in text, path.name
        assert "https://" not in text, path.name
    # API paths keep their JSON answers.
    missing = api.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Not Found"}
    assert api.get("/console/../pyproject.toml").status_code == 404
