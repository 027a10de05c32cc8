"""Campaign 2: a full disk and other faults. Each gives the client a clear error (what went
wrong, in words, not a traceback or a bare 500), and leaves the store consistent: the database
passes its integrity check, no blob, layer or ingest is half-made, every image runs, and the
daemon goes on working once the fault is gone.

- a data root on a small tmpfs that fills during a pull, during a build (its context, and a
  RUN step), and under a container's log flood;
- a data root made read-only under a running daemon, and one read-only at start;
- no `iptables` in berthd's PATH;
- a container's cgroup that cannot be made (its parent made read-only with a bind mount).

BERTH_CAMPAIGN_REPORT=FILE gets the count of faults tried."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.campaigns import inventory as inv
from tests.integration.conftest import Daemon, running_daemon
from tests.integration.registries import Registry, running

pytestmark = [pytest.mark.root, pytest.mark.registry]

TMPFS_MB = 48
FAULTS: list[str] = []  # what was tried, for the report


def mount_tmpfs(path: Path, size_mb: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs", str(path)], check=True
    )


def umount(path: Path) -> None:
    for _ in range(50):
        r = subprocess.run(["umount", str(path)], capture_output=True)
        if r.returncode == 0 or not os.path.ismount(path):
            return
        time.sleep(0.1)
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


def consistent(d: Daemon) -> None:
    assert inv.integrity(d) == "ok"
    problems = inv.store_problems(d)
    assert not problems, problems
    for image_id in set(d.ok("images", "-q", "--no-trunc").split()):
        r = d.berth("run", "--rm", image_id, "true")
        assert r.returncode == 0, f"image {image_id[:19]} does not run: {r.stderr}"


def clear_error(r: subprocess.CompletedProcess[str], *words: str) -> str:
    """The call failed with an error that says one of `words`, and no traceback."""
    text = r.stdout + r.stderr
    assert r.returncode != 0, text
    assert "Traceback" not in text and "Internal Server Error" not in text, text
    assert any(w.lower() in text.lower() for w in words), text
    return text


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with running(Registry(tmp_path_factory.mktemp("faults-registry"))) as r:
        yield r


@pytest.fixture
def small_daemon(tmp_path: Path, rootfs_tar: Path) -> Iterator[Daemon]:
    """A daemon whose data root is a TMPFS_MB tmpfs."""
    base = tmp_path / "small"
    mount_tmpfs(base / "data", TMPFS_MB)
    try:
        with running_daemon(base, rootfs_tar) as d:
            yield d
    finally:
        umount(base / "data")


def test_disk_fills_during_a_pull(
    small_daemon: Daemon, registry: Registry, tmp_path: Path, rootfs_tar: Path
) -> None:
    d = small_daemon
    ref = f"{registry.addr}/faults/huge:1"
    ctx = tmp_path / "huge"
    ctx.mkdir()
    # incompressible: its blob and its unpacked layer are each bigger than the tmpfs's room
    (ctx / "Dockerfile").write_text(
        f"FROM busybox\nRUN dd if=/dev/urandom of=/huge bs=1M count={TMPFS_MB}\n"
    )
    with running_daemon(tmp_path / "maker", rootfs_tar) as maker:
        maker.ok("build", "-q", "-t", ref, str(ctx))
        maker.ok("push", ref)
    FAULTS.append("disk full during a pull")
    r = d.berth("pull", ref, timeout=300)
    clear_error(r, "no space left on device")
    assert ref not in d.ok("images", "--format", "{{.Repository}}:{{.Tag}}")
    consistent(d)
    # the space a failed pull took is given back: a small one still fits, and runs
    assert d.ok("run", "--rm", "busybox", "echo", "ok") == "ok\n"


def test_disk_fills_during_a_build(small_daemon: Daemon, tmp_path: Path) -> None:
    d = small_daemon
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "big").write_bytes(os.urandom(TMPFS_MB * 1024 * 1024))
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY big /big\n")
    FAULTS.append("disk full during a build's context")
    r = d.berth("build", "-t", "faults/ctx", str(ctx), timeout=300)
    clear_error(r, "no space left on device")
    consistent(d)
    (ctx / "big").unlink()
    (ctx / "Dockerfile").write_text(
        f"FROM busybox\nRUN dd if=/dev/zero of=/fill bs=1M count={TMPFS_MB * 2}\n"
    )
    FAULTS.append("disk full during a build's RUN")
    r = d.berth("build", "-t", "faults/run", str(ctx), timeout=300)
    clear_error(r, "no space left on device")
    assert "faults/" not in d.ok("images", "--format", "{{.Repository}}")
    # the failed step's container is left for a look, as Docker's builder does: it holds
    # the space, and goes as a user would remove it
    left = d.ok("ps", "-aq").split()
    assert len(left) == 1
    d.ok("rm", *left)
    consistent(d)
    assert d.ok("run", "--rm", "busybox", "echo", "ok") == "ok\n"


def test_disk_fills_under_a_log_flood(small_daemon: Daemon) -> None:
    d = small_daemon
    FAULTS.append("disk full under a log flood")
    cid = d.ok(
        "run",
        "-d",
        "busybox",
        "sh",
        "-c",
        "while :; do echo 0123456789012345678901234567890123456789; done",
    ).strip()
    data = d.data_root
    deadline = time.monotonic() + 120
    while shutil.disk_usage(data).free > 256 * 1024 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert shutil.disk_usage(data).free <= 256 * 1024, "the flood did not fill the disk"
    time.sleep(1)
    # the daemon answers, its API works, and a create (whose record cannot be written)
    # fails in words
    assert d.inspect(cid)["State"]["Running"]
    r = d.berth("logs", "--tail", "2", cid)
    assert r.returncode == 0 and "0123456789" in r.stdout, r.stderr
    r = d.berth("create", "-v", "/x", "busybox", "true")
    if r.returncode != 0:
        clear_error(r, "no space left on device", "disk is full")
    d.ok("rm", "-f", cid)
    consistent(d)
    assert shutil.disk_usage(data).free > (TMPFS_MB // 2) * 1024 * 1024, (
        "the flood's log was not freed with its container"
    )
    assert d.ok("run", "--rm", "busybox", "echo", "ok") == "ok\n"


def test_data_root_made_read_only(private_daemon: Daemon) -> None:
    """The data root's directories made read-only under a running daemon (a read-only bind
    mount over it: what the daemon opens from then on is read-only, its open database is
    not): what must make files fails in words and leaves nothing half-made."""
    d = private_daemon
    subprocess.run(["mount", "--bind", str(d.data_root), str(d.data_root)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(d.data_root)], check=True)
        FAULTS.append("data root read-only under a running daemon")
        for args in (
            ("create", "--name", "ro-ctr", "busybox", "true"),
            ("volume", "create", "ro-vol"),
            ("run", "--rm", "busybox", "true"),
        ):
            r = d.berth(*args)
            clear_error(r, "read-only file system")
        assert d.ok("images", "-q")
    finally:
        umount(d.data_root)
    # once writable again, all works, and nothing half-made is left
    consistent(d)
    assert d.ok("ps", "-aq") == ""
    assert d.ok("volume", "ls", "-q") == ""
    assert d.ok("run", "--rm", "busybox", "echo", "ok") == "ok\n"


def test_read_only_data_root_at_start(private_daemon: Daemon) -> None:
    d = private_daemon
    d.stop()
    subprocess.run(["mount", "--bind", str(d.data_root), str(d.data_root)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(d.data_root)], check=True)
        FAULTS.append("data root read-only at start")
        with pytest.raises(RuntimeError) as refused:
            d.start()
        log = str(refused.value)
        assert "read-only file system" in log.lower(), log
        assert "Traceback" not in log, log
    finally:
        umount(d.data_root)
    d.start()
    consistent(d)


def test_no_iptables_in_path(tmp_path: Path, rootfs_tar: Path) -> None:
    """berthd with no iptables to run refuses to start and says what to do; with
    --iptables=false it starts."""
    path = ":".join(
        p
        for p in os.environ["PATH"].split(":")
        if p and not os.path.exists(os.path.join(p, "iptables"))
    )
    assert shutil.which("iptables", path=path) is None
    d = Daemon(tmp_path / "noipt")
    d.env = {**d.env, "PATH": path}
    saved = os.environ["PATH"]
    os.environ["PATH"] = path  # berthd inherits the test's environment
    FAULTS.append("no iptables")
    try:
        with pytest.raises(RuntimeError) as refused:
            d.start()
        log = str(refused.value)
        assert "iptables is not installed" in log and "--iptables=false" in log, log
        assert "Traceback" not in log, log
        assert not inv.rules(d)
        d.start("--iptables=false")
        d.ok("import", str(rootfs_tar), "busybox")
        assert d.ok("run", "--rm", "busybox", "echo", "ok") == "ok\n"
    finally:
        os.environ["PATH"] = saved
        d.cleanup()


def test_cgroup_that_cannot_be_made(private_daemon: Daemon) -> None:
    d = private_daemon
    parent = Path("/sys/fs/cgroup/memory") / d.cgroup_parent
    if not Path("/sys/fs/cgroup/memory").is_dir():
        parent = Path("/sys/fs/cgroup") / d.cgroup_parent
    parent.mkdir(exist_ok=True)
    subprocess.run(["mount", "--bind", str(parent), str(parent)], check=True)
    FAULTS.append("a cgroup that cannot be made")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(parent)], check=True)
        r = d.berth("run", "--name", "no-cgroup", "busybox", "true")
        clear_error(r, "cgroup")
        status = d.inspect("no-cgroup")["State"]
        assert not status["Running"], status
        assert inv.orphans(d) == {
            "cgroups": 0,
            "processes": 0,
            "veths": 0,
            "iptables": 0,
            "mounts": 0,
        }
    finally:
        umount(parent)
    d.ok("rm", "-f", "no-cgroup")
    assert d.ok("run", "--rm", "busybox", "echo", "ok") == "ok\n"
    consistent(d)


def test_report() -> None:
    """The figures (last: the tests above have run)."""
    inv.report("faults", {"tried": len(FAULTS), "faults": FAULTS})
