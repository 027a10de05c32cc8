"""The HTTP edge in-process over fakes: ping headers, version negotiation, errors in Docker's
shape, and each handler module's routes with and without the /v1.xx prefix."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from berth.api import Api, frame, parse_filters
from berth.containers.execs import Exec, ExecConfig
from berth.containers.hostconfig import HostConfig
from berth.containers.record import ContainerRecord
from berth.containers.settings import ContainerConfig
from berth.containers.views import ContainerView
from berth.errors import Conflict, Forbidden, InvalidArgument, NotFound
from berth.events import EventBus
from berth.images import Image, ImageDetails, ImageSummary
from berth.metadata import MetadataStore
from berth.networks import Driver, NetworkRecord, NetworkView
from berth.volumes import VolumeService


class FakeContainers:
    def __init__(self) -> None:
        self.started: list[str] = []
        self.connected: list[tuple[str, str]] = []
        self.listed: list[tuple[bool, dict[str, list[str]] | None]] = []

    def emit(self, *a: Any) -> None:
        pass

    def resolve(self, ref: str) -> ContainerRecord:
        if ref != "c1":
            raise NotFound(f"No such container: {ref}")
        return ContainerRecord(
            id="c1" * 32,
            name="/one",
            created_ns=0,
            image="sha256:x",
            path="true",
            args=[],
            config=ContainerConfig(image="x"),
            host_config=HostConfig(),
        )

    def inspect(self, ref: str, size: bool = False) -> ContainerView:
        return ContainerView(self.resolve(ref))

    def list(
        self,
        *,
        all_: bool = False,
        limit: int = -1,
        size: bool = False,
        filters: dict[str, list[str]] | None = None,
    ) -> list[ContainerView]:
        self.listed.append((all_, filters))
        return [self.inspect("c1")]

    async def start(self, ref: str) -> None:
        if ref == "running":
            raise Conflict("container already started")  # the NotModified path is the 304
        self.inspect(ref)
        self.started.append(ref)

    async def kill(self, ref: str, signal: str | None) -> None:
        raise Conflict(f"Container {ref} is not running")

    def network_users(self, name: str) -> list[str]:
        return ["c1"] if name == "busy" else []

    async def connect(self, net: str, container: str, cfg: dict[str, Any]) -> None:
        self.connected.append((net, container))


class FakeExecs:
    def create(self, ref: str, config: ExecConfig) -> str:
        if ref != "c1":
            raise NotFound(f"No such container: {ref}")
        return "e1"

    def inspect(self, eid: str) -> Exec:
        if eid != "e1":
            raise NotFound(f"No such exec instance: {eid}")
        return Exec("e1", "c1" * 32, ExecConfig(cmd=("true",)))

    def resize(self, eid: str, h: int, w: int) -> None:
        self.inspect(eid)


class FakeImage:
    id = "sha256:" + "ab" * 32


class FakeImages:
    def __init__(self, events: EventBus) -> None:
        self.events = events

    def list(
        self, *, all_: bool = False, filters: dict[str, list[str]] | None = None
    ) -> list[ImageSummary]:
        return [
            ImageSummary(
                id=FakeImage.id,
                created=0,
                size=0,
                labels=None,
                repo_tags=[],
                repo_digests=[],
                containers=0,
            )
        ]

    def resolve(self, name: str) -> FakeImage:
        if name != "busybox":
            raise NotFound(f"No such image: {name}")
        return FakeImage()

    def inspect(self, name: str) -> ImageDetails:
        img = Image(id=self.resolve(name).id, config={}, layers=[], size=0, created=0)
        return ImageDetails(image=img, spec=img.spec, repo_tags=[], repo_digests=[], layer_dirs=[])

    def tag(self, name: str, repo: str, tag: str = "") -> None:
        self.events.publish("image", "tag", self.resolve(name).id, {"name": repo})

    def disk_usage(self) -> tuple[int, list[ImageSummary]]:
        return 0, []


class FakeDistribution:
    def __init__(self) -> None:
        self.auth: list[str | None] = []

    def credentials(self, header: str | None) -> str | None:
        if header == "bad":
            raise InvalidArgument("invalid X-Registry-Auth header: not base64url JSON")
        return header

    async def pull(
        self, name: str, tag: str = "", *, platform: str = "", auth: Any = None
    ) -> AsyncIterator[dict[str, Any]]:
        self.auth.append(auth)
        if name == "missing":
            raise NotFound(f"pull access denied for {name}")
        yield {"status": f"Pulling from library/{name}", "id": tag or "latest"}
        if name == "breaks":
            raise InvalidArgument("unexpected EOF")
        yield {"status": "Status: Downloaded newer image for " + name}


class FakeBuilder:
    def prune(self) -> dict[str, Any]:
        return {"CachesDeleted": None, "SpaceReclaimed": 0}


class FakeNetworks:
    def __init__(self, events: EventBus) -> None:
        self.events = events
        self.nets = {"n1": _net("n1" * 32, "front"), "busy": _net("b" * 64, "busy")}

    def list(self, filters: dict[str, list[str]] | None = None) -> list[NetworkView]:
        return [NetworkView(record=rec, endpoints={}) for rec in self.nets.values()]

    def get(self, ref: str) -> NetworkRecord:
        for rec in self.nets.values():
            if ref in (rec.id, rec.name):
                return rec
        raise NotFound(f"network {ref} not found")

    def inspect(self, ref: str) -> NetworkView:
        return NetworkView(record=self.get(ref), endpoints={})

    def create(self, name: str, **kw: Any) -> NetworkRecord:
        return _net("n2" * 32, name)

    def remove(self, ref: str, users: list[str]) -> None:
        if users:
            raise Forbidden(f"error while removing network: network {ref} has active endpoints")


def _net(nid: str, name: str) -> NetworkRecord:
    return NetworkRecord(id=nid, name=name, driver=Driver.BRIDGE, created="2024-01-01T00:00:00Z")


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _with_client(fn: Any, **services: Any) -> Any:
    events = services.pop("events", None) or EventBus()
    api = Api(
        containers=services.pop("containers", FakeContainers()),
        images=services.pop("images", FakeImages(events)),
        info=lambda: {"ID": "x"},
        events=events,
        **services,
    )
    async with TestClient(TestServer(api.app())) as client:
        return await fn(client)


def _decode(body: bytes) -> Any:
    """One JSON document, or the raw bytes of a stream of them."""
    try:
        return json.loads(body)
    except ValueError:
        return body


async def _both(c: TestClient, method: str, path: str, **kw: Any) -> tuple[int, Any]:
    """The same request bare and under /v1.41; both replies must agree."""
    out = []
    for prefix in ("", "/v1.41"):
        r = await c.request(method, prefix + path, **kw)
        body = await r.read()
        assert r.headers["Api-Version"] == "1.50", path
        out.append((r.status, _decode(body)))
    assert out[0] == out[1], (path, out)
    return out[0]


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
        r = await c.put("/v1.50/containers/json")
        assert r.status == 405 and await r.json() == {"message": "method not allowed"}

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
        for method, path in (
            ("GET", "/nodes"),
            ("GET", "/v1.41/services/x"),
            ("POST", "/secrets/create"),
            ("DELETE", "/configs/c"),
            ("GET", "/tasks/t/logs"),
            ("GET", "/swarm"),
        ):
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
        for method, path in (
            ("POST", "/plugins/pull?remote=x"),
            ("GET", "/plugins/privileges"),
            ("POST", "/session"),
        ):
            r = await c.request(method, path)
            assert r.status == 501 and "berth" in (await r.json())["message"]
        r = await c.put("/volumes/v1", json={"Spec": {}})
        assert r.status == 503 and "not a swarm manager" in (await r.json())["message"]

    _run(_with_client(go))


def test_system_routes() -> None:
    async def go(c: TestClient) -> None:
        assert await _both(c, "GET", "/info") == (200, {"ID": "x"})
        status, df = await _both(c, "GET", "/system/df?type=image&type=build-cache")
        assert status == 200 and df == {"LayersSize": 0, "Images": [], "BuildCache": []}
        assert await _both(c, "GET", "/system/df?type=nope") == (
            400,
            {"message": "unknown object type: nope"},
        )
        assert (await _both(c, "GET", "/events?since=x"))[0] == 400
        # a bounded event stream replays what happened in its window, filtered
        r = await c.post("/v1.41/images/busybox/tag?repo=mine")
        assert r.status == 201
        until = time.time() + 0.2
        r = await c.get(f'/events?since=0&until={until}&filters={{"type":["image"]}}')
        evs = [json.loads(line) for line in (await r.read()).splitlines()]
        assert [(e["Type"], e["Action"], e["Actor"]["Attributes"]) for e in evs] == [
            ("image", "tag", {"name": "mine"})
        ]

    _run(_with_client(go))


def test_container_routes() -> None:
    containers = FakeContainers()

    async def go(c: TestClient) -> None:
        status, listed = await _both(c, "GET", '/containers/json?all=1&filters={"name":["x"]}')
        assert status == 200 and listed[0]["Id"] == "c1" * 32 and listed[0]["Names"] == ["/one"]
        assert containers.listed[0] == (True, {"name": ["x"]})
        assert (await _both(c, "POST", "/containers/c1/start"))[0] == 204
        assert containers.started == ["c1", "c1"]
        assert await _both(c, "POST", "/containers/c1/kill") == (
            409,
            {"message": "Container c1 is not running"},
        )
        assert await _both(c, "POST", "/containers/zz/logs") == (
            405,
            {"message": "method not allowed"},
        )
        assert await _both(c, "GET", "/containers/c1/logs") == (
            400,
            {"message": "Bad parameters: you must choose at least one stream"},
        )
        assert await _both(c, "POST", "/containers/create", data=b"{nope") == (
            400,
            {
                "message": "invalid JSON body: Expecting property name enclosed in double "
                "quotes: line 1 column 2 (char 1)"
            },
        )

    _run(_with_client(go, containers=containers))


def test_exec_routes() -> None:
    async def go(c: TestClient) -> None:
        assert await _both(c, "POST", "/containers/c1/exec", json={"Cmd": ["true"]}) == (
            201,
            {"Id": "e1"},
        )
        assert await _both(c, "POST", "/containers/c1/exec", json={}) == (
            400,
            {"message": "No exec command specified"},
        )
        status, ex = await _both(c, "GET", "/exec/e1/json")
        assert (status, ex["ID"], ex["ProcessConfig"]["entrypoint"]) == (200, "e1", "true")
        assert await _both(c, "POST", "/exec/e9/start", json={"Detach": True}) == (
            404,
            {"message": "No such exec instance: e9"},
        )
        assert await _both(c, "POST", "/exec/e1/resize?h=0&w=80") == (
            400,
            {"message": "Bad parameters: h and w are required"},
        )

    _run(_with_client(go, execs=FakeExecs()))


def test_image_routes_and_pull_progress() -> None:
    dist = FakeDistribution()

    async def go(c: TestClient) -> None:
        status, listed = await _both(c, "GET", "/images/json")
        assert status == 200 and listed[0]["Id"].startswith("sha256:")
        assert await _both(c, "GET", "/images/nope/json") == (
            404,
            {"message": "No such image: nope"},
        )
        assert await _both(c, "POST", "/images/busybox/tag") == (
            400,
            {"message": "repository name cannot be empty"},
        )
        assert await _both(c, "POST", "/images/create") == (
            400,
            {"message": "fromImage or fromSrc is required"},
        )
        # a pull: its messages as \r\n-separated JSON; the header reaches the service
        auth = base64.urlsafe_b64encode(b'{"username":"u"}').decode()
        status, body = await _both(
            c, "POST", "/images/create?fromImage=busybox", headers={"X-Registry-Auth": auth}
        )
        assert status == 200 and body.count(b"\r\n") == 2 and dist.auth == [auth, auth]
        # an error before the first message is an HTTP error, a later one goes in the stream
        assert await _both(c, "POST", "/images/create?fromImage=missing") == (
            404,
            {"message": "pull access denied for missing"},
        )
        status, body = await _both(c, "POST", "/images/create?fromImage=breaks")
        last = json.loads(body.splitlines()[-1])
        assert status == 200 and last == {
            "errorDetail": {"message": "unexpected EOF"},
            "error": "unexpected EOF",
        }
        assert await _both(
            c, "POST", "/images/create?fromImage=busybox", headers={"X-Registry-Auth": "bad"}
        ) == (400, {"message": "invalid X-Registry-Auth header: not base64url JSON"})

    _run(_with_client(go, distribution=dist))


def test_image_routes_without_a_registry_client() -> None:
    async def go(c: TestClient) -> None:
        for method, path in (
            ("POST", "/images/create?fromImage=x"),
            ("GET", "/images/search"),
            ("POST", "/images/x/push"),
            ("GET", "/distribution/x/json"),
            ("POST", "/auth"),
        ):
            assert await _both(c, method, path) == (
                404,
                {"message": "this daemon has no registry client"},
            ), path

    _run(_with_client(go))


def test_build_routes() -> None:
    async def go(c: TestClient) -> None:
        assert await _both(c, "POST", "/build/prune") == (
            200,
            {"CachesDeleted": None, "SpaceReclaimed": 0},
        )
        status, body = await _both(c, "POST", "/build?version=2")
        assert status == 400 and "BuildKit (version=2) is not supported" in body["message"]
        assert await _both(c, "POST", "/build?allow=[1]") == (
            400,
            {"message": "invalid allow: not a JSON list of names"},
        )
        assert await _both(c, "POST", "/build?t=a@sha256:" + "0" * 64) == (
            400,
            {"message": f"invalid tag 'a@sha256:{'0' * 64}': a tag cannot hold a digest"},
        )
        assert await _both(c, "POST", "/build", headers={"X-Berth-Build-Secrets": "!"}) == (
            400,
            {"message": "invalid X-Berth-Build-Secrets header"},
        )

    _run(_with_client(go, builder=FakeBuilder()))
    _run(
        _with_client(
            lambda c: _expect(c, "POST", "/commit?container=c1", 404, "this daemon has no builder")
        )
    )


async def _expect(c: TestClient, method: str, path: str, status: int, message: str) -> None:
    assert await _both(c, method, path) == (status, {"message": message})


def test_network_routes() -> None:
    events = EventBus()
    containers = FakeContainers()

    async def go(c: TestClient) -> None:
        r = await c.get("/networks")
        nets = await r.json()
        assert r.status == 200 and [n["Name"] for n in nets] == ["front", "busy"]
        # the one field that depends on the version: EnableIPv4, from API 1.47 on
        old = await (await c.get("/v1.41/networks")).json()
        assert [{k: v for k, v in n.items() if k != "EnableIPv4"} for n in nets] == old
        assert "EnableIPv4" in nets[0] and "EnableIPv4" not in old[0]
        assert await _both(c, "GET", "/networks/nope") == (
            404,
            {"message": "network nope not found"},
        )
        assert await _both(c, "POST", "/networks/create", json={"Name": "back"}) == (
            201,
            {"Id": "n2" * 32, "Warning": ""},
        )
        assert await _both(c, "DELETE", "/networks/busy") == (
            403,
            {"message": f"error while removing network: network {'b' * 64} has active endpoints"},
        )
        assert (await _both(c, "DELETE", "/networks/front"))[0] == 204
        r = await c.post("/v1.41/networks/front/connect", json={"Container": "c1"})
        assert r.status == 200 and containers.connected == [("front", "c1")]

    _run(_with_client(go, events=events, containers=containers, networks=FakeNetworks(events)))
    # without a network service every network route is a 404 in Docker's shape
    _run(_with_client(lambda c: _expect(c, "GET", "/networks", 404, "networks are not set up")))


def test_volume_routes_and_their_events(tmp_path: Path) -> None:
    events = EventBus()
    volumes = VolumeService(
        MetadataStore(str(tmp_path / "meta.db")), str(tmp_path / "vols"), emit=events.publish
    )

    async def go(c: TestClient) -> None:
        r = await c.post("/v1.41/volumes/create", json={"Name": "data", "Labels": {"a": "b"}})
        assert r.status == 201 and (await r.json())["Name"] == "data"
        status, doc = await _both(c, "GET", "/volumes/data")
        assert status == 200 and doc["Labels"] == {"a": "b"}
        status, listed = await _both(c, "GET", '/volumes?filters={"label":["a=b"]}')
        assert [v["Name"] for v in listed["Volumes"]] == ["data"]
        assert await _both(c, "GET", "/volumes/nope") == (
            404,
            {"message": "get nope: no such volume"},
        )
        assert await _both(c, "POST", "/volumes/create", json={"Name": "a/b"}) == (
            400,
            {
                "message": 'create a/b: "a/b" includes invalid characters for a local volume '
                'name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you '
                "intended to pass a host directory, use absolute path"
            },
        )
        r = await c.delete("/volumes/data")
        assert r.status == 204
        status, pruned = await _both(c, "POST", "/volumes/prune")
        assert status == 200 and pruned == {"VolumesDeleted": None, "SpaceReclaimed": 0}
        status, df = await _both(c, "GET", "/system/df?type=volume")
        assert status == 200 and df == {"Volumes": []}

    _run(_with_client(go, events=events, volumes=volumes))
    # the service published them, not the handlers
    assert [(e["Type"], e["Action"], e["Actor"]["ID"]) for e in events.recent] == [
        ("volume", "create", "data"),
        ("volume", "destroy", "data"),
    ]
