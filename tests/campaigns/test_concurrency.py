"""Campaign 6: 20 clients at once on the same names.

Each round starts its clients together (a barrier) on one private berthd, over the Engine API:
creating, starting, stopping and removing containers of one name; creating and removing one
network; importing, tagging and removing one image; building one Dockerfile (its base image
local, nothing pulled). Every call must return within its timeout (no deadlock), none may
answer 500, and the end state is what Docker's conflict rules say: one winner per name, the
others 409 (or 404 once the winner has removed it).

Short form here; BERTH_CAMPAIGN_LONG=1 runs more clients' rounds (`bench/campaign.py --long`)."""

from __future__ import annotations

import http.client
import io
import json
import socket
import tarfile
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.campaigns.conftest import long_form
from tests.integration.conftest import Daemon, running_daemon

pytestmark = pytest.mark.root

CLIENTS = 20
ROUNDS = 10 if long_form() else 2
TIMEOUT = 120.0  # a call that takes longer is a hang


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=TIMEOUT)
        self.path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(TIMEOUT)
        s.connect(self.path)
        self.sock = s


def call(
    d: Daemon, method: str, url: str, body: Any = None, content_type: str = "application/json"
) -> tuple[int, bytes]:
    """One API call on a connection of its own; its status and whole body (a stream is read to
    its end). A timeout raises: a hang fails the campaign."""
    conn = _UnixConnection(str(d.sock))
    try:
        data = (
            json.dumps(body).encode()
            if content_type == "application/json" and body is not None
            else body
        )
        conn.request(
            method,
            url,
            body=data,
            headers={"Content-Type": content_type} if data is not None else {},
        )
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def together(
    n: int, fn: Callable[[int], list[tuple[str, int, bytes]]]
) -> list[tuple[str, int, bytes]]:
    """`fn(i)` for i in 0..n-1 in n threads released at once; every (call, status, body)."""
    barrier = threading.Barrier(n)

    def run(i: int) -> list[tuple[str, int, bytes]]:
        barrier.wait(TIMEOUT)
        return fn(i)

    with ThreadPoolExecutor(n) as pool:
        results = [f.result(timeout=TIMEOUT * 8) for f in [pool.submit(run, i) for i in range(n)]]
    out = [x for r in results for x in r]
    no_500(out)
    return out


def at_once(
    d: Daemon,
    what: str,
    method: str,
    url: str,
    body: Any = None,
    content_type: str = "application/json",
) -> list[tuple[str, int, bytes]]:
    """The same call from CLIENTS clients at once."""
    return together(CLIENTS, lambda i: [(what, *call(d, method, url, body, content_type))])


def no_500(results: list[tuple[str, int, bytes]]) -> None:
    bad = [(what, status, body[:300]) for what, status, body in results if status >= 500]
    assert not bad, bad


def statuses(results: list[tuple[str, int, bytes]], what: str) -> Counter[int]:
    return Counter(status for w, status, _ in results if w == what)


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory, rootfs_tar: Path) -> Iterator[Daemon]:
    with running_daemon(tmp_path_factory.mktemp("berthd-conc"), rootfs_tar) as dm:
        yield dm


def names(d: Daemon) -> list[str]:
    status, body = call(d, "GET", "/containers/json?all=1")
    assert status == 200
    return [n.lstrip("/") for c in json.loads(body) for n in c["Names"]]


def test_one_container_name_many_clients(d: Daemon) -> None:
    for rnd in range(ROUNDS):
        name = f"same-{rnd}"
        spec = {"Image": "busybox", "Cmd": ["sleep", "600"]}
        res = at_once(d, "create", "POST", f"/containers/create?name={name}", spec)
        assert statuses(res, "create") == {201: 1, 409: CLIENTS - 1}, statuses(res, "create")
        assert all(b"is already in use" in body for w, s, body in res if s == 409)
        assert names(d).count(name) == 1

        for verb, ok in (("start", {204, 304}), ("stop?t=0", {204, 304})):
            res = at_once(d, verb, "POST", f"/containers/{name}/{verb}")
            got = statuses(res, verb)
            assert set(got) <= ok and got[204] >= 1, (verb, got, res[:3])
        status, body = call(d, "GET", f"/containers/{name}/json")
        assert status == 200 and not json.loads(body)["State"]["Running"]

        res = at_once(d, "rm", "DELETE", f"/containers/{name}")
        got = statuses(res, "rm")
        # one winner, as Docker says (test_one_removal_wins below)
        assert got[204] >= 1 and set(got) <= {204, 404, 409}, got
        assert name not in names(d)


@pytest.mark.parametrize("running", [False, True], ids=["stopped", "running"])
def test_one_removal_wins(d: Daemon, running: bool) -> None:
    name = f"rm-once-{int(running)}"
    assert (
        call(
            d,
            "POST",
            f"/containers/create?name={name}",
            {"Image": "busybox", "Cmd": ["sleep", "600"]},
        )[0]
        == 201
    )
    try:
        if running:
            assert call(d, "POST", f"/containers/{name}/start")[0] == 204
        res = at_once(d, "rm", "DELETE", f"/containers/{name}?force={int(running)}")
        got = statuses(res, "rm")
        assert name not in names(d)
        assert got[204] == 1 and set(got) <= {204, 404, 409}, got
    finally:
        call(d, "DELETE", f"/containers/{name}?force=1")


def test_create_start_stop_remove_churn(d: Daemon) -> None:
    """Every client loops over create, start, stop, remove of the same name: whatever wins,
    each answer is one of Docker's, and nothing is left."""
    before = set(names(d))
    name = "churn"

    def churn(i: int) -> list[tuple[str, int, bytes]]:
        out = []
        for _ in range(ROUNDS * 2):
            out.append(
                (
                    "create",
                    *call(
                        d,
                        "POST",
                        f"/containers/create?name={name}",
                        {"Image": "busybox", "Cmd": ["sleep", "600"]},
                    ),
                )
            )
            out.append(("start", *call(d, "POST", f"/containers/{name}/start")))
            out.append(("stop", *call(d, "POST", f"/containers/{name}/stop?t=0")))
            out.append(("rm", *call(d, "DELETE", f"/containers/{name}?force=1")))
        return out

    res = together(CLIENTS, churn)
    allowed = {
        "create": {201, 409},
        "start": {204, 304, 404, 409},
        "stop": {204, 304, 404, 409},
        "rm": {204, 404, 409},
    }
    for what, ok in allowed.items():
        got = statuses(res, what)
        assert set(got) <= ok, (
            what,
            got,
            [(w, s, b[:200]) for w, s, b in res if w == what and s not in ok][:5],
        )
    assert statuses(res, "create")[201] >= 1
    assert set(names(d)) == before


def test_one_network_name_many_clients(d: Daemon) -> None:
    for rnd in range(ROUNDS):
        name = f"samenet-{rnd}"
        res = at_once(d, "create", "POST", "/networks/create", {"Name": name})
        assert statuses(res, "create") == {201: 1, 409: CLIENTS - 1}, statuses(res, "create")
        status, body = call(d, "GET", "/networks")
        assert [n["Name"] for n in json.loads(body)].count(name) == 1
        res = at_once(d, "rm", "DELETE", f"/networks/{name}")
        got = statuses(res, "rm")
        assert got == {204: 1, 404: CLIENTS - 1}, got
        status, body = call(d, "GET", "/networks")
        assert name not in [n["Name"] for n in json.loads(body)]


def test_one_image_name_many_clients(d: Daemon, rootfs_tar: Path) -> None:
    tar = rootfs_tar.read_bytes()
    status, body = call(d, "GET", "/images/busybox/json")
    assert status == 200
    busybox = json.loads(body)["Id"]
    for rnd in range(ROUNDS):
        repo = f"conc-import-{rnd}"
        res = at_once(
            d,
            "import",
            "POST",
            f"/images/create?fromSrc=-&repo={repo}&tag=x&changes=ENV%20ROUND%3D{rnd}",
            tar,
            "application/x-tar",
        )
        assert statuses(res, "import") == {200: CLIENTS}
        assert not [b for _, _, b in res if b"errorDetail" in b or b'"error"' in b]
        status, body = call(d, "GET", f"/images/{repo}:x/json")
        assert status == 200

        res = at_once(d, "tag", "POST", f"/images/busybox/tag?repo=conc-tag-{rnd}&tag=t")
        assert statuses(res, "tag") == {201: CLIENTS}
        status, body = call(d, "GET", f"/images/conc-tag-{rnd}:t/json")
        assert status == 200 and json.loads(body)["Id"] == busybox

        # one at a time: the same rmi by many clients at once is test_one_tag_removed_once
        for ref in (f"conc-tag-{rnd}:t", f"{repo}:x"):
            assert call(d, "DELETE", f"/images/{ref}")[0] == 200
    assert call(d, "GET", "/images/busybox/json")[0] == 200


def test_one_tag_removed_once(d: Daemon, rootfs_tar: Path) -> None:
    tar = rootfs_tar.read_bytes()
    try:
        for rnd in range(ROUNDS * 3):
            # an image of its own (busybox's rootfs imported as is would be busybox's ID)
            assert (
                call(
                    d,
                    "POST",
                    "/images/create?fromSrc=-&repo=conc-victim&tag=keep&changes=ENV%20VICTIM%3D1",
                    tar,
                    "application/x-tar",
                )[0]
                == 200
            )
            assert (
                call(d, "POST", f"/images/conc-victim:keep/tag?repo=conc-victim&tag=r{rnd}")[0]
                == 201
            )
            res = at_once(d, "rmi", "DELETE", f"/images/conc-victim:r{rnd}")
            got = statuses(res, "rmi")
            assert call(d, "GET", "/images/conc-victim:keep/json")[0] == 200, (
                "the image went with its other tag",
                got,
            )
            assert got == {200: 1, 404: CLIENTS - 1}, got
    finally:
        d.berth("rmi", "-f", "conc-victim:keep")


def _context(dockerfile: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        data = dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_one_dockerfile_many_clients(d: Daemon) -> None:
    for rnd in range(max(1, ROUNDS // 2)):
        ctx = _context(f"FROM busybox\nRUN echo round {rnd} > /round\nCMD cat /round\n")
        tag = f"conc-build-{rnd}:latest"
        res = at_once(d, "build", "POST", f"/build?t={tag}&pull=0", ctx, "application/x-tar")
        assert statuses(res, "build") == {200: CLIENTS}
        failed = [b[-300:] for _, _, b in res if b"errorDetail" in b]
        assert not failed, failed
        out = d.ok("run", "--rm", tag)
        assert out.strip() == f"round {rnd}"
        d.ok("rmi", tag)
    d.berth("builder", "prune", "-af")
    d.berth("image", "prune", "-f")


def test_one_image_pulled_by_many_clients(d: Daemon) -> None:
    """20 pulls of one image from a registry on loopback, its blobs paced so the pulls
    overlap: each succeeds, the image is there once and runs."""
    from tests.integration.registries import FakeRegistry, hand_image

    status, body = call(d, "GET", "/images/busybox/json")
    base = (
        d.data_root
        / "content"
        / "blobs"
        / "sha256"
        / json.loads(body)["RootFS"]["Layers"][0].split(":")[1]
    ).read_bytes()
    img = hand_image([({"pulled.txt": b"pulled once\n"}, "gzip")], base_tars=[base])
    reg = FakeRegistry(slow=0.002).start()
    try:
        reg.add("conc/pull", "1", img)
        for _ in range(max(1, ROUNDS // 2)):
            ref = f"{reg.addr}/conc/pull"
            res = at_once(d, "pull", "POST", f"/images/create?fromImage={ref}&tag=1")
            assert statuses(res, "pull") == {200: CLIENTS}
            failed = [b[-300:] for _, _, b in res if b"errorDetail" in b]
            assert not failed, failed
            status, body = call(d, "GET", f"/images/{ref}:1/json")
            assert status == 200 and json.loads(body)["Id"] == img.image_id
            assert d.ok("run", "--rm", f"{ref}:1", "cat", "/pulled.txt") == "pulled once\n"
            d.ok("rmi", f"{ref}:1")
    finally:
        reg.stop()


def test_rename_to_one_name(d: Daemon) -> None:
    ids = []
    for i in range(CLIENTS):
        status, body = call(
            d, "POST", f"/containers/create?name=ren-src-{i}", {"Image": "busybox", "Cmd": ["true"]}
        )
        assert status == 201
        ids.append(json.loads(body)["Id"])
    try:
        res = together(
            CLIENTS,
            lambda i: [
                ("rename", *call(d, "POST", f"/containers/ren-src-{i}/rename?name=ren-dst"))
            ],
        )
        got = statuses(res, "rename")
        assert got == {204: 1, 409: CLIENTS - 1}, got
        assert names(d).count("ren-dst") == 1
        assert sum(f"ren-src-{i}" in names(d) for i in range(CLIENTS)) == CLIENTS - 1
    finally:
        for cid in ids:
            call(d, "DELETE", f"/containers/{cid}?force=1")


def test_one_volume_name_many_clients(d: Daemon) -> None:
    res = at_once(d, "create", "POST", "/volumes/create", {"Name": "conc-vol"})
    # a volume's create is idempotent in Docker: all 201, one volume
    assert statuses(res, "create") == {201: CLIENTS}, statuses(res, "create")
    status, body = call(d, "GET", "/volumes")
    assert [v["Name"] for v in json.loads(body)["Volumes"]].count("conc-vol") == 1
    res = at_once(d, "rm", "DELETE", "/volumes/conc-vol")
    got = statuses(res, "rm")
    # one winner is what Docker says (test_one_volume_removed_once below)
    assert got[204] >= 1 and set(got) <= {204, 404, 409}, got
    assert call(d, "GET", "/volumes/conc-vol")[0] == 404


def test_one_volume_removed_once(d: Daemon) -> None:
    for rnd in range(ROUNDS * 3):
        assert call(d, "POST", "/volumes/create", {"Name": f"conc-vol1-{rnd}"})[0] == 201
        got = statuses(at_once(d, "rm", "DELETE", f"/volumes/conc-vol1-{rnd}"), "rm")
        assert got == {204: 1, 404: CLIENTS - 1}, got


def test_network_removed_while_containers_join_it(d: Daemon) -> None:
    """Half the clients start containers on a network while the other half remove it: a
    network that is gone has no container running on it, and one that has one is still
    there."""
    for rnd in range(ROUNDS):
        net = f"racenet-{rnd}"
        assert call(d, "POST", "/networks/create", {"Name": net})[0] == 201

        def client(i: int, net: str = net, rnd: int = rnd) -> list[tuple[str, int, bytes]]:
            if i % 2:
                return [("netrm", *call(d, "DELETE", f"/networks/{net}"))]
            name = f"racer-{rnd}-{i}"
            out = [
                (
                    "create",
                    *call(
                        d,
                        "POST",
                        f"/containers/create?name={name}",
                        {
                            "Image": "busybox",
                            "Cmd": ["sleep", "600"],
                            "HostConfig": {"NetworkMode": net},
                        },
                    ),
                )
            ]
            if out[0][1] == 201:
                out.append(("start", *call(d, "POST", f"/containers/{name}/start")))
            return out

        res = together(CLIENTS, client)
        # a create on a network gone answers 400 (dockerd: 404): containers' package
        for what, ok in (
            ("netrm", {204, 403, 404}),
            ("create", {201, 400, 404}),
            ("start", {204, 404}),
        ):
            got = statuses(res, what)
            assert set(got) <= ok, (
                what,
                got,
                [(w, s, b[:200]) for w, s, b in res if w == what and s not in ok][:5],
            )
        status, body = call(d, "GET", "/networks")
        exists = net in [n["Name"] for n in json.loads(body)]
        status, body = call(d, "GET", "/containers/json")
        running_on = [
            c["Names"][0]
            for c in json.loads(body)
            if net in (c.get("NetworkSettings") or {}).get("Networks", {})
        ]
        assert exists or not running_on, running_on
        for i in range(0, CLIENTS, 2):
            call(d, "DELETE", f"/containers/racer-{rnd}-{i}?force=1")
        call(d, "DELETE", f"/networks/{net}")
        status, body = call(d, "GET", "/networks")
        assert net not in [n["Name"] for n in json.loads(body)]


def test_image_removed_while_containers_are_made_from_it(d: Daemon) -> None:
    """Half the clients create containers from a tag while the other half remove it (no
    force): every container made has its image, and an image with containers stays."""
    for rnd in range(ROUNDS):
        tag = f"conc-rmi-{rnd}:t"
        assert call(d, "POST", f"/images/busybox/tag?repo=conc-rmi-{rnd}&tag=t")[0] == 201

        def client(i: int, tag: str = tag, rnd: int = rnd) -> list[tuple[str, int, bytes]]:
            if i % 2:
                return [("rmi", *call(d, "DELETE", f"/images/{tag}"))]
            return [
                (
                    "create",
                    *call(
                        d,
                        "POST",
                        f"/containers/create?name=rmi-{rnd}-{i}",
                        {"Image": tag, "Cmd": ["true"]},
                    ),
                )
            ]

        res = together(CLIENTS, client)
        for what, ok in (("rmi", {200, 404, 409}), ("create", {201, 404})):
            got = statuses(res, what)
            assert set(got) <= ok, (what, got)
        for i in range(0, CLIENTS, 2):
            status, body = call(d, "GET", f"/containers/rmi-{rnd}-{i}/json")
            if status == 200:
                assert call(d, "GET", f"/images/{json.loads(body)['Image']}/json")[0] == 200
            call(d, "DELETE", f"/containers/rmi-{rnd}-{i}")
        call(d, "DELETE", f"/images/{tag}")
    assert call(d, "GET", "/images/busybox/json")[0] == 200


def test_one_host_port_many_containers(d: Daemon) -> None:
    """20 containers that publish the same host port start at once: one gets it, the others
    fail to start with a clear error (never a 500), and none is left holding it."""
    from tests.integration.registries import free_port

    port = free_port()
    for i in range(CLIENTS):
        assert (
            call(
                d,
                "POST",
                f"/containers/create?name=port-{i}",
                {
                    "Image": "busybox",
                    "Cmd": ["sleep", "600"],
                    "ExposedPorts": {"80/tcp": {}},
                    "HostConfig": {
                        "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
                    },
                },
            )[0]
            == 201
        )
    try:
        res = together(
            CLIENTS, lambda i: [("start", *call(d, "POST", f"/containers/port-{i}/start"))]
        )
        got = statuses(res, "start")
        assert got[204] == 1 and set(got) <= {204, 409}, (
            got,
            [b[:200] for _, s, b in res if s != 204][:3],
        )
        status, body = call(d, "GET", "/containers/json")
        assert sum(c["Names"][0].startswith("/port-") for c in json.loads(body)) == 1
    finally:
        for i in range(CLIENTS):
            call(d, "DELETE", f"/containers/port-{i}?force=1")


# --- the races found in the networks package, each pinned where timing cannot hide it ---------
class _Meta:
    """The metadata store's network table, in memory."""

    def __init__(self) -> None:
        self.docs: dict[str, Any] = {}

    def networks(self) -> list[Any]:
        return list(self.docs.values())

    def put_network(self, nid: str, name: str, doc: Any) -> None:
        self.docs[nid] = doc

    def delete_network(self, nid: str) -> None:
        self.docs.pop(nid, None)


def _service(tmp_path: Path) -> Any:
    from berth.networks import NetConfig, NetworkService

    svc = NetworkService(
        _Meta(), NetConfig(bridge="btconc", iptables=False, run_dir=str(tmp_path / "networks"))
    )
    svc.load()
    return svc


def test_a_network_with_a_running_container_is_not_removed_on_stale_users(tmp_path: Path) -> None:
    """The API reads a network's users before its removal runs in a worker thread; a
    container that started in between holds an endpoint, and the removal is refused (it was
    done, leaving the container on a network that no longer existed)."""
    from berth.errors import Forbidden, NotFound
    from berth.networks import Driver, IpamConfig, NetworkRecord

    svc = _service(tmp_path)
    # a macvlan network: a record and no link, so no root is needed
    svc._add(
        NetworkRecord(
            id="n" * 64,
            name="stale",
            driver=Driver.MACVLAN,
            created="",
            ipam=(IpamConfig(subnet="10.251.0.0/24", gateway="10.251.0.1"),),
            options={"parent": "lo"},
        )
    )
    users_read_by_the_api: list[str] = []  # before the container below started
    svc.allocate("stale", "c" * 64, name="late", aliases=[])
    with pytest.raises(Forbidden, match="has active endpoints"):
        svc.remove("stale", users_read_by_the_api)
    svc.release("c" * 64)
    svc.remove("stale", [])
    with pytest.raises(NotFound):
        svc.allocate("stale", "d" * 64, name="later", aliases=[])


def test_ports_close_when_their_network_is_gone(tmp_path: Path) -> None:
    """A container's ports are closed by the bridge they were opened on: its network, removed
    since, is not looked up (the lookup's NotFound left the container's rm hanging)."""
    import asyncio

    from berth.errors import NotFound
    from berth.networks.ports import PortMapper
    from tests.integration.registries import free_port

    gone = {"net": False}

    def bridge_of(net: str) -> str:
        if gone["net"]:
            raise NotFound(f"network {net} not found")
        return "btconc1"

    async def go() -> None:
        pm = PortMapper("BERTH-conc", bridge_of, iptables=False)
        port = free_port()
        await pm.publish(
            "c" * 64, {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}, "10.9.9.9", "n"
        )
        gone["net"] = True
        pm.unpublish("c" * 64, "n")
        with socket.socket() as s:  # the port is free again
            s.bind(("127.0.0.1", port))

    asyncio.run(go())
