"""schemathesis against the live OpenAPI spec of a running `vigil serve`: no 5xx, and every
response matches the spec."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.helpers import ServiceProcess, assert_clean

pytestmark = pytest.mark.integration

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def live_service(tmp_path_factory, reference_model):
    run_dir = tmp_path_factory.mktemp("fuzz")
    # Short timeouts: fuzzed rtsp:// streams point nowhere and must not pile up threads.
    svc = ServiceProcess(run_dir, {"sources": {"open_timeout_s": 1, "read_timeout_s": 1}})
    with svc:
        yield svc
    assert_clean(run_dir, svc.pid)


# Endless responses (an event feed, MJPEG): a valid request never finishes its body, so a
# fuzzer waiting for it would wait forever. Their own tests cover them.
ENDLESS = ("text/event-stream", "multipart/x-mixed-replace")


def _endless(operation) -> bool:
    ok = operation.definition.raw.get("responses", {}).get("200", {}).get("content", {})
    return bool(ok) and all(media.startswith(ENDLESS) for media in ok)


def test_api_conforms_to_its_openapi_spec(live_service):
    # The schemathesis pytest plugin does not work with pytest 9; drive hypothesis directly,
    # one property test per operation.
    schema = schemathesis.openapi.from_url(f"{live_service.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    operations = [op for op in operations if not _endless(op)]
    assert len(operations) >= 10
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
        def conforms(case):
            case.call_and_validate(base_url=live_service.url, checks=CHECKS)

        conforms()


def test_service_still_healthy_after_fuzzing(live_service):
    # runs after the fuzz cases (file order): the service answers and Triton is fine
    response = httpx.get(f"{live_service.url}/api/v1/ready", timeout=10)
    assert response.status_code == 200, response.text
