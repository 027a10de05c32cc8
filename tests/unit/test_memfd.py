"""The sealed in-memory copy berthd starts the fork server from (berth.memfd, a leaf)."""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

import pytest

from berth import memfd


def test_a_sealed_copy_has_the_file_s_bytes_and_refuses_every_change(tmp_path: Path) -> None:
    src = tmp_path / "exe"
    src.write_bytes(b"\x7fELF" + os.urandom(3 << 20))  # more than one read's worth
    fd = memfd.sealed_copy(str(src))
    try:
        assert os.pread(fd, src.stat().st_size + 1, 0) == src.read_bytes()
        assert fcntl.fcntl(fd, memfd.F_GET_SEALS) & memfd.SEALS == memfd.SEALS
        assert os.get_inheritable(fd)  # to exec through /proc/self/fd
        w = os.open(f"/proc/self/fd/{fd}", os.O_RDWR)
        try:
            with pytest.raises(PermissionError):
                os.pwrite(w, b"x", 0)
            with pytest.raises(PermissionError):
                os.ftruncate(w, 0)
        finally:
            os.close(w)
    finally:
        os.close(fd)


def test_a_missing_file_leaves_no_descriptor_behind(tmp_path: Path) -> None:
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(OSError) as e:
        memfd.sealed_copy(str(tmp_path / "missing"))
    assert e.value.errno == errno.ENOENT
    assert len(os.listdir("/proc/self/fd")) == before
