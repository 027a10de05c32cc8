"""Every live view of a browser over one WebSocket (`GET /api/live`), so that many tabs do not
use up HTTP/1.1's six connections to one host: with a Server-Sent Events stream for each
view, four or five open tabs left the page no connection to fetch with. The page's shared
worker holds the one socket for all the browser's tabs (ui/frontend/src/live.ts).

The page asks with text messages and gets JSON back:

  {"sub": ID, "path": "/api/containers/X/stats"}   a feed, as its SSE route would stream it
  {"unsub": ID}                                      that feed stopped
  -> {"id": ID, "event": "", "data": ...}            each item ("end" when it ends, "error"
                                                     with {"message"} when it cannot start)

A path names one of the SSE routes (stats, logs, events, a project's logs) with its query;
IDs are the page's, up to 32 characters; one socket holds at most MAX_FEEDS feeds, and a
message is at most 4 KiB. Behind the same gate as the rest (the session's cookie, the CSRF
token in the query, the Origin).

Imports the containers service and the event bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from aiohttp import WSMsgType, web

from berth.containers import ContainerService
from berth.errors import BerthError, InvalidArgument
from berth.events import EventBus

from . import projects
from .streams import Feed, events_feed, logs_feed, stats_feed

log = logging.getLogger(__name__)

MAX_FEEDS = 64
MAX_MESSAGE = 4096
SUB_ID = re.compile(r"[A-Za-z0-9_.:-]{1,32}")
ROUTES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"/api/containers/([^/]+)/stats"), "stats"),
    (re.compile(r"/api/containers/([^/]+)/logs"), "logs"),
    (re.compile(r"/api/events"), "events"),
    (re.compile(r"/api/projects/([^/]+)/logs"), "project-logs"),
]


def feed_for(path: str, containers: ContainerService, bus: EventBus) -> Feed:
    """The feed the SSE route at `path` would stream; an unknown path is refused."""
    parts = urlsplit(path)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    for pattern, kind in ROUTES:
        m = pattern.fullmatch(parts.path)
        if not m:
            continue
        arg = unquote(m.group(1)) if m.groups() else ""
        if kind == "stats":
            return stats_feed(containers, arg)
        if kind == "logs":
            return logs_feed(
                containers, arg, query.get("tail", "500"), query.get("follow", "1") != "0"
            )
        if kind == "events":
            return events_feed(bus)
        return projects.logs_feed(containers, arg, query.get("tail", "100"))
    raise InvalidArgument(f"not a live view: {parts.path}")


async def live(
    request: web.Request,
    containers: ContainerService,
    bus: EventBus,
) -> web.StreamResponse:
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=MAX_MESSAGE)
    if not ws.can_prepare(request).ok:
        raise InvalidArgument("the live views need a WebSocket")
    await ws.prepare(request)
    feeds: dict[str, asyncio.Task[None]] = {}
    send_lock = asyncio.Lock()

    async def send(msg: dict[str, Any]) -> None:
        async with send_lock:
            if not ws.closed:
                await ws.send_str(json.dumps(msg))

    async def run(sid: str, path: str) -> None:
        feed: Feed | None = None
        try:
            feed = feed_for(path, containers, bus)
            async for event, data in feed:
                if data is not None:  # a tick: the socket has its own heartbeat
                    await send({"id": sid, "event": event, "data": data})
        except BerthError as e:
            await send({"id": sid, "event": "error", "data": {"message": e.message}})
        except ConnectionResetError:
            pass
        except Exception:  # noqa: BLE001 - one view's failure ends that view only
            log.exception("live view %s", path)
            with contextlib.suppress(ConnectionResetError):
                await send({"id": sid, "event": "error", "data": {"message": "internal error"}})
        finally:
            if feed is not None:
                with contextlib.suppress(BaseException):
                    await feed.aclose()  # type: ignore[attr-defined]
            if feeds.get(sid) is asyncio.current_task():
                del feeds[sid]

    def stop(sid: str) -> None:
        task = feeds.pop(sid, None)
        if task is not None:
            task.cancel()

    try:
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                continue
            try:
                ask = json.loads(msg.data)
            except ValueError:
                continue
            if not isinstance(ask, dict):
                continue
            sid = ask.get("sub", ask.get("unsub"))
            if not isinstance(sid, str) or not SUB_ID.fullmatch(sid):
                continue
            if "unsub" in ask:
                stop(sid)
                continue
            path = ask.get("path")
            if not isinstance(path, str):
                continue
            if len(feeds) >= MAX_FEEDS and sid not in feeds:
                await send(
                    {
                        "id": sid,
                        "event": "error",
                        "data": {"message": f"more than {MAX_FEEDS} live views on one socket"},
                    }
                )
                continue
            stop(sid)
            feeds[sid] = asyncio.ensure_future(run(sid, path))
    finally:
        for sid in list(feeds):
            stop(sid)
        await ws.close()
    return ws


__all__ = ["live", "feed_for", "MAX_FEEDS"]
