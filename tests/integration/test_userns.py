"""berthd --userns-remap: containers' root is an unprivileged range outside, their files are
owned by that range on disk, and what leaves the daemon (save, export, commit, build) carries
the container's own ids. Runs with berth's runtime and with runc."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Daemon, running_daemon

pytestmark = pytest.mark.root
BASE = 400000
UID = "23456"  # a user id with no passwd entry: its ranges are named by number


@pytest.fixture(scope="module")
def subids() -> Iterator[None]:
    """A range for UID in /etc/subuid and /etc/subgid, for this module only."""
    saved = {}
    for path in ("/etc/subuid", "/etc/subgid"):
        p = Path(path)
        saved[p] = p.read_text() if p.exists() else None
        with open(p, "a") as f:
            f.write(f"{UID}:{BASE}:65536\n")
    try:
        yield
    finally:
        for p, text in saved.items():
            if text is None:
                p.unlink(missing_ok=True)
            else:
                p.write_text(text)


@pytest.fixture(scope="module", params=["berth", "runc"])
def remapped(request: pytest.FixtureRequest, subids: None, rootfs_tar: Path) -> Iterator[Daemon]:
    if request.param == "runc" and not shutil.which("runc"):
        pytest.skip("runc is not installed")
    # the containers' root must be able to walk to its rootfs and files: pytest's own
    # temporary directories are closed (0700), so this daemon lives in one of its own
    base = Path(tempfile.mkdtemp(prefix="berth-userns-"))
    base.chmod(0o711)
    try:
        with running_daemon(
            base / "d",
            rootfs_tar,
            "--userns-remap",
            f"{UID}:{UID}",
            "--default-runtime",
            request.param,
            *(["--add-runtime", "runc=runc"] if request.param == "runc" else []),
        ) as d:
            yield d
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_root_inside_is_unprivileged_outside(remapped: Daemon) -> None:
    out = remapped.ok(
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map /proc/self/gid_map; touch /x && echo ok",
    )
    assert out.split() == ["0", "0", str(BASE), "65536", "0", str(BASE), "65536", "ok"]
    cid = remapped.ok(
        "run",
        "-d",
        "-v",
        "uvol:/data",
        "busybox",
        "sh",
        "-c",
        "echo data > /data/f; touch /made; sleep 60",
    ).strip()
    try:
        pid = remapped.inspect(cid)["State"]["Pid"]
        assert os.stat(f"/proc/{pid}").st_uid == BASE
        # exec: the same namespace, the same mapping
        assert remapped.ok("exec", cid, "cat", "/proc/self/uid_map").split() == [
            "0",
            str(BASE),
            "65536",
        ]
        assert remapped.ok("exec", "-u", "app", cid, "id", "-u") == "1000\n"
        # on disk: the image's files, the container's and the volume's, all in the range
        data = remapped.data_root / f"{BASE}.{BASE}"
        assert data.is_dir()
        vol = data / "volumes" / "uvol" / "_data"
        assert vol.stat().st_uid == BASE and (vol / "f").stat().st_uid == BASE
        layer = next((data / "storage" / "layers").glob("*/diff/etc/passwd"))
        assert layer.stat().st_uid == BASE
        # leaving the daemon: the container's own ids
        assert "A /made" in remapped.ok("diff", cid)
        exported = remapped.berth("export", cid, input=b"").stdout
        tar = tarfile.open(fileobj=io.BytesIO(exported))
        owners = {m.name.removeprefix("./").rstrip("/"): (m.uid, m.gid) for m in tar}
        assert owners["made"] == (0, 0) and owners["home/app"] == (1000, 1000)
    finally:
        remapped.ok("rm", "-f", "-v", cid)
        remapped.ok("volume", "rm", "uvol")


def test_builds_and_saves_carry_the_containers_ids(remapped: Daemon, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\nRUN mkdir /home/bob && chown 1234:1234 /home/bob && touch /by-run\n"
        "COPY --chown=1234 f /f\n"
    )
    (tmp_path / "f").write_text("f\n")
    remapped.ok("build", "-t", "ubuilt:1", str(tmp_path))
    assert remapped.ok(
        "run", "--rm", "ubuilt:1", "stat", "-c", "%u %n", "/home/bob", "/f", "/by-run"
    ).split("\n")[:3] == ["1234 /home/bob", "1234 /f", "0 /by-run"]
    archive = tmp_path / "saved.tar"
    remapped.ok("save", "-o", str(archive), "ubuilt:1")
    owners = {}
    with tarfile.open(archive) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        for layer in manifest[0]["Layers"]:
            with tarfile.open(fileobj=outer.extractfile(layer)) as lt:  # type: ignore[arg-type]
                owners.update({m.name.removeprefix("./").rstrip("/"): m.uid for m in lt})
    assert owners["home/bob"] == 1234 and owners["f"] == 1234 and owners["by-run"] == 0
    assert owners["etc/passwd"] == 0
    remapped.ok("rmi", "ubuilt:1")


def test_what_user_namespaces_forbid(remapped: Daemon) -> None:
    r = remapped.berth("run", "--rm", "--privileged", "busybox", "true")
    assert r.returncode == 125 and "incompatible with user namespaces" in r.stderr
    r = remapped.berth("run", "--rm", "--network", "host", "busybox", "true")
    assert r.returncode == 125 and "user namespaces are enabled" in r.stderr
    # --userns host: no user namespace for this one
    out = remapped.ok("run", "--rm", "--userns", "host", "busybox", "cat", "/proc/self/uid_map")
    assert out.split() == ["0", "0", "4294967295"]
    info = json.loads(remapped.ok("info", "--format", "{{json .SecurityOptions}}"))
    assert "name=userns" in info
