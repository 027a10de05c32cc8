"""The cgroup v1 manager: one directory per controller hierarchy."""

from __future__ import annotations

import os

from berth.cgroups.files import (
    attach_devices,
    check_word,
    first_present,
    flat_kv,
    rdma_line,
    read,
    rmdir_retry,
    write,
)
from berth.cgroups.resources import (
    BLKIO_WEIGHT_UNSUPPORTED,
    THROTTLE_KINDS,
    Resources,
    Stats,
    kernel_memory_enforced,
)
from berth.errors import InvalidArgument, System


def _device_rule(rule: dict) -> str:  # type: ignore[type-arg]
    """A runtime-spec device rule as the v1 devices controller writes it: `c 1:3 rwm`."""
    typ = rule.get("type") or "a"
    if typ == "a":
        return "a"
    major = "*" if rule.get("major") in (None, -1) else rule["major"]
    minor = "*" if rule.get("minor") in (None, -1) else rule["minor"]
    return f"{typ} {major}:{minor} {rule.get('access') or 'rwm'}"


class V1:
    """cgroup v1: one directory per controller hierarchy."""

    # name=systemd is no controller, but runc makes the container's cgroup there too, and
    # the container sees that directory at /sys/fs/cgroup/systemd
    CONTROLLERS = (
        "memory",
        "cpu",
        "cpuacct",
        "cpuset",
        "pids",
        "freezer",
        "devices",
        "blkio",
        "net_cls",
        "net_prio",
        "hugetlb",
        "rdma",
        "perf_event",
        "name=systemd",
        "",
    )  # "": the unified hierarchy of a hybrid layout

    def __init__(
        self, path: str, *, mounts: dict[str, str], bases: dict[str, str] | None = None
    ) -> None:
        self.path = path.strip("/")
        # controller -> hierarchy mount point (cpu and cpuacct may share one)
        self.mounts = {c: m for c, m in mounts.items() if c in self.CONTROLLERS}
        # controller -> the cgroup a relative path is under ("" for the root)
        self.bases = bases or {}

    def _rel(self, controller: str) -> str:
        base = self.bases.get(controller, "")
        return f"{base}/{self.path}".strip("/") if base else self.path

    def _dir(self, controller: str) -> str | None:
        m = self.mounts.get(controller)
        return os.path.join(m, self._rel(controller)) if m else None

    def dirs(self) -> list[str]:
        """The cgroup's directory in each hierarchy (cpu and cpuacct's shared one once)."""
        return sorted({os.path.join(m, self._rel(c)) for c, m in self.mounts.items()})

    def create(self, res: Resources) -> None:
        """Make the cgroup's directory in each hierarchy and write the limits (InvalidArgument
        for a limit this host has no controller or file for)."""
        cpuset = self._dir("cpuset")
        if cpuset:
            self._fill_cpusets()
        for d in self.dirs():
            os.makedirs(d, exist_ok=True)
        self._memory(res)
        self._blkio(res)
        self._v1_only(res)
        self._cpu(res)
        if cpuset and res.cpuset_cpus:
            try:
                write(os.path.join(cpuset, "cpuset.cpus"), res.cpuset_cpus)
            except System as e:
                raise InvalidArgument(f"invalid cpuset.cpus {res.cpuset_cpus!r}: {e}") from e
        if cpuset and res.cpuset_mems:
            write(os.path.join(cpuset, "cpuset.mems"), res.cpuset_mems)
        pids = self._dir("pids")
        if pids and res.pids_limit and res.pids_limit > 0:
            write(os.path.join(pids, "pids.max"), res.pids_limit)
        self._devices(res)

    def _fill_cpusets(self) -> None:
        """cpuset refuses tasks until cpus and mems are set: fill each new level from its
        parent."""
        root = self.mounts["cpuset"]
        cur = root
        for part in self._rel("cpuset").split("/"):
            parent, cur = cur, os.path.join(cur, part)
            os.makedirs(cur, exist_ok=True)
            for f in ("cpuset.cpus", "cpuset.mems"):
                if not read(os.path.join(cur, f)).strip():
                    write(os.path.join(cur, f), read(os.path.join(parent, f)).strip())

    def _memory(self, res: Resources) -> None:
        """The memory controller's limits, kernel TCP and kernel memory included."""
        mem = self._dir("memory")
        if mem:
            if res.memory:
                write(os.path.join(mem, "memory.limit_in_bytes"), res.memory)
            if res.memory_swap and os.path.exists(os.path.join(mem, "memory.memsw.limit_in_bytes")):
                write(os.path.join(mem, "memory.memsw.limit_in_bytes"), res.memory_swap)
            if res.memory_reservation:
                write(os.path.join(mem, "memory.soft_limit_in_bytes"), res.memory_reservation)
            if res.memory_swappiness is not None and res.memory_swappiness >= 0:
                write(os.path.join(mem, "memory.swappiness"), res.memory_swappiness)
            if res.oom_kill_disable:
                write(os.path.join(mem, "memory.oom_control"), 1)
        elif (
            res.memory_reservation
            or res.memory_swappiness is not None
            or res.oom_kill_disable
            or res.kernel_tcp
        ):
            raise InvalidArgument(
                "no memory cgroup controller is mounted: cannot apply the "
                "memory reservation, swappiness, OOM killer or kernelTCP "
                "setting"
            )
        if mem and res.memory_use_hierarchy is not None:
            try:
                write(os.path.join(mem, "memory.use_hierarchy"), int(res.memory_use_hierarchy))
            except System as e:
                # Linux 5.11 and later hold every memory cgroup hierarchical and refuse a 0
                # (runc 1.1 never writes the file: it drops the field, true or false)
                raise InvalidArgument(
                    f"linux.resources.memory.useHierarchy: the kernel refused "
                    f"{str(res.memory_use_hierarchy).lower()} ({e.message}): Linux 5.11 and "
                    f"later keep every memory cgroup hierarchical"
                ) from None
        if mem and res.kernel_tcp:
            f = os.path.join(mem, "memory.kmem.tcp.limit_in_bytes")
            if not os.path.exists(f):
                raise InvalidArgument(
                    "linux.resources.memory.kernelTCP: this kernel has no "
                    "kernel TCP memory accounting (memory.kmem.tcp)"
                )
            write(f, res.kernel_tcp)
        if mem and res.kernel_memory and kernel_memory_enforced():
            write(os.path.join(mem, "memory.kmem.limit_in_bytes"), res.kernel_memory)

    def _cpu(self, res: Resources) -> None:
        """CFS shares, quota and period, the realtime budget, idle and burst."""
        cpu = self._dir("cpu")
        if cpu:
            if res.cpu_shares:
                write(os.path.join(cpu, "cpu.shares"), res.cpu_shares)
            if res.cpu_period:
                write(os.path.join(cpu, "cpu.cfs_period_us"), res.cpu_period)
            if res.cpu_quota:
                write(os.path.join(cpu, "cpu.cfs_quota_us"), res.cpu_quota)
            # the period first: the kernel checks the runtime against it
            if res.cpu_rt_period:
                write(os.path.join(cpu, "cpu.rt_period_us"), res.cpu_rt_period)
            if res.cpu_rt_runtime:
                write(os.path.join(cpu, "cpu.rt_runtime_us"), res.cpu_rt_runtime)
            if res.cpu_idle is not None:
                write(os.path.join(cpu, "cpu.idle"), res.cpu_idle)
            if res.cpu_burst is not None:
                write(os.path.join(cpu, "cpu.cfs_burst_us"), res.cpu_burst)
        elif (
            res.cpu_rt_period
            or res.cpu_rt_runtime
            or res.cpu_idle is not None
            or res.cpu_burst is not None
        ):
            raise InvalidArgument(
                "no cpu cgroup controller is mounted: cannot apply the realtime or idle setting"
            )

    def _devices(self, res: Resources) -> None:
        """The device rules, in the devices controller's allow and deny files."""
        dev = self._dir("devices")
        if dev and res.devices:
            for rule in res.devices:
                write(
                    os.path.join(dev, "devices.allow" if rule.get("allow") else "devices.deny"),
                    _device_rule(rule),
                )
        elif res.devices:
            # no v1 devices controller: the unified hierarchy of a hybrid layout enforces
            # them as v2 does; with neither, the container would get every device
            unified = self._dir("")
            if not unified:
                raise System(
                    "cannot apply the device rules: no devices cgroup controller "
                    "and no cgroup2 hierarchy is mounted"
                )
            attach_devices(unified, res.devices)

    def _v1_only(self, res: Resources) -> None:
        """net_cls, net_prio, hugetlb and rdma: each an error where its hierarchy is not
        mounted (runc drops such a limit without a word), and unified, which needs v2."""
        if res.unified:
            raise InvalidArgument(
                "linux.resources.unified needs cgroup v2: this host's cgroups are v1"
            )
        wanted = (
            ("net_cls", res.net_classid is not None, "network.classID"),
            ("net_prio", bool(res.net_priorities), "network.priorities"),
            ("hugetlb", bool(res.hugetlb), "hugepageLimits"),
            ("rdma", bool(res.rdma), "rdma"),
        )
        for ctrl, asked, field in wanted:
            if asked and not self._dir(ctrl):
                raise InvalidArgument(
                    f"linux.resources.{field}: no {ctrl} cgroup controller is mounted on this host"
                )
        if res.net_classid is not None:
            write(os.path.join(self._dir("net_cls") or "", "net_cls.classid"), res.net_classid)
        for name, prio in res.net_priorities:
            check_word(name, "network.priorities name")
            write(os.path.join(self._dir("net_prio") or "", "net_prio.ifpriomap"), f"{name} {prio}")
        for size, limit in res.hugetlb:
            check_word(size, "hugepageLimits pageSize")
            f = os.path.join(self._dir("hugetlb") or "", f"hugetlb.{size}.limit_in_bytes")
            if not os.path.exists(f):
                raise InvalidArgument(
                    f"linux.resources.hugepageLimits: this host has no huge pages of size {size}"
                )
            write(f, limit)
        for dev, handles, objects in res.rdma:
            check_word(dev, "rdma device")
            write(
                os.path.join(self._dir("rdma") or "", "rdma.max"), rdma_line(dev, handles, objects)
            )

    def _blkio(self, res: Resources) -> None:
        """blkio.weight (CFQ) or blkio.bfq.weight (BFQ), per-device weights, the leaf
        weights (CFQ only) and the throttling files; an error where the kernel has none of a
        file asked for."""
        if res.blkio_leaf_weight or res.blkio_leaf_weight_devices:
            blk = self._dir("blkio")
            if not blk or not os.path.exists(os.path.join(blk, "blkio.leaf_weight")):
                raise InvalidArgument(
                    "linux.resources.blockIO leafWeight: this kernel has no "
                    "blkio.leaf_weight (the CFQ I/O scheduler is gone)"
                )
            if res.blkio_leaf_weight:
                write(os.path.join(blk, "blkio.leaf_weight"), res.blkio_leaf_weight)
            for major, minor, weight in res.blkio_leaf_weight_devices:
                write(os.path.join(blk, "blkio.leaf_weight_device"), f"{major}:{minor} {weight}")
        if not (res.blkio_weight or res.blkio_weight_devices or res.blkio_throttle):
            return
        blk = self._dir("blkio")
        if not blk:
            raise InvalidArgument(
                "no blkio cgroup controller is mounted: cannot apply the "
                "block I/O weight or throttling"
            )
        if res.blkio_weight:
            f = first_present(blk, ("blkio.weight", "blkio.bfq.weight"))
            if f is None:
                raise InvalidArgument(BLKIO_WEIGHT_UNSUPPORTED)
            write(f, res.blkio_weight)
        if res.blkio_weight_devices:
            f = first_present(blk, ("blkio.weight_device", "blkio.bfq.weight_device"))
            if f is None:
                raise InvalidArgument(
                    "Your kernel does not support Block I/O weight_device "
                    "or the cgroup is not mounted"
                )
            for major, minor, weight in res.blkio_weight_devices:
                write(f, f"{major}:{minor} {weight}")
        for kind, major, minor, limit in res.blkio_throttle:
            write(
                os.path.join(blk, "blkio.throttle." + THROTTLE_KINDS[kind][0]),
                f"{major}:{minor} {limit}",
            )

    def procs_files(self) -> list[str]:
        return [os.path.join(d, "cgroup.procs") for d in self.dirs()]

    def add(self, pid: int) -> None:
        for f in self.procs_files():
            write(f, pid)

    def join_self(self) -> None:
        """Move the calling process, which must be single-threaded, into the v1 hierarchies;
        the unified one of a hybrid layout is `unified_dir`, for `linux.fork_into_cgroup`.

        Written as "0" to each hierarchy's `tasks`: a thread moving itself skips the kernel's
        thread-group lock, whose first writer after a quiet spell waits out an RCU grace
        period (6 to 15 ms per start or exec here), which a write to `cgroup.procs` pays."""
        files = {os.path.join(m, self._rel(c), "tasks") for c, m in self.mounts.items() if c}
        for f in sorted(files):
            write(f, 0)

    def unified_dir(self) -> str | None:
        return self._dir("")

    def oom_killed(self) -> int:
        mem = self._dir("memory")
        return (
            flat_kv(read(os.path.join(mem, "memory.oom_control"))).get("oom_kill", 0) if mem else 0
        )

    def stats(self) -> Stats:
        s = Stats()
        mem = self._dir("memory")
        if mem:
            s.memory_usage = int(read(os.path.join(mem, "memory.usage_in_bytes")) or 0)
            s.memory_limit = int(read(os.path.join(mem, "memory.limit_in_bytes")) or 0)
            s.extra = flat_kv(read(os.path.join(mem, "memory.stat")))
        pids = self._dir("pids")
        if pids:
            s.pids = int(read(os.path.join(pids, "pids.current")) or 0)
        acct = self._dir("cpuacct")
        if acct:
            s.cpu_usage_ns = int(read(os.path.join(acct, "cpuacct.usage")) or 0)
        blk = self._dir("blkio")
        if blk:
            # lines "MAJ:MIN Read N" / "MAJ:MIN Write N"
            for line in read(
                os.path.join(blk, "blkio.throttle.io_service_bytes_recursive")
            ).splitlines():
                w = line.split()
                if len(w) == 3 and w[2].isdigit():
                    if w[1] == "Read":
                        s.io_read += int(w[2])
                    elif w[1] == "Write":
                        s.io_write += int(w[2])
        return s

    def freeze(self, frozen: bool) -> None:
        fr = self._dir("freezer")
        if fr:
            write(os.path.join(fr, "freezer.state"), "FROZEN" if frozen else "THAWED")

    def frozen(self) -> bool:
        """Whether the freezer holds the cgroup frozen (FREEZING, on the way there, is not)."""
        fr = self._dir("freezer")
        return fr is not None and read(os.path.join(fr, "freezer.state")).strip() == "FROZEN"

    def remove(self) -> None:
        for d in self.dirs():
            rmdir_retry(d)


def v1_mounts(mountinfo: str = "/proc/self/mountinfo") -> dict[str, str]:
    """controller name → mount point of its v1 hierarchy, from mountinfo."""
    out: dict[str, str] = {}
    for line in read(mountinfo).splitlines():
        left, _, right = line.partition(" - ")
        fields = right.split()
        if len(fields) >= 3 and fields[0] == "cgroup2":
            out[""] = left.split()[4]  # hybrid: runc puts containers in it too
            continue
        if len(fields) < 3 or fields[0] != "cgroup":
            continue
        point = left.split()[4]
        for opt in fields[2].split(","):
            if opt in V1.CONTROLLERS:
                out[opt] = point
    return out
