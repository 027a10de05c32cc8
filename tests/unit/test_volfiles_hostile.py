"""The volume file browser against what a container can leave in its volume: device nodes
(mknod is in Docker's default capabilities, and the daemon is outside the container's device
cgroup), FIFOs, a mount propagated into the volume, huge files. Each is aimed at the daemon
(an open of a device has effects of its own: a watchdog arms, a tape rewinds) or the host."""

from __future__ import annotations

import ctypes
import os
import stat
from pathlib import Path

import pytest

from berth import linux
from berth.errors import InvalidArgument
from berth.ui import volfiles

IN_OPEN = 0x20
ROOT = os.geteuid() == 0


class OpenWatch:
    """inotify's IN_OPEN on one file: whether anything opened it (an O_PATH open is none)."""

    def __init__(self, path: Path) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0
        assert libc.inotify_add_watch(self.fd, str(path).encode(), IN_OPEN) >= 0

    def opened(self) -> bool:
        try:
            return bool(os.read(self.fd, 4096))
        except BlockingIOError:
            return False

    def close(self) -> None:
        os.close(self.fd)


def _volume(tmp_path: Path) -> Path:
    root = tmp_path / "vol"
    root.mkdir()
    (root / "ok.txt").write_text("fine")
    return root


@pytest.mark.skipif(not ROOT, reason="mknod needs root")
def test_a_device_node_is_never_opened(tmp_path: Path) -> None:
    root = _volume(tmp_path)
    # /dev/null's numbers: harmless if the defence failed, and its open is seen all the same
    dev = root / "watchdog"
    os.mknod(dev, stat.S_IFCHR | 0o600, os.makedev(1, 3))
    (root / "link").symlink_to("watchdog")
    watch = OpenWatch(dev)
    try:
        for path in ("/watchdog", "/link", "watchdog/"):
            with pytest.raises(InvalidArgument):
                volfiles.read_file(str(root), path)
        with pytest.raises(InvalidArgument):
            volfiles.list_dir(str(root), "/watchdog")
        assert not watch.opened(), "the daemon opened a device node of the volume"
        kinds = {e["name"]: e["type"] for e in volfiles.list_dir(str(root), "/")["entries"]}
        assert kinds["watchdog"] == "other" and kinds["link"] == "link"
        assert not watch.opened()
    finally:
        watch.close()


def test_a_fifo_neither_blocks_nor_is_opened(tmp_path: Path) -> None:
    root = _volume(tmp_path)
    fifo = root / "pipe"
    os.mkfifo(fifo)
    watch = OpenWatch(fifo)
    try:
        with pytest.raises(InvalidArgument):
            volfiles.read_file(str(root), "/pipe")
        assert not watch.opened()
    finally:
        watch.close()


def test_a_regular_file_is_read_bounded(tmp_path: Path) -> None:
    root = _volume(tmp_path)
    with open(root / "big", "wb") as f:
        f.truncate(1 << 40)  # a sparse terabyte
    data, size = volfiles.read_file(str(root), "/big")
    assert len(data) == volfiles.MAX_READ and size == 1 << 40
    assert volfiles.read_file(str(root), "ok.txt") == (b"fine", 4)


@pytest.mark.skipif(not ROOT, reason="mounting needs root")
def test_nothing_is_read_on_a_mount_inside_the_volume(tmp_path: Path) -> None:
    """A mount propagated into the volume (a host path bound there, a procfs) is not the
    volume's content: the daemon's own /proc/self/environ must not be shown."""
    root = _volume(tmp_path)
    host = tmp_path / "host"
    host.mkdir()
    (host / "secret").write_text("host secret")
    (root / "bound").mkdir()
    (root / "proc").mkdir()
    (root / "bound-link").symlink_to("/bound/secret")
    linux.mount(str(host), str(root / "bound"), "", linux.MS_BIND, "")
    try:
        linux.mount("proc", str(root / "proc"), "proc", 0, "")
        try:
            for path in ("/bound/secret", "/bound-link", "/proc/self/environ"):
                with pytest.raises(InvalidArgument, match="another mount"):
                    volfiles.read_file(str(root), path)
            with pytest.raises(InvalidArgument, match="another mount"):
                volfiles.list_dir(str(root), "/bound")
        finally:
            linux.umount(str(root / "proc"), linux.MNT_DETACH)
    finally:
        linux.umount(str(root / "bound"), linux.MNT_DETACH)
