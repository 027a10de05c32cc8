"""The default runtime's name as clients see it (issue 15): "runc", as on dockerd, whether or
not this host has a runc; a real runc is berthd's only where configured (--add-runtime)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from .conftest import Daemon, running_daemon

pytestmark = pytest.mark.root


def test_the_default_runtime_is_runc_to_clients(daemon: Daemon) -> None:
    info = json.loads(daemon.ok("info", "--format", "{{json .}}"))
    assert info["DefaultRuntime"] == "runc" and "runc" in info["Runtimes"]
    cid = daemon.ok("create", "busybox", "true").strip()
    named = daemon.ok("create", "--runtime", "runc", "busybox", "true").strip()
    try:
        assert daemon.inspect(cid)["HostConfig"]["Runtime"] == "runc"
        assert daemon.inspect(named)["HostConfig"]["Runtime"] == "runc"
    finally:
        daemon.berth("rm", cid, named)
    if os.environ.get("BERTH_TEST_RUNTIME") != "runc":
        # "runc" named berth's own: no real runc ran (it would keep its state there)
        daemon.ok("run", "--rm", "--runtime", "runc", "busybox", "true")
        assert not (daemon.exec_root / "runtimes" / "runc").exists()


def test_a_configured_runc_is_the_real_one(tmp_path: Path, rootfs_tar: Path) -> None:
    if not shutil.which("runc"):
        pytest.skip("runc is not installed")
    with running_daemon(
        tmp_path / "d", rootfs_tar, "--add-runtime", "runc=runc", "--default-runtime", "runc"
    ) as d:
        info = json.loads(d.ok("info", "--format", "{{json .}}"))
        assert info["DefaultRuntime"] == "runc"
        assert info["Runtimes"]["runc"]["path"] == shutil.which("runc")
        assert info["Runtimes"]["berth"]["path"] == "berth-runtime"
        assert d.ok("run", "--rm", "busybox", "echo", "hi").strip() == "hi"
        assert (d.exec_root / "runtimes" / "runc").is_dir()  # runc's --root
