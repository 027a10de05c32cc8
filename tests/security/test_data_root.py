"""Local users and berth's data root and exec root: what a container plants in its writable
layer or in a volume (a setuid-root binary, a 0666 node of /dev/null or of the host's own
disk) is not usable from the host, and no container's environment can be read, by any local
user but root. Each probe runs as nobody (65534, no supplementary groups) in a child process.

The daemons here live in a directory of their own, open to all (0711) as /var/lib and /run
are: pytest's temporary directories are closed (0700) and would hide what is under test."""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import Daemon, running_daemon

pytestmark = pytest.mark.root
NOBODY = 65534


def _probe(ops: list[tuple[str, str]], secret: bytes) -> list:  # type: ignore[type-arg]
    """Each op's result: "ok" or the errno's name ("ok:SECRET" for a read that found it)."""
    out: list = []  # type: ignore[type-arg]
    for op, path in ops:
        try:
            if op == "exec":
                subprocess.run(
                    [path, "true"],
                    check=False,
                    timeout=10,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            elif op == "open":
                os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
            elif op == "read":
                with open(path, "rb") as f:
                    out.append("ok:SECRET" if secret in f.read() else "ok")
                continue
            elif op == "list":
                os.listdir(path)
            elif op == "stat":
                os.stat(path)
            elif op == "connect":
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(path)
            elif op == "walk":
                # every file under `path` that can be read, every directory that can be listed
                found = []
                for top, _dirs, files in os.walk(path):
                    found.append("list " + top)
                    for n in files:
                        fp = os.path.join(top, n)
                        try:
                            with open(fp, "rb") as f:
                                data = f.read(1 << 24)
                        except OSError:
                            continue
                        found.append(("SECRET " if secret in data else "read ") + fp)
                out.append(found)
                continue
            out.append("ok")
        except OSError as e:
            out.append(errno.errorcode.get(e.errno or 0, str(e.errno)))
    return out


def as_nobody(ops: list[tuple[str, str]], secret: str) -> list:  # type: ignore[type-arg]
    """`ops` tried by a forked child that is nobody (65534:65534, no other groups)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(r)
            os.setgroups([])
            os.setresgid(NOBODY, NOBODY, NOBODY)
            os.setresuid(NOBODY, NOBODY, NOBODY)
            os.chdir("/")
            data = json.dumps(_probe(ops, secret.encode())).encode()
            while data:
                data = data[os.write(w, data) :]
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the probe failed"
    return json.loads(out)  # type: ignore[no-any-return]


def open_base() -> Path:
    base = Path(tempfile.mkdtemp(prefix="berth-dataroot-"))
    base.chmod(0o711)
    return base


@dataclass
class Planted:
    d: Daemon
    cid: str
    pid: int
    secret: str
    volume: Path  # the volume's _data, as root sees it
    upper: Path  # the container's writable layer
    disk: bool  # whether the container could make a node of the host's disk


@pytest.fixture(scope="module", params=["overlay2", "vfs"])
def planted(request: pytest.FixtureRequest, rootfs_tar: Path) -> Iterator[Planted]:
    base = open_base()
    try:
        with running_daemon(base / "d", rootfs_tar, "--storage-driver", request.param) as d:
            secret = "s3cr3t-" + secrets.token_hex(8)
            st = os.stat(d.data_root)
            major, minor = os.major(st.st_dev), os.minor(st.st_dev)
            plant = (
                "for dir in / /vol/; do cp /bin/busybox ${dir}suid && chmod 4755 ${dir}suid"
                " && mknod -m 666 ${dir}null666 c 1 3 || exit 1; "
                + (f"mknod -m 666 ${{dir}}disk b {major} {minor}; " if major else "")
                + "done; touch /ready; exec sleep 600"
            )
            cid = d.ok(
                "run",
                "-d",
                "--name",
                "planter",
                "-e",
                f"BERTH_SECRET={secret}",
                "-v",
                "plantvol:/vol",
                "busybox",
                "sh",
                "-c",
                plant,
            ).strip()
            deadline = time.time() + 20
            while d.berth("exec", cid, "test", "-e", "/ready").returncode != 0:
                assert time.time() < deadline, d.ok("logs", cid)
                time.sleep(0.1)
            doc = d.inspect(cid)
            disk = d.berth("exec", cid, "test", "-b", "/disk").returncode == 0
            vol = next(m for m in doc["Mounts"] if m["Type"] == "volume")
            d.ok("info")  # the engine id is made on first use
            yield Planted(
                d=d,
                cid=cid,
                pid=doc["State"]["Pid"],
                secret=secret,
                volume=Path(vol["Source"]),
                upper=Path(doc["GraphDriver"]["Data"]["UpperDir"]),
                disk=disk,
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_planted_setuid_and_devices_are_out_of_reach(planted: Planted) -> None:
    p = planted
    # the plants are there, as root sees them: the probes below fail for want of access only
    suid = p.upper / "suid"
    assert suid.stat().st_mode & stat.S_ISUID and suid.stat().st_uid == 0
    assert stat.S_ISCHR((p.upper / "null666").lstat().st_mode)
    assert (p.volume / "suid").stat().st_mode & stat.S_ISUID
    merged = f"/proc/{p.pid}/root"
    ops = [
        ("exec", str(suid)),
        ("open", str(p.upper / "null666")),
        ("exec", str(p.volume / "suid")),
        ("open", str(p.volume / "null666")),
        ("exec", f"{merged}/suid"),
        ("open", f"{merged}/null666"),
        ("stat", str(p.upper)),
        ("stat", str(p.volume)),
    ]
    if p.disk:
        ops += [("open", str(p.upper / "disk")), ("open", str(p.volume / "disk"))]
    got = as_nobody(ops, p.secret)
    assert all(r in ("EACCES", "ENOENT") for r in got), list(zip(ops, got, strict=True))


def test_no_environment_blob_or_layer_is_readable(planted: Planted) -> None:
    p = planted
    d = p.d
    bundle_cfg = d.exec_root / "containers" / p.cid / "bundle" / "config.json"
    db = d.data_root / "berth.db"
    # the secret is where the probes look for it (as root)
    assert p.secret in bundle_cfg.read_text()
    assert any(p.secret.encode() in f.read_bytes() for f in (db, Path(f"{db}-wal")) if f.exists())
    blob = next((d.data_root / "content" / "blobs" / "sha256").iterdir())
    layer_file = next((d.data_root / "storage" / "layers").glob("*/diff/etc/passwd"))
    ops = [
        ("read", str(bundle_cfg)),
        ("read", str(db)),
        ("read", f"{db}-wal"),
        ("read", str(blob)),
        ("read", str(layer_file)),
        ("list", str(d.data_root / "containers")),
        ("list", str(d.exec_root / "containers")),
        ("list", str(d.data_root)),
        ("list", str(d.exec_root)),
        ("read", str(d.data_root / "engine-id")),
        ("read", str(d.data_root / "containers" / p.cid / f"{p.cid}-json.log")),
    ]
    got = as_nobody(ops, p.secret)
    assert all(r in ("EACCES", "ENOENT") for r in got), list(zip(ops, got, strict=True))
    # nothing at all under either root: no file read, no directory listed
    assert as_nobody([("walk", str(d.data_root)), ("walk", str(d.exec_root))], p.secret) == [[], []]
    # the socket: reached (the exec root is walked), but 0660 root:root keeps nobody out
    assert as_nobody([("stat", str(d.sock)), ("connect", str(d.sock))], p.secret) == [
        "ok",
        "EACCES",
    ]


def mode(path: Path) -> tuple[int, int, int]:
    st = os.lstat(path)
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def test_modes(planted: Planted) -> None:
    p = planted
    d = p.d
    assert mode(d.data_root) == (0o700, 0, 0)
    assert mode(d.exec_root) == (0o711, 0, 0)
    for name in ("containers", "volumes", "content", "storage", "build"):
        assert mode(d.data_root / name) == (0o700, 0, 0), name
    for name in ("containers", "networks"):
        assert mode(d.exec_root / name) == (0o700, 0, 0), name
    files = [
        d.data_root / "berth.db",
        d.data_root / "engine-id",
        d.exec_root / "containers" / p.cid / "bundle" / "config.json",
        d.exec_root / "containers" / p.cid / "state" / "pid",
        next((d.data_root / "content" / "blobs" / "sha256").iterdir()),
        next((d.data_root / "storage" / "layers").glob("*/meta.json")),
    ]
    wal = d.data_root / "berth.db-wal"
    files += [wal] if wal.exists() else []
    for f in files:
        assert mode(f) == (0o600, 0, 0), f
    assert mode(d.sock)[0] == 0o660
    # what containers see keeps its modes: the rootfs's, the volume's, /etc/hosts's
    assert mode(p.upper)[0] == 0o755 and mode(p.volume)[0] == 0o755
    assert mode(Path(d.inspect(p.cid)["HostsPath"]))[0] == 0o644
    # and its users can use them
    assert (
        d.ok(
            "exec",
            "-u",
            "1000",
            p.cid,
            "sh",
            "-c",
            "cat /etc/hosts >/dev/null && ls /vol >/dev/null && ls / >/dev/null && echo ok",
        )
        == "ok\n"
    )


def test_an_old_data_root_is_closed_at_start(rootfs_tar: Path) -> None:
    base = open_base()
    try:
        with running_daemon(base / "d", rootfs_tar) as d:
            d.ok("run", "--name", "old", "-e", "X=1", "busybox", "true")
            d.stop()
            # as an older berth left them
            for p in (d.data_root, d.exec_root):
                p.chmod(0o755)
            for name in ("containers", "volumes", "content", "storage"):
                (d.data_root / name).chmod(0o755)
            (d.exec_root / "containers").chmod(0o755)
            (d.data_root / "berth.db").chmod(0o644)
            d.start()
            assert mode(d.data_root) == (0o700, 0, 0)
            assert mode(d.exec_root) == (0o711, 0, 0)
            for name in ("containers", "volumes", "content", "storage"):
                assert mode(d.data_root / name) == (0o700, 0, 0), name
            assert mode(d.exec_root / "containers") == (0o700, 0, 0)
            assert mode(d.data_root / "berth.db") == (0o600, 0, 0)
            d.ok("start", "old")
            assert d.ok("wait", "old") == "0\n"
    finally:
        shutil.rmtree(base, ignore_errors=True)


REMAP_UID, REMAP_BASE = "23457", 470000  # test_userns.py's are 23456 and 400000


@pytest.fixture
def remap_ids() -> Iterator[None]:
    """A subordinate range for REMAP_UID in /etc/subuid and /etc/subgid, for one test."""
    line = f"{REMAP_UID}:{REMAP_BASE}:65536\n"
    for path in ("/etc/subuid", "/etc/subgid"):
        with open(path, "a") as f:
            f.write(line)
    try:
        yield
    finally:
        for path in ("/etc/subuid", "/etc/subgid"):
            p = Path(path)
            p.write_text("".join(x for x in p.read_text().splitlines(keepends=True) if x != line))


def test_remapped_root_walks_in_and_nobody_else(remap_ids: None, rootfs_tar: Path) -> None:
    """--userns-remap: the container's root (REMAP_BASE outside) reaches its rootfs, files and
    volumes through directories of its group (0710); nobody else does."""
    base = open_base()
    try:
        with running_daemon(
            base / "d", rootfs_tar, "--userns-remap", f"{REMAP_UID}:{REMAP_UID}"
        ) as d:
            secret = "s3cr3t-" + secrets.token_hex(8)
            out = d.ok(
                "run",
                "--rm",
                "-e",
                f"S={secret}",
                "-v",
                "rvol:/vol",
                "busybox",
                "sh",
                "-c",
                "cat /etc/hosts >/dev/null && touch /vol/f && echo $S",
            )
            assert out == secret + "\n"
            data = d.data_root / f"{REMAP_BASE}.{REMAP_BASE}"
            g = REMAP_BASE
            assert mode(d.data_root) == (0o710, 0, g)
            assert mode(data) == (0o710, 0, g)
            for name in ("containers", "volumes", "build"):
                assert mode(data / name) == (0o710, 0, g), name
            for name in ("content", "storage"):
                assert mode(data / name) == (0o700, 0, 0), name
            assert mode(d.exec_root) == (0o711, 0, 0)
            assert mode(d.exec_root / "containers") == (0o710, 0, g)
            assert mode(data / "berth.db") == (0o600, 0, 0)
            assert as_nobody([("walk", str(d.data_root)), ("walk", str(d.exec_root))], secret) == [
                [],
                [],
            ]
            d.ok("volume", "rm", "rvol")
    finally:
        shutil.rmtree(base, ignore_errors=True)
