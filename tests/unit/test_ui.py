"""The dashboard's server in-process over fakes: the token's exchange for a cookie, every
route refused without a session, every action refused without the CSRF header (or with
another session's, or from another origin), each action reaching its service, the masked
environment, the Host check, and `--ui`'s address rules."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import ClientPayloadError
from aiohttp.test_utils import TestClient, TestServer

from berth.containers.hostconfig import HostConfig
from berth.containers.record import ContainerRecord
from berth.containers.resources import StatsSample
from berth.containers.settings import ContainerConfig
from berth.containers.templates import TemplateStore
from berth.containers.views import ContainerView
from berth.errors import Conflict, InvalidArgument, NotFound
from berth.events import EventBus
from berth.images import ImageSummary
from berth.images.records import Removed
from berth.images.views import HistoryLine
from berth.ui import Dashboard, Gate, parse_address
from berth.ui.auth import COOKIE, CSRF_HEADER
from berth.ui.data import MASK, mask_env

CID = "c1" * 32


def record(
    name: str = "/one", env: list[str] | None = None, labels: dict[str, str] | None = None
) -> ContainerRecord:
    return ContainerRecord(
        id=CID,
        name=name,
        created_ns=0,
        image="sha256:x",
        path="sleep",
        args=["9"],
        config=ContainerConfig(image="busybox", env=tuple(env or ()), labels=labels or {}),
        host_config=HostConfig(),
    )


# compose's records (none): a store on a directory that does not exist reads as empty
NO_RECORDS = TemplateStore("/nonexistent/berth-ui-test")


class FakeContainers:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.templates = NO_RECORDS

    def resolve(self, ref: str) -> ContainerRecord:
        if ref not in ("c1", CID, "one"):
            raise NotFound(f"No such container: {ref}")
        return record(
            env=[
                "PATH=/bin",
                "DB_PASSWORD=hunter2",
                "API_TOKEN=abc",
                "URL=postgres://u:pw@db/x",
                "PLAIN=visible",
            ]
        )

    def inspect(self, ref: str, size: bool = False) -> ContainerView:
        return ContainerView(self.resolve(ref), status_text="Up 1 second")

    def list(self, *, all_: bool = False, size: bool = False) -> list[ContainerView]:
        return [self.inspect("c1")]

    def exists(self, cid: str) -> bool:
        return len([c for c in self.calls if c[0] == "stats"]) < 2

    def stats(self, ref: str) -> StatsSample:
        self.calls.append(("stats", ref))
        return StatsSample(
            read="",
            name="/one",
            id=CID,
            running=True,
            cpu_usage_ns=10**9 * len(self.calls),
            system_cpu_ns=10**10 * len(self.calls),
            online_cpus=2,
            memory_usage=1 << 20,
        )

    async def _verb(self, verb: str, ref: str) -> None:
        self.resolve(ref)
        if verb == "kill" and ref == "one":
            raise Conflict("Container one is not running")
        self.calls.append((verb, ref))

    async def start(self, ref: str) -> None:
        await self._verb("start", ref)

    async def stop(self, ref: str) -> None:
        await self._verb("stop", ref)

    async def restart(self, ref: str) -> None:
        await self._verb("restart", ref)

    async def kill(self, ref: str) -> None:
        await self._verb("kill", ref)

    async def pause(self, ref: str) -> None:
        await self._verb("pause", ref)

    async def unpause(self, ref: str) -> None:
        await self._verb("unpause", ref)

    async def remove(self, ref: str, *, force: bool = False) -> None:
        await self._verb("remove-force" if force else "remove", ref)

    def logs(self, ref: str, **kw: Any) -> AsyncIterator[tuple[int, bytes]]:
        async def gen() -> AsyncIterator[tuple[int, bytes]]:
            yield 1, b"2026-01-01T00:00:00.000000000Z hello\n"
            yield 2, b"2026-01-01T00:00:01.000000000Z oops\n"

        return gen()


class FakeImages:
    def __init__(self) -> None:
        self.removed: list[tuple[str, bool]] = []
        self.pruned = 0

    def list(self) -> list[ImageSummary]:
        return [
            ImageSummary(
                id="sha256:" + "a" * 64,
                created=0,
                size=10,
                labels=None,
                repo_tags=["busybox:latest"],
                repo_digests=[],
                containers=1,
            )
        ]

    def history(self, name: str) -> list[HistoryLine]:
        return [
            HistoryLine(
                id="sha256:" + "a" * 64,
                created=0,
                created_by="RUN echo hi",
                tags=["busybox:latest"],
                size=5,
                comment="",
            )
        ]

    def remove(self, name: str, *, force: bool = False) -> list[Removed]:
        self.removed.append((name, force))
        return [Removed(ref=name), Removed(ref="sha256:" + "a" * 64, deleted=True)]

    def prune(self, *, all_: bool = False) -> list[Removed]:
        self.pruned += 1
        return []


Client = TestClient[Any, Any]


def run(fn: Callable[[Client, Gate, FakeContainers, FakeImages], Awaitable[None]]) -> None:
    async def main() -> None:
        containers, images = FakeContainers(), FakeImages()
        with socket.socket() as s:  # the gate checks the Host header: it needs the port
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        gate = Gate("127.0.0.1", port)
        server = TestServer(
            Dashboard(
                containers=containers,  # type: ignore[arg-type]
                images=images,  # type: ignore[arg-type]
                execs=None,  # type: ignore[arg-type]
                events=EventBus(),
                gate=gate,
            ).app(),
            host="127.0.0.1",
            port=port,
        )
        client: Client = TestClient(server)
        await client.start_server()
        try:
            await fn(client, gate, containers, images)
        finally:
            await client.close()

    asyncio.run(main())


async def login(client: Client, gate: Gate, *, carry: bool = True) -> str:
    """The session's secret, after the token's exchange for the cookie: the answer is the
    page that keeps it (in the browser's localStorage), and the dashboard's page holds none.
    With `carry`, every later request of the client shows it, as the page's own do."""
    r = await client.get(f"/?token={gate.token}", allow_redirects=False)
    assert r.status == 200 and "no-store" in r.headers["Cache-Control"]
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and COOKIE in cookie
    m = re.search(r'name="berth-session" content="([^"]+)"', await r.text())
    assert m and '<script type="module" src="/static/login.js">' in await r.text()
    secret = m.group(1)
    page = await client.get("/")
    assert page.status == 200 and "no-store" in page.headers["Cache-Control"]
    assert secret not in await page.text()
    if carry:
        client.session.headers[CSRF_HEADER] = secret
    return secret


def test_nothing_without_the_token() -> None:
    async def t(client: Client, gate: Gate, c: FakeContainers, i: FakeImages) -> None:
        for path in (
            "/",
            "/api/containers",
            f"/api/containers/{CID}",
            "/api/images",
            "/api/events",
            "/api/df",
        ):
            r = await client.get(path)
            assert r.status == 401, path
        r = await client.post("/api/containers/c1/stop")
        assert r.status == 401 and c.calls == []
        r = await client.get("/?token=wrong", allow_redirects=False)
        assert r.status == 403 and "Set-Cookie" not in r.headers
        # a made-up cookie is no session
        client.session.cookie_jar.update_cookies({COOKIE: "made-up"})
        assert (await client.get("/api/containers")).status == 401
        # the bundle holds nothing secret: it loads without a session
        assert (await client.get("/static/app.js")).status == 200
        # only the bundle's own files: not the page's template, nothing beside them
        for path in (
            "/static/index.html",
            "/static/..%2fserver.py",
            "/static/__init__.py",
            "/static/chunk-AAAAAAAA.js",
            "/static/chunk-..%2f..%2fx.js",
        ):
            assert (await client.get(path)).status == 404, path
        # the chunk the page loads later is there, under the name app.js's import gives it
        app = await (await client.get("/static/app.js")).text()
        chunks = set(re.findall(r"chunk-[A-Z0-9]{8}\.js", app))
        assert chunks
        for c in chunks:
            r = await client.get(f"/static/{c}")
            assert r.status == 200 and "immutable" in r.headers["Cache-Control"]

    run(t)


def test_token_gives_a_cookie_and_the_api() -> None:
    async def t(client: Client, gate: Gate, c: FakeContainers, i: FakeImages) -> None:
        await login(client, gate)
        r = await client.get("/api/containers")
        assert r.status == 200
        rows = await r.json()
        assert rows[0]["name"] == "one" and rows[0]["status"] == "Up 1 second"
        assert r.headers["X-Frame-Options"] == "DENY"
        assert "default-src 'self'" in r.headers["Content-Security-Policy"]

    run(t)


def test_actions_need_the_csrf_header() -> None:
    async def t(client: Client, gate: Gate, c: FakeContainers, i: FakeImages) -> None:
        csrf = await login(client, gate, carry=False)
        for bad in ({}, {CSRF_HEADER: "nope"}, {CSRF_HEADER: gate.token}):
            r = await client.post("/api/containers/c1/stop", headers=bad)
            assert r.status == 403, bad
            r = await client.delete("/api/containers/c1", headers=bad)
            assert r.status == 403
            r = await client.delete("/api/images/busybox", headers=bad)
            assert r.status == 403
        assert c.calls == [] and i.removed == []
        # the right token from another origin: refused too
        r = await client.post(
            "/api/containers/c1/stop", headers={CSRF_HEADER: csrf, "Origin": "http://evil.example"}
        )
        assert r.status == 403 and c.calls == []
        # another session's token does not do for this one
        other = gate.open_session()[1].csrf
        r = await client.post("/api/containers/c1/stop", headers={CSRF_HEADER: other})
        assert r.status == 403 and c.calls == []

    run(t)


def test_each_action_reaches_its_service() -> None:
    async def t(client: Client, gate: Gate, c: FakeContainers, i: FakeImages) -> None:
        hdr = {CSRF_HEADER: await login(client, gate), "Origin": f"http://127.0.0.1:{gate.port}"}
        for verb in ("start", "stop", "restart", "kill", "pause", "unpause"):
            r = await client.post(f"/api/containers/c1/{verb}", headers=hdr)
            assert r.status == 200, verb
        r = await client.delete("/api/containers/c1?force=1", headers=hdr)
        assert r.status == 200
        assert c.calls == [
            (v, "c1")
            for v in ("start", "stop", "restart", "kill", "pause", "unpause", "remove-force")
        ]
        r = await client.post("/api/containers/c1/explode", headers=hdr)
        assert r.status == 404
        # the service's errors come back with their status and message
        r = await client.post("/api/containers/one/kill", headers=hdr)
        assert r.status == 409 and "not running" in (await r.json())["message"]
        r = await client.post("/api/containers/nope/start", headers=hdr)
        assert r.status == 404
        r = await client.delete("/api/images/busybox:latest", headers=hdr)
        assert r.status == 200 and i.removed == [("busybox:latest", False)]
        assert (await r.json())[1]["deleted"] is True
        r = await client.post("/api/images/prune", headers=hdr)
        assert r.status == 200 and i.pruned == 1

    run(t)


def test_container_page_masks_secrets() -> None:
    async def t(client: Client, gate: Gate, c: FakeContainers, i: FakeImages) -> None:
        await login(client, gate)
        r = await client.get("/api/containers/c1")
        body = await r.text()
        assert "hunter2" not in body and "abc" not in body and "u:pw" not in body
        env = {e["name"]: e for e in json.loads(body)["env"]}
        assert env["PLAIN"]["value"] == "visible" and not env["PLAIN"]["masked"]
        assert env["DB_PASSWORD"]["value"] == MASK and env["URL"]["masked"]

    run(t)


def test_streams_and_reads() -> None:
    async def t(client: Client, gate: Gate, c: FakeContainers, i: FakeImages) -> None:
        await login(client, gate)
        r = await client.get("/api/containers/c1/stats")
        assert r.headers["Content-Type"] == "text/event-stream"
        text = await r.text()
        points = [json.loads(x[6:]) for x in text.split("\n") if x.startswith('data: {"t"')]
        assert len(points) == 2 and points[1]["cpu"] == pytest.approx(20.0)
        assert "event: end" in text
        r = await client.get("/api/containers/c1/logs?tail=10&follow=0")
        lines = [
            json.loads(x[6:]) for x in (await r.text()).split("\n") if x.startswith('data: {"s"')
        ]
        assert [(x["s"], x["l"]) for x in lines] == [("out", "hello"), ("err", "oops")]
        assert (await client.get("/api/containers/c1/logs?tail=x")).status == 400
        r = await client.get("/api/containers/c1/logs.txt")
        assert "attachment" in r.headers["Content-Disposition"]
        assert "hello" in await r.text()
        r = await client.get("/api/images/busybox/history")
        assert (await r.json())[0]["createdBy"] == "RUN echo hi"

    run(t)


def test_host_header_is_checked() -> None:
    async def t(client: Client, gate: Gate, c: FakeContainers, i: FakeImages) -> None:
        r = await client.get(
            f"/?token={gate.token}", headers={"Host": "evil.example"}, allow_redirects=False
        )
        assert r.status == 421 and "Set-Cookie" not in r.headers
        r = await client.get(
            f"/?token={gate.token}",
            headers={"Host": f"localhost:{gate.port}"},
            allow_redirects=False,
        )
        assert r.status == 200

    run(t)


def test_terminal_websocket_needs_csrf() -> None:
    async def t(client: Client, gate: Gate, c: FakeContainers, i: FakeImages) -> None:
        csrf = await login(client, gate, carry=False)
        ws = {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version": "13",
        }
        for path in ("/api/containers/c1/terminal", "/api/containers/c1/attach"):
            assert (await client.get(path, headers=ws)).status == 403
            r = await client.get(
                f"{path}?csrf={csrf}", headers={**ws, "Origin": "http://evil.example"}
            )
            assert r.status == 403, path

    run(t)


def test_address_rules() -> None:
    assert parse_address("127.0.0.1:8080", tls=False) == ("127.0.0.1", 8080)
    assert parse_address("[::1]:0", tls=False) == ("::1", 0)
    assert parse_address("localhost:9", tls=False) == ("localhost", 9)
    for bad in ("0.0.0.0:8080", "192.168.1.5:80", "[::]:80"):
        with pytest.raises(InvalidArgument, match="loopback"):
            parse_address(bad, tls=False)
    assert parse_address("0.0.0.0:8443", tls=True) == ("0.0.0.0", 8443)
    for bad in ("8080", "127.0.0.1:x", "example.com:80", "127.0.0.1:70000"):
        with pytest.raises(InvalidArgument):
            parse_address(bad, tls=True)


def test_mask_env() -> None:
    got = {
        e["name"]: e["value"]
        for e in mask_env(
            ["AWS_SECRET_ACCESS_KEY=x", "GITHUB_TOKEN=y", "HOME=/root", "EMPTY", "PGPASS=z"]
        )
    }
    assert got == {
        "AWS_SECRET_ACCESS_KEY": MASK,
        "GITHUB_TOKEN": MASK,
        "HOME": "/root",
        "EMPTY": "",
        "PGPASS": MASK,
    }


def test_berthd_ui_flag(tmp_path: Any) -> None:
    from berth.daemon.config import parse_args

    (tmp_path / "daemon.json").write_text("{}")

    def cfg(*extra: str) -> Any:
        return parse_args(
            [
                "--config-file",
                str(tmp_path / "daemon.json"),
                "--exec-root",
                str(tmp_path / "run"),
                "--data-root",
                str(tmp_path / "d"),
                *extra,
            ]
        )

    assert cfg().ui is None  # off by default
    assert cfg("--ui", "127.0.0.1:0").ui == ("127.0.0.1", 0)
    with pytest.raises(SystemExit):
        cfg("--ui", "0.0.0.0:8080")  # no TLS: loopback only
    (tmp_path / "ca.pem").write_text("")
    tls = cfg(
        "--tlsverify",
        "--tlscacert",
        str(tmp_path / "ca.pem"),
        "--tlscert",
        str(tmp_path / "ca.pem"),
        "--tlskey",
        str(tmp_path / "ca.pem"),
        "--ui",
        "0.0.0.0:8443",
    )
    assert tls.ui == ("0.0.0.0", 8443)


def test_projects_group_by_compose_labels() -> None:
    from berth.containers.status import ContainerStatus
    from berth.ui.projects import projects

    def view(name: str, project: str, service: str, n: int, running: bool) -> ContainerView:
        rec = record(
            f"/{name}",
            labels={
                "com.docker.compose.project": project,
                "com.docker.compose.service": service,
                "com.docker.compose.container-number": str(n),
                "com.docker.compose.project.working_dir": "/srv/" + project,
            },
        )
        rec.id = name * 8
        if running:
            rec.state.status = ContainerStatus.RUNNING
        return ContainerView(rec, status_text="x")

    plain = ContainerView(record("/loner"))
    got = projects(
        [
            view("shop-web-2", "shop", "web", 2, True),
            plain,
            view("shop-db-1", "shop", "db", 1, False),
            view("shop-web-1", "shop", "web", 1, True),
            view("blog-app-1", "blog", "app", 1, False),
        ]
    )
    assert [p["name"] for p in got] == ["blog", "shop"]
    shop = got[1]
    assert shop["running"] == 2 and shop["total"] == 3 and shop["workingDir"] == "/srv/shop"
    assert [(s["name"], [c["name"] for c in s["containers"]]) for s in shop["services"]] == [
        ("db", ["shop-db-1"]),
        ("web", ["shop-web-1", "shop-web-2"]),
    ]


def test_project_routes() -> None:
    async def t(client: Client, gate: Gate, c: FakeContainers, i: FakeImages) -> None:
        hdr = {CSRF_HEADER: await login(client, gate, carry=False)}
        r = await client.get("/api/projects", headers=hdr)
        assert r.status == 200 and await r.json() == []  # the fake's one has no labels
        assert (await client.post("/api/projects/shop/stop")).status == 403  # no CSRF
        r = await client.post("/api/projects/shop/stop", headers=hdr)
        assert r.status == 404 and "no such project" in (await r.json())["message"]
        assert (await client.post("/api/projects/shop/explode", headers=hdr)).status == 404

    run(t)


def test_pull_streams_progress() -> None:
    class FakeDist:
        def __init__(self) -> None:
            self.asked: list[str] = []

        async def pull(self, name: str, auth: Any = None) -> AsyncIterator[dict[str, Any]]:
            self.asked.append(name)
            if name == "nope":
                raise NotFound("manifest unknown")
            yield {"status": "Pulling fs layer", "id": "abc"}
            yield {
                "status": "Downloading",
                "id": "abc",
                "progressDetail": {"current": 5, "total": 10},
            }
            if name == "half":
                raise InvalidArgument("verification failed")
            yield {"status": "Pull complete", "id": "abc"}

    async def main() -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        gate = Gate("127.0.0.1", port)
        dist = FakeDist()
        app = Dashboard(
            containers=FakeContainers(),
            images=FakeImages(),  # type: ignore[arg-type]
            execs=None,
            events=EventBus(),
            gate=gate,  # type: ignore[arg-type]
            distribution=dist,
        ).app()  # type: ignore[arg-type]
        client: Client = TestClient(TestServer(app, host="127.0.0.1", port=port))
        await client.start_server()
        try:
            hdr = {CSRF_HEADER: await login(client, gate, carry=False)}
            assert (await client.post("/api/images/pull?ref=x")).status == 403
            r = await client.post("/api/images/pull?ref=reg.example/x:1", headers=hdr)
            lines = [json.loads(x) for x in (await r.text()).splitlines()]
            assert [m["status"] for m in lines] == [
                "Pulling fs layer",
                "Downloading",
                "Pull complete",
            ]
            r = await client.post("/api/images/pull?ref=half", headers=hdr)
            assert json.loads((await r.text()).splitlines()[-1]) == {"error": "verification failed"}
            r = await client.post("/api/images/pull?ref=nope", headers=hdr)
            assert r.status == 404
            assert (await client.post("/api/images/pull", headers=hdr)).status == 400
        finally:
            await client.close()

    asyncio.run(main())


def test_volume_files_stay_inside(tmp_path: Any) -> None:
    from berth.ui import volfiles

    root = tmp_path / "vol"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.txt").write_text("hello")
    (root / "bin.dat").write_bytes(b"\x00\x01" * 10)
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    (root / "abs").symlink_to(secret)
    (root / "rel").symlink_to("../secret.txt")
    (root / "dirlink").symlink_to(tmp_path)
    ls = volfiles.list_dir(str(root), "/")
    kinds = {e["name"]: (e["type"], e["target"]) for e in ls["entries"]}
    assert kinds["sub"] == ("dir", "") and kinds["abs"] == ("link", str(secret))
    assert ls["entries"][0]["name"] == "sub"  # directories first
    assert volfiles.read_file(str(root), "/sub/a.txt") == (b"hello", 5)
    assert volfiles.list_dir(str(root), "/sub/../sub")["path"] == "/sub"
    # nothing outside the volume is ever read, through a symlink or a `..`
    for path in ("/abs", "/rel", "/../secret.txt", "../../secret.txt", "/dirlink/secret.txt"):
        with pytest.raises((NotFound, InvalidArgument)):
            volfiles.read_file(str(root), path)
    with pytest.raises((NotFound, InvalidArgument)):
        volfiles.list_dir(str(root), "/dirlink")
    with pytest.raises(InvalidArgument):
        volfiles.read_file(str(root), "/sub")  # a directory is no file
    assert b"\x00" in volfiles.read_file(str(root), "bin.dat")[0]


def test_gate_over_tls_on_another_address() -> None:
    from aiohttp.test_utils import make_mocked_request

    gate = Gate("0.0.0.0", 8443, secure=True)
    assert gate.url.startswith("https://") and gate.url.endswith(f":8443/?token={gate.token}")
    req = make_mocked_request(
        "GET", f"/?token={gate.token}", headers={"Host": "berth.example:8443"}
    )
    assert gate.host_ok(req)  # an address of many names: the certificate names the host
    resp = gate.login(req)
    assert resp.status == 200
    cookie = resp.cookies["berth_ui"]
    assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "Strict"
    same = make_mocked_request(
        "POST",
        "/api/x",
        headers={"Host": "berth.example:8443", "Origin": "https://berth.example:8443"},
    )
    assert gate.origin_ok(same)
    for other in ("http://berth.example:8443", "https://evil.example"):
        assert not gate.origin_ok(
            make_mocked_request(
                "POST", "/api/x", headers={"Host": "berth.example:8443", "Origin": other}
            )
        )
    # on loopback, only loopback names: a rebound name is turned away
    local = Gate("127.0.0.1", 8080)
    assert local.host_ok(make_mocked_request("GET", "/", headers={"Host": "localhost:8080"}))
    assert not local.host_ok(
        make_mocked_request("GET", "/", headers={"Host": "rebound.example:8080"})
    )


def test_live_streams_end_at_shutdown() -> None:
    """berthd's shutdown does not wait for the page's streams that never end by themselves."""

    async def main() -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        gate = Gate("127.0.0.1", port)
        dash = Dashboard(
            containers=FakeContainers(),
            images=FakeImages(),  # type: ignore[arg-type]
            execs=None,
            events=EventBus(),
            gate=gate,
        )  # type: ignore[arg-type]
        app = dash.app()
        client: Client = TestClient(TestServer(app, host="127.0.0.1", port=port))
        await client.start_server()
        try:
            await login(client, gate)
            resp = await client.get("/api/events")
            assert resp.status == 200
            for _ in range(50):
                if dash.streams:
                    break
                await asyncio.sleep(0.01)
            assert len(dash.streams) == 1
            await app.shutdown()
            # the stream is cut (the daemon goes away): the page's EventSource sees it end
            with contextlib.suppress(ClientPayloadError):
                await asyncio.wait_for(resp.read(), 5)
            assert not dash.streams
        finally:
            await client.close()

    asyncio.run(main())


def test_project_down_removes_its_containers_and_networks() -> None:
    from berth.containers.status import ContainerStatus
    from berth.ui.projects import down

    class Containers:
        def __init__(self) -> None:
            self.removed: list[tuple[str, bool]] = []
            self.templates = NO_RECORDS

        def list(self, *, all_: bool = False) -> list[ContainerView]:
            out = []
            for name, project in (("shop-web-1", "shop"), ("blog-app-1", "blog")):
                rec = record(f"/{name}", labels={"com.docker.compose.project": project})
                rec.id = name
                rec.state.status = ContainerStatus.RUNNING
                out.append(ContainerView(rec))
            return out

        async def remove(self, ref: str, *, force: bool = False) -> None:
            self.removed.append((ref, force))

        def network_users(self, name: str) -> list[str]:
            return []

    class Networks:
        def __init__(self) -> None:
            self.asked: list[dict[str, list[str]]] = []
            self.removed: list[str] = []

        def list(self, filters: dict[str, list[str]]) -> list[Any]:
            self.asked.append(filters)

            class View:
                class record:  # noqa: N801 - the shape of NetworkView.record
                    id, name = "n1", "shop_default"

            return [View()]

        def remove(self, nid: str, users: list[str]) -> None:
            self.removed.append(nid)

    c, n = Containers(), Networks()
    got = asyncio.run(down(c, n, "shop"))  # type: ignore[arg-type]
    assert got == {"containers": ["shop-web-1"], "networks": ["shop_default"]}
    assert c.removed == [("shop-web-1", True)] and n.removed == ["n1"]
    assert n.asked == [{"label": ["com.docker.compose.project=shop"]}]
    with pytest.raises(NotFound):
        asyncio.run(down(c, n, "nope"))  # type: ignore[arg-type]


def test_scale_up_logout_routes_need_csrf_and_a_session() -> None:
    async def t(client: Client, gate: Gate, c: FakeContainers, i: FakeImages) -> None:
        hdr = {
            CSRF_HEADER: await login(client, gate, carry=False),
            "Origin": f"http://127.0.0.1:{gate.port}",
        }
        scale = "/api/projects/shop/services/web/scale?replicas=2"
        for path in (scale, "/api/projects/shop/up", "/api/logout"):
            assert (await client.post(path)).status == 403, path  # no CSRF
            assert (await client.post(path, headers={CSRF_HEADER: "x"})).status == 403
        r = await client.post("/api/projects/shop/services/web/scale?replicas=x", headers=hdr)
        assert r.status == 400 and "number" in (await r.json())["message"]
        r = await client.post(scale, headers=hdr)
        assert r.status == 404 and "no such project" in (await r.json())["message"]
        r = await client.post("/api/projects/shop/up", headers=hdr)
        assert r.status == 404
        assert c.calls == []
        # logout: the cookie is cleared, and the session is gone on the server too
        sid = next(iter(gate.sessions))
        r = await client.post("/api/logout", headers=hdr)
        assert r.status == 200 and "no-store" in r.headers["Cache-Control"]
        assert f"{COOKIE}=" in r.headers["Set-Cookie"] and "Max-Age=0" in r.headers["Set-Cookie"]
        assert sid not in gate.sessions
        client.session.cookie_jar.update_cookies({COOKIE: sid})  # a copy kept: no use
        assert (await client.get("/api/containers")).status == 401

    run(t)


class ScaleContainers:
    """Containers of a project `shop`: web-1 (running), web-3 (stopped) and db-1, whose
    depends_on labels say web needs db healthy."""

    def __init__(self) -> None:
        from berth.containers.record import NetworkRequest
        from berth.containers.status import ContainerStatus

        self.recs: dict[str, ContainerRecord] = {}
        self.created: list[tuple[str, Any]] = []
        self.calls: list[tuple[str, str]] = []
        self.templates = NO_RECORDS
        for name, svc, n, running in (
            ("shop-web-1", "web", 1, True),
            ("shop-web-3", "web", 3, False),
            ("shop-db-1", "db", 1, False),
        ):
            labels = {
                "com.docker.compose.project": "shop",
                "com.docker.compose.service": svc,
                "com.docker.compose.container-number": str(n),
            }
            if svc == "web":
                labels["com.docker.compose.depends_on"] = "db:service_started:false"
            rec = record(f"/{name}", labels=labels)
            rec.id = name + "-id"
            rec.config = ContainerConfig(image="busybox", hostname=rec.id[:12], labels=labels)
            rec.host_config = HostConfig(
                mounts=(
                    {"Type": "volume", "Source": "f" * 64, "Target": "/cache"},
                    {"Type": "volume", "Source": "shop_data", "Target": "/data"},
                )
            )
            rec.nets = [
                NetworkRequest(
                    net="shop_default", aliases=[svc, name, rec.id[:12]], ip="10.0.0.9", mac="m"
                )
            ]
            if running:
                rec.state.status = ContainerStatus.RUNNING
            self.recs[rec.id] = rec

    def list(self, *, all_: bool = False) -> list[ContainerView]:
        return [ContainerView(r) for r in self.recs.values()]

    def inspect(self, ref: str) -> ContainerView:
        return ContainerView(self.recs[ref])

    async def create(self, req: Any, name: str = "") -> tuple[str, list[str]]:
        self.created.append((name, req))
        return name + "-id", []

    async def start(self, ref: str) -> None:
        self.calls.append(("start", ref))

    async def stop(self, ref: str) -> None:
        self.calls.append(("stop", ref))

    async def remove(self, ref: str, *, force: bool = False) -> None:
        self.calls.append(("remove", ref))


def test_scale_up_makes_containers_as_compose_does() -> None:
    from berth.ui.scaling import scale

    c = ScaleContainers()
    got = asyncio.run(scale(c, "shop", "web", 4))  # type: ignore[arg-type]
    # the free numbers, from 1: 2 and 4 (1 and 3 are there)
    assert got == {"created": ["shop-web-2", "shop-web-4"], "removed": []}
    assert c.calls == [("start", "shop-web-2-id"), ("start", "shop-web-4-id")]
    name, req = c.created[0]
    assert req.config.labels["com.docker.compose.container-number"] == "2"
    assert req.config.labels["com.docker.compose.service"] == "web"
    assert req.config.hostname == ""  # the model's made-up hostname is not copied
    ep = req.endpoints["shop_default"]
    assert ep.aliases == ["web", "shop-web-2"] and ep.ip == "" and ep.mac == ""
    # its anonymous volume is its own; a named one is shared, as compose shares it
    assert req.host_config.mounts == (
        {"Type": "volume", "Target": "/cache"},
        {"Type": "volume", "Source": "shop_data", "Target": "/data"},
    )
    with pytest.raises(InvalidArgument):
        asyncio.run(scale(c, "shop", "web", 1000))  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        asyncio.run(scale(c, "shop", "cache", 2))  # type: ignore[arg-type]


def test_scale_down_stops_and_removes_the_highest_numbers() -> None:
    from berth.ui.scaling import scale

    c = ScaleContainers()
    got = asyncio.run(scale(c, "shop", "web", 0))  # type: ignore[arg-type]
    assert got == {"created": [], "removed": ["shop-web-3", "shop-web-1"]}
    # web-3 is stopped already: removed; web-1 is stopped first
    assert c.calls == [
        ("remove", "shop-web-3-id"),
        ("stop", "shop-web-1-id"),
        ("remove", "shop-web-1-id"),
    ]


def test_scale_refuses_a_fixed_container_name() -> None:
    from berth.ui.scaling import scale

    c = ScaleContainers()
    c.recs["shop-web-1-id"].name = "/my-web"
    c.recs.pop("shop-web-3-id")
    with pytest.raises(Conflict):
        asyncio.run(scale(c, "shop", "web", 2))  # type: ignore[arg-type]


def test_up_starts_in_depends_on_order() -> None:
    from berth.ui.scaling import start_order, up

    c = ScaleContainers()
    # db first (web depends on it); web-1 runs already: only web-3 is started
    assert asyncio.run(up(c, "shop")) == ["shop-db-1", "shop-web-3"]  # type: ignore[arg-type]
    assert start_order({"a": {"b": "service_started"}, "b": {}, "c": {"zz": "x"}}) == [
        "b",
        "c",
        "a",
    ]
    with pytest.raises(InvalidArgument):
        start_order({"a": {"b": "service_started"}, "b": {"a": "service_started"}})
