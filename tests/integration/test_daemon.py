"""berthd itself: its socket and flags, how the CLI finds it, and containers outliving it."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time

import pytest

from .conftest import BIN, Daemon

pytestmark = pytest.mark.root


def test_socket_mode_and_host_resolution(daemon: Daemon) -> None:
    assert stat.S_IMODE(os.stat(daemon.sock).st_mode) == 0o660
    berth = str(BIN / "berth")
    env = {k: v for k, v in os.environ.items() if k not in ("BERTH_HOST", "DOCKER_HOST")}
    # -H beats BERTH_HOST beats DOCKER_HOST beats the default
    bad = "unix:///nonexistent/berth.sock"
    cases = [
        (["-H", daemon.host], {"BERTH_HOST": bad, "DOCKER_HOST": bad}, 0),
        ([], {"BERTH_HOST": daemon.host, "DOCKER_HOST": bad}, 0),
        ([], {"DOCKER_HOST": daemon.host}, 0),
        ([], {"BERTH_HOST": bad, "DOCKER_HOST": daemon.host}, 1),
    ]
    for flags, extra, rc in cases:
        r = subprocess.run(
            [berth, *flags, "ps"], env={**env, **extra}, capture_output=True, text=True
        )
        assert r.returncode == rc, (flags, extra, r.stderr)
    r = subprocess.run([berth, "-H", bad, "ps"], env=env, capture_output=True, text=True)
    assert "Cannot connect to the berth daemon at unix:///nonexistent/berth.sock" in r.stderr


def test_containers_outlive_the_daemon(private_daemon: Daemon) -> None:
    d = private_daemon
    d.ok(
        "run",
        "-d",
        "--name",
        "survivor",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 3' TERM; i=0; while true; do i=$((i+1)); echo tick$i; sleep 0.1; done",
    )
    d.ok("run", "-d", "--name", "short", "busybox", "sh", "-c", "sleep 1; exit 9")
    pid = d.inspect("survivor")["State"]["Pid"]
    d.stop(signal.SIGKILL)
    os.kill(pid, 0)  # still running without a daemon
    time.sleep(1.5)  # "short" ends while no daemon runs
    d.start()
    st = d.inspect("survivor")["State"]
    assert st["Running"] and st["Pid"] == pid, (st, d.log.read_text()[-4000:])
    assert "survivor" in d.ok("ps", "--format", "{{.Names}}").split()
    short = d.inspect("short")["State"]
    assert short["Status"] == "exited" and short["ExitCode"] == 9
    assert "tick" in d.ok("logs", "--tail", "1", "survivor")
    # exec and a following of the logs work on a container from before the restart
    assert d.ok("exec", "survivor", "echo", "reached") == "reached\n"
    import subprocess as sp

    follow = sp.Popen(
        [str(BIN / "berth"), "logs", "-f", "--tail", "0", "survivor"],
        env=d.env,
        stdout=sp.PIPE,
        text=True,
    )
    assert follow.stdout is not None
    assert follow.stdout.readline().startswith("tick")
    waiter = sp.Popen(
        [str(BIN / "berth"), "wait", "survivor"], env=d.env, stdout=sp.PIPE, text=True
    )
    d.ok("stop", "survivor")
    assert waiter.communicate(timeout=10)[0].strip() == "3"
    follow.wait(10)
    follow.stdout.close()
    st = d.inspect("survivor")["State"]
    assert st["Status"] == "exited" and st["ExitCode"] == 3
    d.ok("rm", "survivor", "short")


def test_pidfile_and_clean_shutdown(private_daemon: Daemon, tmp_path) -> None:  # type: ignore[no-untyped-def]
    d = private_daemon
    assert d.proc is not None
    d.stop()
    pidfile = tmp_path / "berthd.pid"
    d.start("--pidfile", str(pidfile))
    assert int(pidfile.read_text()) == d.proc.pid
    d.stop()
    assert not pidfile.exists() and not d.sock.exists()


def test_copying_driver(tmp_path, rootfs_tar) -> None:  # type: ignore[no-untyped-def]
    """Where overlayfs cannot be used: `-s vfs` copies the layers for each container."""
    d = Daemon(tmp_path / "vfs")
    try:
        d.start("--storage-driver", "vfs")
        d.ok("import", str(rootfs_tar), "busybox")
        assert "Storage Driver: vfs" in d.ok("info")
        d.ok("run", "--name", "v1", "busybox", "sh", "-c", "echo x > /f; rm /bin/ls")
        assert d.ok("run", "--rm", "busybox", "ls", "/").split()  # the image is untouched
        d.ok("export", "-o", str(tmp_path / "v1.tar"), "v1")
        import tarfile

        with tarfile.open(tmp_path / "v1.tar") as tf:
            names = set(tf.getnames())
        assert "f" in names and "bin/ls" not in names and "bin/sh" in names
        d.ok("rm", "v1")
    finally:
        d.cleanup()


def test_iptables_false_leaves_the_firewall_alone(tmp_path, rootfs_tar) -> None:  # type: ignore[no-untyped-def]
    d = Daemon(tmp_path / "noipt")
    before = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    try:
        d.start("--iptables", "false", "--ip-forward", "false")
        d.ok("import", str(rootfs_tar), "busybox")
        gw = d.bip.split("/")[0]
        assert d.berth("run", "--rm", "busybox", "ping", "-c1", "-W2", gw).returncode == 0
        after = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
        # what names this daemon's bridge or chains (other daemons may change the rest of the
        # host's firewall meanwhile)
        ours = (d.bridge, f"BERTH-{d.bridge[:12]}")

        def strip(t: str) -> list[str]:
            return [
                x
                for x in t.splitlines()
                if not x.startswith(("#", ":")) and any(o in x for o in ours)
            ]

        assert strip(after) == strip(before) == []
    finally:
        d.cleanup()
