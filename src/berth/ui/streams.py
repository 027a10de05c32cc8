"""The dashboard's live streams: stats, logs and events as Server-Sent Events, and over a
WebSocket the terminal (an `exec` with a pty) and the container's own console (attach).

Imports the containers service (and its exec service) and the event bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import WSMsgType, web

from berth.containers import ContainerService
from berth.containers.channel import Attachment
from berth.containers.execs import ExecConfig, ExecService, ExecStartError
from berth.errors import BerthError, InvalidArgument
from berth.events import EventBus

from .auth import NO_STORE
from .data import stats_point

log = logging.getLogger(__name__)

STATS_INTERVAL = 1.0  # seconds between two points of the graphs
LOG_TAIL_MAX = 5000  # lines a log view starts with, at most
KEEPALIVE = 15.0  # an SSE comment this often keeps proxies and the browser patient
TERMINAL_SHELLS = ("/bin/bash", "/bin/sh")


async def open_sse(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", **NO_STORE, "X-Accel-Buffering": "no"}
    )
    await resp.prepare(request)
    return resp


async def send_event(resp: web.StreamResponse, data: Any, event: str = "") -> None:
    head = f"event: {event}\n" if event else ""
    await resp.write(f"{head}data: {json.dumps(data)}\n\n".encode())


# A live feed: (event, data) pairs for a page; data None is only a tick (nothing came for
# KEEPALIVE seconds), which an SSE stream turns into a comment. The feeds are made by plain
# functions that check their arguments first (an unknown container is a 404 before anything
# streams), and served both as Server-Sent Events (`sse`) and over the page's one multiplexed
# WebSocket (`live`).
Feed = AsyncIterator[tuple[str, Any]]


async def sse(request: web.Request, feed: Feed) -> web.StreamResponse:
    """`feed` as Server-Sent Events, until it ends or the page goes."""
    resp = await open_sse(request)
    try:
        with contextlib.suppress(ConnectionResetError):
            async for event, data in feed:
                if data is None:
                    await resp.write(b": keepalive\n\n")
                else:
                    await send_event(resp, data, event)
    finally:
        with contextlib.suppress(BaseException):
            await feed.aclose()  # type: ignore[attr-defined]
    return resp


def stats_feed(containers: ContainerService, ref: str) -> Feed:
    """A point a second, as long as the page listens (and while the container exists)."""
    cid = containers.resolve(ref).id

    async def gen() -> Feed:
        prev = None
        while containers.exists(cid):
            cur = containers.stats(cid)
            yield "", stats_point(cur, prev)
            prev = cur
            await asyncio.sleep(STATS_INTERVAL)
        yield "end", {"gone": True}

    return gen()


def log_tail(asked: str, default: str = "500") -> str:
    tail = asked or default
    if tail != "all":
        try:
            tail = str(min(max(int(tail), 0), LOG_TAIL_MAX))
        except ValueError:
            raise InvalidArgument(f"invalid tail: {tail!r}") from None
    return tail


def logs_feed(containers: ContainerService, ref: str, tail: str, follow: bool) -> Feed:
    """The last `tail` lines, then each new one as it comes (`follow` false: no more)."""
    rec = containers.resolve(ref)
    tail = log_tail(tail)

    async def gen() -> Feed:
        entries = containers.logs(rec.id, follow=follow, tail=tail, timestamps=True)
        async for stream, data in _with_keepalive(entries):
            if stream < 0:
                yield "", None
                continue
            text = data.decode("utf-8", "replace")
            ts, _sp, line = text.partition(" ")
            yield "", {"s": "err" if stream == 2 else "out", "t": ts, "l": line.rstrip("\n")}
        yield "end", {}

    return gen()


async def stats(request: web.Request, containers: ContainerService) -> web.StreamResponse:
    return await sse(request, stats_feed(containers, request.match_info["id"]))


async def logs(request: web.Request, containers: ContainerService) -> web.StreamResponse:
    feed = logs_feed(
        containers,
        request.match_info["id"],
        request.query.get("tail", "500"),
        request.query.get("follow", "1") != "0",
    )
    return await sse(request, feed)


async def _with_keepalive(
    src: AsyncIterator[tuple[int, bytes]],
) -> AsyncIterator[tuple[int, bytes]]:
    """The items of `src`, and (-1, b"") whenever none came for KEEPALIVE seconds."""
    it = aiter(src)
    pending: asyncio.Task[tuple[int, bytes]] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(it))
            done, _ = await asyncio.wait({pending}, timeout=KEEPALIVE)
            if not done:
                yield -1, b""
                continue
            try:
                item = pending.result()
            except StopAsyncIteration:
                return
            pending = None
            yield item
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending


async def download_logs(request: web.Request, containers: ContainerService) -> web.StreamResponse:
    """The whole log as a text file, with timestamps."""
    rec = containers.resolve(request.match_info["id"])
    name = rec.name.lstrip("/") or rec.id[:12]
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/plain; charset=utf-8",
            **NO_STORE,
            "Content-Disposition": f'attachment; filename="{name}.log"',
        }
    )
    await resp.prepare(request)
    with contextlib.suppress(ConnectionResetError):
        async for _stream, data in containers.logs(rec.id, follow=False, timestamps=True):
            await resp.write(data)
        await resp.write_eof()
    return resp


def events_feed(bus: EventBus) -> Feed:
    """The last events kept, then each new one."""
    q = bus.subscribe()

    async def gen() -> Feed:
        try:
            for ev in list(bus.recent)[-100:]:
                yield "", _event(ev)
            while True:
                try:
                    ev = await asyncio.wait_for(q.get(), KEEPALIVE)
                except TimeoutError:
                    yield "", None
                    continue
                yield "", _event(ev)
        finally:
            bus.unsubscribe(q)

    return gen()


async def events(request: web.Request, bus: EventBus) -> web.StreamResponse:
    return await sse(request, events_feed(bus))


def _event(ev: dict[str, Any]) -> dict[str, Any]:
    attrs = ev.get("Actor", {}).get("Attributes", {})
    return {
        "time": ev.get("timeNano", 0) / 1e9,
        "type": ev.get("Type", ""),
        "action": ev.get("Action", ""),
        "id": ev.get("Actor", {}).get("ID", ""),
        "name": attrs.get("name", ""),
        "attrs": attrs,
    }


def _size(request: web.Request) -> tuple[int, int]:
    try:
        rows = int(request.query.get("rows", "24"))
        cols = int(request.query.get("cols", "80"))
    except ValueError:
        raise InvalidArgument("rows and cols are numbers") from None
    return min(max(rows, 2), 500), min(max(cols, 10), 1000)


async def terminal(
    request: web.Request, containers: ContainerService, execs: ExecService
) -> web.StreamResponse:
    """A shell in the container, over a WebSocket: binary messages are the terminal's bytes
    both ways; a text message `{"resize": [rows, cols]}` resizes its pty."""
    rec = containers.resolve(request.match_info["id"])
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=1 << 20)
    if not ws.can_prepare(request).ok:
        raise InvalidArgument("the terminal needs a WebSocket")
    rows, cols = _size(request)
    shell = request.query.get("shell", "")
    cmd = (
        [shell]
        if shell in TERMINAL_SHELLS
        else ["/bin/sh", "-c", "if [ -x /bin/bash ]; then exec /bin/bash; else exec /bin/sh; fi"]
    )
    eid = execs.create(
        rec.id,
        ExecConfig(
            cmd=tuple(cmd),
            tty=True,
            attach_stdin=True,
            attach_stdout=True,
            attach_stderr=True,
            env=("TERM=xterm-256color",),
        ),
    )
    att = execs.attach(eid)
    await ws.prepare(request)
    try:
        await execs.start(eid, console_size=(rows, cols))
    except (ExecStartError, BerthError) as e:
        att.close()
        await ws.send_bytes(f"berth: {e}\r\n".encode())
        await ws.close()
        return ws

    await _pump(ws, att, lambda r, c: execs.resize(eid, r, c))
    return ws


async def attach(request: web.Request, containers: ContainerService) -> web.StreamResponse:
    """The container's own console over a WebSocket (as the terminal's, with resize): its
    output from now, and what is typed to its stdin. Closing the page detaches; the
    container goes on."""
    rec = containers.resolve(request.match_info["id"])
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=1 << 20)
    if not ws.can_prepare(request).ok:
        raise InvalidArgument("the console needs a WebSocket")
    rows, cols = _size(request)
    att = containers.attach(rec.id, stdout=True, stderr=True, logs=False)
    try:
        await ws.prepare(request)
    except BaseException:
        att.close()
        raise
    if rec.config.tty and rec.state.running:
        with contextlib.suppress(BerthError):
            containers.resize(rec.id, rows, cols)
    await _pump(ws, att, lambda r, c: containers.resize(rec.id, r, c))
    return ws


async def _pump(
    ws: web.WebSocketResponse, att: Attachment, resize: Callable[[int, int], None]
) -> None:
    """Output to the page and its keys to the process, until one of them ends."""

    async def output() -> None:
        async for _stream, data in att.output():
            if ws.closed:
                return
            await ws.send_bytes(data)

    async def input_() -> None:
        async for msg in ws:
            if msg.type is WSMsgType.BINARY:
                await att.send_stdin(msg.data)
            elif msg.type is WSMsgType.TEXT:
                # the page's own, but read as any client's: an infinite number (OverflowError)
                # or JSON nested deeper than the parser goes must not end the terminal
                with contextlib.suppress(
                    ValueError, TypeError, KeyError, OverflowError, RecursionError, BerthError
                ):
                    r, c = json.loads(msg.data)["resize"]
                    resize(min(max(int(r), 2), 500), min(max(int(c), 10), 1000))
        await att.end_stdin()

    try:
        await att.serve(output(), input_())
    finally:
        await ws.close()


__all__ = [
    "Feed",
    "sse",
    "stats",
    "stats_feed",
    "logs",
    "logs_feed",
    "log_tail",
    "download_logs",
    "events",
    "events_feed",
    "terminal",
    "attach",
]
