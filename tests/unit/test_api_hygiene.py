"""NaN and Infinity never reach a route, and never turn into a 500."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from vigil.api.hygiene import RejectNonFiniteJson, find_non_finite, validation_error


class Body(BaseModel):
    max_fps: float | None = Field(None, gt=0)
    points: list[list[float]] = []


def _client() -> TestClient:
    app = FastAPI()
    app.add_middleware(RejectNonFiniteJson)
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]

    @app.post("/things")
    def make(body: Body) -> dict[str, float | None]:
        return {"max_fps": body.max_fps}

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(
    ("body", "where", "token"),
    [
        ('{"max_fps": NaN}', "body.max_fps", "NaN"),
        ('{"max_fps": Infinity}', "body.max_fps", "Infinity"),
        ('{"points": [[1, 2], [3, -Infinity]]}', "body.points[1][1]", "-Infinity"),
    ],
)
def test_api_when_body_holds_non_finite_number_answers_422_naming_where(
    body: str, where: str, token: str
) -> None:
    assert find_non_finite(body.encode()) == (where, token)
    for content_type in ("application/json", "application/x-www-form-urlencoded"):
        reply = _client().post("/things", content=body, headers={"content-type": content_type})
        assert reply.status_code == 422, reply.text
        assert token in reply.text
        assert where.split(".")[-1].split("[")[0] in reply.text


def test_api_when_body_is_fine_passes_it_on_unchanged() -> None:
    reply = _client().post("/things", json={"max_fps": 12.5, "points": [[1, 2]]})
    assert reply.status_code == 200
    assert reply.json() == {"max_fps": 12.5}


def test_api_when_body_is_not_json_leaves_the_error_to_the_route() -> None:
    assert find_non_finite(b"{not json") is None
    reply = _client().post(
        "/things", content=b"{not json NaN", headers={"content-type": "application/json"}
    )
    assert reply.status_code == 422
