"""The HTTP plumbing under :class:`~vigil_client.VigilClient`: one ``httpx`` connection pool,
transport errors and error statuses turned into :class:`~vigil_client.VigilError` subclasses,
and responses parsed into result classes."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Final, Self, TypeVar
from urllib.parse import quote

import httpx

from vigil_client import __version__
from vigil_client.errors import (
    ConnectionFailed,
    RequestTimeoutError,
    VigilError,
    error_from_response,
)

API_PREFIX: Final = "/api/v1"
API_KEY_HEADER: Final = "X-API-Key"

T = TypeVar("T")


class HttpBase:
    """Connection, error mapping and parsing shared by every group of calls.

    Args:
        base_url: Server root, e.g. ``http://127.0.0.1:8080`` (a trailing ``/api/v1`` is
            accepted too).
        api_key: Sent as ``X-API-Key`` on every request when given.
        timeout_s: Timeout for connecting and for each read, in seconds.
        transport: An ``httpx`` transport to use instead of the network (tests pass an
            ``httpx.MockTransport``).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout_s: float = 10.0,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        root = base_url.rstrip("/")
        root = root.removesuffix(API_PREFIX)
        self.base_url = root
        self.timeout_s = timeout_s
        headers = {"Accept": "application/json", "User-Agent": f"vigil-client/{__version__}"}
        if api_key:
            headers[API_KEY_HEADER] = api_key
        self._http = httpx.Client(
            base_url=root + API_PREFIX + "/",
            headers=headers,
            timeout=timeout_s,
            transport=transport,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        files: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
        expect: tuple[int, ...] = (200,),
    ) -> httpx.Response:
        timeout = self.timeout_s if timeout_s is None else timeout_s
        with self._transport_errors(method, path, timeout):
            response = self._http.request(
                method, path, json=json, params=params, files=files, data=data, timeout=timeout
            )
        if response.status_code not in expect:
            raise error_from_response(response)
        return response

    @contextmanager
    def _stream(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        expect: tuple[int, ...] = (200,),
    ) -> Iterator[httpx.Response]:
        """A response whose body is read as it arrives; transport errors while it is read
        (inside the ``with`` block) are mapped too."""
        with (
            self._transport_errors(method, path, self.timeout_s),
            self._http.stream(method, path, headers=headers) as response,
        ):
            if response.status_code not in expect:
                response.read()
                raise error_from_response(response)
            yield response

    @contextmanager
    def _transport_errors(self, method: str, path: str, timeout_s: float) -> Iterator[None]:
        url = f"{self.base_url}{API_PREFIX}/{path}"
        try:
            yield
        except httpx.ConnectTimeout as e:
            raise ConnectionFailed(f"cannot connect to Vigil at {url}: timed out") from e
        except httpx.TimeoutException as e:
            raise RequestTimeoutError(f"{method} {url}: no response within {timeout_s:g} s") from e
        except httpx.ConnectError as e:
            raise ConnectionFailed(f"cannot connect to Vigil at {url}: {e}") from e
        except httpx.TransportError as e:
            raise ConnectionFailed(f"{method} {url} failed: {e}") from e

    @staticmethod
    def _json(response: httpx.Response, *, allow_error_status: bool = False) -> Any:
        try:
            return response.json()
        except ValueError as e:
            if allow_error_status and response.status_code >= 400:
                raise error_from_response(response) from e
            raise VigilError(
                f"{response.request.method} {response.request.url}: response is not JSON",
                status_code=response.status_code,
                detail=response.text[:500],
            ) from e

    def _parse(self, response: httpx.Response, from_dict: Callable[[Any], T]) -> T:
        """The response body as a result object; a body that does not fit is a VigilError."""
        data = self._json(response)
        try:
            return from_dict(data)
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            request = response.request
            raise VigilError(
                f"unexpected response from {request.method} {request.url}: {e}",
                status_code=response.status_code,
                detail=data,
            ) from e


def path_segment(value: str, what: str) -> str:
    """``value`` quoted as one URL path segment.

    Raises:
        ValueError: ``value`` is empty (the request would go to another endpoint).
    """
    if not value:
        raise ValueError(f"{what} must not be empty")
    # "." and ".." are legal ids but are dot-segments in a URL path, which clients and
    # proxies collapse; percent-encoded dots are left alone (RFC 3986, section 6.2.2.3).
    quoted = quote(value, safe="")
    if quoted in {".", ".."}:
        quoted = quoted.replace(".", "%2E")
    return quoted


def stream_path(stream_id: str) -> str:
    """``streams/<id>``, quoted."""
    return f"streams/{path_segment(stream_id, 'stream id')}"
