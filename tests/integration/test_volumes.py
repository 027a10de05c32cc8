"""Volumes: named, anonymous, bind and tmpfs mounts, copy-up, --volumes-from, and the volume
commands with Docker's errors."""

from __future__ import annotations

import json
import os
import re
import select
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from . import test_dockerd_compat
from .conftest import BIN, Daemon
from .test_dockerd_compat import Dockerd

pytestmark = pytest.mark.root

# a private dockerd to compare with (skipped where docker.io is absent)
dockerd = test_dockerd_compat.dockerd


def test_named_volume_outlives_containers(daemon: Daemon) -> None:
    assert daemon.ok("volume", "create", "--label", "team=x", "keep").strip() == "keep"
    daemon.ok("run", "--rm", "-v", "keep:/data", "busybox", "sh", "-c", "echo kept > /data/f")
    assert daemon.ok("run", "--rm", "-v", "keep:/data:ro", "busybox", "cat", "/data/f") == "kept\n"
    r = daemon.berth("run", "--rm", "-v", "keep:/data:ro", "busybox", "touch", "/data/g")
    assert r.returncode == 1 and "Read-only file system" in r.stderr
    v = json.loads(daemon.ok("volume", "inspect", "keep"))[0]
    assert v["Driver"] == "local" and v["Labels"] == {"team": "x"}
    assert Path(v["Mountpoint"], "f").read_text() == "kept\n"
    assert daemon.ok("volume", "ls", "-f", "label=team=x", "-q").split() == ["keep"]
    daemon.ok("run", "-d", "--name", "holder", "-v", "keep:/data", "busybox", "sleep", "60")
    r = daemon.berth("volume", "rm", "keep")
    assert r.returncode == 1 and "volume is in use" in r.stderr
    assert (
        daemon.ok("run", "--rm", "--volumes-from", "holder", "busybox", "cat", "/data/f")
        == "kept\n"
    )
    assert "keep" not in daemon.ok("volume", "ls", "-q", "-f", "dangling=true").split()
    daemon.ok("rm", "-f", "holder")
    assert "keep" in daemon.ok("volume", "ls", "-q", "-f", "dangling=true").split()
    daemon.ok("volume", "rm", "keep")
    assert not Path(v["Mountpoint"]).exists()


def test_anonymous_volumes_copy_up_and_rm_v(daemon: Daemon) -> None:
    before = set(daemon.ok("volume", "ls", "-q").split())
    daemon.ok(
        "run",
        "--name",
        "anon",
        "-v",
        "/home",
        "busybox",
        "sh",
        "-c",
        "ls -ln /home; echo new > /home/app/x",
    )
    m = daemon.inspect("anon")["Mounts"]
    assert len(m) == 1 and m[0]["Type"] == "volume" and m[0]["Destination"] == "/home"
    st = os.stat(Path(m[0]["Source"], "app"))
    assert (st.st_uid, st.st_gid) == (1000, 1000)  # copied with its owner
    assert Path(m[0]["Source"], "app", "x").read_text() == "new\n"
    assert set(daemon.ok("volume", "ls", "-q").split()) - before == {m[0]["Name"]}
    daemon.ok("rm", "-v", "anon")
    assert set(daemon.ok("volume", "ls", "-q").split()) == before
    # nocopy leaves the new volume empty
    out = daemon.ok(
        "run", "--rm", "--mount", "type=volume,target=/etc,volume-nocopy", "busybox", "ls", "/etc"
    )
    assert "passwd" not in out
    daemon.ok("volume", "prune", "-f")


def test_bind_and_tmpfs(daemon: Daemon, tmp_path: Path) -> None:
    (tmp_path / "in").write_text("from host\n")
    out = daemon.ok(
        "run",
        "--rm",
        "-v",
        f"{tmp_path}:/h",
        "busybox",
        "sh",
        "-c",
        "cat /h/in; echo back > /h/out",
    )
    assert out == "from host\n" and (tmp_path / "out").read_text() == "back\n"
    created = tmp_path / "made-by-v"
    daemon.ok("run", "--rm", "-v", f"{created}:/m", "busybox", "true")
    assert created.is_dir()  # -v creates a missing source
    r = daemon.berth(
        "run",
        "--rm",
        "--mount",
        f"type=bind,source={tmp_path}/missing,target=/m",
        "busybox",
        "true",
    )
    assert r.returncode == 125 and "bind source path does not exist" in r.stderr
    out = daemon.ok(
        "run",
        "--rm",
        "--mount",
        "type=tmpfs,target=/t,tmpfs-size=1m",
        "--tmpfs",
        "/u:size=2m",
        "busybox",
        "sh",
        "-c",
        "mount | grep -e ' /t ' -e ' /u '",
    )
    assert "size=1024k" in out and "size=2048k" in out
    # a volume on /etc does not hide the generated /etc files
    assert (
        daemon.ok("run", "--rm", "-h", "vh", "-v", "/etc", "busybox", "cat", "/etc/hostname")
        == "vh\n"
    )
    daemon.ok("volume", "prune", "-f")


def test_volume_errors(daemon: Daemon) -> None:
    r = daemon.berth("volume", "create", "-d", "nosuchdriver", "v1")
    assert r.returncode == 1 and 'plugin "nosuchdriver" not found' in r.stderr
    r = daemon.berth("volume", "create", "bad/name")
    assert r.returncode == 1 and "includes invalid characters" in r.stderr
    r = daemon.berth("volume", "inspect", "nothing")
    assert r.returncode == 1 and "no such volume" in r.stderr
    r = daemon.berth("run", "--rm", "-v", "/a:/b", "-v", "/c:/b", "busybox", "true")
    assert r.returncode == 125 and "Duplicate mount point: /b" in r.stderr


def test_tmpfs_volume_driver_options(daemon: Daemon) -> None:
    daemon.ok("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=3m", "tv")
    out = daemon.ok("run", "--rm", "-v", "tv:/tv", "busybox", "sh", "-c", "mount | grep /tv")
    assert "tmpfs" in out and "size=3072k" in out
    daemon.ok("volume", "rm", "tv")


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--label", "team=x", "--label", "empty="],
        ["-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=1m,uid=1000"],
    ],
)
def test_volume_inspects_as_dockerd_s(dockerd: Dockerd, daemon: Daemon, args: list[str]) -> None:
    """The same `volume create` inspects the same under both engines: the Mountpoint in its
    place, Options only as given, the labels as given. Times and roots differ by nature."""
    berth = Dockerd(daemon.base)  # the docker CLI, at berthd's socket
    berth.env = {**daemon.env, "DOCKER_CONFIG": str(daemon.base / "cfg")}
    got = []
    for engine in (dockerd, berth):
        assert engine.docker("volume", "create", *args, "cmpvol").strip() == "cmpvol"
        try:
            v = json.loads(engine.docker("volume", "inspect", "cmpvol"))[0]
        finally:
            engine.docker("volume", "rm", "cmpvol")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)", v.pop("CreatedAt"))
        assert v.pop("Mountpoint").endswith("/volumes/cmpvol/_data")
        # the API (v1.50) never has Labels null; dockerd before 23 wrote null for none
        v["Labels"] = v["Labels"] or {}
        got.append(v)
    assert got[0] == got[1]


def test_anonymous_volume_inspects_as_dockerd_s(dockerd: Dockerd, daemon: Daemon) -> None:
    """`run -v /data` makes an anonymous volume that inspects as dockerd's (its label)."""
    berth = Dockerd(daemon.base)
    berth.env = {**daemon.env, "DOCKER_CONFIG": str(daemon.base / "cfg")}
    got = []
    for engine, pull in ((dockerd, ["--pull", "never"]), (berth, [])):
        cid = engine.docker(
            "create", *pull, "--network", "none", "-v", "/data", "busybox", "true"
        ).strip()
        try:
            name = engine.docker("inspect", "-f", "{{range .Mounts}}{{.Name}}{{end}}", cid).strip()
            v = json.loads(engine.docker("volume", "inspect", name))[0]
        finally:
            engine.docker("rm", "-v", cid)
        assert re.fullmatch(r"[0-9a-f]{64}", v.pop("Name"))
        del v["CreatedAt"], v["Mountpoint"]
        got.append(v)
    if int(dockerd.docker("version", "-f", "{{.Server.Version}}").split(".")[0]) < 23:
        # dockerd labels anonymous volumes since 23 (what `volume prune` keys on): berth is
        # the newer dockerd here
        got[0]["Labels"] = {**(got[0]["Labels"] or {}), "com.docker.volume.anonymous": ""}
    assert got[0] == got[1]


def test_volume_events_stream_live(daemon: Daemon) -> None:
    """The volume service runs in worker threads; its events still reach a listening client
    as they happen (each one read before the next command)."""
    # --since: what happens before the stream is open is replayed, not missed
    p = subprocess.Popen(
        [
            str(BIN / "berth"),
            "events",
            "--since",
            str(int(time.time())),
            "-f",
            "type=volume",
            "-f",
            "volume=live-vol",
            "--format",
            "{{.Action}}",
        ],
        env=daemon.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert p.stdout is not None
    try:

        def line() -> str:
            assert select.select([p.stdout], [], [], 20)[0], "no event in 20 s"
            assert p.stdout is not None
            return p.stdout.readline().strip()

        daemon.ok("volume", "create", "live-vol")
        assert line() == "create"
        daemon.ok("volume", "rm", "live-vol")
        assert line() == "destroy"
    finally:
        p.kill()
        p.wait()
        p.stdout.close()


def test_a_data_root_from_before_the_volume_record_loads(private_daemon: Daemon) -> None:
    """Volumes stored as Docker's inspect JSON (berth before VolumeRecord) come back as they
    were: inspect the same, their data there, an anonymous one still removed with its
    container."""
    d = private_daemon
    d.ok("volume", "create", "--label", "k=v", "oldvol")
    d.ok("run", "--rm", "-v", "oldvol:/d", "busybox", "sh", "-c", "echo kept > /d/f")
    d.ok("create", "--name", "anon-user", "-v", "/data", "busybox", "true")
    anon = d.inspect("anon-user")["Mounts"][0]["Name"]
    want = {v["Name"]: v for v in json.loads(d.ok("volume", "inspect", "oldvol", anon))}
    d.stop()
    db = sqlite3.connect(d.data_root / "berth.db")
    try:
        for name, raw in db.execute("SELECT name, doc FROM volumes").fetchall():
            assert json.loads(raw)["v"] == 1  # stored as the record
            db.execute("UPDATE volumes SET doc=? WHERE name=?", (json.dumps(want[name]), name))
        db.commit()
    finally:
        db.close()
    d.start()
    have = {v["Name"]: v for v in json.loads(d.ok("volume", "inspect", "oldvol", anon))}
    assert have == want
    assert d.ok("run", "--rm", "-v", "oldvol:/d", "busybox", "cat", "/d/f") == "kept\n"
    assert d.ok("volume", "ls", "-q", "-f", "label=com.docker.volume.anonymous").split() == [anon]
    d.ok("rm", "-v", "anon-user")
    assert anon not in d.ok("volume", "ls", "-q").split()
    d.ok("volume", "rm", "oldvol")
