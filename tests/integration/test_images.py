"""Images through berth's CLI: import (plain, gzip, zstd, stdin, --change), images and its
filters, tag, rmi and its conflicts, history, inspect, save/load, and bad archives."""

from __future__ import annotations

import gzip
import io
import json
import os
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from .conftest import Daemon

pytestmark = pytest.mark.root


def _store_files(d: Daemon) -> set[str]:
    out = set()
    for sub in ("storage/layers", "content/blobs/sha256", "content/ingest"):
        p = d.data_root / sub
        if p.exists():
            out |= {f"{sub}/{n}" for n in os.listdir(p)}
    return out


def test_import_formats_and_changes(daemon: Daemon, rootfs_tar: Path, tmp_path: Path) -> None:
    raw = rootfs_tar.read_bytes()
    gz = tmp_path / "r.tar.gz"
    gz.write_bytes(gzip.compress(raw, 1))
    iid = daemon.ok(
        "import",
        "-c",
        "ENV A=1 B=2",
        "-c",
        'CMD ["echo", "from-cmd"]',
        "-c",
        "WORKDIR /tmp",
        "-c",
        "USER app",
        "-c",
        "EXPOSE 80",
        "-c",
        "LABEL team=core",
        "-c",
        'ENTRYPOINT ["/bin/sh", "-c", "exec \\"$@\\"", "--"]',
        "-m",
        "imported for a test",
        str(gz),
        "changed:1",
    ).strip()
    assert iid.startswith("sha256:")
    cfg = json.loads(daemon.ok("image", "inspect", "changed:1"))[0]
    c = cfg["Config"]
    assert c["Env"] == ["A=1", "B=2"] and c["Cmd"] == ["echo", "from-cmd"]
    assert c["WorkingDir"] == "/tmp" and c["User"] == "app"
    assert c["ExposedPorts"] == {"80/tcp": {}} and c["Labels"] == {"team": "core"}
    assert cfg["Comment"] == "imported for a test"
    assert daemon.ok("run", "--rm", "changed:1").strip() == "from-cmd"
    assert (
        daemon.ok("run", "--rm", "changed:1", "sh", "-c", "echo $A$B $(pwd) $(id -u)").strip()
        == "12 /tmp 1000"
    )
    # the same layer content: shared, not unpacked twice
    layers = json.loads(daemon.ok("image", "inspect", "busybox"))[0]["RootFS"]["Layers"]
    assert cfg["RootFS"]["Layers"] == layers
    try:
        import zstandard
    except ImportError:
        pytest.skip("zstandard not installed")
    zst = tmp_path / "r.tar.zst"
    zst.write_bytes(zstandard.ZstdCompressor().compress(raw))
    daemon.ok("import", str(zst), "zst:1")
    r = daemon.berth("import", "-", "stdin:1", input=raw)
    assert r.returncode == 0, r.stderr
    assert daemon.ok("run", "--rm", "stdin:1", "echo", "ok").strip() == "ok"
    daemon.ok("rmi", "changed:1", "zst:1", "stdin:1")


def test_import_bad_change_and_bad_archives_leave_nothing(
    daemon: Daemon, rootfs_tar: Path, tmp_path: Path
) -> None:
    before = _store_files(daemon)
    images_before = daemon.ok("images", "-a", "-q")
    r = daemon.berth("import", "-c", "FROB x", str(rootfs_tar), "bad:1")
    assert r.returncode == 1 and "FROB is not a valid change command" in r.stderr
    trunc = tmp_path / "t.tar.gz"
    trunc.write_bytes(gzip.compress(rootfs_tar.read_bytes())[:20000])
    r = daemon.berth("import", str(trunc), "bad:2")
    assert r.returncode == 1 and "invalid tar archive" in r.stderr
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"this is not a tar archive at all" * 100)
    r = daemon.berth("import", str(junk), "bad:3")
    assert r.returncode == 1
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tf:
        ti = tarfile.TarInfo("../../escape")
        ti.size = 1
        tf.addfile(ti, io.BytesIO(b"x"))
    r = daemon.berth("import", str(evil), "bad:4")
    assert r.returncode == 1 and "escapes the layer" in r.stderr
    assert not Path("/escape").exists()
    assert daemon.ok("images", "-a", "-q") == images_before
    assert _store_files(daemon) == before


def test_images_tag_filters_history(daemon: Daemon) -> None:
    daemon.ok("tag", "busybox", "example.com:5000/team/tool:2")
    daemon.ok("image", "tag", "busybox", "bb-alias")
    table = daemon.ok("images")
    assert table.splitlines()[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert "example.com:5000/team/tool" in table and "bb-alias" in table
    refs = daemon.ok(
        "images", "--format", "{{.Repository}}:{{.Tag}}", "-f", "reference=bb-*"
    ).split()
    assert refs == ["bb-alias:latest"]
    assert (
        daemon.ok("images", "-q", "busybox").strip()
        == json.loads(daemon.ok("image", "inspect", "busybox"))[0]["Id"][7:19]
    )
    # dangling: untagged images only (other tests of this daemon may have left some)
    for short in daemon.ok("images", "-f", "dangling=true", "-q").split():
        assert json.loads(daemon.ok("image", "inspect", short))[0]["RepoTags"] == []
    hist = daemon.ok("history", "busybox").splitlines()
    assert hist[0].split()[:3] == ["IMAGE", "CREATED", "CREATED"] and len(hist) == 2
    assert "Imported from -" in hist[1] or "Imported from" in hist[1]
    # rmi of one of several tags only untags
    assert daemon.ok("rmi", "bb-alias").strip() == "Untagged: bb-alias:latest"
    assert (
        daemon.ok("rmi", "example.com:5000/team/tool:2").strip()
        == "Untagged: example.com:5000/team/tool:2"
    )
    r = daemon.berth("tag", "busybox", "Bad_Upper")
    assert r.returncode == 1 and "invalid reference format" in r.stderr
    r = daemon.berth("rmi", "no-such-image")
    assert r.returncode == 1 and "No such image: no-such-image" in r.stderr


def test_rmi_refuses_an_image_in_use(daemon: Daemon, rootfs_tar: Path) -> None:
    daemon.ok("import", str(rootfs_tar), "inuse:1")
    daemon.ok("create", "--name", "user-of-inuse", "inuse:1", "true")
    # the containers made from it, as `system df -v` counts them
    df = daemon.ok("system", "df", "-v").splitlines()
    assert [line.split()[-1] for line in df if line.startswith("inuse ")] == ["1"]
    r = daemon.berth("rmi", "inuse:1")
    assert r.returncode == 1
    assert 'unable to remove repository reference "inuse:1" (must force)' in r.stderr
    out = daemon.ok("rmi", "-f", "inuse:1")
    assert "Untagged: inuse:1" in out
    # the container still runs from its layers
    daemon.ok("start", "user-of-inuse")
    assert daemon.ok("wait", "user-of-inuse").strip() == "0"
    daemon.ok("rm", "user-of-inuse")
    # a running container's image cannot be removed even by force
    daemon.ok("import", str(rootfs_tar), "inuse:2")
    cid = daemon.ok("run", "-d", "inuse:2", "sleep", "60").strip()
    try:
        r = daemon.berth("rmi", "-f", daemon.inspect(cid)["Image"])
        assert r.returncode == 1
        assert (
            f"(cannot be forced) - image is being used by running container {cid[:12]}" in r.stderr
        )
    finally:
        daemon.ok("rm", "-f", cid)
    daemon.ok("rmi", "inuse:2")


def test_save_and_load_round_trip(daemon: Daemon, rootfs_tar: Path, tmp_path: Path) -> None:
    daemon.ok("import", "-c", 'CMD ["echo", "saved"]', str(rootfs_tar), "saveme:1")
    iid = json.loads(daemon.ok("image", "inspect", "saveme:1"))[0]["Id"]
    out = tmp_path / "saved.tar"
    daemon.ok("save", "-o", str(out), "saveme:1")
    with tarfile.open(out) as tf:
        names = set(tf.getnames())
        manifest = json.load(tf.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert {"manifest.json", "index.json", "oci-layout"} <= names
    assert manifest[0]["RepoTags"] == ["saveme:1"]
    assert manifest[0]["Config"] == "blobs/sha256/" + iid[7:]
    daemon.ok("rmi", "saveme:1")
    assert daemon.berth("image", "inspect", "saveme:1").returncode == 1
    assert daemon.ok("load", "-i", str(out)).strip() == "Loaded image: saveme:1"
    assert json.loads(daemon.ok("image", "inspect", "saveme:1"))[0]["Id"] == iid
    assert daemon.ok("run", "--rm", "saveme:1").strip() == "saved"
    # stdin works too
    r = daemon.berth("load", input=out.read_bytes())
    assert r.returncode == 0 and b"Loaded image: saveme:1" in r.stdout
    daemon.ok("rmi", "saveme:1")


def test_load_of_docker_legacy_layout(daemon: Daemon, rootfs_tar: Path, tmp_path: Path) -> None:
    """The pre-v25 `docker save` layout: <id>/layer.tar beside <config>.json."""
    import hashlib

    layer = rootfs_tar.read_bytes()
    diff = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["echo", "legacy"]},
            "created": "2024-01-02T03:04:05Z",
            "rootfs": {"type": "layers", "diff_ids": [diff]},
            "history": [{"created": "2024-01-02T03:04:05Z"}],
        }
    ).encode()
    cid = hashlib.sha256(config).hexdigest()
    out = tmp_path / "legacy.tar"
    with tarfile.open(out, "w") as tf:
        for name, data in (
            (f"{cid}.json", config),
            ("abc123/layer.tar", layer),
            ("abc123/VERSION", b"1.0"),
            (
                "manifest.json",
                json.dumps(
                    [
                        {
                            "Config": f"{cid}.json",
                            "RepoTags": ["legacy:old"],
                            "Layers": ["abc123/layer.tar"],
                        }
                    ]
                ).encode(),
            ),
        ):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    assert daemon.ok("load", "-i", str(out)).strip() == "Loaded image: legacy:old"
    assert daemon.ok("run", "--rm", "legacy:old").strip() == "legacy"
    daemon.ok("rmi", "legacy:old")


def test_load_refuses_a_lying_archive(daemon: Daemon, rootfs_tar: Path, tmp_path: Path) -> None:
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]},
        }
    ).encode()
    out = tmp_path / "lie.tar"
    with tarfile.open(out, "w") as tf:
        for name, data in (
            ("c.json", config),
            ("l/layer.tar", rootfs_tar.read_bytes()),
            (
                "manifest.json",
                json.dumps(
                    [{"Config": "c.json", "RepoTags": ["liar:1"], "Layers": ["l/layer.tar"]}]
                ).encode(),
            ),
        ):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    before = _store_files(daemon)
    r = daemon.berth("load", "-i", str(out))
    assert r.returncode == 1 and "layer digest mismatch" in r.stderr
    assert daemon.berth("image", "inspect", "liar:1").returncode == 1
    assert _store_files(daemon) == before


def test_kill_9_during_import_restarts_consistent(private_daemon: Daemon, tmp_path: Path) -> None:
    d = private_daemon
    big = tmp_path / "big.tar"
    with tarfile.open(big, "w") as tf:
        for i in range(300):
            data = os.urandom(256 * 1024)
            ti = tarfile.TarInfo(f"f{i}")
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    proc = subprocess.Popen(
        [
            str(Path(d.proc.args[0]).parent / "berth"),
            "import",  # type: ignore[union-attr]
            str(big),
            "half:1",
        ],
        env=d.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 10
    while time.time() < deadline and not any(
        (d.data_root / "storage/layers").glob("tmp-*/diff/f1*")
    ):
        time.sleep(0.01)
    d.stop(signal.SIGKILL)
    proc.wait(10)
    d.start()
    assert d.berth("image", "inspect", "half:1").returncode == 1
    assert not list((d.data_root / "storage/layers").glob("tmp-*"))
    assert os.listdir(d.data_root / "content/ingest") == []
    # the store still works
    d.ok("import", str(big), "whole:1")
    d.ok("rmi", "whole:1")


def test_image_prune_deletes_dangling_images(daemon: Daemon, rootfs_tar: Path) -> None:
    iid = daemon.ok("import", str(rootfs_tar)).strip()  # no tag: dangling
    daemon.ok("import", str(rootfs_tar), "kept-by-prune:1")
    out = daemon.ok("image", "prune", "-f")
    assert iid in out
    assert "kept-by-prune" not in out
    r = daemon.berth("image", "inspect", iid)
    assert r.returncode == 1 and "No such image" in r.stderr
    daemon.ok("rmi", "kept-by-prune:1")
