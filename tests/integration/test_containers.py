"""Containers through berth's own CLI against a private berthd: lifecycle, exit codes, isolation,
limits, logs, and Docker's errors."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from .conftest import Daemon

pytestmark = pytest.mark.root


def test_run_prints_output_and_exit_code(daemon: Daemon) -> None:
    r = daemon.berth("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert r.returncode == 3
    assert r.stdout == "out\n"
    assert r.stderr == "err\n"


def test_rm_removes_the_container(daemon: Daemon) -> None:
    daemon.ok("run", "--rm", "--name", "gone", "busybox", "true")
    assert "gone" not in daemon.ok("ps", "-a", "--format", "{{.Names}}").split()


def test_command_not_found_is_127_and_not_executable_is_126(daemon: Daemon) -> None:
    r = daemon.berth("run", "--name", "nf", "busybox", "nonexistent-cmd")
    assert r.returncode == 127
    assert 'exec: "nonexistent-cmd": executable file not found in $PATH' in r.stderr
    state = daemon.inspect("nf")["State"]
    assert state["ExitCode"] == 127 and state["Status"] == "created"
    daemon.ok("rm", "nf")
    r = daemon.berth("run", "--rm", "busybox", "/etc")
    assert r.returncode == 126
    assert "permission denied" in r.stderr


def test_missing_image_is_125_without_pull(daemon: Daemon) -> None:
    r = daemon.berth("run", "--rm", "--pull", "never", "no-such-image:1", "true")
    assert r.returncode == 125
    assert "No such image: no-such-image:1" in r.stderr


def test_unknown_flag_is_125(daemon: Daemon) -> None:
    r = daemon.berth("run", "--no-such-flag", "busybox", "true")
    assert r.returncode == 125
    assert "unknown flag: --no-such-flag" in r.stderr


def test_detached_lifecycle(daemon: Daemon) -> None:
    cid = daemon.ok(
        "run",
        "-d",
        "--name",
        "life",
        "busybox",
        "sh",
        "-c",
        "echo started; trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done",
    ).strip()
    assert len(cid) == 64
    assert "life" in daemon.ok("ps", "--format", "{{.Names}}").split()
    deadline = time.time() + 5
    while "started" not in daemon.ok("logs", "life") and time.time() < deadline:
        time.sleep(0.05)
    assert daemon.ok("logs", "life") == "started\n"
    state = daemon.inspect("life")["State"]
    assert state["Running"] and state["Pid"] > 0 and state["Status"] == "running"
    r = daemon.berth("rm", "life")
    assert r.returncode == 1
    assert "container is running: stop the container before removing or force remove" in r.stderr
    daemon.ok("stop", "-t", "5", "life")
    state = daemon.inspect("life")["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 0 and not state["Running"]
    assert "bye" in daemon.ok("logs", "life")
    assert daemon.ok("wait", "life").strip() == "0"
    daemon.ok("rm", "life")


def test_stop_escalates_to_sigkill(daemon: Daemon) -> None:
    # PID 1 without a handler ignores SIGTERM: stop must fall back to SIGKILL after -t
    daemon.ok("run", "-d", "--name", "stubborn", "busybox", "sleep", "60")
    t = time.time()
    daemon.ok("stop", "-t", "1", "stubborn")
    assert time.time() - t < 8
    assert daemon.inspect("stubborn")["State"]["ExitCode"] == 137
    daemon.ok("rm", "stubborn")


def test_kill_with_signal_restart_rename(daemon: Daemon) -> None:
    daemon.ok(
        "run",
        "-d",
        "--name",
        "k1",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 42' USR1; while true; do sleep 0.1; done",
    )
    time.sleep(0.3)
    daemon.ok("kill", "-s", "USR1", "k1")
    assert daemon.ok("wait", "k1").strip() == "42"
    r = daemon.berth("kill", "k1")
    assert r.returncode == 1 and "is not running" in r.stderr
    daemon.ok("rename", "k1", "k2")
    daemon.ok("restart", "k2")
    assert daemon.inspect("k2")["State"]["Running"]
    daemon.ok("rm", "-f", "k2")


def test_name_in_use(daemon: Daemon) -> None:
    daemon.ok("create", "--name", "dup", "busybox", "true")
    r = daemon.berth("create", "--name", "dup", "busybox", "true")
    assert r.returncode == 1
    assert 'The container name "/dup" is already in use' in r.stderr
    daemon.ok("rm", "dup")


def test_config_env_workdir_user_hostname_entrypoint(daemon: Daemon, tmp_path: Path) -> None:
    envf = tmp_path / "env"
    envf.write_text("# comment\nFROM_FILE=1\n")
    out = daemon.ok(
        "run",
        "--rm",
        "-e",
        "A=b",
        "--env-file",
        str(envf),
        "-w",
        "/tmp/wd",
        "-h",
        "myhost",
        "busybox",
        "sh",
        "-c",
        "echo $A $FROM_FILE; pwd; hostname; cat /etc/hostname",
    )
    assert out.split("\n")[:4] == ["b 1", "/tmp/wd", "myhost", "myhost"]
    assert (
        daemon.ok("run", "--rm", "-u", "app", "busybox", "id").strip()
        == "uid=1000(app) gid=1000(app) groups=50(staff),1000(app)"
    )
    assert daemon.ok("run", "--rm", "-u", "1000:50", "busybox", "id", "-u").strip() == "1000"
    r = daemon.berth("run", "--rm", "-u", "nosuchuser", "busybox", "id")
    assert r.returncode == 125 and "unable to find user nosuchuser" in r.stderr
    assert daemon.ok("run", "--rm", "--entrypoint", "echo", "busybox", "x", "y").strip() == "x y"


def test_isolation(daemon: Daemon) -> None:
    out = daemon.ok(
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo $$; ls /sys/class/net; readlink /proc/self/ns/pid /proc/self/ns/mnt "
        "/proc/self/ns/uts /proc/self/ns/ipc /proc/self/ns/net; mount; ls /dev; "
        "cat /etc/resolv.conf; grep CapEff /proc/self/status",
    )
    lines = out.splitlines()
    assert lines[0] == "1"
    assert lines[1] == "lo"
    for ns, line in zip(["pid", "mnt", "uts", "ipc", "net"], lines[2:7], strict=True):
        assert line != os.readlink(f"/proc/self/ns/{ns}")
    assert "proc on /proc type proc" in out
    assert "sysfs on /sys type sysfs (ro," in out
    assert "devpts on /dev/pts type devpts" in out
    assert "mqueue on /dev/mqueue type mqueue" in out
    assert "shm on /dev/shm type tmpfs" in out
    for dev in ("null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm"):
        assert dev in lines
    assert "nameserver 127.0.0.1" in out
    # Docker's default capability set
    assert "CapEff:\t00000000a80425fb" in out


def test_host_network_and_overlay_rootfs(daemon: Daemon) -> None:
    # the host's own network namespace (its links may come and go meanwhile: other daemons')
    out = daemon.ok(
        "run",
        "--rm",
        "--network",
        "host",
        "busybox",
        "sh",
        "-c",
        "readlink /proc/self/ns/net; ls /sys/class/net",
    )
    ns, *links = out.split()
    assert ns == os.readlink("/proc/self/ns/net")
    assert "lo" in links and set(links) & set(os.listdir("/sys/class/net")) - {"lo"}
    daemon.ok("run", "--name", "writer", "busybox", "sh", "-c", "echo data > /newfile; rm /bin/ls")
    # the image is untouched: a new container sees the original
    assert daemon.berth("run", "--rm", "busybox", "cat", "/newfile").returncode == 1
    daemon.ok("run", "--rm", "busybox", "ls", "/")
    daemon.ok("rm", "writer")


def _cgroup_file(daemon: Daemon, controller: str, cid: str, name: str) -> str:
    return Path(f"/sys/fs/cgroup/{controller}/{daemon.cgroup_parent}/{cid}/{name}").read_text()


def test_resource_limits_in_cgroups(daemon: Daemon) -> None:
    if not Path("/sys/fs/cgroup/memory").is_dir():
        pytest.skip("cgroup v1 memory controller not mounted")
    cid = daemon.ok(
        "run",
        "-d",
        "-m",
        "64m",
        "--cpus",
        "0.5",
        "--cpu-shares",
        "512",
        "--cpuset-cpus",
        "0",
        "--pids-limit",
        "20",
        "busybox",
        "sleep",
        "30",
    ).strip()
    try:
        assert int(_cgroup_file(daemon, "memory", cid, "memory.limit_in_bytes")) == 64 << 20
        assert int(_cgroup_file(daemon, "cpu", cid, "cpu.cfs_quota_us")) == 50000
        assert int(_cgroup_file(daemon, "cpu", cid, "cpu.cfs_period_us")) == 100000
        assert int(_cgroup_file(daemon, "cpu", cid, "cpu.shares")) == 512
        assert _cgroup_file(daemon, "cpuset", cid, "cpuset.cpus").strip() == "0"
        assert int(_cgroup_file(daemon, "pids", cid, "pids.max")) == 20
        hc = daemon.inspect(cid)["HostConfig"]
        assert hc["Memory"] == 64 << 20 and hc["NanoCpus"] == 500_000_000
    finally:
        daemon.ok("rm", "-f", cid)
    assert not Path(f"/sys/fs/cgroup/memory/{daemon.cgroup_parent}/{cid}").exists()


def test_pids_limit_holds(daemon: Daemon) -> None:
    script = "for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; echo started"
    r = daemon.berth("run", "--rm", "--pids-limit", "5", "busybox", "sh", "-c", script)
    assert r.returncode != 0 and "can't fork" in r.stderr
    assert "started" in daemon.ok(
        "run", "--rm", "--pids-limit", "50", "busybox", "sh", "-c", script
    )


def test_oom_killed(daemon: Daemon) -> None:
    r = daemon.berth(
        "run",
        "--name",
        "oom",
        "-m",
        "16m",
        "--memory-swap",
        "16m",
        "busybox",
        "sh",
        "-c",
        "x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done",
    )
    assert r.returncode == 137
    state = daemon.inspect("oom")["State"]
    assert state["OOMKilled"] is True and state["ExitCode"] == 137
    daemon.ok("rm", "oom")


def test_bad_limits_are_refused(daemon: Daemon) -> None:
    r = daemon.berth("run", "--rm", "-m", "1k", "busybox", "true")
    assert r.returncode == 125 and "Minimum memory limit allowed is 6MB" in r.stderr
    r = daemon.berth("run", "--rm", "--cpus", "99", "busybox", "true")
    assert r.returncode == 125 and "Range of CPUs" in r.stderr


def test_ps_filters_and_flags(daemon: Daemon) -> None:
    daemon.ok("run", "--name", "f-exited", "-l", "team=a", "busybox", "true")
    daemon.ok("run", "-d", "--name", "f-running", "-l", "team=b", "busybox", "sleep", "30")
    try:
        names = daemon.ok("ps", "-a", "--filter", "status=exited", "--format", "{{.Names}}")
        assert "f-exited" in names.split() and "f-running" not in names.split()
        assert daemon.ok("ps", "-a", "-f", "label=team=b", "--format", "{{.Names}}").split() == [
            "f-running"
        ]
        assert (
            daemon.ok("ps", "-a", "-f", "name=f-exi", "-q").strip()
            == daemon.inspect("f-exited")["Id"][:12]
        )
        assert daemon.ok("ps", "-l", "-q").strip() == daemon.inspect("f-running")["Id"][:12]
        assert len(daemon.ok("ps", "-a", "-n", "1", "-q", "--no-trunc").strip()) == 64
        anc = daemon.ok("ps", "-a", "-f", "ancestor=busybox", "--format", "{{.Names}}").split()
        assert {"f-exited", "f-running"} <= set(anc)
        table = daemon.ok("ps", "-s")
        assert "SIZE" in table.splitlines()[0]
        r = daemon.berth("ps", "-f", "status=bogus")
        assert r.returncode == 1 and "invalid filter" in r.stderr
        daemon.ok("container", "prune", "-f")
        assert "f-exited" not in daemon.ok("ps", "-a", "--format", "{{.Names}}").split()
    finally:
        daemon.berth("rm", "-f", "f-running", "f-exited")


def test_logs_tail_timestamps_follow(daemon: Daemon) -> None:
    daemon.ok("run", "--name", "lg", "busybox", "sh", "-c", "for i in 1 2 3 4 5; do echo l$i; done")
    assert daemon.ok("logs", "--tail", "2", "lg") == "l4\nl5\n"
    first = daemon.ok("logs", "-t", "lg").splitlines()[0]
    assert first.endswith(" l1") and first[:4].isdigit() and "T" in first
    assert daemon.ok("logs", "--since", "1h", "lg").count("\n") == 5
    assert daemon.ok("logs", "--until", "2000-01-01T00:00:00Z", "lg") == ""
    daemon.ok("rm", "lg")
    daemon.ok(
        "run",
        "-d",
        "--name",
        "lf",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3; do echo f$i; sleep 0.2; done",
    )
    assert daemon.ok("logs", "-f", "lf") == "f1\nf2\nf3\n"
    # json-file on disk, as Docker writes it
    entry = json.loads(Path(daemon.inspect("lf")["LogPath"]).read_text().splitlines()[0])
    assert entry["log"] == "f1\n" and entry["stream"] == "stdout" and entry["time"].endswith("Z")
    daemon.ok("rm", "lf")


def test_inspect_fields(daemon: Daemon) -> None:
    daemon.ok("create", "--name", "ins", "-e", "X=1", "busybox", "echo", "hi")
    d = daemon.inspect("ins")
    for key in (
        "Id",
        "Name",
        "Created",
        "Path",
        "Args",
        "State",
        "Config",
        "HostConfig",
        "Image",
        "Mounts",
        "NetworkSettings",
    ):
        assert key in d
    assert d["Name"] == "/ins" and d["Path"] == "echo" and d["Args"] == ["hi"]
    assert d["State"]["Status"] == "created" and d["State"]["FinishedAt"].startswith("0001")
    assert "X=1" in d["Config"]["Env"] and d["Image"].startswith("sha256:")
    daemon.ok("start", "ins")
    assert daemon.ok("wait", "ins").strip() == "0"
    assert daemon.inspect("ins")["State"]["Status"] == "exited"
    assert (
        daemon.ok("inspect", "-f", "{{.State.ExitCode}} {{json .Args}}", "ins").strip()
        == '0 ["hi"]'
    )
    daemon.ok("rm", "ins")
    r = daemon.berth("inspect", "nothing-by-this-name")
    assert r.returncode == 1 and "No such object: nothing-by-this-name" in r.stderr


def test_export(daemon: Daemon, tmp_path: Path) -> None:
    import tarfile

    daemon.ok("run", "--name", "ex", "busybox", "sh", "-c", "echo hi > /hello; rm /bin/ls")
    out = tmp_path / "ex.tar"
    daemon.ok("export", "-o", str(out), "ex")
    with tarfile.open(out) as tf:
        names = set(tf.getnames())
        hello = tf.extractfile("hello")
        assert hello is not None and hello.read() == b"hi\n"
    assert "bin/sh" in names and "bin/ls" not in names
    daemon.ok("rm", "ex")


def test_device_cgroup_allows_only_the_standard_devices(daemon: Daemon) -> None:
    cid = daemon.ok("run", "-d", "busybox", "sleep", "30").strip()
    try:
        rules = Path(f"/sys/fs/cgroup/devices/{daemon.cgroup_parent}/{cid}/devices.list")
        if rules.exists():
            listed = rules.read_text().split("\n")
            assert "c 1:3 rwm" in listed and "b *:* m" in listed and "a *:* rwm" not in listed
        # a block device can be made, not used (the host's disks stay out of reach)
        r = daemon.berth("exec", cid, "sh", "-c", "mknod /tmp/blk b 7 0 && head -c1 /tmp/blk")
        assert r.returncode != 0 and "Operation not permitted" in r.stderr
        assert daemon.ok("exec", cid, "sh", "-c", "echo ok > /dev/null && echo fine") == "fine\n"
    finally:
        daemon.ok("rm", "-f", cid)


def test_device_flag(daemon: Daemon) -> None:
    out = daemon.ok(
        "run",
        "--rm",
        "--device",
        "/dev/null:/dev/mynull",
        "busybox",
        "sh",
        "-c",
        "ls -l /dev/mynull | cut -c1; echo x > /dev/mynull && echo written",
    )
    assert out.split() == ["c", "written"]
    # read-only: opening for reading works, for writing not (nothing is read or written:
    # loop-control is not one of the default devices, so only the rule given here applies)
    if Path("/dev/loop-control").exists():
        r = daemon.berth(
            "run",
            "--rm",
            "--device",
            "/dev/loop-control:/dev/rodev:r",
            "busybox",
            "sh",
            "-c",
            "true < /dev/rodev && echo opened; : > /dev/rodev",
        )
        assert "opened" in r.stdout
        assert r.returncode != 0 and "Operation not permitted" in r.stderr
    r = daemon.berth("run", "--rm", "--device", "/dev/no-such-device", "busybox", "true")
    assert r.returncode == 125 and "error gathering device information" in r.stderr


def test_seccomp_profiles(daemon: Daemon, tmp_path: Path) -> None:
    # the default filter: namespaces of one's own are refused without CAP_SYS_ADMIN
    out = daemon.ok(
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "grep ^Seccomp: /proc/self/status; unshare -U true 2>/dev/null; echo $?",
    )
    assert out.split() == ["Seccomp:", "2", "1"]
    out = daemon.ok(
        "run", "--rm", "--cap-add", "SYS_ADMIN", "busybox", "sh", "-c", "unshare -U true; echo $?"
    )
    assert out == "0\n"
    for opts in (["--security-opt", "seccomp=unconfined"], ["--privileged"]):
        out = daemon.ok("run", "--rm", *opts, "busybox", "grep", "^Seccomp:", "/proc/self/status")
        assert out.split() == ["Seccomp:", "0"], opts
    # a profile of the user's, in Docker's format: mkdir answers EACCES
    profile = tmp_path / "profile.json"
    profile.write_text(
        json.dumps(
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "archMap": [
                    {
                        "architecture": "SCMP_ARCH_X86_64",
                        "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                    }
                ],
                "syscalls": [
                    {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                    {"names": ["nosuchsyscall"], "action": "SCMP_ACT_ERRNO"},
                    {
                        "names": ["chmod"],
                        "action": "SCMP_ACT_ERRNO",
                        "includes": {"caps": ["CAP_SYS_MODULE"]},
                    },
                ],
            }
        )
    )
    r = daemon.berth(
        "run",
        "--rm",
        "--security-opt",
        f"seccomp={profile}",
        "busybox",
        "sh",
        "-c",
        "chmod 600 /tmp && mkdir /tmp/x",
    )
    assert r.returncode == 1 and "Permission denied" in r.stderr, r.stderr
    # exec gets the container's filter
    cid = daemon.ok(
        "run", "-d", "--security-opt", f"seccomp={profile}", "busybox", "sleep", "30"
    ).strip()
    try:
        r = daemon.berth("exec", cid, "mkdir", "/tmp/y")
        assert r.returncode == 1 and "Permission denied" in r.stderr
    finally:
        daemon.ok("rm", "-f", cid)
    # bad profiles fail the create, with the reason
    bad = tmp_path / "bad.json"
    bad.write_text('{"defaultAction": "SCMP_ACT_NOPE"}')
    r = daemon.berth("create", "--security-opt", f"seccomp={bad}", "busybox")
    assert r.returncode != 0 and "unknown seccomp action" in r.stderr
    r = daemon.berth("create", "--security-opt", "seccomp=/no/such/file", "busybox")
    assert r.returncode != 0 and "opening seccomp profile" in r.stderr


def test_cgroup_namespace(daemon: Daemon) -> None:
    host_ns = os.readlink("/proc/self/ns/cgroup")
    own = daemon.ok(
        "run", "--rm", "--cgroupns", "private", "busybox", "readlink", "/proc/self/ns/cgroup"
    ).strip()
    assert own != host_ns
    assert (
        daemon.ok(
            "run",
            "--rm",
            "--cgroupns",
            "private",
            "busybox",
            "sh",
            "-c",
            "grep pids /proc/self/cgroup",
        )
        .strip()
        .endswith(":/")
    )
    shared = daemon.ok(
        "run", "--rm", "--cgroupns", "host", "busybox", "readlink", "/proc/self/ns/cgroup"
    ).strip()
    assert shared == host_ns
    r = daemon.berth("create", "--cgroupns", "weird", "busybox")
    assert r.returncode != 0 and "invalid cgroup namespace mode" in r.stderr
