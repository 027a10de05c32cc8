"""The HTTP edge in-process: ping headers, version negotiation, errors in Docker's shape."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from berth.api import Api, frame, parse_filters
from berth.errors import NotFound


class FakeContainers:
    def emit(self, *a: Any) -> None:
        pass

    def inspect(self, ref: str, size: bool = False) -> dict[str, Any]:
        raise NotFound(f"No such container: {ref}")


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _with_client(fn: Any) -> Any:
    api = Api(containers=FakeContainers(), images=None, info=lambda: {"ID": "x"})  # type: ignore[arg-type]
    async with TestClient(TestServer(api.app())) as client:
        return await fn(client)


def test_ping_and_version_headers() -> None:
    async def go(c: TestClient) -> None:
        r = await c.head("/_ping")
        assert r.status == 200
        assert r.headers["Api-Version"] == "1.50" and r.headers["Ostype"] == "linux"
        assert r.headers["Builder-Version"] and r.headers["Swarm"] == "inactive"
        r = await c.get("/_ping")
        assert await r.text() == "OK"
        v = await (await c.get("/v1.41/version")).json()
        assert v["ApiVersion"] == "1.50" and v["MinAPIVersion"] == "1.24"
    _run(_with_client(go))


def test_versions_out_of_range_and_errors() -> None:
    async def go(c: TestClient) -> None:
        r = await c.get("/v1.99/version")
        assert r.status == 400
        assert "client version 1.99 is too new" in (await r.json())["message"]
        r = await c.get("/v1.12/version")
        assert r.status == 400 and "too old" in (await r.json())["message"]
        r = await c.get("/v1.50/containers/nope/json")
        assert r.status == 404 and await r.json() == {"message": "No such container: nope"}
        r = await c.get("/v1.50/no/such/route")
        assert r.status == 404 and await r.json() == {"message": "page not found"}
    _run(_with_client(go))


def test_frame_and_filters() -> None:
    assert frame(1, b"hi") == b"\x01\x00\x00\x00\x00\x00\x00\x02hi"
    assert parse_filters('{"status":["running"]}') == {"status": ["running"]}
    assert parse_filters('{"label":{"a=b":true,"c":false}}') == {"label": ["a=b"]}


def test_swarm_routes_answer_503_outside_a_swarm() -> None:
    async def go(c: TestClient) -> None:
        r = await c.post("/v1.50/swarm/leave?force=1")
        assert r.status == 503
        assert await r.json() == {"message": "This node is not part of a swarm"}
        for method, path in (("GET", "/nodes"), ("GET", "/v1.41/services/x"),
                             ("POST", "/secrets/create"), ("DELETE", "/configs/c"),
                             ("GET", "/tasks/t/logs"), ("GET", "/swarm")):
            r = await c.request(method, path)
            assert r.status == 503, path
            assert "This node is not a swarm manager" in (await r.json())["message"]
        r = await c.post("/swarm/init")
        assert r.status == 503 and "does not support swarm" in (await r.json())["message"]
    _run(_with_client(go))


def test_plugins_sessions_and_cluster_volumes_answer_as_dockerd_without_them() -> None:
    async def go(c: TestClient) -> None:
        r = await c.get("/v1.50/plugins")
        assert r.status == 200 and await r.json() == []
        r = await c.get("/plugins/vieux/sshfs:latest/json")
        assert r.status == 404
        assert await r.json() == {"message": 'plugin "vieux/sshfs:latest" not found'}
        for method, path in (("POST", "/plugins/x/enable"), ("DELETE", "/plugins/x")):
            assert (await c.request(method, path)).status == 404
        for method, path in (("POST", "/plugins/pull?remote=x"), ("GET", "/plugins/privileges"),
                             ("POST", "/session")):
            r = await c.request(method, path)
            assert r.status == 501 and "berth" in (await r.json())["message"]
        r = await c.put("/volumes/v1", json={"Spec": {}})
        assert r.status == 503 and "not a swarm manager" in (await r.json())["message"]
    _run(_with_client(go))
