"""The daemon's end of a shim channel (`berth.shim.protocol` says what goes over it), and the
fan-out of a process's output to the attach streams that follow it.

Imports `shim.protocol` and nothing else of the shim: the runtime's code never loads into the
daemon.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from typing import Any

from berth.detachkeys import DetachScanner, parse_detach_keys  # the CLI's parser too
from berth.shim import protocol
from berth.shim.protocol import (
    T_CLOSE_STDIN,
    T_CONTROL,
    T_RESIZE,
    T_STDERR,
    T_STDIN,
    T_STDOUT,
    Answer,
    Command,
    Exit,
    ShimMessage,
    StartRequest,
)

Output = tuple[int, bytes] | None  # (stream, data); None: the process has ended

log = logging.getLogger(__name__)


class _ChannelProtocol(asyncio.StreamReaderProtocol):
    """A monitor's connection, whose output outlives a failed write. A monitor sends the
    process's last output and its exit, then closes; input the daemon sends after that (the
    client's end of stdin, a resize) fails with EPIPE, and asyncio would then fail every read
    of the connection, losing what the monitor had sent before it closed (an exec's whole
    output, on a loaded machine). What is left in the socket is read, and the stream ends as at
    an EOF."""

    def connection_lost(self, exc: Exception | None) -> None:
        reader: asyncio.StreamReader | None = getattr(self, "_stream_reader", None)
        transport: asyncio.BaseTransport | None = getattr(self, "_transport", None)
        if isinstance(exc, BrokenPipeError | ConnectionResetError) and reader and transport:
            sock = transport.get_extra_info("socket")
            fd = sock.fileno() if sock is not None else -1
            # the peer has closed: what it sent is all in the socket's queue (a unix socket's
            # buffer), so this ends at its EOF
            while fd >= 0:
                try:
                    data = os.read(fd, 1 << 16)
                except (BlockingIOError, InterruptedError, OSError):
                    break
                if not data:
                    break
                reader.feed_data(data)
            exc = None
        super().connection_lost(exc)


class Channel:
    """A connection to one monitor: control messages in, output fanned out, input sent."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, path: str, request: StartRequest | None = None) -> Channel:
        """Connect to a fork server and send `request` (a new shim answers), or, without
        one, to a running shim's own socket (it answers `Ready`)."""
        # a unix socket path has at most 107 bytes: reach a long one through its directory
        dirfd = -1
        if len(path.encode()) > 100:
            dirfd = os.open(os.path.dirname(path), os.O_PATH | os.O_CLOEXEC)
            path = f"/proc/self/fd/{dirfd}/{os.path.basename(path)}"
        try:
            loop = asyncio.get_running_loop()
            reader = asyncio.StreamReader(limit=1 << 20, loop=loop)
            proto = _ChannelProtocol(reader, loop=loop)
            transport, _ = await loop.create_unix_connection(lambda: proto, path)
            writer = asyncio.StreamWriter(transport, proto, reader, loop)
        finally:
            if dirfd >= 0:
                os.close(dirfd)
        ch = cls(reader, writer)
        if request is not None:
            writer.write(request.encode())
            await writer.drain()
        return ch

    async def read_frame(self) -> tuple[int, bytes] | None:
        try:
            head = await self.reader.readexactly(protocol.HEADER_SIZE)
            typ, size = protocol.frame_header(head)
            return typ, await self.reader.readexactly(size)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None

    async def read_control(self, fanout: Fanout) -> ShimMessage | None:
        """The next control message, passing output on to `fanout`. Raises ProtocolError
        (a ValueError) for one the protocol does not know."""
        while True:
            f = await self.read_frame()
            if f is None:
                return None
            typ, payload = f
            if typ == T_CONTROL:
                return protocol.decode_control(payload)
            await fanout.publish(typ, payload)

    async def until_exit(
        self, fanout: Fanout, other: Callable[[Answer], None] | None = None
    ) -> Exit | None:
        """Pass output on until the exit record; None if the monitor went without one.
        Answers to commands go to `other`."""
        try:
            while True:
                msg = await self.read_control(fanout)
                if msg is None or isinstance(msg, Exit):
                    return msg
                if other is not None and isinstance(
                    msg, protocol.Plugged | protocol.Unplugged | protocol.CommandFailed
                ):
                    other(msg)
        except (OSError, ValueError):
            return None

    def send(self, typ: int, payload: bytes = b"") -> None:
        if self.writer.is_closing():
            return
        self.writer.write(protocol.frame(typ, payload))

    def command(self, cmd: Command) -> None:
        if not self.writer.is_closing():
            self.writer.write(protocol.encode_control(cmd))

    def resize(self, h: int, w: int) -> None:
        self.send(T_RESIZE, json.dumps(protocol.Resize(h=h, w=w).encode()).encode())

    def close(self) -> None:
        self.writer.close()


# What an attach stream may hold of output its client has not taken yet (Docker's attach pipe
# blocks at 1 MiB). Beyond it the fan-out waits for the client (lossless, as with Docker: a
# pipeline such as `berth exec db dump | gzip` runs at the reader's pace); a client that takes
# nothing for STALL_TIMEOUT is cut off, so the monitor (whose writes to a daemon that stops
# reading time out after 10 s), the log and the other attach streams go on.
OUTBOX_LIMIT = 2 << 20
STALL_TIMEOUT = 5.0


class Outbox:
    """One attach stream's output, bounded by `limit` bytes: `put_nowait` always queues (one
    frame may go over), `Fanout.publish` waits for room; `get` takes the next frame, None at
    the end (also after `cut`)."""

    def __init__(
        self, limit: int = OUTBOX_LIMIT, label: str = "", progress: asyncio.Event | None = None
    ) -> None:
        self.limit = limit
        self.label = label
        self.size = 0
        self.since = 0.0  # last time the client took output, or the box filled
        self.items: collections.deque[Output] = collections.deque()
        self.cut_off = asyncio.Event()  # set when the client was dropped for stalling
        self._ready = asyncio.Event()
        self._progress = progress

    @property
    def full(self) -> bool:
        return self.size > self.limit

    def put_nowait(self, item: Output) -> None:
        if self.cut_off.is_set():
            return
        was_full = self.full
        self.items.append(item)
        if item is not None:
            self.size += len(item[1])
            if self.full and not was_full:
                self.since = time.monotonic()
        self._ready.set()

    async def get(self) -> Output:
        while not self.items:
            self._ready.clear()
            await self._ready.wait()
        item = self.items.popleft()
        if item is not None:
            self.size -= len(item[1])
            self.since = time.monotonic()
            if self._progress is not None:
                self._progress.set()
        return item

    def touch(self) -> None:
        """The client took something else (the log, before the live output): it is not
        stalled."""
        self.since = time.monotonic()
        if self.full and self._progress is not None:
            self._progress.set()

    def cut(self, stalled: float) -> None:
        """Drop the client: what it holds is freed, its stream ends."""
        log.warning(
            "attach stream%s: the client took no output for %.0f s with %d bytes "
            "waiting: it is cut off",
            f" of {self.label}" if self.label else "",
            stalled,
            self.size,
        )
        self.items.clear()
        self.size = 0
        self.items.append(None)
        self.cut_off.set()
        self._ready.set()


class Fanout:
    """The attach streams of one container or exec: each gets its own bounded `Outbox`."""

    def __init__(self, limit: int = OUTBOX_LIMIT, stall: float = STALL_TIMEOUT) -> None:
        self.limit = limit
        self.stall = stall
        self.queues: set[Outbox] = set()
        self._progress = asyncio.Event()

    def subscribe(self, label: str = "") -> Outbox:
        q = Outbox(self.limit, label, self._progress)
        self.queues.add(q)
        return q

    def unsubscribe(self, q: Outbox) -> None:
        self.queues.discard(q)
        self._progress.set()

    async def publish(self, stream: int, data: bytes) -> None:
        """Queue for every stream, then wait while one is full and its client still takes
        output; a client that has taken nothing for `stall` seconds is cut off."""
        for q in self.queues:
            q.put_nowait((stream, data))
        while True:
            full = [q for q in self.queues if q.full]
            if not full:
                return
            now = time.monotonic()
            for q in full:
                if now - q.since >= self.stall:
                    q.cut(now - q.since)
                    self.queues.discard(q)
            full = [q for q in full if not q.cut_off.is_set()]
            if not full:
                return
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._progress.wait(), min(q.since for q in full) + self.stall - now
                )

    def end(self) -> None:
        for q in self.queues:
            q.put_nowait(None)
        self.queues.clear()


class Attachment:
    """One attach stream: output from the moment it was made, and a way to send input."""

    def __init__(
        self,
        queue: Outbox,
        *,
        stdout: bool,
        stderr: bool,
        channel: Callable[[], Awaitable[Channel | None]],
        stdin_once: bool,
        on_close: Callable[[], None],
    ) -> None:
        self.queue = queue
        self.streams: dict[int, bool] = {T_STDOUT: stdout, T_STDERR: stderr}
        self._channel = channel
        self.stdin_once = stdin_once
        self._on_close = on_close
        self.prelude: Iterable[tuple[int, bytes]] = ()

    async def output(self) -> AsyncIterator[tuple[int, bytes]]:
        for item in self.prelude:
            self.queue.touch()
            yield item
        while True:
            got = await self.queue.get()
            if got is None:
                return
            if self.streams.get(got[0], True):
                yield got

    async def cut_off(self) -> None:
        """Returns once the client was dropped for taking no output (see `Fanout.publish`)."""
        await self.queue.cut_off.wait()

    async def send_stdin(self, data: bytes) -> None:
        ch = await self._channel()
        if ch is not None:
            ch.send(T_STDIN, data)
            with contextlib.suppress(ConnectionError):
                await ch.writer.drain()

    async def end_stdin(self) -> None:
        """The client closed its input: the process's stdin closes too if it is `StdinOnce`."""
        if self.stdin_once:
            ch = await self._channel()
            if ch is not None:
                ch.send(T_CLOSE_STDIN)

    def close(self) -> None:
        self._on_close()

    async def serve(self, *ways: Coroutine[Any, Any, None]) -> bool:
        """Run one stream's ways (its output to the client, the client's input) until the
        first ends, the process's end or the client's, or the client is cut off for taking no
        output; then end the others and close the attachment (the process goes on). True if
        the client was cut off: the caller drops its connection rather than closing it
        politely, as a write to it may be waiting. The one ending of the attach and exec
        streams of the API (hijacked or WebSocket) and of the dashboard's consoles."""
        cut = asyncio.ensure_future(self.cut_off())
        tasks = (*(asyncio.ensure_future(w) for w in ways), cut)
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(BaseException):
                    await t
            self.close()
        return cut.done() and not cut.cancelled()


__all__ = [
    "Channel",
    "Fanout",
    "Outbox",
    "Attachment",
    "OUTBOX_LIMIT",
    "STALL_TIMEOUT",
    "parse_detach_keys",
    "DetachScanner",
    "T_STDIN",
    "T_STDOUT",
    "T_STDERR",
    "T_CLOSE_STDIN",
    "T_RESIZE",
    "T_CONTROL",
]
