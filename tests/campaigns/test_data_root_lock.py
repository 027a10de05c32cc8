"""One berthd per data root (issue 17): a second daemon given the data root of a running one is
refused before it touches anything (its start-up cleans ingests and layers, opens the database
and restores containers: all of them the first one's), and the lock goes with its holder, so a
daemon killed with SIGKILL leaves nothing that refuses the next start."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from berth.daemon.roots import LOCK_NAME
from tests.integration.conftest import Daemon

pytestmark = pytest.mark.root


def test_a_second_daemon_on_the_same_data_root_is_refused(
    private_daemon: Daemon, tmp_path: Path
) -> None:
    first = private_daemon
    cid = first.ok("create", "busybox", "true").strip()
    second = Daemon(tmp_path / "second")
    # its own socket, exec root, bridge and cgroup parent: only the data root is shared
    second.data_root = first.data_root
    try:
        with pytest.raises(RuntimeError) as refused:
            second.start()
        log = str(refused.value)
        assert f"data root {first.data_root} is in use by another berthd" in log, log
        assert first.proc is not None and f"(pid {first.proc.pid})" in log, log
        assert second.proc is not None and second.proc.returncode == 1
        # it made nothing of its own: no bridge, no socket
        assert not second.sock.exists()
    finally:
        second.data_root = tmp_path / "second" / "data"  # its cleanup must not sweep ours
        second.cleanup()
    # the first one works on, its container untouched
    assert first.inspect(cid)["State"]["Status"] == "created"
    first.ok("rm", cid)


def test_the_lock_goes_with_a_killed_daemon(private_daemon: Daemon) -> None:
    d = private_daemon
    assert (d.data_root / LOCK_NAME).read_text().strip() == str(d.proc.pid if d.proc else 0)
    cid = d.ok("run", "-d", "busybox", "sleep", "300").strip()
    # the container (and its shim host) live on after the kill: none of them holds the lock
    d.stop(signal.SIGKILL)
    d.start()
    assert (d.data_root / LOCK_NAME).read_text().strip() == str(d.proc.pid if d.proc else 0)
    assert d.inspect(cid)["State"]["Running"]
    d.ok("rm", "-f", cid)
    assert oct(os.stat(d.data_root / LOCK_NAME).st_mode & 0o777) == "0o600"
