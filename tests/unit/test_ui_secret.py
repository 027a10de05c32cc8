"""The dashboard's cookie is sent to every port of its host (cookies do not isolate by port),
so another local service's page gets it: with the cookie alone, every route of the
dashboard but the page and the bundle is refused, whatever its method and kind (JSON, SSE,
WebSocket, download), and neither the page nor the bundle holds the session's secret."""

from __future__ import annotations

import re
from typing import Any

from berth.ui.auth import COOKIE, CSRF_HEADER, Gate
from tests.unit.test_ui import Client, FakeContainers, FakeImages, login, run

WS = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
}
COOKIE_ONLY = {("GET", "/"), ("GET", "/static/{name}")}


def routes(client: Client) -> list[tuple[str, str]]:
    """Every (method, path pattern) of the dashboard's application."""
    app: Any = client.server.app
    out = []
    for r in app.router.routes():
        info = r.resource.get_info() if r.resource else {}
        path = info.get("path") or info.get("formatter")
        if r.method != "HEAD" and path:
            out.append((r.method, path))
    return out


def fill(pattern: str) -> str:
    return re.sub(r"\{[a-z]+\}", "c1", pattern)


def test_the_cookie_alone_opens_only_the_page_and_the_bundle() -> None:
    async def t(client: Client, gate: Gate, c: FakeContainers, i: FakeImages) -> None:
        secret = await login(client, gate, carry=False)
        same = {"Origin": f"http://127.0.0.1:{gate.port}"}
        seen = routes(client)
        assert len(seen) > 30 and ("GET", "/api/live") in seen
        for method, pattern in seen:
            path = fill(pattern)
            if (method, pattern) in COOKIE_ONLY:
                continue
            # the cookie, the right Origin, and no secret; a wrong one; another session's
            other = gate.open_session()[1].csrf
            for hdr in ({}, {CSRF_HEADER: "x"}, {CSRF_HEADER: gate.token}, {CSRF_HEADER: other}):
                r = await client.request(method, path, headers={**same, **hdr})
                assert r.status == 403, (method, path, hdr, r.status)
                assert secret not in await r.text()
            if method == "GET":
                # a WebSocket's upgrade, and the query's form of the secret, wrong
                r = await client.get(path, headers={**same, **WS})
                assert r.status == 403, (path, "websocket")
                r = await client.get(f"{path}?csrf={other}", headers={**same, **WS})
                assert r.status == 403, (path, "websocket, another session's")
            else:
                # an action takes the secret in its header only, never in its query
                r = await client.request(method, f"{path}?csrf={secret}", headers=same)
                assert r.status == 403, (method, path, "query")
        assert c.calls == [] and i.removed == [] and i.pruned == 0
        assert gate.sessions  # logout without the secret ended nothing
        # the page and the bundle: the cookie does, and neither holds the secret
        for path in ("/", "/static/app.js", "/static/login.js", "/static/live-worker.js"):
            r = await client.get(path)
            assert r.status == 200, path
            assert secret not in await r.text()
        # with the secret, in the header (or the query of a GET), the same routes answer
        r = await client.get("/api/containers", headers={CSRF_HEADER: secret})
        assert r.status == 200
        r = await client.get(f"/api/containers/c1/logs.txt?csrf={secret}")
        assert r.status == 200 and "attachment" in r.headers["Content-Disposition"]
        r = await client.get(f"/api/events?csrf={secret}&since=0", timeout=1)
        assert r.status == 200 and r.headers["Content-Type"] == "text/event-stream"
        r.close()

    run(t)


def test_another_browser_with_the_cookie_alone() -> None:
    """What the other service's server can do with the cookie it was sent: the page, with
    no secret in it, and nothing else."""

    async def t(client: Client, gate: Gate, c: FakeContainers, i: FakeImages) -> None:
        from aiohttp import ClientSession, CookieJar

        secret = await login(client, gate, carry=False)
        sid = next(iter(gate.sessions))
        jar = CookieJar(unsafe=True)
        jar.update_cookies({COOKIE: sid})
        async with ClientSession(base_url=str(client.make_url("")), cookie_jar=jar) as other:
            page = await other.get("/")
            assert page.status == 200 and secret not in await page.text()
            assert "berth-session" not in await page.text()
            for path in ("/api/containers", "/api/containers/c1", "/api/df", "/api/volumes"):
                assert (await other.get(path)).status == 403, path
            r = await other.get("/api/containers/c1/logs.txt")
            assert r.status == 403
            r = await other.post(
                "/api/containers/c1/kill", headers={"Origin": f"http://127.0.0.1:{gate.port}"}
            )
            assert r.status == 403 and c.calls == []

    run(t)
