"""Volume copy-up: an image's files copied into a new volume must land in the volume only, never
be written through a symlink of the image onto the host (issue 13, item 1)."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Daemon

pytestmark = pytest.mark.root


@pytest.fixture
def host_dir() -> Iterator[Path]:
    """A directory of the host's that the image aims at; it must stay empty."""
    d = Path("/tmp") / f"berth-sec-copyup-{secrets.token_hex(6)}"
    d.mkdir(mode=0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _build(daemon: Daemon, tmp_path: Path, tag: str, dockerfile: str) -> str:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    r = daemon.berth("build", "-t", tag, str(ctx), timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_symlink_over_a_lower_directory_is_not_written_through(
    daemon: Daemon, tmp_path: Path, tag: str, host_dir: Path
) -> None:
    """The issue's PoC: a lower layer holds /data/link/POC, a higher one makes /data/link a
    symlink to a host directory; `run` with VOLUME /data must not make the host's POC."""
    _build(
        daemon,
        tmp_path,
        tag,
        f"""\
FROM busybox
RUN mkdir -p /data/link && echo pwned > /data/link/POC && echo kept > /data/keep
RUN rm -rf /data/link && ln -s {host_dir} /data/link
VOLUME /data
""",
    )
    out = daemon.ok("run", "--rm", tag, "sh", "-c", "readlink /data/link; cat /data/keep")
    assert out.split() == [str(host_dir), "kept"]  # the volume holds the image's view
    assert os.listdir(host_dir) == []


def test_symlink_to_the_host_at_the_volume_path(
    daemon: Daemon, tmp_path: Path, tag: str, host_dir: Path
) -> None:
    """The volume's own path is a symlink to a host directory: the copy-up and the mount both
    resolve it inside the image (where the image has that directory, its files are copied)."""
    _build(
        daemon,
        tmp_path,
        tag,
        f"""\
FROM busybox
RUN mkdir -p /data && echo pwned > /data/POC
RUN rm -rf /data && ln -s {host_dir} /data && mkdir -p {host_dir} && echo image > {host_dir}/f
VOLUME /data
""",
    )
    out = daemon.ok("run", "--rm", tag, "sh", "-c", "ls /data; echo new > /data/new")
    assert out.split() == ["f"]
    assert os.listdir(host_dir) == []


def test_build_run_after_volume_is_not_written_through(
    daemon: Daemon, tmp_path: Path, tag: str, host_dir: Path
) -> None:
    """The same image shape during a build: the RUN after VOLUME copies up too."""
    _build(
        daemon,
        tmp_path,
        tag,
        f"""\
FROM busybox
RUN mkdir -p /data/link && echo pwned > /data/link/POC
RUN rm -rf /data/link && ln -s {host_dir} /data/link
VOLUME /data
RUN test -L /data/link && ! test -e /data/link/POC
""",
    )
    assert os.listdir(host_dir) == []
