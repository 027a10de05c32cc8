"""Durable and watched containers: restart policies, --init, health checks, log rotation,
events, stats, top, pause/unpause and update."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import BIN, Daemon

pytestmark = pytest.mark.root


def _until(pred, timeout: float = 10, step: float = 0.1):  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while True:
        v = pred()
        if v or time.time() > deadline:
            return v
        time.sleep(step)


def test_restart_on_failure_counts_and_stops(daemon: Daemon) -> None:
    daemon.ok(
        "run", "-d", "--name", "rf", "--restart", "on-failure:3", "busybox", "sh", "-c", "exit 2"
    )
    assert _until(
        lambda: (
            daemon.inspect("rf")["RestartCount"] == 3
            and daemon.inspect("rf")["State"]["Status"] == "exited"
        )
    )
    time.sleep(1)
    assert daemon.inspect("rf")["RestartCount"] == 3  # the limit holds
    daemon.ok("run", "-d", "--name", "rok", "--restart", "on-failure", "busybox", "true")
    time.sleep(0.5)
    assert daemon.inspect("rok")["RestartCount"] == 0  # success is not a failure
    daemon.ok("rm", "rf", "rok")


def test_restart_always_until_stopped(daemon: Daemon) -> None:
    daemon.ok(
        "run", "-d", "--name", "ra", "--restart", "always", "busybox", "sh", "-c", "sleep 0.2"
    )
    assert _until(lambda: daemon.inspect("ra")["RestartCount"] >= 2)
    daemon.ok("stop", "-t", "1", "ra")
    n = daemon.inspect("ra")["RestartCount"]
    time.sleep(1)
    st = daemon.inspect("ra")
    assert st["RestartCount"] == n and st["State"]["Status"] == "exited"
    r = daemon.berth("run", "--rm", "--restart", "always", "busybox", "true")
    assert r.returncode == 125 and "AutoRemove" in r.stderr
    daemon.ok("rm", "ra")


def test_always_containers_start_with_the_daemon(private_daemon: Daemon) -> None:
    d = private_daemon
    d.ok("run", "-d", "--name", "boot", "--restart", "always", "busybox", "sleep", "60")
    d.ok("run", "-d", "--name", "nope", "--restart", "unless-stopped", "busybox", "sleep", "60")
    d.ok("stop", "-t", "0", "boot", "nope")
    d.stop()
    d.start()
    assert d.inspect("boot")["State"]["Running"]  # always: back with the daemon
    assert not d.inspect("nope")["State"]["Running"]  # unless-stopped: stopped by hand
    d.ok("rm", "-f", "boot", "nope")


def test_init_reaps_and_forwards(daemon: Daemon) -> None:
    out = daemon.ok("run", "--rm", "--init", "busybox", "ps", "-o", "pid,args")
    assert out.splitlines()[1].split()[:2] == ["1", "/sbin/docker-init"]
    # a zombie left by an orphan is reaped by the init
    out = daemon.ok(
        "run",
        "--rm",
        "--init",
        "busybox",
        "sh",
        "-c",
        "(sleep 0.1 &) ; sleep 0.5; ps -o stat | grep -c Z || true",
    )
    assert out.strip() == "0"
    daemon.ok("run", "-d", "--name", "init-stop", "--init", "busybox", "sleep", "60")
    t = time.time()
    daemon.ok("stop", "-t", "10", "init-stop")  # tini passes SIGTERM on: no 10 s wait
    assert time.time() - t < 5
    daemon.ok("rm", "init-stop")


def test_health_checks(daemon: Daemon) -> None:
    daemon.ok(
        "run",
        "-d",
        "--name",
        "hc",
        "--health-cmd",
        "test -f /tmp/ready",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        "busybox",
        "sh",
        "-c",
        "sleep 1; touch /tmp/ready; sleep 1.5; rm /tmp/ready; sleep 60",
    )
    status = lambda: daemon.inspect("hc")["State"]["Health"]["Status"]  # noqa: E731
    assert status() in ("starting", "unhealthy")
    assert _until(lambda: status() == "healthy")
    assert "(healthy)" in daemon.ok("ps", "-f", "name=hc", "--format", "{{.Status}}")
    assert _until(lambda: status() == "unhealthy")
    health = daemon.inspect("hc")["State"]["Health"]
    assert health["FailingStreak"] >= 2 and len(health["Log"]) <= 5
    assert health["Log"][-1]["ExitCode"] == 1
    daemon.ok("rm", "-f", "hc")
    daemon.ok("run", "-d", "--name", "hcn", "--no-healthcheck", "busybox", "sleep", "30")
    assert "Health" not in daemon.inspect("hcn")["State"]
    daemon.ok("rm", "-f", "hcn")


def test_health_timeout(daemon: Daemon) -> None:
    daemon.ok(
        "run",
        "-d",
        "--name",
        "hto",
        "--health-cmd",
        "sleep 5",
        "--health-interval",
        "200ms",
        "--health-timeout",
        "300ms",
        "--health-retries",
        "1",
        "busybox",
        "sleep",
        "60",
    )
    assert _until(lambda: daemon.inspect("hto")["State"]["Health"]["Status"] == "unhealthy")
    last = daemon.inspect("hto")["State"]["Health"]["Log"][-1]
    assert last["ExitCode"] == -1 and "exceeded timeout" in last["Output"]
    daemon.ok("rm", "-f", "hto")


def test_logs_rotate_and_read_across_files(daemon: Daemon) -> None:
    daemon.ok(
        "run",
        "-d",
        "--name",
        "rot",
        "--log-opt",
        "max-size=4k",
        "--log-opt",
        "max-file=3",
        "busybox",
        "sh",
        "-c",
        "i=0; while [ $i -lt 500 ]; do echo line-$i; i=$((i+1)); done",
    )
    daemon.ok("wait", "rot")
    log = Path(daemon.inspect("rot")["LogPath"])
    files = sorted(p.name for p in log.parent.iterdir() if p.name.startswith(log.name))
    assert files == [log.name, log.name + ".1", log.name + ".2"]
    assert all(p.stat().st_size <= 4096 for p in log.parent.glob(log.name + "*"))
    lines = daemon.ok("logs", "rot").splitlines()
    assert lines[-1] == "line-499"
    nums = [int(x.split("-")[1]) for x in lines]
    assert nums == list(range(nums[0], 500)) and nums[0] > 0  # the oldest went
    daemon.ok("rm", "rot")


def test_logs_follow_across_rotations(daemon: Daemon) -> None:
    """`logs -f` while the log rotates (by inode): every line, in order, none twice."""
    daemon.ok(
        "run",
        "-d",
        "--name",
        "rotf",
        "--log-opt",
        "max-size=2k",
        "--log-opt",
        "max-file=5",
        "busybox",
        "sh",
        "-c",
        "sleep 0.5; i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); "
        "[ $((i % 40)) = 0 ] && sleep 0.05; done",
    )
    out = daemon.ok("logs", "-f", "rotf").splitlines()
    assert out == [f"line-{i}" for i in range(300)]
    daemon.ok("rm", "rotf")


def test_default_rotation_is_on(daemon: Daemon) -> None:
    cid = daemon.ok("create", "busybox", "true").strip()
    from berth.client import Client

    c = Client(daemon.host)
    hc = c.get(f"/containers/{cid}/json")["HostConfig"]
    assert hc["LogConfig"]["Type"] == "json-file"
    daemon.ok("rm", cid)


def test_events_stats_top_pause_update(daemon: Daemon) -> None:
    since = f"{time.time():.3f}"
    daemon.ok(
        "run",
        "-d",
        "--name",
        "watched",
        "-m",
        "64m",
        "busybox",
        "sh",
        "-c",
        "while true; do sleep 0.05; done",
    )
    try:
        top = daemon.ok("top", "watched")
        assert "PID" in top.splitlines()[0] and "while true" in top
        stats = daemon.ok("stats", "--no-stream", "watched").splitlines()
        assert stats[0].split()[:3] == ["CONTAINER", "ID", "NAME"]
        assert "64MiB" in stats[1]
        daemon.ok("exec", "watched", "ping", "-c", "2", "-W", "2", daemon.bip.split("/")[0])
        from berth.client import Client

        raw = Client(daemon.host).get("/containers/watched/stats", {"stream": 0, "one-shot": 1})
        assert raw["networks"]["eth0"]["tx_bytes"] > 0 and raw["networks"]["eth0"]["rx_bytes"] > 0
        assert {e["op"] for e in raw["blkio_stats"]["io_service_bytes_recursive"]} == {
            "read",
            "write",
        }
        daemon.ok("pause", "watched")
        assert daemon.inspect("watched")["State"]["Status"] == "paused"
        assert "(Paused)" in daemon.ok("ps", "-f", "name=watched", "--format", "{{.Status}}")
        r = daemon.berth("pause", "watched")
        assert r.returncode == 1 and "already paused" in r.stderr
        daemon.ok("unpause", "watched")
        daemon.ok("update", "-m", "128m", "--cpus", "0.5", "--pids-limit", "30", "watched")
        hc = daemon.inspect("watched")["HostConfig"]
        assert (hc["Memory"], hc["NanoCpus"], hc["PidsLimit"]) == (128 << 20, 5 * 10**8, 30)
        cid = daemon.inspect("watched")["Id"]
        mem = Path(f"/sys/fs/cgroup/memory/{daemon.cgroup_parent}/{cid}/memory.limit_in_bytes")
        if mem.exists():
            assert int(mem.read_text()) == 128 << 20
        daemon.ok("pause", "watched")
        daemon.ok("stop", "-t", "1", "watched")  # a paused container still stops
    finally:
        daemon.berth("rm", "-f", "watched")
    r = daemon.berth(
        "events", "--since", since, "--until", f"{time.time():.3f}", "--format", "{{json .}}"
    )
    evs = [json.loads(line) for line in r.stdout.splitlines()]
    actions = [e["Action"] for e in evs if e["Actor"]["Attributes"].get("name") == "watched"]
    for a in ("create", "start", "pause", "unpause", "update", "die", "destroy"):
        assert a in actions
    die = next(
        e for e in evs if e["Action"] == "die" and e["Actor"]["Attributes"]["name"] == "watched"
    )
    assert die["Type"] == "container" and "exitCode" in die["Actor"]["Attributes"]
    only = daemon.berth(
        "events",
        "--since",
        since,
        "--until",
        f"{time.time():.3f}",
        "-f",
        "event=start",
        "--format",
        "{{.Action}}",
    ).stdout.split()
    assert only and set(only) == {"start"}


def test_events_stream_live(daemon: Daemon) -> None:
    p = subprocess.Popen(
        [str(BIN / "berth"), "events", "-f", "container=live-ev", "--format", "{{.Action}}"],
        env=daemon.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(0.3)
        daemon.ok("run", "--rm", "--name", "live-ev", "busybox", "true")
        assert p.stdout is not None
        got = [p.stdout.readline().strip() for _ in range(4)]
        assert got[:2] == ["create", "start"] and "die" in got
    finally:
        p.kill()
        p.wait()
        if p.stdout:
            p.stdout.close()


def test_sigterm_leaves_containers_running(private_daemon: Daemon) -> None:
    """berthd stops at once on SIGTERM and leaves its containers to a later berthd (their
    monitors must not hold the daemon's pipes: it would wait for them)."""
    d = private_daemon
    d.ok("run", "-d", "--name", "lr", "busybox", "sleep", "60")
    pid = d.inspect("lr")["State"]["Pid"]
    assert d.proc is not None
    t0 = time.time()
    d.proc.send_signal(signal.SIGTERM)
    d.proc.wait(8)
    assert time.time() - t0 < 8
    assert Path(f"/proc/{pid}").exists()
    d.start()
    st = d.inspect("lr")["State"]
    assert st["Running"] and st["Pid"] == pid
    d.ok("rm", "-f", "lr")
