"""The typed reading of an image's config document, and Docker's JSON made from it at the API
edge (`image inspect`'s Config, history)."""

from __future__ import annotations

import json

import pytest

from berth.api.images import (
    history_json,
    inspect_json,
    platform_json,
    registry_image_json,
    removed_json,
    run_config_json,
    summary_json,
)
from berth.errors import InvalidArgument
from berth.images import (
    Image,
    ImageConfig,
    ImageDetails,
    ImageSummary,
    Removed,
    RunConfig,
    manifests,
)
from berth.images.distribution import Platform, RegistryImage
from berth.images.manifests import Descriptor
from berth.images.records import HistoryEntry, parse_rfc3339
from berth.images.views import HistoryLine

# a config as `docker build` writes it: fields berth reads, and others it passes through
DOC = {
    "architecture": "amd64",
    "os": "linux",
    "created": "2026-11-30T10:00:00.5Z",
    "author": "me",
    "comment": "built",
    "config": {
        "Hostname": "",
        "User": "app",
        "Env": ["PATH=/bin"],
        "Cmd": ["sh"],
        "Entrypoint": None,
        "WorkingDir": "/w",
        "Labels": {"a": "b"},
        "ExposedPorts": {"80/tcp": {}},
        "Volumes": {"/data": {}},
        "StopSignal": "SIGINT",
        "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1000000000},
        "ArgsEscaped": True,
        "OnBuild": None,
    },
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64]},
    "history": [
        {"created": "2026-11-30T10:00:00Z", "created_by": "ADD x /", "comment": "c"},
        {"created": "2026-11-30T10:00:01Z", "created_by": 'CMD ["sh"]', "empty_layer": True},
    ],
}


def test_the_config_document_reads_typed() -> None:
    spec = ImageConfig.from_doc(DOC)
    assert (spec.architecture, spec.os, spec.created, spec.author, spec.comment) == (
        "amd64",
        "linux",
        "2026-11-30T10:00:00.5Z",
        "me",
        "built",
    )
    rc = spec.config
    assert rc == RunConfig(
        user="app",
        env=("PATH=/bin",),
        cmd=("sh",),
        entrypoint=None,
        working_dir="/w",
        labels={"a": "b"},
        exposed_ports=("80/tcp",),
        volumes=("/data",),
        stop_signal="SIGINT",
        other={
            "Hostname": "",
            "Healthcheck": DOC["config"]["Healthcheck"],
            "ArgsEscaped": True,
            "OnBuild": None,
        },
    )
    assert spec.diff_ids == ("sha256:" + "1" * 64,)
    assert spec.history == (
        HistoryEntry(
            created=parse_rfc3339("2026-11-30T10:00:00Z"), created_by="ADD x /", comment="c"
        ),
        HistoryEntry(
            created=parse_rfc3339("2026-11-30T10:00:01Z"), created_by='CMD ["sh"]', empty_layer=True
        ),
    )


def test_a_malformed_document_reads_as_empty() -> None:
    """Images come from registries and archives: a field of the wrong type is no crash."""
    spec = ImageConfig.from_doc(
        {"config": "x", "rootfs": [], "history": {"a": 1}, "os": 5, "created": None}
    )
    assert spec == ImageConfig()
    assert ImageConfig.from_doc(None) == ImageConfig()
    rc = RunConfig.from_doc({"Cmd": "sh -c x", "Env": None, "Labels": ["a"]})
    assert (rc.cmd, rc.env, rc.labels) == (None, None, None)
    assert run_config_json(rc)["Cmd"] is None and run_config_json(rc)["Labels"] is None


def test_inspect_json_is_dockerd_s_shape() -> None:
    img = Image(id="sha256:" + "a" * 64, config=DOC, layers=["c1"], size=10, created=5)
    out = inspect_json(
        ImageDetails(
            image=img,
            spec=img.spec,
            repo_tags=["x:1"],
            repo_digests=[],
            layer_dirs=["/l/0", "/l/1", "/l/2"],
        )
    )
    assert out["Config"] == {
        "Hostname": "",
        "Domainname": "",
        "User": "app",
        "AttachStdin": False,
        "AttachStdout": False,
        "AttachStderr": False,
        "Tty": False,
        "OpenStdin": False,
        "StdinOnce": False,
        "Env": ["PATH=/bin"],
        "Cmd": ["sh"],
        "Image": "",
        "Volumes": {"/data": {}},
        "WorkingDir": "/w",
        "Entrypoint": None,
        "OnBuild": None,
        "Labels": {"a": "b"},
        "ExposedPorts": {"80/tcp": {}},
        "StopSignal": "SIGINT",
        "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1000000000},
        "ArgsEscaped": True,
    }
    assert out["GraphDriver"]["Data"] == {"LowerDir": "/l/1:/l/0", "UpperDir": "/l/2"}
    assert (out["Created"], out["Author"], out["Comment"], out["RootFS"]) == (
        "2026-11-30T10:00:00.5Z",
        "me",
        "built",
        {"Type": "layers", "Layers": ["sha256:" + "1" * 64]},
    )
    assert "Variant" not in out
    # an image with no config at all (as `import` of old) shows Docker's empty config
    bare = Image(id="sha256:" + "b" * 64, config={}, layers=[], size=0, created=0)
    out = inspect_json(
        ImageDetails(image=bare, spec=bare.spec, repo_tags=[], repo_digests=[], layer_dirs=[])
    )
    assert out["Config"]["Cmd"] is None and out["Config"]["Labels"] is None
    assert out["Created"] == "1970-01-01T00:00:00Z" and out["Os"] == "linux"
    assert "ExposedPorts" not in out["Config"] and "StopSignal" not in out["Config"]


def test_list_and_history_json() -> None:
    s = ImageSummary(
        id="sha256:x",
        created=1,
        size=2,
        labels={},
        repo_tags=["a:1"],
        repo_digests=[],
        containers=3,
        shared_size=4,
    )
    assert summary_json(s) == {
        "Containers": 3,
        "Created": 1,
        "Id": "sha256:x",
        "Labels": {},
        "ParentId": "",
        "RepoDigests": [],
        "RepoTags": ["a:1"],
        "SharedSize": 4,
        "Size": 2,
        "VirtualSize": 2,
    }
    h = HistoryLine(id="<missing>", created=1, created_by="RUN x", tags=None, size=0, comment="")
    assert history_json(h) == {
        "Id": "<missing>",
        "Created": 1,
        "CreatedBy": "RUN x",
        "Tags": None,
        "Size": 0,
        "Comment": "",
    }
    assert [removed_json(r) for r in (Removed("a:1"), Removed("sha256:x", deleted=True))] == [
        {"Untagged": "a:1"},
        {"Deleted": "sha256:x"},
    ]


def test_a_platform_shows_the_fields_set() -> None:
    p = Platform.from_doc(
        {
            "os": "windows",
            "architecture": "amd64",
            "os.version": "10.0",
            "os.features": ["win32k"],
            "variant": 7,
        }
    )
    assert platform_json(p) == {
        "architecture": "amd64",
        "os": "windows",
        "os.version": "10.0",
        "os.features": ["win32k"],
    }
    r = RegistryImage(media_type="m", digest="sha256:d", size=3, platforms=[p])
    assert registry_image_json(r)["Descriptor"] == {
        "mediaType": "m",
        "digest": "sha256:d",
        "size": 3,
    }


def test_manifests_read_typed_and_refuse_what_is_malformed() -> None:
    d1, d2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    m = manifests.parse_manifest(
        manifests.document(
            json.dumps(
                {
                    "schemaVersion": 2,
                    "config": {"mediaType": "c", "size": 5, "digest": d1},
                    "layers": [{"mediaType": "l", "size": 7, "digest": d2}],
                }
            ).encode(),
            "m",
        ),
        "m",
    )
    assert m.config == Descriptor(media_type="c", size=5, digest=d1)
    assert [(la.digest, la.size, la.short) for la in m.layers] == [(d2, 7, "2" * 12)]
    assert m.layers[0].to_doc() == {"mediaType": "l", "size": 7, "digest": d2}
    idx = manifests.parse_index(
        {
            "manifests": [
                {
                    "digest": d1,
                    "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
                },
                {"digest": d2, "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
                {"digest": d2, "platform": {"os": "linux", "architecture": "arm", "variant": "v6"}},
            ]
        },
        "i",
    )
    assert idx.select("linux", "arm64", "") == idx.manifests[0]
    assert idx.select("linux", "arm", "v6") == idx.manifests[2]
    assert idx.select("linux", "arm", "") == idx.manifests[1]
    assert idx.select("linux", "amd64", "") is None
    # a registry is not trusted: an entry that would name a path, sizes that are not sizes,
    # documents that are not objects
    for bad in ({"manifests": [{"digest": "../../v2/other/manifests/x"}]}, {"manifests": "x"}):
        with pytest.raises(InvalidArgument):
            manifests.parse_index(bad, "i")
    for doc in (
        {"config": {"digest": d1, "size": "5"}},
        {"config": {"digest": d1, "size": -1}},
        {"config": None},
        {"config": {"digest": d1}, "layers": {"a": 1}},
    ):
        with pytest.raises(InvalidArgument):
            manifests.parse_manifest(doc, "m")
    for raw in (b"[1]", b"not json", b'"s"'):
        with pytest.raises(InvalidArgument):
            manifests.document(raw, "m")
