"""A container's log on a full disk (issue 17's faults campaign): the json-file writer drops
what the disk refuses and goes on, so the output still reaches attached clients (the error
used to cut it off: a failed build lost its RUN step's own "No space left on device")."""

from __future__ import annotations

import os
from pathlib import Path

from berth.shim.stdio import LogWriter


def test_a_refused_write_is_dropped_not_raised() -> None:
    w = LogWriter("/dev/full")  # every write: ENOSPC
    w.feed("stdout", b"dd: error writing '/fill': No space left on device\n")
    w.feed("stderr", b"more\n")
    assert w.dropped == 2
    assert w.size == 0


def test_entries_written_before_the_disk_filled_stay(tmp_path: Path) -> None:
    path = str(tmp_path / "log.json")
    w = LogWriter(path)
    w.feed("stdout", b"one\n")
    size = w.size
    assert size == os.path.getsize(path) and w.dropped == 0
    os.close(w.fd)
    w.fd = os.open("/dev/full", os.O_WRONLY)  # the disk is full from here on
    w.feed("stdout", b"two\n")
    assert w.dropped == 1 and w.size == size
    os.close(w.fd)
    assert Path(path).read_text().count("\n") == 1
