"""The cgroup managers on a fake cgroupfs in a temporary directory (no root needed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from berth import cgroups, linux
from berth.errors import InvalidArgument


def _v1_tree(tmp: Path) -> dict[str, str]:
    mounts = {}
    for c in ("memory", "cpu", "cpuacct", "cpuset", "pids", "freezer"):
        (tmp / c).mkdir()
        mounts[c] = str(tmp / c)
    (tmp / "cpuset" / "cpuset.cpus").write_text("0-1\n")
    (tmp / "cpuset" / "cpuset.mems").write_text("0\n")
    return mounts


def test_v1_applies_limits_and_fills_cpuset(tmp_path: Path) -> None:
    mounts = _v1_tree(tmp_path)
    m = cgroups.V1("berth/c1", mounts=mounts)
    (tmp_path / "memory" / "berth" / "c1").mkdir(parents=True)
    (tmp_path / "memory" / "berth" / "c1" / "memory.memsw.limit_in_bytes").write_text("")
    m.create(
        cgroups.Resources(
            memory=64 << 20,
            memory_swap=128 << 20,
            cpu_shares=512,
            cpu_quota=50000,
            cpu_period=100000,
            cpuset_cpus="1",
            pids_limit=20,
        )
    )
    c1 = "berth/c1"
    assert (tmp_path / "memory" / c1 / "memory.limit_in_bytes").read_text() == str(64 << 20)
    assert (tmp_path / "memory" / c1 / "memory.memsw.limit_in_bytes").read_text() == str(128 << 20)
    assert (tmp_path / "cpu" / c1 / "cpu.shares").read_text() == "512"
    assert (tmp_path / "cpu" / c1 / "cpu.cfs_quota_us").read_text() == "50000"
    assert (tmp_path / "cpuset" / "berth" / "cpuset.cpus").read_text() == "0-1"
    assert (tmp_path / "cpuset" / c1 / "cpuset.cpus").read_text() == "1"
    assert (tmp_path / "pids" / c1 / "pids.max").read_text() == "20"
    m.add(1234)
    assert (tmp_path / "freezer" / c1 / "cgroup.procs").read_text() == "1234"
    (tmp_path / "memory" / c1 / "memory.oom_control").write_text(
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"
    )
    assert m.oom_killed() == 2


def test_v2_applies_limits(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (tmp_path / "berth").mkdir()
    (tmp_path / "berth" / "c2").mkdir()
    (tmp_path / "berth" / "c2" / "memory.swap.max").write_text("max")
    m = cgroups.V2("berth/c2", root=str(tmp_path))
    m.create(
        cgroups.Resources(
            memory=64 << 20,
            memory_swap=96 << 20,
            cpu_shares=1024,
            cpu_quota=50000,
            cpu_period=100000,
            cpuset_cpus="0",
            pids_limit=7,
        )
    )
    d = tmp_path / "berth" / "c2"
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+cpu +cpuset +memory +pids +io"
    assert (d / "memory.max").read_text() == str(64 << 20)
    assert (d / "memory.swap.max").read_text() == str(32 << 20)
    assert (d / "cpu.max").read_text() == "50000 100000"
    assert (d / "cpu.weight").read_text() == "39"
    assert (d / "pids.max").read_text() == "7"
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert m.oom_killed() == 1
    m.freeze(True)
    assert (d / "cgroup.freeze").read_text() == "1"


def test_v1_mounts_from_mountinfo(tmp_path: Path) -> None:
    mi = tmp_path / "mountinfo"
    mi.write_text(
        "30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw shared:9 - cgroup cgroup rw,cpu,cpuacct\n"
        "31 25 0:27 / /sys/fs/cgroup/memory rw shared:10 - cgroup cgroup rw,memory\n"
        "32 25 0:28 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
    )
    assert cgroups.v1_mounts(str(mi)) == {
        "cpu": "/sys/fs/cgroup/cpu,cpuacct",
        "cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
        "memory": "/sys/fs/cgroup/memory",
        "": "/sys/fs/cgroup/unified",
    }


def test_relative_paths_sit_under_the_callers_cgroups(tmp_path: Path) -> None:
    own = tmp_path / "cgroup"
    own.write_text("4:memory:/svc/a\n3:cpu,cpuacct:/svc/b\n0::/svc/c\n")
    bases = cgroups.own_cgroups(str(own))
    assert bases == {"memory": "svc/a", "cpu": "svc/b", "cpuacct": "svc/b", "": "svc/c"}
    m = cgroups.V1("x/1", mounts={"memory": "/m", "cpu": "/c", "": "/u"}, bases=bases)
    assert m._dir("memory") == "/m/svc/a/x/1" and m._dir("cpu") == "/c/svc/b/x/1"
    assert m._dir("") == "/u/svc/c/x/1"


def test_join_self_writes_zero_to_v1_tasks_and_leaves_unified_to_clone(tmp_path: Path) -> None:
    mounts = _v1_tree(tmp_path)
    (tmp_path / "unified").mkdir()
    mounts[""] = str(tmp_path / "unified")
    m = cgroups.V1("berth/c1", mounts=mounts)
    for c in mounts.values():
        Path(c, "berth", "c1").mkdir(parents=True)
    m.join_self()
    assert (tmp_path / "pids" / "berth" / "c1" / "tasks").read_text() == "0"
    assert not (tmp_path / "unified" / "berth" / "c1" / "cgroup.procs").exists()
    assert m.unified_dir() == str(tmp_path / "unified" / "berth" / "c1")


def _unified_mount() -> str | None:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ")
            if right.split()[0] == "cgroup2":
                return left.split()[4]
    return None


@pytest.mark.parametrize("clone3", [True, False], ids=["clone3", "fallback"])
def test_fork_into_cgroup(clone3: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The child is born in the v2 directory (clone3), or writes itself there (older kernels)."""
    root = _unified_mount()
    if os.geteuid() != 0 or not root:
        pytest.skip("needs root and a cgroup2 mount")
    d = os.path.join(root, f"berth-test-{os.getpid()}")
    os.mkdir(d)
    try:
        monkeypatch.setattr(linux, "_clone3_works", clone3)
        r, w = os.pipe()
        pid = linux.fork_into_cgroup(d)
        if pid == 0:
            with open("/proc/self/cgroup") as f:
                os.write(w, f.read().encode())
            os._exit(0)
        os.close(w)
        with os.fdopen(r) as f:
            seen = f.read()
        assert os.waitpid(pid, 0)[1] == 0
        assert f"0::/berth-test-{os.getpid()}\n" in seen
    finally:
        os.rmdir(d)


def test_v1_network_hugetlb_rdma_and_kernel_tcp(tmp_path: Path) -> None:
    """runtime-spec network, hugepageLimits, rdma and memory.kernelTCP in their v1 files."""
    mounts = _v1_tree(tmp_path)
    for c in ("net_cls", "hugetlb", "rdma"):
        (tmp_path / c).mkdir()
        mounts[c] = str(tmp_path / c)
    mounts["net_prio"] = mounts["net_cls"]  # co-mounted, as usual
    c = "berth/c5"
    for ctrl in ("hugetlb", "memory"):
        (tmp_path / ctrl / c).mkdir(parents=True)
    (tmp_path / "hugetlb" / c / "hugetlb.2MB.limit_in_bytes").write_text("")
    (tmp_path / "memory" / c / "memory.kmem.tcp.limit_in_bytes").write_text("")
    res = cgroups.Resources.from_spec(
        {
            "network": {"classID": 0x100001, "priorities": [{"name": "eth0", "priority": 5}]},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}],
            "rdma": {"mlx5_1": {"hcaHandles": 3}},
            "memory": {"kernelTCP": 16 << 20},
        }
    )
    cgroups.V1(c, mounts=mounts).create(res)
    assert (tmp_path / "net_cls" / c / "net_cls.classid").read_text() == str(0x100001)
    assert (tmp_path / "net_cls" / c / "net_prio.ifpriomap").read_text() == "eth0 5"
    assert (tmp_path / "hugetlb" / c / "hugetlb.2MB.limit_in_bytes").read_text() == str(4 << 20)
    assert (tmp_path / "rdma" / c / "rdma.max").read_text() == "mlx5_1 hca_handle=3 hca_object=max"
    assert (tmp_path / "memory" / c / "memory.kmem.tcp.limit_in_bytes").read_text() == str(16 << 20)


@pytest.mark.parametrize(
    ("res", "message"),
    [
        ({"network": {"classID": 1}}, "no net_cls cgroup controller"),
        ({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}, "no hugetlb cgroup controller"),
        ({"rdma": {"mlx5_1": {"hcaObjects": 1}}}, "no rdma cgroup controller"),
        ({"unified": {"memory.high": "1M"}}, "needs cgroup v2"),
        ({"blockIO": {"leafWeight": 300}}, "no blkio.leaf_weight"),
    ],
)
def test_v1_refuses_what_the_host_lacks(
    tmp_path: Path, res: dict[str, object], message: str
) -> None:
    """runc drops such a limit without a word; berth-runtime refuses the container."""
    mounts = _v1_tree(tmp_path)
    (tmp_path / "blkio").mkdir()
    mounts["blkio"] = str(tmp_path / "blkio")
    with pytest.raises(InvalidArgument, match=message):
        cgroups.V1("berth/c6", mounts=mounts).create(cgroups.Resources.from_spec(res))


def test_v2_unified_hugetlb_rdma(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("memory hugetlb rdma\n")
    d = tmp_path / "berth" / "c7"
    d.mkdir(parents=True)
    (d / "memory.high").write_text("max")
    (d / "hugetlb.2MB.max").write_text("max")
    m = cgroups.V2("berth/c7", root=str(tmp_path))
    m.create(
        cgroups.Resources.from_spec(
            {
                "unified": {"memory.high": "1048576"},
                "hugepageLimits": [{"pageSize": "2MB", "limit": 2 << 20}],
                "rdma": {"mlx5_1": {"hcaHandles": 1, "hcaObjects": 9}},
            }
        )
    )
    assert (d / "memory.high").read_text() == "1048576"
    assert (d / "hugetlb.2MB.max").read_text() == str(2 << 20)
    assert (d / "rdma.max").read_text() == "mlx5_1 hca_handle=1 hca_object=9"
    for bad in ("cgroup.procs", "../x.y", "memory", "nosuch.file"):
        with pytest.raises(InvalidArgument, match="unified"):
            m.create(cgroups.Resources.from_spec({"unified": {bad: "1"}}))
    with pytest.raises(InvalidArgument, match="no cgroup v2 equivalent"):
        m.create(cgroups.Resources.from_spec({"network": {"classID": 1}}))


def test_kernel_memory_enforced_until_5_16() -> None:
    assert cgroups.kernel_memory_enforced("5.15.0-91-generic")
    assert not cgroups.kernel_memory_enforced("5.16.1")
    assert not cgroups.kernel_memory_enforced("6.18.44-fc")


def test_frozen_is_what_the_kernel_says(tmp_path: Path) -> None:
    """`frozen()` (berth-runtime's `paused`): v2 reads cgroup.events, not the request in
    cgroup.freeze; v1 FROZEN only, not FREEZING."""
    (tmp_path / "c").mkdir()
    v2 = cgroups.V2("c", root=str(tmp_path))
    v2.freeze(True)
    (tmp_path / "c" / "cgroup.events").write_text("populated 1\nfrozen 0\n")
    assert (tmp_path / "c" / "cgroup.freeze").read_text() == "1" and not v2.frozen()
    (tmp_path / "c" / "cgroup.events").write_text("populated 1\nfrozen 1\n")
    assert v2.frozen()
    (tmp_path / "v1").mkdir()
    mounts = _v1_tree(tmp_path / "v1")
    v1 = cgroups.V1("c", mounts=mounts)
    (tmp_path / "v1" / "freezer" / "c").mkdir()
    (tmp_path / "v1" / "freezer" / "c" / "freezer.state").write_text("FREEZING\n")
    assert not v1.frozen()
    (tmp_path / "v1" / "freezer" / "c" / "freezer.state").write_text("FROZEN\n")
    assert v1.frozen()


def test_v2_a_refused_device_weight_names_the_field(tmp_path: Path) -> None:
    """io.weight that will not take a device's weight (no BFQ, no io.cost on it: the kernel
    says EOPNOTSUPP; here a directory says EISDIR) is an InvalidArgument naming the field."""
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "io.weight").mkdir()
    res = cgroups.Resources(blkio_weight_devices=((254, 0, 300),))
    with pytest.raises(
        InvalidArgument, match="blockIO.weightDevice: the kernel refused a weight for device 254:0"
    ):
        cgroups.V2("c", root=str(tmp_path))._io(res)


def test_v2_relative_path_under_the_callers_parent(monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative cgroupsPath on v2 goes under the parent of the caller's cgroup, as runc
    puts it (the caller's own holds the caller: no controllers for its children)."""
    monkeypatch.setattr(cgroups, "is_v2", lambda root="/sys/fs/cgroup": True)
    assert cgroups.for_spec("x/c", {"": "user.slice/session-1.scope"}).path == "user.slice/x/c"
    assert cgroups.for_spec("x/c", {"": "top"}).path == "x/c"
    assert cgroups.for_spec("x/c", {"": ""}).path == "x/c"
    assert cgroups.for_spec("/abs/c", {"": "a/b"}).path == "abs/c"


def test_the_dirs_of_a_cgroup_on_v1_and_on_v2(monkeypatch: pytest.MonkeyPatch) -> None:
    """`cgroups.dirs`: each v1 hierarchy's directory (a shared cpu,cpuacct once; a hybrid
    layout's unified one too), or v2's one directory straight under /sys/fs/cgroup (a glob
    of `*/PARENT`, what the tests' daemons looked at, finds nothing there)."""
    mounts = {"cpu": "/c", "cpuacct": "/c", "memory": "/m", "": "/u"}
    monkeypatch.setattr(cgroups, "is_v2", lambda root="/sys/fs/cgroup": False)
    monkeypatch.setattr(cgroups, "v1_mounts", lambda mountinfo="": mounts)
    assert cgroups.dirs("/berth-test") == ["/c/berth-test", "/m/berth-test", "/u/berth-test"]
    monkeypatch.setattr(cgroups, "is_v2", lambda root="/sys/fs/cgroup": True)
    assert cgroups.dirs("berth-test") == ["/sys/fs/cgroup/berth-test"]
    assert cgroups.V2("a/b", root="/r").dirs() == ["/r/a/b"]


def test_remove_parent_on_v2_removes_the_unified_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cgroups, "detect", lambda path: cgroups.V2(path, root=str(tmp_path)))
    (tmp_path / "berth" / "busy").mkdir(parents=True)
    cgroups.remove_parent("berth")  # one with a child stays
    assert (tmp_path / "berth").is_dir()
    (tmp_path / "berth" / "busy").rmdir()
    cgroups.remove_parent("berth")
    assert not (tmp_path / "berth").exists()
