"""`cp` both ways, with the real docker CLI and berth's own, on running and stopped containers,
into volumes; `HEAD`/`GET`/`PUT /containers/{id}/archive` through docker-py."""

from __future__ import annotations

import base64
import io
import json
import os
import secrets
import subprocess
import tarfile
from pathlib import Path

import pytest

from .conftest import Daemon
from .test_docker_cli import docker, ok

pytestmark = pytest.mark.root

TOOLS = ["docker", "berth"]


def cp(
    d: Daemon,
    tool: str,
    *args: str,
    input: bytes | None = None,  # noqa: A002
) -> subprocess.CompletedProcess[str]:
    if tool == "docker":
        return docker(d, "cp", *args, input=input)
    return d.berth("cp", *args, input=input)


def cp_ok(d: Daemon, tool: str, *args: str) -> str:
    r = cp(d, tool, *args)
    assert r.returncode == 0, f"{tool} cp {' '.join(args)}: {r.returncode} {r.stderr}"
    return r.stdout


def name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


@pytest.mark.parametrize("tool", TOOLS)
def test_running_both_ways(daemon: Daemon, tmp_path: Path, tool: str) -> None:
    c = name("cp-run")
    daemon.ok("run", "-d", "--name", c, "busybox", "sleep", "300")
    try:
        (tmp_path / "hello.txt").write_text("hello\n")
        cp_ok(daemon, tool, str(tmp_path / "hello.txt"), f"{c}:/tmp/")
        assert daemon.ok("exec", c, "cat", "/tmp/hello.txt") == "hello\n"
        cp_ok(daemon, tool, str(tmp_path / "hello.txt"), f"{c}:/tmp/renamed")
        assert daemon.ok("exec", c, "cat", "/tmp/renamed") == "hello\n"
        # a directory, to a new name and into an existing directory
        src = tmp_path / "tree"
        (src / "sub").mkdir(parents=True)
        (src / "sub" / "f").write_text("deep")
        cp_ok(daemon, tool, str(src), f"{c}:/tmp/")
        assert daemon.ok("exec", c, "cat", "/tmp/tree/sub/f") == "deep"
        cp_ok(daemon, tool, str(src), f"{c}:/tmp/newtree")
        assert daemon.ok("exec", c, "cat", "/tmp/newtree/sub/f") == "deep"
        # SRC/. : the content
        daemon.ok("exec", c, "mkdir", "/tmp/content")
        cp_ok(daemon, tool, f"{src}/.", f"{c}:/tmp/content")
        assert daemon.ok("exec", c, "cat", "/tmp/content/sub/f") == "deep"
        # out of the container
        out = tmp_path / "out"
        out.mkdir()
        cp_ok(daemon, tool, f"{c}:/etc/passwd", str(out))
        assert (out / "passwd").read_text().startswith("root:x:0:0")
        cp_ok(daemon, tool, f"{c}:/etc", str(out / "etc2"))
        assert (out / "etc2" / "group").exists()
        cp_ok(daemon, tool, f"{c}:/etc", str(out))
        assert (out / "etc" / "passwd").exists()
        (out / "dot").mkdir()
        cp_ok(daemon, tool, f"{c}:/tmp/tree/.", str(out / "dot"))
        assert (out / "dot" / "sub" / "f").read_text() == "deep"
        # what a container has written, and a tmpfs-less path inside the running root
        daemon.ok("exec", c, "sh", "-c", "echo made-inside > /root/inside")
        cp_ok(daemon, tool, f"{c}:/root/inside", str(out / "inside"))
        assert (out / "inside").read_text() == "made-inside\n"
    finally:
        daemon.berth("rm", "-f", c)


@pytest.mark.parametrize("tool", TOOLS)
def test_stopped_container(daemon: Daemon, tmp_path: Path, tool: str) -> None:
    c = name("cp-stop")
    daemon.ok(
        "create",
        "--name",
        c,
        "busybox",
        "sh",
        "-c",
        "cat /etc/added /tmp/x/y; ls /etc/passwd; stat -c '%u %a' /etc",
    )
    try:
        (tmp_path / "added").write_text("added\n")
        cp_ok(daemon, tool, str(tmp_path / "added"), f"{c}:/etc/added")  # a lower-layer dir
        (tmp_path / "x").mkdir()
        (tmp_path / "x" / "y").write_text("why\n")
        cp_ok(daemon, tool, str(tmp_path / "x"), f"{c}:/tmp/")
        daemon.ok("start", c)
        daemon.ok("wait", c)
        assert daemon.ok("logs", c) == "added\nwhy\n/etc/passwd\n0 755\n"
        # out of the stopped container: its image's files and its own
        out = tmp_path / "out"
        out.mkdir()
        cp_ok(daemon, tool, f"{c}:/etc/added", str(out))
        assert (out / "added").read_text() == "added\n"
        cp_ok(daemon, tool, f"{c}:/etc/passwd", str(out))
        assert (out / "passwd").read_text().startswith("root:")
        cp_ok(daemon, tool, f"{c}:/tmp/x", str(out / "x"))
        assert (out / "x" / "y").read_text() == "why\n"
    finally:
        daemon.berth("rm", "-f", c)


def test_stopped_copy_up_and_whiteouts(daemon: Daemon, tmp_path: Path) -> None:
    """Into a stopped container: a directory only in the image keeps its owner and mode when
    made in the writable layer; a directory the container deleted comes back with only what
    was copied (no file of the image's shows through)."""
    c = name("cp-wh")
    daemon.ok(
        "run", "--name", c, "busybox", "sh", "-c", "rm -rf /usr; rm /bin/true; chmod 0750 /home/app"
    )
    try:
        (tmp_path / "f").write_text("f\n")
        cp_ok(daemon, "docker", str(tmp_path / "f"), f"{c}:/home/app/f")
        (tmp_path / "true").mkdir()
        (tmp_path / "true" / "inner").write_text("i\n")
        cp_ok(daemon, "berth", str(tmp_path / "true"), f"{c}:/bin/")
        (tmp_path / "usr").mkdir()
        (tmp_path / "usr" / "only").write_text("o\n")
        cp_ok(daemon, "docker", str(tmp_path / "usr"), f"{c}:/")
        daemon.ok("commit", c, f"{c}:img")
        out = daemon.ok(
            "run",
            "--rm",
            f"{c}:img",
            "sh",
            "-c",
            "stat -c '%u %a' /home/app; cat /home/app/f; ls /usr; "
            "ls /bin/true; test -e /bin/sh && echo sh-there",
        )
        assert out == "1000 750\nf\nonly\ninner\nsh-there\n", out
        daemon.ok("rmi", f"{c}:img")
    finally:
        daemon.berth("rm", "-f", c)


@pytest.mark.parametrize("tool", TOOLS)
def test_into_a_named_volume(daemon: Daemon, tmp_path: Path, tool: str) -> None:
    vol, c = name("cpvol"), name("cp-vol")
    daemon.ok("volume", "create", vol)
    daemon.ok("create", "--name", c, "-v", f"{vol}:/data", "busybox", "true")
    try:
        (tmp_path / "f").write_text("in-volume\n")
        cp_ok(daemon, tool, str(tmp_path / "f"), f"{c}:/data/f")  # stopped
        out = daemon.ok("run", "--rm", "-v", f"{vol}:/v", "busybox", "cat", "/v/f")
        assert out == "in-volume\n"
        cp_ok(daemon, tool, f"{c}:/data/f", str(tmp_path / "back"))
        assert (tmp_path / "back").read_text() == "in-volume\n"
        # and through a running container
        r = name("cp-volrun")
        daemon.ok("run", "-d", "--name", r, "-v", f"{vol}:/data", "busybox", "sleep", "300")
        try:
            cp_ok(daemon, tool, str(tmp_path / "f"), f"{r}:/data/g")
        finally:
            daemon.berth("rm", "-f", r)
        assert (
            daemon.ok("run", "--rm", "-v", f"{vol}:/v", "busybox", "cat", "/v/g") == "in-volume\n"
        )
    finally:
        daemon.berth("rm", "-f", c)
        daemon.berth("volume", "rm", vol)


@pytest.mark.parametrize("tool", TOOLS)
def test_archive_mode_and_follow_link(daemon: Daemon, tmp_path: Path, tool: str) -> None:
    c = name("cp-a")
    daemon.ok("run", "-d", "--name", c, "busybox", "sleep", "300")
    try:
        f = tmp_path / "owned"
        f.write_text("x")
        os.chown(f, 1234, 5678)
        cp_ok(daemon, tool, str(f), f"{c}:/tmp/plain")
        cp_ok(daemon, tool, "-a", str(f), f"{c}:/tmp/kept")
        assert daemon.ok("exec", c, "stat", "-c", "%u:%g", "/tmp/plain").strip() == "0:0"
        assert daemon.ok("exec", c, "stat", "-c", "%u:%g", "/tmp/kept").strip() == "1234:5678"
        # -L: a symlink in the container is copied as its target's content
        daemon.ok("exec", c, "ln", "-s", "/etc/passwd", "/tmp/link")
        cp_ok(daemon, tool, f"{c}:/tmp/link", str(tmp_path / "nolink"))
        assert os.readlink(tmp_path / "nolink") == "/etc/passwd"
        cp_ok(daemon, tool, "-L", f"{c}:/tmp/link", str(tmp_path / "followed"))
        assert (tmp_path / "followed").read_text().startswith("root:x:0:0")
        # -L on the local side
        os.symlink(f, tmp_path / "locallink")
        cp_ok(daemon, tool, "-L", str(tmp_path / "locallink"), f"{c}:/tmp/fromlink")
        assert daemon.ok("exec", c, "cat", "/tmp/fromlink") == "x"
        cp_ok(daemon, tool, "-q", str(tmp_path / "locallink"), f"{c}:/tmp/aslink")
        assert daemon.ok("exec", c, "readlink", "/tmp/aslink").strip() == str(f)
        # a destination that is a symlink to a directory: into that directory
        daemon.ok("exec", c, "sh", "-c", "mkdir /tmp/realdir && ln -s realdir /tmp/dirlink")
        cp_ok(daemon, tool, str(f), f"{c}:/tmp/dirlink")
        assert daemon.ok("exec", c, "cat", "/tmp/realdir/owned") == "x"
        assert daemon.ok("exec", c, "readlink", "/tmp/dirlink").strip() == "realdir"
    finally:
        daemon.berth("rm", "-f", c)


@pytest.mark.parametrize("tool", TOOLS)
def test_tar_on_stdout_and_stdin(daemon: Daemon, tool: str) -> None:
    c = name("cp-dash")
    daemon.ok("run", "-d", "--name", c, "busybox", "sleep", "300")
    try:
        if tool == "docker":
            r = docker(daemon, "cp", f"{c}:/etc", "-", input=b"")
        else:
            r = daemon.berth("cp", f"{c}:/etc", "-", input=b"")
        assert r.returncode == 0, r.stderr
        with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tf:  # type: ignore[arg-type]
            names = tf.getnames()
        assert "etc" in names and "etc/passwd" in names
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            ti = tarfile.TarInfo("from-stdin/file")
            ti.size = 3
            tf.addfile(ti, io.BytesIO(b"abc"))
        r = cp(daemon, tool, "-", f"{c}:/tmp", input=buf.getvalue())
        assert r.returncode == 0, r.stderr
        assert daemon.ok("exec", c, "cat", "/tmp/from-stdin/file") == "abc"
    finally:
        daemon.berth("rm", "-f", c)


@pytest.mark.parametrize("tool", TOOLS)
def test_errors(daemon: Daemon, tmp_path: Path, tool: str) -> None:
    c, ro = name("cp-err"), name("cp-ro")
    daemon.ok("run", "-d", "--name", c, "busybox", "sleep", "300")
    daemon.ok("run", "-d", "--name", ro, "--read-only", "-v", "/scratch", "busybox", "sleep", "300")
    try:
        r = cp(daemon, tool, f"{c}:/nope", str(tmp_path))
        assert r.returncode == 1
        assert f"Could not find the file /nope in container {c}" in r.stderr, r.stderr
        r = cp(daemon, tool, f"missing-{c}:/etc", str(tmp_path))
        assert r.returncode == 1 and "No such container" in r.stderr, r.stderr
        (tmp_path / "f").write_text("x")
        r = cp(daemon, tool, str(tmp_path / "f"), f"{ro}:/tmp/")
        assert r.returncode == 1
        assert "container rootfs is marked read-only" in r.stderr, r.stderr
        cp_ok(daemon, tool, str(tmp_path / "f"), f"{ro}:/scratch/")  # a volume is writable
        assert daemon.ok("exec", ro, "cat", "/scratch/f") == "x"
        r = cp(daemon, tool, str(tmp_path / "f"), f"{c}:/nodir/sub/")
        assert r.returncode == 1, r.stderr
        # a directory onto a file
        (tmp_path / "d").mkdir()
        r = cp(daemon, tool, str(tmp_path / "d"), f"{c}:/etc/passwd")
        assert r.returncode == 1, r.stderr
    finally:
        daemon.berth("rm", "-f", c, ro)


def test_docker_py_archive(daemon: Daemon) -> None:
    import docker as dockerpy

    c = name("cp-py")
    daemon.ok("run", "-d", "--name", c, "busybox", "sleep", "300")
    client = dockerpy.DockerClient(base_url=daemon.host)
    try:
        ctr = client.containers.get(c)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            ti = tarfile.TarInfo("py.txt")
            ti.size, ti.mode, ti.uid = 2, 0o640, 42
            tf.addfile(ti, io.BytesIO(b"py"))
        assert ctr.put_archive("/tmp", buf.getvalue()) is True
        assert ok(daemon, "exec", c, "stat", "-c", "%a %u", "/tmp/py.txt").strip() == "640 0"
        bits, st = ctr.get_archive("/tmp/py.txt")
        assert st["name"] == "py.txt" and st["size"] == 2 and st["mode"] == 0o640
        with tarfile.open(fileobj=io.BytesIO(b"".join(bits))) as tf:
            f = tf.extractfile("py.txt")
            assert f is not None and f.read() == b"py"
        _, st = ctr.get_archive("/etc")
        assert st["mode"] & (1 << 31) and st["name"] == "etc"
        daemon.ok("exec", c, "ln", "-s", "../etc/passwd", "/tmp/rel")
        st = client.api.get_archive(c, "/tmp/rel")[1]
        assert st["mode"] & (1 << 27) and st["linkTarget"] == "/etc/passwd"
        with pytest.raises(dockerpy.errors.NotFound):
            ctr.get_archive("/nope")
        with pytest.raises(dockerpy.errors.NotFound):
            ctr.put_archive("/nope", buf.getvalue())
        # stat of a path: HEAD
        st = client.api.inspect_container(c)  # the container exists
        assert st["Name"] == "/" + c
        raw = client.api.head(
            client.api._url("/containers/{0}/archive", c), params={"path": "/etc/passwd"}
        )
        assert raw.status_code == 200
        head = json.loads(base64.b64decode(raw.headers["X-Docker-Container-Path-Stat"]))
        assert head["name"] == "passwd" and head["mode"] == 0o644
    finally:
        client.close()
        daemon.berth("rm", "-f", c)
