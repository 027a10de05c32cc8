"""The runtime's known escapes: an image's /proc, /dev or /sys as a symlink to the host
(Docker's init layer), a host descriptor or working directory leaking in (CVE-2024-21626), and
the runtime's own binary written through /proc/PID/exe (CVE-2019-5736)."""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.integration.conftest import Daemon

from .hostile_images import load_with_layer, tar_info, tar_of

pytestmark = pytest.mark.root


@pytest.mark.parametrize("target", ["proc", "dev", "sys"])
def test_symlinked_proc_dev_sys(
    daemon: Daemon, tmp_path: Path, host_dir: Path, target: str
) -> None:
    """An image whose /proc (/dev, /sys) is a symlink to a host path: as under Docker (its
    init layer), the container gets a real directory there; the host path gets nothing."""
    hostile = tar_of((tar_info(target, tarfile.SYMTYPE, str(host_dir)), None))
    r = load_with_layer(daemon, tmp_path, hostile, f"hostile:{target}")
    assert r.returncode == 0, r.stderr
    r = daemon.berth(
        "run",
        "--rm",
        f"hostile:{target}",
        "sh",
        "-c",
        f"test -d /{target} && ! test -L /{target} && ls /{target}/ | wc -l",
    )
    assert r.returncode == 0 and int(r.stdout) > 0, r.stderr  # the host_dir fixture checks
    daemon.ok("rmi", f"hostile:{target}")


def test_no_host_descriptor_or_directory_leaks(daemon: Daemon) -> None:
    """CVE-2024-21626: a working directory of /proc/self/fd/N must not reach the host."""
    out = daemon.ok("run", "--rm", "busybox", "sh", "-c", "ls /proc/self/fd | sort -n")
    assert out.split() == ["0", "1", "2", "3"]  # 3: the directory ls itself reads
    for n in range(3, 12):
        r = daemon.berth(
            "run",
            "--rm",
            "-w",
            f"/proc/self/fd/{n}",
            "busybox",
            "sh",
            "-c",
            "ls .. | head -3; readlink /proc/self/cwd",
        )
        assert "/work" not in r.stdout and "/var/lib" not in r.stdout, (n, r.stdout)
        assert "berth" not in r.stdout, (n, r.stdout)


def test_the_runtime_binary_cannot_be_written(daemon: Daemon) -> None:
    """CVE-2019-5736: the processes that enter containers run from a sealed copy of the
    interpreter, so /proc/PID/exe of any of them cannot be opened for writing."""
    cid = daemon.ok("run", "-d", "busybox", "sleep", "30").strip()
    try:
        pids = [
            p
            for p in subprocess.run(
                ["pgrep", "-f", r"berth[.](shim|runtime)"], capture_output=True, text=True
            ).stdout.split()
        ]
        checked = 0
        for pid in pids:
            try:
                exe = os.readlink(f"/proc/{pid}/exe")
            except OSError:
                continue
            # this daemon's fork servers and monitors (other daemons may run meanwhile)
            if daemon.exec_root.as_posix() not in Path(f"/proc/{pid}/cmdline").read_text(
                errors="replace"
            ):
                continue
            assert exe.startswith("/memfd:berth-runtime"), exe
            with pytest.raises(OSError):
                os.open(f"/proc/{pid}/exe", os.O_WRONLY)
            checked += 1
        assert checked >= 1
    finally:
        daemon.ok("rm", "-f", cid)
