"""A berthd upgraded in place keeps its containers: records that an older berthd stored (Docker's
inspect document, berth's own fields under `_berth`; or version 2, which kept Docker's Config)
are found again, a running one still
running under its monitor, and are saved back in the record's own versioned form."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from berth.api.containers_wire import config_to_docker, container_inspect
from berth.containers.record import VERSION, ContainerRecord
from berth.containers.views import ContainerView
from berth.metadata import MetadataStore

from .conftest import Daemon

pytestmark = pytest.mark.root


def _legacy(rec: ContainerRecord) -> dict[str, Any]:
    """The document the berthd before typed records kept for this container."""
    doc = container_inspect(ContainerView(rec))
    links = rec.host_config.links
    doc["HostConfig"]["Links"] = list(links) if links is not None else None
    doc["_berth"] = {
        "layers": rec.layers,
        "created": rec.created,
        "created_ns": rec.created_ns,
        "nets": [n.to_json() for n in rec.nets],
        "monitor": rec.monitor,
        "endpoints": [e.to_json() for e in rec.endpoints],
        "manually_stopped": rec.manually_stopped,
        "link_env": rec.link_env,
        **({"links": [{"id": lk.id, "alias": lk.alias} for lk in rec.links]} if rec.links else {}),
    }
    return json.loads(json.dumps(doc))


def _v2(rec: ContainerRecord) -> dict[str, Any]:
    """The record as berthd's version 2 kept it: its own form, with Docker's Config."""
    return json.loads(json.dumps({**rec.to_json(), "v": 2, "config": config_to_docker(rec.config)}))


def _rewrite(db: Path, form: str) -> int:
    meta = MetadataStore(str(db))
    try:
        stored = meta.containers()
        for j in stored:
            rec = ContainerRecord.from_stored(j)
            meta.put_container(
                rec.id,
                rec.short_name,
                rec.image,
                rec.created,
                _legacy(rec) if form == "legacy" else _v2(rec),
            )
        return len(stored)
    finally:
        meta.close()


@pytest.mark.parametrize("form", ["legacy", "v2"])
def test_an_upgraded_daemon_keeps_its_containers(private_daemon: Daemon, form: str) -> None:
    d = private_daemon
    d.ok("run", "-d", "--name", "up-running", "-l", "k=v", "busybox", "sleep", "60")
    d.ok("create", "--name", "up-created", "-v", "/data", "busybox", "true")
    assert d.berth("run", "--name", "up-exited", "busybox", "sh", "-c", "exit 3").returncode == 3
    before = {n: d.inspect(n) for n in ("up-running", "up-created", "up-exited")}
    d.stop()
    db = d.data_root / "berth.db"
    assert _rewrite(db, form) == 3
    meta = MetadataStore(str(db))
    assert all(("_berth" in j) if form == "legacy" else j["v"] == 2 for j in meta.containers())
    meta.close()
    d.start()
    try:
        after = {n: d.inspect(n) for n in before}
        for name, old in before.items():
            new = after[name]
            assert {k: v for k, v in new.items() if k != "Created"} == {
                k: v for k, v in old.items() if k != "Created"
            }, name
        assert after["up-running"]["State"]["Running"]
        assert d.ok("exec", "up-running", "echo", "still") == "still\n"
        d.ok("start", "up-created")
        assert d.ok("wait", "up-created").strip() == "0"
        assert after["up-exited"]["State"]["ExitCode"] == 3
        assert d.ok("ps", "-a", "--filter", "label=k=v", "--format", "{{.Names}}") == "up-running\n"
        # saved back in the record's own form once changed
        d.ok("rename", "up-exited", "up-renamed")
        d.stop()
        meta = MetadataStore(str(db))
        forms = {j.get("name") or j.get("Name"): j.get("v") for j in meta.containers()}
        meta.close()
        assert forms["/up-renamed"] == VERSION
        d.start()
    finally:
        d.berth("rm", "-f", "-v", "up-running", "up-created", "up-exited", "up-renamed")
