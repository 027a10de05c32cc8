"""The service templates `berth compose up` leaves with berthd for its dashboard: what up
records (number 1's create body, every network, replicas, what only compose can do), that
down removes them, and berthd's store of them: a typed round trip through its file, bounded
names and sizes, a planted symlink not followed."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from pathlib import Path

import pytest

from berth.api.containers_wire import create_request
from berth.compose import labels as L
from berth.compose.base import UpOptions
from berth.containers.templates import ServiceTemplate, TemplateStore, check_project
from berth.errors import Conflict, InvalidArgument, NotFound

from .test_compose_orchestrator import FakeEngine, orch, project


def test_up_records_each_service_and_down_removes_them(tmp_path: Path) -> None:
    e = FakeEngine()
    o, _ = orch(project(tmp_path), e)
    o.up(UpOptions(scale={"web": 2}))
    t = e.templates["p"]
    assert sorted(t) == ["api", "db", "web"]
    assert t["web"]["Name"] == "p-web-1" and t["web"]["Replicas"] == 2
    assert t["db"]["Replicas"] == 1 and t["db"]["NeedsCompose"] == ""
    db = t["db"]["Create"]
    assert db["Labels"][L.NUMBER] == "1" and db["Labels"][L.SERVICE] == "db"
    # compose connects db to its second network after the create; the record has both
    eps = db["NetworkingConfig"]["EndpointsConfig"]
    assert sorted(eps) == ["p_back", "p_default"]
    assert all("p-db-1" in ec["Aliases"] and "db" in ec["Aliases"] for ec in eps.values())
    # what berthd reads it as: the same typed request as a create's
    req = create_request(db)
    assert req.config.labels[L.PROJECT] == "p" and sorted(req.endpoints) == sorted(eps)
    o.down()
    assert "p" not in e.templates


def test_a_service_with_hooks_is_left_to_compose(tmp_path: Path) -> None:
    class HookEngine(FakeEngine):
        def exec_run(self, ref: str, cmd: list[str], **kw: object) -> tuple[int, bytes]:
            return 0, b""

    e = HookEngine()
    text = """\
    services:
      app:
        image: busybox
        post_start: [{command: ["true"]}]
    """
    o, _ = orch(project(tmp_path, text), e)
    o.up(UpOptions())
    assert e.templates["p"]["app"]["NeedsCompose"] == "post_start hooks"


def template(service: str = "web", name: str = "p-web-1") -> ServiceTemplate:
    body = {
        "Image": "busybox",
        "Cmd": ["sleep", "9"],
        "Env": ["A=1"],
        "Labels": {L.PROJECT: "p", L.SERVICE: service, L.NUMBER: "1"},
        "HostConfig": {"NetworkMode": "p_default", "Binds": ["p_data:/data"]},
        "NetworkingConfig": {
            "EndpointsConfig": {"p_default": {"Aliases": [service, name]}, "p_back": {}}
        },
    }
    return ServiceTemplate(service=service, name=name, request=create_request(body), replicas=2)


def test_store_round_trip(tmp_path: Path) -> None:
    root = tmp_path / "compose"
    store = TemplateStore(str(root))
    assert store.get("p") is None
    store.put("p", template())
    store.put("p", template("db", "p-db-1"))
    assert (root / "p.json").stat().st_mode & 0o777 == 0o600
    again = TemplateStore(str(root))  # berthd restarted
    got = again.service("p", "web")
    want = template()
    assert got.name == "p-web-1" and got.replicas == 2
    assert got.request.config.cmd == ("sleep", "9") and got.request.config.env == ("A=1",)
    assert got.request.config.labels == want.request.config.labels
    assert got.request.host_config.binds == ("p_data:/data",)
    assert got.request.host_config.network_mode == "p_default"
    assert got.request.endpoints["p_default"].aliases == ["web", "p-web-1"]
    assert sorted(again.all()["p"].services) == ["db", "web"]
    assert again.remove("p") and not again.remove("p")
    assert not (root / "p.json").exists()
    with pytest.raises(NotFound):
        again.service("p", "web")


@pytest.mark.parametrize("bad", ["", "../etc", "P", "a/b", "-x", "a" * 64, "a\x00"])
def test_store_refuses_bad_project_names(tmp_path: Path, bad: str) -> None:
    with pytest.raises(InvalidArgument):
        check_project(bad)
    with pytest.raises(InvalidArgument):
        TemplateStore(str(tmp_path)).put(bad, template())
    assert os.listdir(tmp_path) == []


def test_template_fields_are_bounded() -> None:
    with pytest.raises(InvalidArgument):
        template(service="../x")
    with pytest.raises(InvalidArgument):
        template(name="a b")
    with pytest.raises(InvalidArgument):
        ServiceTemplate(service="w", name="p-w-1", request=template().request, replicas=101)


def test_store_does_not_follow_a_planted_symlink(tmp_path: Path) -> None:
    root = tmp_path / "compose"
    root.mkdir()
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"services": [template().to_json()]}))
    (root / "evil.json").symlink_to(secret)
    (root / "big.json").write_bytes(b" " * (9 << 20))
    (root / "junk.json").write_text("{not json")
    store = TemplateStore(str(root))
    assert store.all() == {}
    # a put replaces the link with a file of its own, and leaves the target alone
    store.put("evil", template())
    assert not (root / "evil.json").is_symlink()
    assert json.loads(secret.read_text())["services"][0]["service"] == "web"


def shop_records(tmp_path: Path) -> TemplateStore:
    """berth compose up's record of `shop`: web (2 replicas), cache (none running now), and
    hooked, a service only compose can make."""
    store = TemplateStore(str(tmp_path / "compose"))
    for svc, replicas, needs in (("web", 2, ""), ("cache", 2, ""), ("hooked", 1, "hooks")):
        body = {
            "Image": "busybox",
            "Labels": {L.PROJECT: "shop", L.SERVICE: svc, L.NUMBER: "1"},
            "HostConfig": {"NetworkMode": "shop_default"},
            "NetworkingConfig": {
                "EndpointsConfig": {"shop_default": {"Aliases": [svc, f"shop-{svc}-1"]}}
            },
        }
        store.put(
            "shop",
            ServiceTemplate(
                service=svc,
                name=f"shop-{svc}-1",
                request=create_request(body),
                replicas=replicas,
                needs_compose=needs,
            ),
        )
    return store


def test_scale_from_none_makes_containers_from_the_record(tmp_path: Path) -> None:
    from berth.ui.scaling import scale

    from .test_ui import ScaleContainers

    c = ScaleContainers()
    c.templates = shop_records(tmp_path)
    got = asyncio.run(scale(c, "shop", "cache", 2))  # type: ignore[arg-type]
    assert got == {"created": ["shop-cache-1", "shop-cache-2"], "removed": []}
    assert c.calls == [("start", "shop-cache-1-id"), ("start", "shop-cache-2-id")]
    name, req = c.created[1]
    assert name == "shop-cache-2"
    assert req.config.labels[L.NUMBER] == "2" and req.config.labels[L.SERVICE] == "cache"
    assert req.endpoints["shop_default"].aliases == ["cache", "shop-cache-2"]
    assert req.host_config.network_mode == "shop_default"
    # the record itself is not changed by a copy
    one = c.templates.service("shop", "cache").request
    assert one.config.labels[L.NUMBER] == "1"
    assert one.endpoints["shop_default"].aliases == ["cache", "shop-cache-1"]
    # a service only compose can make is refused, saying why; one not recorded is not found
    with pytest.raises(Conflict, match="only berth compose up.*hooks"):
        asyncio.run(scale(c, "shop", "hooked", 1))  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        asyncio.run(scale(c, "shop", "nothere", 1))  # type: ignore[arg-type]
    # a project known only by its record: scale works; an unknown one is not found
    c.recs.clear()
    asyncio.run(scale(c, "shop", "web", 1))  # type: ignore[arg-type]
    assert c.created[-1][0] == "shop-web-1"
    with pytest.raises(NotFound):
        asyncio.run(scale(c, "other", "web", 1))  # type: ignore[arg-type]


def test_up_makes_the_services_that_have_no_container(tmp_path: Path) -> None:
    from berth.ui.scaling import create_missing

    from .test_ui import ScaleContainers

    c = ScaleContainers()  # web and db have containers
    c.templates = shop_records(tmp_path)
    # hooked has none and only compose can make it: nothing is made
    with pytest.raises(Conflict, match="hooked"):
        asyncio.run(create_missing(c, "shop"))  # type: ignore[arg-type]
    assert c.created == []
    rec = c.templates.get("shop")
    assert rec is not None
    hooked = rec.services["hooked"]
    c.templates.put("shop", dataclasses.replace(hooked, replicas=0))  # scaled to 0 in the file
    made = asyncio.run(create_missing(c, "shop"))  # type: ignore[arg-type]
    assert made == ["shop-cache-1", "shop-cache-2"]  # web has its own already
    assert c.calls == []  # made, not started: up starts them in depends_on order


def test_fixed_container_name_from_the_record(tmp_path: Path) -> None:
    from berth.ui.scaling import template_request

    t = dataclasses.replace(template(), name="my-web")
    req, name = template_request(t, "p", "web", 1)
    assert name == "my-web"
    with pytest.raises(Conflict, match="fixed container name"):
        template_request(t, "p", "web", 2)


def test_api_routes(tmp_path: Path) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from berth.api.app import Api

    class Containers:
        templates = TemplateStore(str(tmp_path / "compose"))

    body = {"Name": "p-web-1", "Replicas": 2, "Create": {"Image": "busybox", "Cmd": ["true"]}}

    async def main() -> None:
        api = Api(containers=Containers(), images=None, info=dict)  # type: ignore[arg-type]
        async with TestClient(TestServer(api.app())) as client:
            r = await client.put("/v1.45/berth/compose/p/services/web", json=body)
            assert r.status == 204, await r.text()
            r = await client.get("/berth/compose/p")
            assert (await r.json())["Services"]["web"] == {
                "Name": "p-web-1",
                "Replicas": 2,
                "NeedsCompose": "",
            }
            assert Containers.templates.service("p", "web").request.config.cmd == ("true",)
            for path, bad in (
                ("/berth/compose/P/services/web", body),
                ("/berth/compose/p/services/w%20b", body),
                ("/berth/compose/p/services/web", {**body, "Replicas": "2"}),
                ("/berth/compose/p/services/web", {**body, "Name": "../x"}),
                ("/berth/compose/p/services/web", {**body, "Create": {"Cmd": ["x"]}}),  # no image
                ("/berth/compose/p/services/web", {**body, "Create": []}),
            ):
                r = await client.put(path, json=bad)
                assert r.status == 400, (path, bad, await r.text())
            assert (await client.delete("/berth/compose/p")).status == 204
            assert (await client.delete("/berth/compose/p")).status == 404
            assert (await client.get("/berth/compose/p")).status == 404

    asyncio.run(main())
