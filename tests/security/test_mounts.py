"""The runtime's mounts: a container that shares a volume with another one turns a mount
point's parent into a symlink to the host while the other container starts (as runc's
CVE-2021-30465). The runtime mounts onto its destination resolved inside the rootfs by fd, so
nothing is made on the host and no host path is mounted into the container."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import BIN, Daemon

pytestmark = pytest.mark.root

SWAPPER = "cd /vol; while true; do rm -rf x; mkdir x; rm -rf x; ln -s {host} x; done"


@pytest.fixture
def host_dir() -> Iterator[Path]:
    d = Path("/tmp") / f"berth-sec-mounts-{secrets.token_hex(6)}"
    d.mkdir()
    (d / "marker").write_text("host")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def swapper(daemon: Daemon, host_dir: Path) -> Iterator[str]:
    vol = f"shv-{secrets.token_hex(4)}"
    cid = daemon.ok(
        "run", "-d", "-v", f"{vol}:/vol", "busybox", "sh", "-c", SWAPPER.format(host=host_dir)
    ).strip()
    try:
        yield vol
    finally:
        daemon.berth("rm", "-f", cid)
        daemon.berth("volume", "rm", "-f", vol)


def _race(daemon: Daemon, args: list[str], host_dir: Path, runs: int = 100) -> list[str]:
    """Start up to `runs` containers (25 s at most) whose mounts lie under the swapped name,
    until one leaves something in `host_dir`; what each printed."""
    out = []
    deadline = time.time() + 25
    for _ in range(runs):
        if time.time() > deadline or len(list(host_dir.iterdir())) > 1:
            break
        r = subprocess.run(
            [str(BIN / "berth"), *args], env=daemon.env, capture_output=True, text=True, timeout=30
        )
        out.append(r.stdout)
    return out


def test_a_tmpfs_under_a_swapped_name_stays_in_the_rootfs(
    daemon: Daemon, host_dir: Path, swapper: str
) -> None:
    _race(
        daemon,
        ["run", "--rm", "-v", f"{swapper}:/vol", "--tmpfs", "/vol/x/y", "busybox", "true"],
        host_dir,
    )
    assert sorted(p.name for p in host_dir.iterdir()) == ["marker"]


def test_a_bind_under_a_swapped_name_stays_in_the_rootfs(
    daemon: Daemon, host_dir: Path, swapper: str, tmp_path: Path
) -> None:
    src = tmp_path / "file"
    src.write_text("bound")
    seen = _race(
        daemon,
        [
            "run",
            "--rm",
            "-v",
            f"{swapper}:/vol",
            "-v",
            f"{src}:/vol/x/f",
            "busybox",
            "sh",
            "-c",
            "cat /vol/x/marker 2>/dev/null; true",
        ],
        host_dir,
    )
    assert sorted(p.name for p in host_dir.iterdir()) == ["marker"]
    assert not any("host" in s for s in seen)
