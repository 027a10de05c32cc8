"""Hostile images and archives, and the known escapes: each is refused or contained, and the
test looks at the host paths they aim at afterwards."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Daemon

pytestmark = pytest.mark.root


def _tar(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for ti, data in members:
            if data is not None:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
            else:
                tf.addfile(ti)
    return buf.getvalue()


def _info(name: str, typ: bytes = tarfile.REGTYPE, link: str = "", mode: int = 0o644
          ) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname, ti.mode = typ, link, mode
    return ti


@pytest.fixture
def host_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory on the host that hostile images aim at; it must stay as it is."""
    d = tmp_path / "host-target"
    d.mkdir()
    (d / "sentinel").write_text("untouched")
    yield d
    assert sorted(p.name for p in d.iterdir()) == ["sentinel"], list(d.iterdir())
    assert (d / "sentinel").read_text() == "untouched"
    with open("/proc/self/mountinfo") as f:
        assert str(d) not in f.read(), "something was mounted on the host"


def _import(d: Daemon, tmp_path: Path, data: bytes, name: str,
            busybox_below: bool = True) -> subprocess.CompletedProcess[str]:
    """An image of busybox's layer with `data` as a second layer (a docker-archive, loaded)."""
    layers = []
    if busybox_below:
        info = d.inspect("busybox")
        base = (d.data_root / "content" / "blobs" / "sha256" /
                info["RootFS"]["Layers"][0].split(":")[1]).read_bytes()
        layers.append(base)
    layers.append(data)
    diff_ids = ["sha256:" + hashlib.sha256(x).hexdigest() for x in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    members = [(_info(f"l{i}.tar"), x) for i, x in enumerate(layers)]
    members.append((_info("config.json"), config))
    members.append((_info("manifest.json"), json.dumps([{
        "Config": "config.json", "RepoTags": [name],
        "Layers": [f"l{i}.tar" for i in range(len(layers))]}]).encode()))
    archive = tmp_path / f"{name.replace(':', '-').replace('/', '-')}.tar"
    archive.write_bytes(_tar(*members))
    return d.berth("load", "-i", str(archive))


def test_dotdot_and_absolute_names(daemon: Daemon, tmp_path: Path, host_dir: Path) -> None:
    up = "../" * 12
    r = _import(daemon, tmp_path, _tar((_info(f"{up}{str(host_dir).lstrip('/')}/dotdot"),
                                        b"x")), "hostile:dotdot")
    assert r.returncode != 0 and ".." in r.stderr, r.stderr
    r = _import(daemon, tmp_path, _tar((_info(f"{host_dir}/abs"), b"contained")),
                "hostile:abs")
    assert r.returncode == 0, r.stderr
    # the absolute name landed inside the image, not on the host
    assert daemon.ok("run", "--rm", "hostile:abs", "cat", f"{host_dir}/abs") == "contained"
    daemon.ok("rmi", "hostile:abs")


def test_writes_through_symlinks(daemon: Daemon, tmp_path: Path, host_dir: Path) -> None:
    # in one layer: a symlink out, then a file through it
    r = _import(daemon, tmp_path, _tar((_info("evil", tarfile.SYMTYPE, str(host_dir)), None),
                                       (_info("evil/pwned"), b"x")), "hostile:link1")
    assert r.returncode != 0
    # across layers: the lower layer's symlink is only ever a symlink in the merged tree
    first = _tar((_info("evil", tarfile.SYMTYPE, str(host_dir)), None))
    r = _import(daemon, tmp_path, first, "hostile:link2")
    assert r.returncode == 0, r.stderr
    out = daemon.berth("run", "--rm", "hostile:link2", "sh", "-c",
                       "echo x > /evil/pwned; ls /evil")
    assert "pwned" not in out.stdout   # the link leads to a path inside the container
    # a volume mounted below a symlink is mounted inside the rootfs
    r = daemon.berth("run", "--rm", "-v", f"{tmp_path / 'vol'}:/evil/sub", "hostile:link2",
                     "sh", "-c", "echo y > /evil/sub/f")
    assert (tmp_path / "vol" / "f").read_text() == "y\n" if r.returncode == 0 else True
    daemon.ok("rmi", "hostile:link2")


def test_hard_link_to_a_host_file(daemon: Daemon, tmp_path: Path, host_dir: Path) -> None:
    before = (os.stat("/etc/passwd").st_nlink, Path("/etc/passwd").read_bytes())
    r = _import(daemon, tmp_path, _tar((_info("hl", tarfile.LNKTYPE, "/etc/passwd"), None)),
                "hostile:hardlink")
    assert r.returncode != 0 and "hard link" in r.stderr, r.stderr
    r = _import(daemon, tmp_path, _tar((_info("hl2", tarfile.LNKTYPE,
                                              f"{host_dir}/sentinel"), None)), "hostile:hl2")
    assert r.returncode != 0
    assert (os.stat("/etc/passwd").st_nlink, Path("/etc/passwd").read_bytes()) == before


def test_device_nodes_and_setuid_are_contained(daemon: Daemon, tmp_path: Path) -> None:
    mem = _info("evil-mem", tarfile.CHRTYPE, mode=0o666)
    mem.devmajor, mem.devminor = 1, 1   # /dev/mem
    disk = _info("evil-disk", tarfile.BLKTYPE, mode=0o666)
    disk.devmajor, disk.devminor = 8, 0
    suid = _info("suid-sh", mode=0o4755)
    r = _import(daemon, tmp_path, _tar((mem, None), (disk, None), (suid, b"#!/bin/sh\nid\n")),
                "hostile:dev")
    assert r.returncode == 0, r.stderr
    # the device cgroup allows only the default devices: the nodes cannot be opened
    out = daemon.berth("run", "--rm", "hostile:dev", "sh", "-c",
                       "head -c1 /evil-mem >/dev/null 2>&1; echo $?; "
                       "head -c1 /evil-disk >/dev/null 2>&1; echo $?; stat -c %a /suid-sh")
    assert out.stdout.split() == ["1", "1", "4755"], out.stdout + out.stderr
    # and with no-new-privileges nothing gains privileges through setuid
    out = daemon.ok("run", "--rm", "--security-opt", "no-new-privileges", "-u", "app",
                    "hostile:dev", "grep", "^NoNewPrivs", "/proc/self/status")
    assert out.split() == ["NoNewPrivs:", "1"]
    daemon.ok("rmi", "hostile:dev")


def test_a_huge_sparse_file(daemon: Daemon, tmp_path: Path) -> None:
    size = 4 << 30
    big = _info("huge.img")
    big.pax_headers = {"GNU.sparse.map": "0,512", "GNU.sparse.size": str(size),
                       "GNU.sparse.name": "huge.img"}
    r = _import(daemon, tmp_path, _tar((big, b"\x01" * 512)), "hostile:sparse")
    assert r.returncode == 0, r.stderr
    assert daemon.ok("run", "--rm", "hostile:sparse", "stat", "-c", "%s", "/huge.img") == \
        f"{size}\n"
    layer = next(p for p in (daemon.data_root / "storage" / "layers").glob("*/diff/huge.img"))
    assert layer.stat().st_blocks * 512 <= (1 << 20)   # holes, not 4 GiB of zeros on disk
    daemon.ok("rmi", "hostile:sparse")


@pytest.mark.parametrize("target", ["proc", "dev", "sys"])
def test_symlinked_proc_dev_sys(daemon: Daemon, tmp_path: Path, host_dir: Path,
                                target: str) -> None:
    """An image whose /proc (/dev, /sys) is a symlink to a host path: as under Docker (its
    init layer), the container gets a real directory there; the host path gets nothing."""
    hostile = _tar((_info(target, tarfile.SYMTYPE, str(host_dir)), None))
    r = _import(daemon, tmp_path, hostile, f"hostile:{target}")
    assert r.returncode == 0, r.stderr
    r = daemon.berth("run", "--rm", f"hostile:{target}", "sh", "-c",
                     f"test -d /{target} && ! test -L /{target} && ls /{target}/ | wc -l")
    assert r.returncode == 0 and int(r.stdout) > 0, r.stderr   # the host_dir fixture checks
    daemon.ok("rmi", f"hostile:{target}")


def test_no_host_descriptor_or_directory_leaks(daemon: Daemon) -> None:
    """CVE-2024-21626: a working directory of /proc/self/fd/N must not reach the host."""
    out = daemon.ok("run", "--rm", "busybox", "sh", "-c", "ls /proc/self/fd | sort -n")
    assert out.split() == ["0", "1", "2", "3"]   # 3: the directory ls itself reads
    for n in range(3, 12):
        r = daemon.berth("run", "--rm", "-w", f"/proc/self/fd/{n}", "busybox", "sh", "-c",
                         "ls .. | head -3; readlink /proc/self/cwd")
        assert "/work" not in r.stdout and "/var/lib" not in r.stdout, (n, r.stdout)
        assert "berth" not in r.stdout, (n, r.stdout)


def test_the_runtime_binary_cannot_be_written(daemon: Daemon) -> None:
    """CVE-2019-5736: the processes that enter containers run from a sealed copy of the
    interpreter, so /proc/PID/exe of any of them cannot be opened for writing."""
    cid = daemon.ok("run", "-d", "busybox", "sleep", "30").strip()
    try:
        pids = [p for p in subprocess.run(["pgrep", "-f", "berth.runtime"], capture_output=True,
                                          text=True).stdout.split()]
        checked = 0
        for pid in pids:
            try:
                exe = os.readlink(f"/proc/{pid}/exe")
            except OSError:
                continue
            if daemon.exec_root.as_posix() not in Path(f"/proc/{pid}/cmdline").read_text(
                    errors="replace") and "memfd" not in exe:
                continue
            assert exe.startswith("/memfd:berth-runtime"), exe
            with pytest.raises(OSError):
                os.open(f"/proc/{pid}/exe", os.O_WRONLY)
            checked += 1
        assert checked >= 1
    finally:
        daemon.ok("rm", "-f", cid)
