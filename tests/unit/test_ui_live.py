"""The dashboard's one multiplexed WebSocket for live views (`GET /api/live`), in-process: the
gate (session, CSRF token, Origin), feeds named by their SSE paths and told apart by the
page's IDs, unsubscribe, an unknown path or container answered as an error of that view
only, the bound on views per socket, and hostile messages passed over."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import ClientPayloadError, WSMsgType

from berth.ui import live as live_mod
from berth.ui.auth import CSRF_HEADER

from .test_ui import Client, FakeContainers, FakeImages, Gate, login, run

WS = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
}


async def until(ws: Any, pred: Any, limit: int = 50) -> list[dict[str, Any]]:
    got = []
    for _ in range(limit):
        msg = await asyncio.wait_for(ws.receive(), 5)
        assert msg.type is WSMsgType.TEXT, msg
        got.append(json.loads(msg.data))
        if pred(got):
            return got
    raise AssertionError(got)


def test_live_socket_needs_the_session_csrf_and_origin() -> None:
    async def t(client: Client, gate: Gate, c: FakeContainers, i: FakeImages) -> None:
        assert (await client.get("/api/live", headers=WS)).status == 401
        csrf = await login(client, gate, carry=False)
        assert (await client.get("/api/live", headers=WS)).status == 403
        r = await client.get(f"/api/live?csrf={csrf}", headers={**WS, "Origin": "http://x.test"})
        assert r.status == 403
        assert (await client.get(f"/api/live?csrf={csrf}")).status == 400  # not a WebSocket

    run(t)


def test_live_socket_multiplexes_feeds() -> None:
    async def t(client: Client, gate: Gate, c: FakeContainers, i: FakeImages) -> None:
        csrf = await login(client, gate)
        ws = await client.ws_connect(f"/api/live?csrf={csrf}")
        try:
            # hostile or malformed asks are passed over
            await ws.send_bytes(b"\x00\x01")
            for bad in ("not json", "[]", '{"sub": 5}', '{"sub": "../x", "path": "/api/events"}'):
                await ws.send_str(bad)
            await ws.send_str(json.dumps({"sub": "a", "path": "/api/containers/c1/stats"}))
            await ws.send_str(
                json.dumps({"sub": "b", "path": "/api/containers/c1/logs?tail=10&follow=0"})
            )
            await ws.send_str(json.dumps({"sub": "c", "path": "/api/containers/nope/stats"}))
            await ws.send_str(json.dumps({"sub": "d", "path": "/etc/passwd"}))
            got = await until(
                ws,
                lambda g: (
                    {(m["id"], m["event"]) for m in g}
                    >= {("a", "end"), ("b", "end"), ("c", "error"), ("d", "error")}
                ),
            )
            by: dict[str, list[dict[str, Any]]] = {}
            for m in got:
                by.setdefault(m["id"], []).append(m)
            assert set(by) == {"a", "b", "c", "d"}
            points = [m["data"] for m in by["a"] if m["event"] == ""]
            assert len(points) == 2
            lines = [(m["data"]["s"], m["data"]["l"]) for m in by["b"] if m["event"] == ""]
            assert lines == [("out", "hello"), ("err", "oops")]
            assert "No such container" in by["c"][0]["data"]["message"]
            assert "not a live view" in by["d"][0]["data"]["message"]
        finally:
            await ws.close()

    run(t)


def test_live_socket_unsubscribes_and_bounds_its_feeds(monkeypatch: Any) -> None:
    monkeypatch.setattr(live_mod, "MAX_FEEDS", 3)

    async def t(client: Client, gate: Gate, c: FakeContainers, i: FakeImages) -> None:
        csrf = await login(client, gate)
        ws = await client.ws_connect(f"/api/live?csrf={csrf}")
        try:
            for sid in ("e1", "e2", "e3", "e4"):
                await ws.send_str(json.dumps({"sub": sid, "path": "/api/events"}))
            got = await until(ws, lambda g: any(m["id"] == "e4" for m in g))
            assert got[-1]["event"] == "error" and "more than 3" in got[-1]["data"]["message"]
            await ws.send_str(json.dumps({"unsub": "e1"}))
            await ws.send_str(json.dumps({"sub": "e5", "path": "/api/events"}))
            await asyncio.sleep(0.2)
            await ws.send_str(json.dumps({"sub": "e6", "path": "/api/events"}))
            got = await until(ws, lambda g: any(m["id"] == "e6" for m in g))
            assert got[-1]["event"] == "error"  # e2, e3, e5: full again
        finally:
            await ws.close()

    run(t)


def test_logout_ends_the_sessions_open_streams() -> None:
    """The gate checks a session when a stream opens: its logout ends the streams it has
    open (the live socket, an SSE stream), and leaves another session's alone."""

    async def t(client: Client, gate: Gate, c: FakeContainers, i: FakeImages) -> None:
        from aiohttp import ClientSession, CookieJar

        csrf = await login(client, gate)
        mine = await client.ws_connect(f"/api/live?csrf={csrf}")
        sse = await client.get("/api/events")
        assert sse.status == 200
        # another browser's session
        jar = CookieJar(unsafe=True)  # its cookie is for 127.0.0.1
        async with ClientSession(base_url=str(client.make_url("")), cookie_jar=jar) as other:
            r = await other.get(f"/?token={gate.token}", allow_redirects=True)
            page = await r.text()
            other_csrf = page.split('name="berth-session" content="')[1].split('"')[0]
            theirs = await other.ws_connect(f"/api/live?csrf={other_csrf}")
            await theirs.send_str(json.dumps({"sub": "x", "path": "/api/events"}))
            r = await client.post("/api/logout", headers={CSRF_HEADER: csrf})
            assert r.status == 200
            msg = await asyncio.wait_for(mine.receive(), 5)
            assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING), msg
            with pytest.raises(ClientPayloadError):  # cut off, not left running
                await asyncio.wait_for(sse.content.read(), 5)
            # the other session's socket still answers
            await theirs.send_str(json.dumps({"sub": "y", "path": "/nope"}))
            got = await until(theirs, lambda g: any(m["id"] == "y" for m in g))
            assert got[-1]["event"] == "error"
            await theirs.close()

    run(t)


def test_a_feed_that_fails_ends_that_view_only(monkeypatch: Any) -> None:
    real = live_mod.feed_for

    def feed_for(path: str, containers: Any, bus: Any) -> Any:
        if path != "/boom":
            return real(path, containers, bus)

        async def gen() -> Any:
            yield "", {"first": True}
            raise RuntimeError("a bug")

        return gen()

    monkeypatch.setattr(live_mod, "feed_for", feed_for)

    async def t(client: Client, gate: Gate, c: FakeContainers, i: FakeImages) -> None:
        csrf = await login(client, gate)
        ws = await client.ws_connect(f"/api/live?csrf={csrf}")
        try:
            await ws.send_str(json.dumps({"sub": "b", "path": "/boom"}))
            got = await until(ws, lambda g: any(m["event"] == "error" for m in g))
            assert got[-1] == {"id": "b", "event": "error", "data": {"message": "internal error"}}
            # the socket goes on
            await ws.send_str(json.dumps({"sub": "l", "path": "/api/containers/c1/logs?follow=0"}))
            await until(ws, lambda g: any(m["id"] == "l" and m["event"] == "end" for m in g))
        finally:
            await ws.close()

    run(t)
