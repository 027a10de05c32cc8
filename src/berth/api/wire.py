"""What every handler module shares at the wire: Docker's JSON replies, query parameters,
`filters`, the multiplexed stream framing, streamed responses and blocking views of a body.
`Any` is allowed here: this is where JSON enters.

Imports `errors`, aiohttp. The containers' JSON is made in `berth.api.containers_wire`.
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

from aiohttp import web

from berth import __version__
from berth.errors import InvalidArgument

API_VERSION = "1.50"  # the docker 28 CLI's own maximum
MIN_API_VERSION = "1.24"
ENGINE_VERSION = "28.0.0-berth." + __version__


def qbool(request: web.Request, name: str, default: bool = False) -> bool:
    v = request.query.get(name)
    if v is None:
        return default
    return v.strip().lower() not in ("", "0", "false", "no")


def qint(request: web.Request, name: str, default: int | None = None) -> int | None:
    v = request.query.get(name)
    if v in (None, ""):
        return default
    try:
        return int(v)
    except ValueError:
        raise InvalidArgument(f"invalid value for {name}: {v!r}") from None


def qsize(request: web.Request) -> tuple[int, int]:
    """`h` and `w` of a resize, both required and positive."""
    h, w = qint(request, "h", 0), qint(request, "w", 0)
    if not h or not w or h < 0 or w < 0:
        raise InvalidArgument("Bad parameters: h and w are required")
    return h, w


def parse_filters(raw: str | None) -> dict[str, list[str]]:
    """`filters` in both shapes Docker accepts: {"k": ["v"]} and the legacy {"k": {"v": true}}."""
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise InvalidArgument(f"invalid filters: {raw}") from None
    if not isinstance(data, dict):
        raise InvalidArgument(f"invalid filters: {raw}")
    out: dict[str, list[str]] = {}
    for k, v in data.items():
        if isinstance(v, dict):
            out[k] = [x for x, on in v.items() if on]
        elif isinstance(v, list):
            out[k] = [str(x) for x in v]
        else:
            out[k] = [str(v)]
    return out


def filters(request: web.Request) -> dict[str, list[str]]:
    """The request's `filters` query parameter, parsed."""
    return parse_filters(request.query.get("filters"))


def frame(stream: int, data: bytes) -> bytes:
    """Docker's multiplexed stream framing: [stream, 0, 0, 0, size32be] + payload."""
    return struct.pack(">BxxxI", stream, len(data)) + data


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(data).encode(), status=status, content_type="application/json"
    )


def error_message(message: str, **extra: Any) -> bytes:
    """An error inside a JSON message stream that has begun, as dockerd writes it."""
    return (
        json.dumps({"errorDetail": {**extra, "message": message}, "error": message}).encode()
        + b"\r\n"
    )


def stream_response(
    content_type: str = "application/json", status: int = 200
) -> web.StreamResponse:
    """A response written piece by piece, with the headers the middleware gives the others
    (a prepared response is past its reach)."""
    resp = web.StreamResponse(status=status)
    resp.content_type = content_type
    resp.headers.update(
        {
            "Api-Version": API_VERSION,
            "Ostype": "linux",
            "Server": f"Docker/{ENGINE_VERSION} (linux)",
        }
    )
    return resp


# The largest JSON body a route reads whole (a container's config, a network's, an exec's...).
# dockerd decodes these as a stream with no bound of its own; berth holds them in memory, so it
# bounds them as Go's net/http bounds a form body (10 MB): far above any real configuration.
# Bodies that are streams (build contexts, image tarballs, archives) are not read this way.
MAX_JSON_BODY = 10 << 20


class BodyTooLarge(InvalidArgument):
    """A request body above what its route accepts: 413, with Docker's message body."""

    status = 413


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object (every JSON body of the Engine API is one); {} for an
    empty one. A body above MAX_JSON_BODY is refused before it is read whole."""
    if (request.content_length or 0) > MAX_JSON_BODY:
        raise BodyTooLarge(
            f"request body too large: {request.content_length} bytes, the limit is {MAX_JSON_BODY}"
        )
    raw = bytearray()
    while chunk := await request.content.readany():
        raw += chunk
        if len(raw) > MAX_JSON_BODY:
            raise BodyTooLarge(f"request body too large: more than {MAX_JSON_BODY} bytes")
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise InvalidArgument(f"invalid JSON body: {e}") from None
    return json_object(data, "JSON body")


def _kind(value: Any) -> str:
    return {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        type(None): "null",
    }.get(type(value), "a number")


def json_object(value: Any, field: str) -> dict[str, Any]:
    """`value` of a client's JSON as an object ({} for null)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument(f"invalid {field}: an object is expected, not {_kind(value)}")
    return value


def json_text(value: Any, field: str) -> str:
    """`value` of a client's JSON as a string ("" for null)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidArgument(f"invalid {field}: a string is expected, not {_kind(value)}")
    return value


def json_strings(value: Any, field: str) -> dict[str, str]:
    """`value` of a client's JSON as a map of strings ({} for null)."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidArgument(f"invalid {field}: a map of strings is expected")
    return {str(k): v for k, v in value.items()}


class SyncReader:
    """A blocking file-like view of the request body, for a worker thread."""

    def __init__(self, request: web.Request, loop: asyncio.AbstractEventLoop) -> None:
        self.content = request.content
        self.loop = loop
        self.buf = b""
        self.eof = False

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        while not self.eof and (n < 0 or len(self.buf) < n):
            chunk = asyncio.run_coroutine_threadsafe(self.content.readany(), self.loop).result()
            if not chunk:
                self.eof = True
                break
            self.buf += chunk
        if n < 0:
            out, self.buf = self.buf, b""
        else:
            out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def readinto(self, b: bytearray) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def peek(self, n: int = 1) -> bytes:
        if len(self.buf) < n:
            more = self.read(n)
            self.buf = more + self.buf
        return self.buf[:n]

    def close(self) -> None:
        pass

    @property
    def closed(self) -> bool:
        return False


class SyncWriter:
    """A blocking file-like that streams into an aiohttp response, for a worker thread."""

    def __init__(self, resp: web.StreamResponse, loop: asyncio.AbstractEventLoop) -> None:
        self.resp = resp
        self.loop = loop
        self.buf = bytearray()

    def write(self, data: bytes) -> int:
        self.buf += data
        if len(self.buf) >= 1 << 20:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self.buf:
            data, self.buf = bytes(self.buf), bytearray()
            asyncio.run_coroutine_threadsafe(self.resp.write(data), self.loop).result()

    def tell(self) -> int:
        return 0


__all__ = [
    "API_VERSION",
    "MIN_API_VERSION",
    "ENGINE_VERSION",
    "qbool",
    "qint",
    "qsize",
    "parse_filters",
    "filters",
    "frame",
    "json_response",
    "error_message",
    "stream_response",
    "read_json",
    "json_object",
    "json_text",
    "json_strings",
    "MAX_JSON_BODY",
    "BodyTooLarge",
    "SyncReader",
    "SyncWriter",
]
