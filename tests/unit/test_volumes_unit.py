"""The volume service's record: its stored document, the Docker-shaped documents of a data root
from before it, and Docker's JSON made from it at the API edge."""

from __future__ import annotations

from pathlib import Path

import pytest

from berth.api.volumes import prune_json, usage_json, volume_json
from berth.errors import Conflict, InvalidArgument, NotFound
from berth.metadata import MetadataStore
from berth.volumes import ANONYMOUS, VolumeRecord, VolumeService
from berth.volumes.records import VolumeScope, format_created, parse_created

# what berth stored for a volume before VolumeRecord: Docker's inspect JSON
LEGACY = {
    "CreatedAt": "2026-11-30T10:20:30Z",
    "Driver": "local",
    "Labels": {"a": "b", ANONYMOUS: ""},
    "Mountpoint": "/var/lib/berth/volumes/old/_data",
    "Name": "old",
    "Options": None,
    "Scope": "local",
}


def _service(tmp_path: Path, users: dict[str, list[str]] | None = None) -> VolumeService:
    return VolumeService(
        MetadataStore(str(tmp_path / "meta.db")),
        str(tmp_path / "volumes"),
        users=lambda name: (users or {}).get(name, []),
    )


def test_a_legacy_document_loads_into_the_record() -> None:
    v = VolumeRecord.from_doc(LEGACY)
    assert v == VolumeRecord(
        name="old",
        mountpoint="/var/lib/berth/volumes/old/_data",
        driver="local",
        options={},
        labels={"a": "b"},
        scope=VolumeScope.LOCAL,
        created=parse_created(LEGACY["CreatedAt"]),
        anonymous=True,
    )
    # and Docker's JSON made from it is what was stored
    assert volume_json(v) == LEGACY


def test_the_record_round_trips_through_its_document() -> None:
    v = VolumeRecord(
        name="tmp",
        mountpoint="/r/tmp/_data",
        options={"type": "tmpfs", "device": "tmpfs", "o": "size=1m,uid=5"},
        labels={"x": "y"},
        created=1764500000,
        anonymous=False,
    )
    doc = v.to_doc()
    assert doc["v"] == 1 and "Name" not in doc  # not Docker's shape
    assert VolumeRecord.from_doc(doc) == v
    assert (v.fs_type, v.device, v.mount_options, v.is_directory) == (
        "tmpfs",
        "tmpfs",
        ["size=1m", "uid=5"],
        False,
    )
    assert volume_json(v)["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=1m,uid=5"}
    assert format_created(v.created) == "2025-11-30T10:53:20Z"
    assert parse_created("not a time") == 0


def test_a_data_root_from_before_keeps_working(tmp_path: Path) -> None:
    """A volume stored as Docker's JSON is found, listed, filtered, pruned as anonymous."""
    vols = _service(tmp_path)
    vols.meta.put_volume("old", 1, LEGACY)
    assert vols.get("old").anonymous and vols.get("old").labels == {"a": "b"}
    assert [v.name for v in vols.list({"label": [ANONYMOUS]})] == ["old"]
    assert [v.name for v in vols.list({"label": ["a=b"]})] == ["old"]
    assert vols.list({"label": ["a=c"]}) == []
    assert prune_json(vols.prune()) == {"VolumesDeleted": ["old"], "SpaceReclaimed": 0}
    assert vols.find("old") is None


def test_create_stores_the_record(tmp_path: Path) -> None:
    vols = _service(tmp_path, users={"used": ["c1"]})
    v = vols.create("data", labels={"k": "v"})
    assert v.mountpoint == str(tmp_path / "volumes" / "data" / "_data")
    assert Path(v.mountpoint).is_dir()
    assert vols.meta.get_volume("data") == v.to_doc()
    assert vols.create("data", labels={"other": "x"}) == v  # the one that exists
    anon = vols.create()
    assert anon.anonymous and len(anon.name) == 64
    assert volume_json(anon)["Labels"] == {ANONYMOUS: ""}
    # the marker given as a label makes an anonymous volume (docker compose sends it)
    assert vols.create("marked", labels={ANONYMOUS: ""}).anonymous
    used = vols.create("used")
    assert [u.ref_count for u in vols.usage() if u.volume.name == "used"] == [1]
    assert usage_json(vols.usage()[0])["UsageData"] == {"Size": 0, "RefCount": 0}
    with pytest.raises(Conflict):
        vols.remove(used.name)
    with pytest.raises(InvalidArgument):
        vols.create("bad/name")
    with pytest.raises(InvalidArgument):
        vols.create("o", options={"bogus": "1"})
    with pytest.raises(NotFound):
        vols.create("p", driver="nfs-plugin")
    vols.remove("data")
    assert not Path(v.mountpoint).exists()
    with pytest.raises(NotFound):
        vols.get("data")


def test_runtime_mounts_of_each_kind(tmp_path: Path) -> None:
    vols = _service(tmp_path)
    d = vols.create("dd")
    assert vols.runtime_mount("dd", "/m", True) == {
        "destination": "/m",
        "type": "bind",
        "source": d.mountpoint,
        "options": ["rbind", "rprivate", "ro"],
    }
    vols.create("tt", options={"type": "tmpfs", "o": "size=1m"})
    assert vols.runtime_mount("tt", "/m", False) == {
        "destination": "/m",
        "type": "tmpfs",
        "source": "tmpfs",
        "options": ["size=1m"],
    }
    vols.create("bb", options={"type": "none", "device": "/srv/x", "o": "bind"})
    assert vols.runtime_mount("bb", "/m", False) == {
        "destination": "/m",
        "type": "bind",
        "source": "/srv/x",
        "options": ["rbind", "rprivate"],
    }
    assert {u.volume.name: u.size for u in vols.usage()} == {"dd": 0, "tt": -1, "bb": -1}
