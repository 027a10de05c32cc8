"""berth.fs.atomic_write: the one atomic write of the code base."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from berth.fs import atomic_write


@pytest.mark.parametrize("sync", [True, False])
def test_writes_whole_with_its_mode_whatever_the_umask(tmp_path: Path, sync: bool) -> None:
    old = os.umask(0o077)
    try:
        atomic_write(str(tmp_path / "a"), b"one", sync=sync)
        atomic_write(str(tmp_path / "b"), b"x" * (1 << 20), mode=0o644, sync=sync)
    finally:
        os.umask(old)
    assert (tmp_path / "a").read_bytes() == b"one"
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o600
    assert (tmp_path / "b").read_bytes() == b"x" * (1 << 20)
    assert stat.S_IMODE((tmp_path / "b").stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]  # no temp file left


def test_replaces_a_file_and_never_writes_through_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"host file")
    link = tmp_path / "state.json"
    link.symlink_to(target)
    atomic_write(str(link), b"new")
    assert not link.is_symlink() and link.read_bytes() == b"new"
    assert target.read_bytes() == b"host file"
    (tmp_path / "f").write_bytes(b"old")
    (tmp_path / "f").chmod(0o644)
    atomic_write(str(tmp_path / "f"), b"new")
    assert (tmp_path / "f").read_bytes() == b"new"
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o600


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    with pytest.raises(IsADirectoryError):
        atomic_write(str(tmp_path / "dir"), b"data")  # rename onto a directory fails
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir"]
    with pytest.raises(FileNotFoundError):
        atomic_write(str(tmp_path / "missing" / "f"), b"data")
