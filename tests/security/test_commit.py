"""`commit` of a running container (`--pause=false`) and RUN layers read a container's upper
directory while its processes may be changing it: here a directory swapped for a symlink to a
host directory holding files of the same names, from another process, as fast as it can. The
layer is read beneath the upper directory by fd (each entry opened from its parent's fd,
never through a path string), so nothing of the host lands in it. No root needed."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth import storage

SWAPPER = """
import os, sys
u, h = sys.argv[1], sys.argv[2]
while True:
    os.rename(u + '/d', u + '/dd'); os.symlink(h, u + '/d')
    os.unlink(u + '/d'); os.rename(u + '/dd', u + '/d')
"""


def test_a_layer_of_a_swapping_upper_dir_takes_nothing_of_the_host(tmp_path: Path) -> None:
    upper, host = tmp_path / "upper", tmp_path / "host"
    (upper / "d").mkdir(parents=True)
    host.mkdir()
    for name in ["secret", *[f"f{k:03}" for k in range(200)]]:
        (upper / "d" / name).write_text("inside")
        (host / name).write_text("HOST-SECRET")
    swapper = subprocess.Popen([sys.executable, "-c", SWAPPER, str(upper), str(host)])
    layers = hits = 0
    try:
        time.sleep(0.3)
        end = time.monotonic() + 4
        while time.monotonic() < end:
            out = io.BytesIO()
            try:
                storage.write_diff_tar(str(upper), [], out)
            except OSError:
                continue  # an entry gone while read: the layer fails, as it may
            layers += 1
            hits += b"HOST-SECRET" in out.getvalue()
    finally:
        swapper.kill()
        swapper.wait()
    assert layers > 0
    assert hits == 0, f"{hits} of {layers} layers hold the host's files"
    assert all((host / n).read_text() == "HOST-SECRET" for n in ("secret", "f000"))


def test_the_swap_between_listing_and_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same race made certain: the directory turns into a symlink to the host right after
    it was listed and before its files are read."""
    upper, host = tmp_path / "upper", tmp_path / "host"
    (upper / "d").mkdir(parents=True)
    host.mkdir()
    (upper / "d" / "secret").write_text("inside")
    (host / "secret").write_text("HOST-SECRET")

    def listed_then_swapped(
        up: str, lowers: list[str], exclude: object = None
    ) -> Iterator[tuple[str, str, str]]:
        yield "A", "d", os.path.join(up, "d")
        os.rename(upper / "d", upper / "dd")
        os.symlink(host, upper / "d")
        yield "A", "d/secret", os.path.join(up, "d", "secret")

    monkeypatch.setattr(storage, "upper_changes", listed_then_swapped)
    out = io.BytesIO()
    storage.write_diff_tar(str(upper), [], out)
    assert b"HOST-SECRET" not in out.getvalue()
