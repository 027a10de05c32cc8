"""A registry's answers: bounded reads of everything that is not a blob, and the errors its
status codes and error documents become.

Imports `errors` and `oci`.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

import aiohttp

from berth import oci
from berth.errors import BerthError, Forbidden, InvalidArgument, NotFound, System, Unauthorized

# Every answer a registry sends is read whole into memory except blobs (streamed to disk and
# digest-checked): each kind has a bound, and a registry that sends more is an error.
MANIFEST_LIMIT = 4 << 20  # manifests and indexes (containerd's limit too)
CONFIG_LIMIT = 8 << 20  # image configs (long histories, many env/labels)
LIST_LIMIT = 8 << 20  # tag lists, catalogs, referrers
SMALL_LIMIT = 1 << 20  # pings, tokens, error bodies, upload answers
MANIFEST_ACCEPT = ", ".join(
    [oci.MEDIA_OCI_INDEX, oci.MEDIA_DOCKER_LIST, oci.MEDIA_OCI_MANIFEST, oci.MEDIA_DOCKER_MANIFEST]
)
REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchResult:
    """A repository a registry's search found."""

    name: str
    description: str
    star_count: int
    is_official: bool
    is_automated: bool


async def read_limited(r: aiohttp.ClientResponse, limit: int, what: str) -> bytes:
    """The whole body of a response that is not a blob, at most `limit` bytes: a registry that
    sends more (or says it will) is refused before the excess is read. Every non-streamed
    answer of a registry goes through here."""
    url = r.url.with_query(None)
    too_large = InvalidArgument(
        f"registry response too large: the {what} from {url} is over {limit} bytes"
    )
    if r.content_length is not None and r.content_length > limit:
        raise too_large
    buf = bytearray()
    async for chunk in r.content.iter_chunked(1 << 16):
        buf += chunk
        if len(buf) > limit:
            raise too_large
    return bytes(buf)


def error_text(body: bytes) -> str:
    try:
        doc = json.loads(body)
        errs = doc.get("errors") or []
        if errs:
            return "; ".join(
                f"{e.get('code', '').lower().replace('_', ' ')}: {e.get('message', '')}"
                if e.get("code")
                else str(e.get("message", ""))
                for e in errs
            )
        return str(doc.get("details") or doc.get("message") or "")
    except (ValueError, AttributeError):
        return body.decode(errors="replace").strip()[:200]


def status_error(status: int, body: bytes, what: str) -> BerthError:
    text = error_text(body)
    if status == 401:
        text = (
            text
            if text.startswith("unauthorized")
            else f"unauthorized: {text or 'authentication required'}"
        )
        return Unauthorized(f"{what}: {text}")
    if status == 403:
        text = (
            text
            if text.startswith("denied")
            else f"denied: {text or 'requested access to the resource is denied'}"
        )
        return Forbidden(f"{what}: {text}")
    if status == 404:
        return NotFound(f"{what} not found: {text or 'not found'}")
    return System(f"{what}: registry answered {status}: {text}")


def describe(e: BaseException) -> str:
    if isinstance(e, TimeoutError | asyncio.TimeoutError):
        return "timed out"
    if isinstance(e, aiohttp.ClientConnectorError):
        return f"dial tcp {e.host}:{e.port}: {e.os_error.strerror or e.os_error}"
    return str(e) or type(e).__name__


__all__ = [
    "CONFIG_LIMIT",
    "LIST_LIMIT",
    "MANIFEST_ACCEPT",
    "MANIFEST_LIMIT",
    "MAX_REDIRECTS",
    "REDIRECTS",
    "SMALL_LIMIT",
    "SearchResult",
    "describe",
    "error_text",
    "read_limited",
    "status_error",
]
