"""The hijacked-stream protocol of attach and exec start: after `101 UPGRADED` the connection
is taken from aiohttp, the process's output goes to the client and its input to the process
until one side ends or the client types the detach keys.

Imports the containers service's attachment channel and `errors`.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from berth.containers.channel import Attachment, DetachScanner, parse_detach_keys
from berth.errors import InvalidArgument

from .wire import frame, stream_response

# input an attach client sends ahead of the process: past this much, its connection is not read
STDIN_LIMIT = 1 << 20


class Hijacked(asyncio.Protocol):
    """A connection taken over from aiohttp after a `101 UPGRADED` (attach, exec start).

    The docker CLI half-closes its side when it has no more stdin (CloseWrite): the stream
    must stay open for output, which aiohttp's protocol would not allow. Bytes the client sends
    (stdin) arrive on `stdin`, b"" marks their end."""

    def __init__(self, transport: asyncio.Transport, original: asyncio.BaseProtocol) -> None:
        self.transport = transport
        self.original = original
        self.stdin: asyncio.Queue[bytes] = asyncio.Queue()
        self.lost = asyncio.Event()
        self._can_write = asyncio.Event()
        self._can_write.set()
        self._held = 0  # bytes of stdin queued: past STDIN_LIMIT, reading pauses
        self._paused = False

    def data_received(self, data: bytes) -> None:
        self.stdin.put_nowait(data)
        self._held += len(data)
        if self._held > STDIN_LIMIT and not self._paused:
            self._paused = True
            self.transport.pause_reading()

    async def read_stdin(self) -> bytes:
        """The next piece of the client's input; b"" at its end."""
        data = await self.stdin.get()
        self._held -= len(data)
        if self._paused and self._held <= STDIN_LIMIT // 2 and not self.transport.is_closing():
            self._paused = False
            self.transport.resume_reading()
        return data

    def eof_received(self) -> bool:
        self.stdin.put_nowait(b"")
        return True  # keep our side open for output

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set()
        self._can_write.set()
        self.stdin.put_nowait(b"")
        self.original.connection_lost(exc)

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    async def write(self, data: bytes) -> bool:
        """False once the client has gone."""
        if self.lost.is_set() or self.transport.is_closing():
            return False
        self.transport.write(data)
        await self._can_write.wait()
        return not self.lost.is_set()

    def close(self) -> None:
        if not self.transport.is_closing():
            self.transport.set_protocol(self.original)
            self.transport.close()

    def abort(self) -> None:
        """Close at once, dropping output the client has not read."""
        self.transport.set_protocol(self.original)
        self.transport.abort()


async def hijack(request: web.Request, resp: web.StreamResponse) -> Hijacked:
    await resp.prepare(request)
    transport = request.transport
    assert transport is not None
    original = transport.get_protocol()
    h = Hijacked(transport, original)
    transport.set_protocol(h)
    tail = getattr(original, "_message_tail", b"")
    if tail:
        h.data_received(tail)
        original._message_tail = b""  # type: ignore[attr-defined]
    return h


def detach_keys(spec: str | None) -> bytes:
    try:
        return parse_detach_keys(spec or "ctrl-p,ctrl-q")
    except ValueError as e:
        raise InvalidArgument(str(e)) from None


def upgrade_response(request: web.Request, tty: bool) -> web.StreamResponse:
    """`101 UPGRADED` where the client asked for it (the docker CLI does), else a 200 whose
    body is the stream; raw with a TTY, multiplexed without."""
    upgrade = "upgrade" in request.headers.get("Connection", "").lower()
    resp = stream_response(
        "application/vnd.docker.raw-stream" if tty else "application/vnd.docker.multiplexed-stream",
        101 if upgrade else 200,
    )
    if upgrade:
        resp.headers["Connection"] = "Upgrade"
        resp.headers["Upgrade"] = "tcp"
    resp.force_close()
    return resp


async def _output(conn: Hijacked, att: Attachment, tty: bool) -> None:
    async for stream, data in att.output():
        if not await conn.write(data if tty else frame(stream, data)):
            return


async def _input(conn: Hijacked, att: Attachment, stdin: bool, keys: bytes) -> None:
    scan = DetachScanner(keys)
    while True:
        data = await conn.read_stdin()
        if not data:
            if stdin and not conn.lost.is_set():
                await att.end_stdin()
            if conn.lost.is_set():
                return
            await conn.lost.wait()
            return
        if not stdin:
            continue
        data, detached = scan.feed(data)
        if data:
            await att.send_stdin(data)
        if detached:
            return


async def pump(conn: Hijacked, att: Attachment, *, tty: bool, stdin: bool, keys: bytes) -> None:
    """Output to the client, its input to the process, until the process ends, the client
    goes, or it types the detach keys (the process goes on)."""
    cut = False
    try:
        cut = await att.serve(_output(conn, att, tty), _input(conn, att, stdin, keys))
    finally:
        # a client that stopped taking output is dropped, even while a write to it waits
        if cut:
            conn.abort()
        else:
            conn.close()


__all__ = ["STDIN_LIMIT", "Hijacked", "hijack", "detach_keys", "upgrade_response", "pump"]
