"""Send a protocol `Call` with httpx: `call` for the kernel (sync), `acall` for the server extension (async).

A request that fails on the way (no connection, timeout, connection dropped) becomes `SpeckleUnreachable`;
everything the server answers goes to the call's parser.
"""

from __future__ import annotations

import functools
import ssl
from typing import TypeVar

import httpx

from ._errors import SpeckleUnreachable
from ._protocol import Call, HttpRequest, Reply

__all__ = ["DEFAULT_TIMEOUT", "acall", "call", "ssl_context", "unreachable"]

T = TypeVar("T")

# Long enough for a slow server, short enough that a user waiting on a panel hears back.
DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0)


@functools.lru_cache(maxsize=1)
def ssl_context() -> ssl.SSLContext:
    """One TLS context for every client of the process: each `httpx.Client` would build its own (~30 ms)."""
    return httpx.create_ssl_context()


def unreachable(server: str, err: httpx.RequestError) -> SpeckleUnreachable:
    """A sentence for a failed request; httpx's own text is left out because it can quote the URL."""
    if isinstance(err, httpx.DecodingError):
        what = "its answer could not be decoded"
    elif isinstance(err, httpx.TimeoutException):
        what = "it did not answer in time"
    elif isinstance(err, httpx.ConnectError):
        what = "no connection could be made"
    elif isinstance(err, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
        what = "the connection was dropped before it answered"
    else:
        what = "the request failed on the way"
    return SpeckleUnreachable(
        f"Could not reach the Speckle server at {server}: {what}. Check the address and your connection, "
        "then try again."
    )


def _build(client: httpx.Client | httpx.AsyncClient, request: HttpRequest) -> httpx.Request:
    return client.build_request(request.method, request.url, json=request.json, headers=dict(request.headers))


def _reply(response: httpx.Response) -> Reply:
    return Reply(response.status_code, response.content, dict(response.headers))


def call(client: httpx.Client, op: Call[T]) -> T:
    try:
        response = client.send(_build(client, op.request), auth=None)
    except httpx.RequestError as err:
        raise unreachable(op.server, err) from None
    return op.parse(_reply(response))


async def acall(client: httpx.AsyncClient, op: Call[T]) -> T:
    try:
        response = await client.send(_build(client, op.request), auth=None)
    except httpx.RequestError as err:
        raise unreachable(op.server, err) from None
    return op.parse(_reply(response))
