"""Shim hosts (berth.shim.host): one process holds many containers, and nothing one of them
does stalls the others."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time

import pytest

from .conftest import BIN, Daemon

pytestmark = pytest.mark.root


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("PPid:"):
                return int(line.split()[1])
    raise AssertionError(f"no PPid for {pid}")


def _ticks(d: Daemon, name: str) -> int:
    return d.ok("logs", name).count("tick")


def _until(pred, timeout: float = 20):  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            return False
        time.sleep(0.1)
    return True


def test_one_host_holds_many_containers(private_daemon: Daemon) -> None:
    d = private_daemon
    names = [f"held{i}" for i in range(4)]
    for n in names:
        d.ok("run", "-d", "--name", n, "--network", "none", "busybox", "sleep", "600")
    pids = [d.inspect(n)["State"]["Pid"] for n in names]
    hosts = {_parent(p) for p in pids}
    assert len(hosts) == 1, hosts  # the same shim host holds them all
    (host,) = hosts
    assert all(d.inspect(n)["State"]["Running"] for n in names)
    # every descriptor the host holds (other containers' stdio and ptys, channels, DNS
    # sockets, received with SCM_RIGHTS too) is close-on-exec: none can reach a process it
    # starts
    d.ok("run", "-d", "-t", "--name", "tty", "--network", "none", "busybox", "sh")
    d.ok("run", "-d", "-i", "--name", "in", "busybox", "cat")  # default bridge: DNS-less
    assert _parent(d.inspect("tty")["State"]["Pid"]) == host
    leaky = []
    for name in os.listdir(f"/proc/{host}/fd"):
        if int(name) > 2:
            with open(f"/proc/{host}/fdinfo/{name}") as f:
                flags = int(next(ln for ln in f if ln.startswith("flags:")).split()[1], 8)
            target = os.readlink(f"/proc/{host}/fd/{name}")
            # the sealed interpreter every process of the shim runs from, kept open on purpose
            # (berth/memfd.py); an init closes what it inherited before it execs
            if not flags & 0o2000000 and not target.startswith("/memfd:berth-runtime"):
                leaky.append((name, target))
    assert leaky == []
    d.ok("rm", "-f", *names, "tty", "in")
    # the host outlives its containers while the daemon runs; with the daemon gone and no
    # container left, it ends
    os.kill(host, 0)
    d.stop()
    assert _until(lambda: not os.path.exists(f"/proc/{host}"), 10)


def test_a_flood_or_a_crash_does_not_stall_the_neighbours(private_daemon: Daemon) -> None:
    d = private_daemon
    d.ok(
        "run",
        "-d",
        "--name",
        "calm",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo tick$i; sleep 0.1; done",
    )
    # a flood: as fast as the host will read it; its log is bounded
    d.ok(
        "run",
        "-d",
        "--name",
        "flood",
        "--network",
        "none",
        "--log-opt",
        "max-size=1m",
        "busybox",
        "yes",
        "x" * 200,
    )
    # and a container whose input is never read: its input queues, nobody else's
    d.ok("run", "-d", "-i", "--name", "deaf", "--network", "none", "busybox", "sleep", "600")
    pids = {n: d.inspect(n)["State"]["Pid"] for n in ("calm", "flood", "deaf")}
    assert len({_parent(p) for p in pids.values()}) == 1
    attach = subprocess.Popen(
        [str(BIN / "berth"), "attach", "deaf"],
        env=d.env,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert attach.stdin is not None
    try:
        attach.stdin.write(b"y" * (1 << 20))  # far beyond a pipe's 64 KiB
        attach.stdin.flush()
    except BrokenPipeError:
        pass
    before = _ticks(d, "calm")
    # the calm container's output keeps coming, and it answers an exec, while the others
    # flood and block
    assert _until(lambda: _ticks(d, "calm") >= before + 10)
    assert d.ok("exec", "calm", "echo", "reached") == "reached\n"
    # a crash of one is its own end only
    os.kill(pids["flood"], signal.SIGKILL)
    assert _until(lambda: d.inspect("flood")["State"]["Status"] == "exited")
    assert d.inspect("flood")["State"]["ExitCode"] == 137
    before = _ticks(d, "calm")
    assert _until(lambda: _ticks(d, "calm") >= before + 5)
    assert d.inspect("calm")["State"]["Running"]
    attach.kill()
    attach.wait()
    with contextlib.suppress(BrokenPipeError):
        attach.stdin.close()
    d.ok("rm", "-f", "calm", "flood", "deaf")


def test_a_tty_whose_input_waits_keeps_its_output(private_daemon: Daemon) -> None:
    """A terminal's master is both the output and the input: input that waits for the
    container must not stop its output being read (a paste bigger than the pty takes)."""
    from .test_interactive import Term

    t = Term(
        [
            str(BIN / "berth"),
            "run",
            "-it",
            "--rm",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "stty raw -echo; echo ready; sleep 1; head -c 200000 >/dev/null; echo done-reading",
        ],
        private_daemon.env,
    )
    t.read_until(b"ready")
    payload = b"y" * 200000
    written = 0
    deadline = time.monotonic() + 30
    while written < len(payload) and time.monotonic() < deadline:
        r, w, _ = select.select([t.master], [t.master], [], 1)
        if r:
            with contextlib.suppress(OSError):
                t.out += os.read(t.master, 65536)
        if w:
            written += os.write(t.master, payload[written : written + 4096])
    assert written == len(payload)
    t.read_until(b"done-reading", 30)
    assert t.wait() == 0
