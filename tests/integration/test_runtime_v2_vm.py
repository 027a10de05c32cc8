"""berth-runtime against runc on cgroup v2 and AppArmor (issue 20), which this host's kernel
cannot show (its cgroups are v1; it has no LSM); and berthd's own use of v2, after them. One guest (tests/vm.py: Debian's kernel
booted with `cgroup_no_v1=all apparmor=1`, this machine's / shared read-only) runs every case
of CASES under both runtimes (v2_guest.py); each test here compares one case: whether create
succeeded, what the cgroup files held while the container was created (or paused), what the
container printed. Where berth-runtime differs on purpose, the README's "Where berth-runtime
differs from runc" says why, and the test says which difference it allows."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .. import vm
from . import test_runtime_conformance as conformance

pytestmark = pytest.mark.root
GUEST = Path(__file__).with_name("v2_guest.py")
M = 1 << 20
NULLB0 = {"major": "nullb0", "minor": "nullb0"}  # v2_guest.py puts the guest's numbers
PROFILE = """profile berth-test flags=(attach_disconnected,mediate_deleted) {
  file,
  capability,
  network,
  mount,
  umount,
  pivot_root,
  signal,
  ptrace,
  unix,
  deny /etc/group r,
  deny /dev/shm/** w,
}
"""
MEMORY_FILES = [
    "memory.max",
    "memory.low",
    "memory.high",
    "memory.min",
    "memory.swap.max",
    "memory.oom.group",
]
CPU_FILES = ["cpu.weight", "cpu.max", "cpu.idle", "cpuset.cpus", "cpuset.mems"]
IO_FILES = ["io.weight", "io.max", "io.bfq.weight"]
FREEZE_FILES = ["cgroup.freeze", "cgroup.events"]
DEVICES_SCRIPT = """
for d in null zero full tty random urandom; do
  (head -c1 /dev/$d >/dev/null && echo "$d: r") 2>&1 | sed 's/^head: //'
done
echo x > /dev/null && echo "null: w"
for n in "mem c 1 1" "loop b 7 0" "tun c 10 200" "kmsg c 1 11" "sda b 8 0" "fuse c 10 229"; do
  set -- $n; mknod /dev/x$1 $2 $3 $4 2>&1
  (head -c0 /dev/x$1 && echo "$1: r") 2>&1 | sed 's/^head: //'
done
"""
# /sys/fs/cgroup as the container sees it: its own cgroup's name made the same for both
CGROUP_VIEW = r"""
sed 's/-runc\//-RT\//; s/-berth\//-RT\//' /proc/self/cgroup
ls /sys/fs/cgroup | grep -q berth-v2- && echo "the whole hierarchy" || echo "its own cgroup"
for f in cgroup.procs pids.max memory.max; do [ -e /sys/fs/cgroup/$f ] && echo $f; done
grep ' /sys/fs/cgroup ' /proc/self/mountinfo | cut -d' ' -f4,5,6,9
touch /sys/fs/cgroup/x 2>&1 | cut -d: -f2-
"""
# the fields runc 1.1 takes and drops on v2, which berth-runtime refuses (README)
REFUSED_ON_V2 = {
    "memory-kernel-tcp": "memory.kernelTCP has no cgroup v2 equivalent",
    "cpu-realtime": "cpu.realtimeRuntime has no cgroup v2 equivalent",
    "network": "network.classID has no cgroup v2 equivalent",
    "io-leaf-weight": "blockIO leafWeight has no cgroup v2 equivalent",
    "io-weight-device": "blockIO.weightDevice: the kernel refused a weight for device",
}
BFQ = (
    "busybox insmod {ko} && echo bfq > /sys/block/nullb0/queue/scheduler && "
    "cat /sys/block/nullb0/queue/scheduler"
)


def _case(
    name: str,
    resources: dict[str, Any] | None = None,
    *,
    args: str = "true",
    files: list[str] = (),
    steps: list[str] | None = None,  # type: ignore[assignment]
    absolute: bool = False,
    process: dict[str, Any] | None = None,
    namespaces: list[str] = (),
    before: str = "",  # type: ignore[assignment]
    alone: bool = False,
    exec: str = "",
    seccomp: bool = False,
    caller_cgroup: str = "",
) -> dict[str, Any]:
    return {
        "name": name,
        "resources": resources,
        "args": args,
        "files": list(files),
        "steps": steps,
        "absolute": absolute,
        "process": process or {},
        "namespaces": list(namespaces),
        "before": before,
        "alone": alone,
        "exec": exec,
        "seccomp": seccomp,
        "caller_cgroup": caller_cgroup,
    }


EXEC_SCRIPT = (
    "sed 's/-runc\\//-RT\\//; s/-berth\\//-RT\\//' /proc/self/cgroup; "
    "cat /sys/fs/cgroup/pids.current 2>&1; " + conformance.EXEC_SCRIPT
)


CASES = [
    _case(
        "memory",
        {"memory": {"limit": 64 * M, "reservation": 32 * M, "swap": 96 * M}},
        files=MEMORY_FILES,
    ),
    _case(
        "memory-absolute",
        {"memory": {"limit": 64 * M, "reservation": 32 * M, "swap": -1}},
        files=MEMORY_FILES,
        absolute=True,
    ),
    # a relative cgroupsPath from a caller in a cgroup of its own (as a shell in a systemd
    # scope): under that cgroup's parent, as runc places it
    _case(
        "memory-relative-to-caller",
        {"memory": {"limit": 64 * M}},
        files=MEMORY_FILES,
        caller_cgroup="berth-caller/scope",
    ),
    _case("memory-swap-equal", {"memory": {"limit": 64 * M, "swap": 64 * M}}, files=MEMORY_FILES),
    _case("memory-swappiness", {"memory": {"limit": 64 * M, "swappiness": 33}}, files=MEMORY_FILES),
    _case(
        "memory-oom-killer",
        {"memory": {"limit": 64 * M, "disableOOMKiller": True}},
        files=MEMORY_FILES,
    ),
    _case("memory-use-hierarchy", {"memory": {"useHierarchy": True}}, files=MEMORY_FILES),
    _case("memory-kernel", {"memory": {"kernel": 64 * M}}, files=MEMORY_FILES),
    _case("memory-kernel-tcp", {"memory": {"kernelTCP": 64 * M}}, files=MEMORY_FILES),
    _case(
        "cpu",
        {"cpu": {"shares": 512, "quota": 50000, "period": 200000, "cpus": "0", "mems": "0"}},
        files=CPU_FILES,
    ),
    _case("cpu-shares-extremes", {"cpu": {"shares": 2}}, files=CPU_FILES),
    _case("cpu-quota-only", {"cpu": {"quota": 30000}}, files=CPU_FILES),
    _case("cpu-idle", {"cpu": {"idle": 1}}, files=CPU_FILES),
    _case(
        "cpu-realtime",
        {"cpu": {"realtimeRuntime": 1000, "realtimePeriod": 100000}},
        files=CPU_FILES,
    ),
    _case("pids", {"pids": {"limit": 42}}, files=["pids.max"]),
    _case("io-weight", {"blockIO": {"weight": 500}}, files=IO_FILES),
    _case(
        "io-weight-device",
        {"blockIO": {"weightDevice": [{**NULLB0, "weight": 300}]}},
        files=IO_FILES,
    ),
    _case("io-leaf-weight", {"blockIO": {"leafWeight": 300}}, files=IO_FILES),
    _case(
        "io-throttle",
        {
            "blockIO": {
                "throttleReadBpsDevice": [{**NULLB0, "rate": 1 * M}],
                "throttleWriteBpsDevice": [{**NULLB0, "rate": 2 * M}],
                "throttleReadIOPSDevice": [{**NULLB0, "rate": 100}],
                "throttleWriteIOPSDevice": [{**NULLB0, "rate": 200}],
            }
        },
        files=IO_FILES,
    ),
    _case(
        "hugetlb",
        {"hugepageLimits": [{"pageSize": "2MB", "limit": 4 * M}]},
        files=["hugetlb.2MB.max", "hugetlb.2MB.rsvd.max"],
    ),
    _case(
        "unified",
        {"unified": {"memory.high": str(48 * M), "pids.max": "17", "cpu.weight": "77"}},
        files=["memory.high", "pids.max", "cpu.weight"],
    ),
    _case(
        "unified-and-fields",
        {"pids": {"limit": 42}, "unified": {"pids.max": "17"}},
        files=["pids.max"],
    ),
    _case("network", {"network": {"classID": 0x100001}}),
    _case("rdma", {"rdma": {"mlx5_0": {"hcaHandles": 3}}}, files=["rdma.max"]),
    _case("devices", args=DEVICES_SCRIPT),
    _case(
        "devices-rules",
        {
            "devices": [
                {"allow": False, "access": "rwm"},
                {"allow": True, "type": "b", "major": 7, "minor": 0, "access": "r"},
                {"allow": False, "type": "c", "major": 1, "minor": 5, "access": "r"},
            ]
        },
        args=DEVICES_SCRIPT,
    ),
    _case("cgroup-mount", args=CGROUP_VIEW),
    _case("cgroup-mount-cgroupns", args=CGROUP_VIEW, namespaces=["cgroup"]),
    _case(
        "freezer",
        args="sleep 60",
        files=FREEZE_FILES,
        steps=[
            "create",
            "start",
            "pause",
            "read@paused",
            "resume",
            "read@resumed",
            "kill",
            "wait",
            "delete",
        ],
    ),
    _case(
        "apparmor",
        process={"apparmorProfile": "berth-test"},
        args="cat /proc/self/attr/current; echo; cat /etc/group >/dev/null; echo rc=$?; "
        "touch /dev/shm/x; echo rc=$?",
    ),
    _case("apparmor-unknown", process={"apparmorProfile": "no-such-profile"}),
    # test_runtime_conformance.py's view of the container, on v2; alone, since it lists
    # /sys/fs/cgroup, where the other cases' cgroups come and go
    _case("view", args=conformance.SCRIPT, alone=True),
    _case("view-seccomp", args=conformance.SCRIPT, alone=True, seccomp=True),
    _case(
        "exec",
        args="sleep 60",
        exec=EXEC_SCRIPT,
        namespaces=["cgroup"],
        seccomp=True,
        steps=["create", "start", "exec", "kill", "wait", "delete"],
    ),
    # last and alone: once BFQ is loaded, every cgroup has io.bfq.weight
    _case(
        "io-bfq",
        {"blockIO": {"weight": 500, "weightDevice": [{**NULLB0, "weight": 300}]}},
        files=IO_FILES,
        before="BFQ",
    ),
]


# berthd itself on the v2-only kernel, after the runtime's cases: a section per "== name"
DAEMON_SCRIPT = r"""
B={bin}
mkdir -p /tmp/d
$B/berthd -H unix:///tmp/d/s.sock --data-root /tmp/d/data --exec-root /tmp/d/run \
    --cgroup-parent berth-vm --bridge bvm --bip 10.251.65.1/24 --iptables false \
    --dns 127.0.0.1 --docker-hub false > /tmp/d/log 2>&1 &
export BERTH_HOST=unix:///tmp/d/s.sock
for i in $(seq 200); do $B/berth version >/dev/null 2>&1 && break; sleep 0.2; done
$B/berth import /job/rootfs.tar busybox:latest >/dev/null
echo "== run"; $B/berth run --rm --network none busybox cat /proc/self/cgroup
echo "== limits"; $B/berth run --rm --network none -m 64m --memory-reservation 32m \
    --pids-limit 33 --cpus 0.5 --cpu-shares 512 busybox \
    sh -c 'cd /sys/fs/cgroup; cat memory.max memory.low pids.max cpu.max cpu.weight'
id=$($B/berth run -d --network none -m 64m busybox sleep 60)
echo "== stats"; $B/berth stats --no-stream --format '{{{{.MemUsage}}}}' $id
$B/berth pause $id >/dev/null
echo "== paused"; cat /sys/fs/cgroup/berth-vm/$id/cgroup.events; $B/berth ps --format '{{{{.Status}}}}'
$B/berth unpause $id >/dev/null
echo "== unpaused"; $B/berth ps --format '{{{{.Status}}}}'
$B/berth update --memory 128m --memory-swap 256m $id >/dev/null
echo "== update"; cat /sys/fs/cgroup/berth-vm/$id/memory.max /sys/fs/cgroup/berth-vm/$id/memory.swap.max
echo "== exec"; $B/berth exec $id cat /proc/self/cgroup
$B/berth rm -f $id >/dev/null
echo "== removed"; ls /sys/fs/cgroup/berth-vm | grep -c $id
echo "== oom"; $B/berth run --network none -m 8m --name oom busybox \
    sh -c 'x=a; while true; do x=$x$x; done'; echo $?; $B/berth inspect -f '{{{{.State.OOMKilled}}}}' oom
echo "== device"; $B/berth run --rm --network none --device /dev/null:/dev/mynull busybox \
    sh -c 'echo hi > /dev/mynull && echo ok'
echo "== end"
"""


def _config(base: dict[str, Any], case: dict[str, Any]) -> dict[str, Any]:
    cfg = json.loads(json.dumps(base))
    cfg["process"].update(terminal=False, args=["sh", "-c", case["args"]], **case["process"])
    if case["name"].startswith("devices"):  # runc's default spec has no CAP_MKNOD
        for caps in cfg["process"]["capabilities"].values():
            caps.append("CAP_MKNOD")
    cfg["linux"]["namespaces"] += [{"type": t} for t in case["namespaces"]]
    if case["seccomp"]:
        # berth's default filter for these capabilities, loaded by each runtime
        from berth.containers.seccomp import default_profile

        cfg["linux"]["seccomp"] = default_profile(set(cfg["process"]["capabilities"]["bounding"]))
    path = f"berth-v2-{case['name']}-RT/c"
    cfg["linux"]["cgroupsPath"] = "/" + path if case["absolute"] else path
    if case["resources"]:
        cfg["linux"]["resources"] = {**cfg["linux"].get("resources", {}), **case["resources"]}
    return cfg


@pytest.fixture(scope="module")
def guest(tmp_path_factory: pytest.TempPathFactory, rootfs_tar: Path) -> dict[str, Any]:
    """Every case, run once in one guest: {case: {"runc": ..., "berth": ...}}."""
    why = vm.missing()
    if why:
        pytest.skip(why)
    if not shutil.which("runc"):
        pytest.skip("runc is not installed (apt-get install runc)")
    job = tmp_path_factory.mktemp("v2vm")
    shutil.copy(rootfs_tar, job / "rootfs.tar")
    subprocess.run(["runc", "spec"], cwd=job, check=True)
    base = json.loads((job / "config.json").read_text())
    try:
        bfq = BFQ.format(ko=vm.module("bfq"))  # fetches and unpacks the kernel, once
    except vm.Unavailable as e:
        pytest.skip(str(e))
    cases = [
        {
            "name": c["name"],
            "files": c["files"],
            "steps": c["steps"],
            "before": bfq if c["before"] == "BFQ" else c["before"],
            "alone": c["alone"],
            "exec": c["exec"],
            "caller_cgroup": c["caller_cgroup"],
            "config": _config(base, c),
        }
        for c in CASES
    ]
    assert not any(ns["type"] == "cgroup" for ns in base["linux"]["namespaces"])
    (job / "cases.json").write_text(json.dumps(cases))
    (job / "berth-test.profile").write_text(PROFILE)
    script = f"""set -e
mkdir /tmp/rootfs
tar -xf /job/rootfs.tar -C /tmp/rootfs
{"apparmor_parser -r /job/berth-test.profile" if shutil.which("apparmor_parser") else ""}
echo 8 > /proc/sys/vm/nr_hugepages
{sys.executable} {GUEST} /job/cases.json /tmp/rootfs /job/results.json
sh /job/daemon.sh > /job/daemon.out 2>&1 || true
"""
    (job / "daemon.sh").write_text(DAEMON_SCRIPT.format(bin=Path(sys.executable).parent))
    try:
        vm.run(script, job, timeout=900)
    except vm.Unavailable as e:
        pytest.skip(str(e))
    results = json.loads((job / "results.json").read_text())
    sections: dict[str, list[str]] = {}
    for line in (job / "daemon.out").read_text().splitlines():
        if line.startswith("== "):
            sections[line[3:]] = []
        elif sections:
            sections[list(sections)[-1]].append(line)
    results["berthd"] = sections
    return results  # type: ignore[no-any-return]


def _pair(guest: dict[str, Any], name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    theirs, ours = guest[name]["runc"], guest[name]["berth"]
    assert "error" not in theirs and "error" not in ours, (theirs, ours)
    return theirs, ours


def _same_names(output: str) -> list[str]:
    """The output with each case's cgroup named alike for both runtimes (berth-v2-CASE-RT):
    a container that sees the whole hierarchy lists the earlier cases' (ls sorts a case's
    two names next to each other, made one here)."""
    lines = [
        re.sub(r"(berth-v2-[\w-]+?)-(runc|berth)\b", r"\1-RT", line) for line in output.splitlines()
    ]
    return [line for i, line in enumerate(lines) if i == 0 or line != lines[i - 1]]


def _created(life: dict[str, Any]) -> bool:
    return bool(life["steps"].get("create", {}).get("rc") == 0)


SAME = [c["name"] for c in CASES if c["name"] not in REFUSED_ON_V2 and c["name"] != "cpu-idle"]


@pytest.mark.parametrize("name", SAME)
def test_same_as_runc(guest: dict[str, Any], name: str) -> None:
    """The case under runc and under berth-runtime: create succeeds (or fails) for both, the
    cgroup holds the same files at each read, the container prints the same, and the cgroup
    is gone after delete."""
    if name.startswith("apparmor") and not shutil.which("apparmor_parser"):
        pytest.skip("apparmor_parser is not installed (apt-get install apparmor)")
    theirs, ours = _pair(guest, name)
    assert _created(ours) is _created(theirs), (theirs["steps"], ours["steps"])
    for key in [k for k in theirs if k.startswith("read")]:
        assert ours.get(key) == theirs[key], key
    assert _same_names(ours["output"]) == _same_names(theirs["output"])
    assert {k: v["rc"] for k, v in ours["steps"].items()} == {
        k: v["rc"] for k, v in theirs["steps"].items()
    }, (theirs["steps"], ours["steps"])
    assert not ours["cgroup_left"] and not theirs["cgroup_left"]


# what each case must show, beyond being the same as runc's: the values written
EXPECTED = {
    "memory": {
        "memory.max": str(64 * M),
        "memory.low": str(32 * M),
        "memory.swap.max": str(32 * M),
    },
    "memory-absolute": {"memory.swap.max": "max"},
    "memory-swap-equal": {"memory.swap.max": "0"},
    "cpu": {"cpu.weight": "20", "cpu.max": "50000 200000", "cpuset.cpus": "0"},
    "cpu-shares-extremes": {"cpu.weight": "1"},
    "cpu-quota-only": {"cpu.max": "30000 100000"},
    "pids": {"pids.max": "42"},
    "io-weight": {"io.weight": "default 4950"},
    "hugetlb": {"hugetlb.2MB.max": str(4 * M)},
    "unified": {"memory.high": str(48 * M), "pids.max": "17", "cpu.weight": "77"},
    "unified-and-fields": {"pids.max": "17"},
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_the_cgroup_holds_the_limits(guest: dict[str, Any], name: str) -> None:
    ours = guest[name]["berth"]
    assert _created(ours), ours["steps"]
    assert {k: ours["read"][k] for k in EXPECTED[name]} == EXPECTED[name]


def test_relative_path_under_the_callers_parent(guest: dict[str, Any]) -> None:
    theirs, ours = _pair(guest, "memory-relative-to-caller")
    assert (
        theirs["cgroup_path"]
        == "/sys/fs/cgroup/berth-caller/berth-v2-memory-relative-to-caller-runc/c"
    )
    assert ours["cgroup_path"] == theirs["cgroup_path"].replace("-runc/", "-berth/")


def test_io_max_and_bfq(guest: dict[str, Any]) -> None:
    """blockIO throttles in io.max; with BFQ, weight and weightDevice in io.bfq.weight as
    they are (no conversion)."""
    ours = guest["io-throttle"]["berth"]
    assert ours["read"]["io.max"].split()[1:] == [
        "rbps=1048576",
        "wbps=2097152",
        "riops=100",
        "wiops=200",
    ]
    bfq = guest["io-bfq"]["berth"]["read"]["io.bfq.weight"].splitlines()
    assert bfq[0] == "default 500" and bfq[1].endswith(" 300")


def test_devices_as_runc(guest: dict[str, Any]) -> None:
    out = guest["devices"]["berth"]["output"]
    assert "null: r" in out and "null: w" in out
    assert "/dev/xloop: Operation not permitted" in out  # the device cgroup's answer
    rules = guest["devices-rules"]["berth"]["output"]
    # the rule lets the open through to the driver (no loop module loaded: ENXIO); runc's
    # default devices come after the spec's rules, so /dev/zero's deny is undone
    assert "/dev/xloop: No such device or address" in rules and "zero: r" in rules


def test_cgroup_mount(guest: dict[str, Any]) -> None:
    """Without a cgroup namespace, /sys/fs/cgroup is the whole hierarchy, read-only (as runc
    1.1 mounts it); in one, the container's own cgroup is its root."""
    host = guest["cgroup-mount"]["berth"]["output"].splitlines()
    own = guest["cgroup-mount-cgroupns"]["berth"]["output"].splitlines()
    assert host[:2] == ["0::/berth-v2-cgroup-mount-RT/c", "the whole hierarchy"]
    assert own[:2] == ["0::/", "its own cgroup"] and "pids.max" in own
    assert "Read-only file system" in host[-1]


def test_exec_joins_the_cgroup(guest: dict[str, Any]) -> None:
    """An exec'd process is in the container's v2 cgroup (its cgroup namespace's root)."""
    out = guest["exec"]["berth"]["output"].splitlines()
    assert out[0] == "0::/" and out[1] == "3"  # the init, the exec'd shell and its cat


def test_freezer(guest: dict[str, Any]) -> None:
    ours = guest["freezer"]["berth"]
    assert ours["read@paused"]["cgroup.freeze"] == "1"
    assert "frozen 1" in ours["read@paused"]["cgroup.events"]
    assert "frozen 0" in ours["read@resumed"]["cgroup.events"]


def test_apparmor_profile(guest: dict[str, Any]) -> None:
    """process.apparmorProfile: the container runs confined by it (its deny rule holds)."""
    if not shutil.which("apparmor_parser"):
        pytest.skip("apparmor_parser is not installed (apt-get install apparmor)")
    out = guest["apparmor"]["berth"]["output"]
    assert out.startswith("berth-test (enforce)") and out.endswith("rc=1\nrc=1\n")
    assert (
        "AppArmor profile 'no-such-profile'"
        in guest["apparmor-unknown"]["berth"]["steps"]["create"]["stderr"]
    )


@pytest.mark.parametrize("name", list(REFUSED_ON_V2))
def test_refused_on_v2_where_runc_drops_it(guest: dict[str, Any], name: str) -> None:
    """Fields v2 has no file for (or that this kernel refused for the device): runc 1.1
    creates the container without them; berth-runtime refuses to, naming the field (README:
    a limit the host cannot hold is an error)."""
    theirs, ours = _pair(guest, name)
    assert _created(theirs), theirs["steps"]
    assert not _created(ours)
    assert REFUSED_ON_V2[name] in ours["steps"]["create"]["stderr"]


def test_cpu_idle_which_runc_1_1_does_not_know(guest: dict[str, Any]) -> None:
    theirs, ours = _pair(guest, "cpu-idle")
    assert theirs["read"]["cpu.idle"] == "0" and ours["read"]["cpu.idle"] == "1"


def test_berthd_on_cgroup_v2(guest: dict[str, Any]) -> None:
    """berthd's own use of v2 (cgroups.V2 through the daemon, not the runtime's): a private
    cgroup namespace by default, as dockerd on v2; the limits of `run`; stats, pause, update,
    exec, OOM and --device; the container's cgroup gone with it."""
    d = guest["berthd"]
    assert "end" in d, d
    assert d["run"] == ["0::/"]
    assert d["limits"] == [str(64 * M), str(32 * M), "33", "50000 100000", "20"]
    assert d["stats"][0].endswith("/ 64MiB")
    assert "frozen 1" in d["paused"] and d["paused"][-1].endswith("(Paused)")
    assert not d["unpaused"][0].endswith("(Paused)")
    assert d["update"] == [str(128 * M), str(128 * M)]
    assert d["exec"] == ["0::/"]
    assert d["removed"] == ["0"]
    assert d["oom"] == ["137", "true"]
    assert d["device"] == ["ok"]
