"""Layers and archives: an image's layers are hostile. Names with `..` or absolute names, writes
through symlinks, hard links to host files, device nodes, setuid files and huge sparse files are
refused or contained; the test looks afterwards at the host paths they aimed at."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from tests.integration.conftest import Daemon

from .hostile_images import load_with_layer, tar_info, tar_of

pytestmark = pytest.mark.root


def test_dotdot_and_absolute_names(daemon: Daemon, tmp_path: Path, host_dir: Path) -> None:
    up = "../" * 12
    r = load_with_layer(
        daemon,
        tmp_path,
        tar_of((tar_info(f"{up}{str(host_dir).lstrip('/')}/dotdot"), b"x")),
        "hostile:dotdot",
    )
    assert r.returncode != 0 and ".." in r.stderr, r.stderr
    r = load_with_layer(
        daemon, tmp_path, tar_of((tar_info(f"{host_dir}/abs"), b"contained")), "hostile:abs"
    )
    assert r.returncode == 0, r.stderr
    # the absolute name landed inside the image, not on the host
    assert daemon.ok("run", "--rm", "hostile:abs", "cat", f"{host_dir}/abs") == "contained"
    daemon.ok("rmi", "hostile:abs")


def test_writes_through_symlinks(daemon: Daemon, tmp_path: Path, host_dir: Path) -> None:
    # in one layer: a symlink out, then a file through it
    r = load_with_layer(
        daemon,
        tmp_path,
        tar_of(
            (tar_info("evil", tarfile.SYMTYPE, str(host_dir)), None), (tar_info("evil/pwned"), b"x")
        ),
        "hostile:link1",
    )
    assert r.returncode != 0
    # across layers: the lower layer's symlink is only ever a symlink in the merged tree
    first = tar_of((tar_info("evil", tarfile.SYMTYPE, str(host_dir)), None))
    r = load_with_layer(daemon, tmp_path, first, "hostile:link2")
    assert r.returncode == 0, r.stderr
    out = daemon.berth("run", "--rm", "hostile:link2", "sh", "-c", "echo x > /evil/pwned; ls /evil")
    assert "pwned" not in out.stdout  # the link leads to a path inside the container
    # a volume mounted below a symlink is mounted inside the rootfs
    r = daemon.berth(
        "run",
        "--rm",
        "-v",
        f"{tmp_path / 'vol'}:/evil/sub",
        "hostile:link2",
        "sh",
        "-c",
        "echo y > /evil/sub/f",
    )
    assert (tmp_path / "vol" / "f").read_text() == "y\n" if r.returncode == 0 else True
    daemon.ok("rmi", "hostile:link2")


def test_hard_link_to_a_host_file(daemon: Daemon, tmp_path: Path, host_dir: Path) -> None:
    before = (os.stat("/etc/passwd").st_nlink, Path("/etc/passwd").read_bytes())
    r = load_with_layer(
        daemon,
        tmp_path,
        tar_of((tar_info("hl", tarfile.LNKTYPE, "/etc/passwd"), None)),
        "hostile:hardlink",
    )
    assert r.returncode != 0 and "hard link" in r.stderr, r.stderr
    r = load_with_layer(
        daemon,
        tmp_path,
        tar_of((tar_info("hl2", tarfile.LNKTYPE, f"{host_dir}/sentinel"), None)),
        "hostile:hl2",
    )
    assert r.returncode != 0
    assert (os.stat("/etc/passwd").st_nlink, Path("/etc/passwd").read_bytes()) == before


def test_device_nodes_and_setuid_are_contained(daemon: Daemon, tmp_path: Path) -> None:
    mem = tar_info("evil-mem", tarfile.CHRTYPE, mode=0o666)
    mem.devmajor, mem.devminor = 1, 1  # /dev/mem
    disk = tar_info("evil-disk", tarfile.BLKTYPE, mode=0o666)
    disk.devmajor, disk.devminor = 8, 0
    suid = tar_info("suid-sh", mode=0o4755)
    r = load_with_layer(
        daemon,
        tmp_path,
        tar_of((mem, None), (disk, None), (suid, b"#!/bin/sh\nid\n")),
        "hostile:dev",
    )
    assert r.returncode == 0, r.stderr
    # the device cgroup allows only the default devices: the nodes cannot be opened
    out = daemon.berth(
        "run",
        "--rm",
        "hostile:dev",
        "sh",
        "-c",
        "head -c1 /evil-mem >/dev/null 2>&1; echo $?; "
        "head -c1 /evil-disk >/dev/null 2>&1; echo $?; stat -c %a /suid-sh",
    )
    assert out.stdout.split() == ["1", "1", "4755"], out.stdout + out.stderr
    # and with no-new-privileges nothing gains privileges through setuid
    out = daemon.ok(
        "run",
        "--rm",
        "--security-opt",
        "no-new-privileges",
        "-u",
        "app",
        "hostile:dev",
        "grep",
        "^NoNewPrivs",
        "/proc/self/status",
    )
    assert out.split() == ["NoNewPrivs:", "1"]
    daemon.ok("rmi", "hostile:dev")


def test_a_huge_sparse_file(daemon: Daemon, tmp_path: Path) -> None:
    size = 4 << 30
    big = tar_info("huge.img")
    big.pax_headers = {
        "GNU.sparse.map": "0,512",
        "GNU.sparse.size": str(size),
        "GNU.sparse.name": "huge.img",
    }
    r = load_with_layer(daemon, tmp_path, tar_of((big, b"\x01" * 512)), "hostile:sparse")
    assert r.returncode == 0, r.stderr
    assert (
        daemon.ok("run", "--rm", "hostile:sparse", "stat", "-c", "%s", "/huge.img") == f"{size}\n"
    )
    layer = next(p for p in (daemon.data_root / "storage" / "layers").glob("*/diff/huge.img"))
    assert layer.stat().st_blocks * 512 <= (1 << 20)  # holes, not 4 GiB of zeros on disk
    daemon.ok("rmi", "hostile:sparse")


def _load(d: Daemon, tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "hostile-archive.tar"
    path.write_bytes(data)
    r = d.berth("load", "-i", str(path))
    assert r.returncode != 0, r.stdout
    return r.stderr


@pytest.mark.parametrize(
    "manifest",
    [
        b'{"a": 1}',
        b'["x"]',
        b'[{"Config": 5}]',
        b'[{"Config": "c.json", "Layers": [1]}]',
        b'[{"Config": "c.json", "RepoTags": "x:1"}]',
    ],
)
def test_an_archive_s_malformed_manifest_is_refused(
    daemon: Daemon, tmp_path: Path, manifest: bytes
) -> None:
    data = tar_of((tar_info("manifest.json"), manifest), (tar_info("c.json"), b"{}"))
    assert "invalid archive: malformed manifest.json" in _load(daemon, tmp_path, data)


def test_an_archive_is_not_trusted_with_memory(daemon: Daemon, tmp_path: Path) -> None:
    """A config (or manifest.json) is read whole only under a bound; a name that is a file and
    a directory both is an error, not a crash."""
    big = b'{"pad": "' + b" " * (8 << 20) + b'"}'
    data = tar_of(
        (tar_info("manifest.json"), b'[{"Config": "c.json", "Layers": []}]'),
        (tar_info("c.json"), big),
    )
    assert "the image config is over 8388608 bytes" in _load(daemon, tmp_path, data)
    data = tar_of((tar_info("manifest.json"), b" " * (8 << 20) + b"[]"))
    assert "the manifest.json is over 8388608 bytes" in _load(daemon, tmp_path, data)
    data = tar_of((tar_info("a"), b"x"), (tar_info("a/b"), b"y"))
    assert "invalid archive: a/b" in _load(daemon, tmp_path, data)
    data = tar_of(
        (tar_info("manifest.json"), b'[{"Config": "c.json", "Layers": ["l.tar"]}]'),
        (tar_info("c.json"), b'{"rootfs": {"diff_ids": ["../../x"]}}'),
    )
    assert "invalid digest" in _load(daemon, tmp_path, data)
