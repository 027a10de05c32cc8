"""The dashboard's create form and a pull's login, in-process: the form read into the typed
CreateRequest the Engine API builds (every field bounded, a `-v` part unable to bring a part
of its own), the route's answers (created and started, created but not started, refused),
and a pull's credentials given to that pull only, never sent back."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from berth.containers.create import CreateRequest
from berth.containers.ports import Port, PortBinding
from berth.containers.views import ContainerView
from berth.errors import Conflict, InvalidArgument, NotFound
from berth.events import EventBus
from berth.registry.auth import AuthConfig
from berth.ui import Dashboard, Gate
from berth.ui.auth import CSRF_HEADER
from berth.ui.create import parse

from .test_ui import CID, Client, FakeContainers, FakeImages, login, record


def test_form_reads_into_a_create_request() -> None:
    form = parse(
        {
            "image": "busybox",
            "name": "web",
            "command": "sh -c 'echo hi; sleep 9'",
            "env": ["A=1", "B=two words", ""],
            "ports": [
                {"port": "80", "hostPort": "8080", "hostIp": "127.0.0.1"},
                {"port": "53", "proto": "udp"},
                {"port": ""},
            ],
            "volumes": [
                {"source": "data", "target": "/data"},
                {"source": "/srv/site", "target": "/site", "readOnly": True},
                {"source": "", "target": "/cache"},
            ],
            "restart": "on-failure",
            "maxRetries": 3,
            "network": "front",
            "tty": True,
            "interactive": True,
        }
    )
    req = form.request
    assert form.name == "web" and form.start
    assert req.config.image == "busybox"
    assert req.config.cmd == ("sh", "-c", "echo hi; sleep 9")
    assert req.config.env == ("A=1", "B=two words")
    assert req.config.tty and req.config.open_stdin
    assert req.config.exposed_ports == (Port(80, "tcp"), Port(53, "udp"))
    assert req.host_config.port_bindings == {
        Port(80, "tcp"): (PortBinding("127.0.0.1", "8080"),),
        Port(53, "udp"): (PortBinding("", ""),),
    }
    assert req.host_config.binds == ("data:/data", "/srv/site:/site:ro", "/cache")
    rp = req.host_config.restart_policy
    assert (rp.name, rp.maximum_retry_count) == ("on-failure", 3)
    assert req.host_config.network_mode == "front"


def test_form_defaults() -> None:
    form = parse({"image": "busybox", "start": False})
    req = form.request
    assert not form.start and form.name == ""
    assert req.config.cmd is None and req.config.env is None  # the image's
    assert req.host_config.binds is None and req.host_config.port_bindings is None
    assert req.host_config.network_mode == "bridge"
    assert req.host_config.restart_policy.name == "no"
    assert parse({"image": "busybox", "command": ["echo", "a b"]}).request.config.cmd == (
        "echo",
        "a b",
    )


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ([], "want an object"),
        ({}, "choose an image"),
        ({"image": 5}, "image: want text"),
        ({"image": "x" * 600}, "longer than"),
        ({"image": "busybox", "command": "echo 'unclosed"}, "command"),
        ({"image": "busybox", "command": "a\x00b"}, "NUL"),
        ({"image": "busybox", "env": ["NOEQUALS"]}, "NAME=VALUE"),
        ({"image": "busybox", "env": ["=x"]}, "NAME=VALUE"),
        ({"image": "busybox", "env": "A=1"}, "want a list"),
        ({"image": "busybox", "env": ["A=1"] * 200}, "more than"),
        ({"image": "busybox", "ports": [{"port": "http"}]}, "invalid port"),
        ({"image": "busybox", "ports": [{"port": "80", "proto": "icmp"}]}, "invalid proto"),
        ({"image": "busybox", "ports": [{"port": "80", "hostPort": "99999"}]}, "not a port"),
        ({"image": "busybox", "ports": [{"port": "80", "hostIp": "evil.example"}]}, "not an IP"),
        # a part of a -v string cannot bring another part, or a mode
        ({"image": "busybox", "volumes": [{"source": "/:/host", "target": "/x"}]}, "':'"),
        ({"image": "busybox", "volumes": [{"source": "/etc", "target": "/x:rw"}]}, "':'"),
        ({"image": "busybox", "volumes": [{"source": "v", "target": "/x,ro"}]}, "','"),
        ({"image": "busybox", "volumes": [{"source": "../etc", "target": "/x"}]}, "neither"),
        ({"image": "busybox", "volumes": [{"source": "v", "target": "rel"}]}, "absolute"),
        ({"image": "busybox", "volumes": [{"target": "/x", "readOnly": True}]}, "anonymous"),
        ({"image": "busybox", "restart": "sometimes"}, "restart policy"),
        ({"image": "busybox", "restart": "always", "maxRetries": 2}, "only on-failure"),
        ({"image": "busybox", "restart": "on-failure", "maxRetries": -1}, "retries"),
        ({"image": "busybox", "network": "host net"}, "network"),
    ],
)
def test_form_refuses(body: Any, says: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        parse(body)
    assert says in e.value.message


class CreatingContainers(FakeContainers):
    def __init__(self) -> None:
        super().__init__()
        self.made: list[tuple[CreateRequest, str]] = []

    async def create(self, req: CreateRequest, name: str = "") -> tuple[str, list[str]]:
        if req.config.image != "busybox":
            raise NotFound(f"No such image: {req.config.image}")
        if name == "taken":
            raise Conflict('The container name "/taken" is already in use')
        self.made.append((req, name))
        return CID, ["a warning"]

    def inspect(self, ref: str, size: bool = False) -> ContainerView:
        return ContainerView(
            record(name="/" + (self.made[-1][1] or "one") if self.made else "/one")
        )

    async def start(self, ref: str) -> None:
        if self.made and self.made[-1][1] == "nostart":
            raise InvalidArgument("port is already allocated")
        await super().start(ref)


class FakeDist:
    def __init__(self) -> None:
        self.auths: list[AuthConfig] = []

    async def pull(
        self, name: str, auth: AuthConfig | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        assert auth is not None
        self.auths.append(auth)
        if auth.password == "wrong":
            raise InvalidArgument("unauthorized: authentication required")
        yield {"status": "Pull complete", "id": "abc"}


def serve(containers: Any, dist: Any, fn: Any) -> None:
    async def main() -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        gate = Gate("127.0.0.1", port)
        app = Dashboard(
            containers=containers,
            images=FakeImages(),  # type: ignore[arg-type]
            execs=None,  # type: ignore[arg-type]
            events=EventBus(),
            gate=gate,
            distribution=dist,
        ).app()
        client: Client = TestClient(TestServer(app, host="127.0.0.1", port=port))
        await client.start_server()
        try:
            await fn(client, {CSRF_HEADER: await login(client, gate, carry=False)})
        finally:
            await client.close()

    asyncio.run(main())


def test_create_route() -> None:
    cs = CreatingContainers()

    async def go(client: Client, hdr: dict[str, str]) -> None:
        body = {"image": "busybox", "name": "web", "command": "sleep 9"}
        assert (await client.post("/api/containers", json=body)).status == 403  # no CSRF
        assert not cs.made
        r = await client.post("/api/containers", json=body, headers=hdr)
        assert r.status == 201, await r.text()
        got = await r.json()
        assert got == {"id": CID, "name": "web", "warnings": ["a warning"], "started": True}
        assert cs.made[-1][0].config.cmd == ("sleep", "9") and ("start", CID) in cs.calls
        # not started when the form says so
        r = await client.post("/api/containers", json={**body, "start": False}, headers=hdr)
        assert (await r.json())["started"] is False
        # made, but its start failed: said so, with the start's status
        r = await client.post("/api/containers", json={**body, "name": "nostart"}, headers=hdr)
        assert r.status == 400
        got = await r.json()
        assert got["id"] == CID and "created nostart, but it did not start" in got["message"]
        # refused: the service's errors and the form's
        r = await client.post("/api/containers", json={**body, "name": "taken"}, headers=hdr)
        assert r.status == 409 and "already in use" in (await r.json())["message"]
        r = await client.post("/api/containers", json={**body, "image": "nope"}, headers=hdr)
        assert r.status == 404 and "No such image" in (await r.json())["message"]
        r = await client.post("/api/containers", data=b"{not json", headers=hdr)
        assert r.status == 400 and "not JSON" in (await r.json())["message"]
        big = {**body, "env": ["A=" + "x" * 70000]}
        assert (await client.post("/api/containers", json=big, headers=hdr)).status == 413

    serve(cs, None, go)


def test_pull_login_is_that_pulls_only() -> None:
    dist = FakeDist()

    async def go(client: Client, hdr: dict[str, str]) -> None:
        r = await client.post("/api/images/pull?ref=reg.test/x:1", headers=hdr)
        assert r.status == 200 and dist.auths[-1].anonymous
        login = {"username": "bob", "password": "hunter2"}
        r = await client.post("/api/images/pull?ref=reg.test/x:1", json=login, headers=hdr)
        text = await r.text()
        assert r.status == 200 and "hunter2" not in text
        assert (dist.auths[-1].username, dist.auths[-1].password) == ("bob", "hunter2")
        # the next pull without a login is anonymous again: nothing was kept
        await client.post("/api/images/pull?ref=reg.test/x:1", headers=hdr)
        assert dist.auths[-1].anonymous
        r = await client.post(
            "/api/images/pull?ref=reg.test/x:1",
            json={"username": "bob", "password": "wrong"},
            headers=hdr,
        )
        assert r.status == 400 and "wrong" not in await r.text()
        for bad in ([1], {"username": 5}, {"password": "x"}, {"username": "u" * 2000}):
            r = await client.post("/api/images/pull?ref=reg.test/x:1", json=bad, headers=hdr)
            assert r.status == 400, bad

    serve(FakeContainers(), dist, go)
