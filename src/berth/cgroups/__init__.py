"""One cgroup manager interface over cgroup v1 and v2: create with limits, add a process,
read OOM kills and stats, freeze, remove.

Imports `errors` and `linux`. The manager is picked by `detect()` (crun's get_cgroup_manager): v2 where
/sys/fs/cgroup is a cgroup2 mount, v1 otherwise. Both take a root so unit tests run them on a fake
cgroupfs in a temporary directory.

Device rules: v1 writes them to the devices controller; v2, which has none, attaches a BPF
device program built from them (`devices`, loaded through `linux.bpf`), and refuses to create
the cgroup when it cannot.
"""

from __future__ import annotations

import errno
import os
import time

from berth import linux
from berth.errors import InvalidArgument, System

TYPE_CHECKING = False  # not typing's (~3 ms of berth-runtime's start-up)
if TYPE_CHECKING:
    from typing import Any, Protocol
else:
    Protocol = object  # CgroupManager is a protocol for the type checker only


class Resources:
    """The runtime-spec `linux.resources` subset berth applies. Plain classes here, not
    dataclasses: berth-runtime imports this module, and `dataclasses` costs ~4 ms of its
    start-up."""

    __slots__ = ("memory", "memory_swap", "cpu_shares", "cpu_quota", "cpu_period",
                 "cpuset_cpus", "cpuset_mems", "pids_limit", "devices", "memory_reservation",
                 "memory_swappiness", "oom_kill_disable", "blkio_weight", "blkio_weight_devices",
                 "blkio_throttle", "kernel_memory", "kernel_tcp", "blkio_leaf_weight",
                 "blkio_leaf_weight_devices", "net_classid", "net_priorities", "hugetlb", "rdma",
                 "unified", "cpu_rt_runtime", "cpu_rt_period", "cpu_idle", "cpu_burst",
                 "memory_use_hierarchy")

    def __init__(self, *, memory: int | None = None, memory_swap: int | None = None,
                 cpu_shares: int | None = None, cpu_quota: int | None = None,
                 cpu_period: int | None = None, cpuset_cpus: str | None = None,
                 cpuset_mems: str | None = None, pids_limit: int | None = None,
                 devices: tuple[dict, ...] = (),  # type: ignore[type-arg]
                 memory_reservation: int | None = None, memory_swappiness: int | None = None,
                 oom_kill_disable: bool = False, blkio_weight: int | None = None,
                 blkio_weight_devices: tuple[tuple[int, int, int], ...] = (),
                 blkio_throttle: tuple[tuple[str, int, int, int], ...] = (),
                 kernel_memory: int | None = None, kernel_tcp: int | None = None,
                 blkio_leaf_weight: int | None = None,
                 blkio_leaf_weight_devices: tuple[tuple[int, int, int], ...] = (),
                 net_classid: int | None = None,
                 net_priorities: tuple[tuple[str, int], ...] = (),
                 hugetlb: tuple[tuple[str, int], ...] = (),
                 rdma: tuple[tuple[str, int | None, int | None], ...] = (),
                 unified: tuple[tuple[str, str], ...] = (),
                 cpu_rt_runtime: int | None = None, cpu_rt_period: int | None = None,
                 cpu_idle: int | None = None, cpu_burst: int | None = None,
                 memory_use_hierarchy: bool | None = None) -> None:
        self.memory = memory                # bytes
        self.memory_swap = memory_swap      # memory + swap, bytes; -1 unlimited
        self.memory_reservation = memory_reservation    # soft limit, bytes
        self.memory_swappiness = memory_swappiness      # 0..100 (v1 only)
        self.oom_kill_disable = oom_kill_disable        # v1 only
        self.blkio_weight = blkio_weight                # 10..1000
        self.blkio_weight_devices = blkio_weight_devices   # (major, minor, weight)
        # (kind, major, minor, limit): kind one of THROTTLE_KINDS
        self.blkio_throttle = blkio_throttle
        self.blkio_leaf_weight = blkio_leaf_weight      # v1 CFQ only
        self.blkio_leaf_weight_devices = blkio_leaf_weight_devices   # (major, minor, weight)
        self.kernel_memory = kernel_memory  # v1 before Linux 5.16 only
        self.kernel_tcp = kernel_tcp        # v1 only: memory.kmem.tcp.limit_in_bytes
        self.net_classid = net_classid      # v1 net_cls.classid
        self.net_priorities = net_priorities    # v1 net_prio.ifpriomap: (interface, priority)
        self.hugetlb = hugetlb              # (page size as "2MB", limit in bytes)
        self.rdma = rdma                    # (device, hca_handle, hca_object); None is "max"
        # v2 files by name, written as they are (runtime-spec linux.resources.unified)
        self.unified = unified
        self.cpu_rt_runtime = cpu_rt_runtime    # v1 cpu.rt_runtime_us
        self.cpu_rt_period = cpu_rt_period      # v1 cpu.rt_period_us
        self.cpu_idle = cpu_idle                # cpu.idle (SCHED_IDLE for the group)
        self.cpu_burst = cpu_burst              # microseconds: cfs_burst_us, cpu.max.burst
        self.memory_use_hierarchy = memory_use_hierarchy    # v1 memory.use_hierarchy
        self.cpu_shares = cpu_shares
        self.cpu_quota = cpu_quota          # microseconds per period
        self.cpu_period = cpu_period
        self.cpuset_cpus = cpuset_cpus
        self.cpuset_mems = cpuset_mems
        self.pids_limit = pids_limit        # <= 0 unlimited
        # runtime-spec device rules, in order: {"allow", "type", "major", "minor", "access"}
        self.devices = devices

    def replace(self, **changes: Any) -> Resources:
        return Resources(**{**{k: getattr(self, k) for k in self.__slots__}, **changes})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Resources) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __repr__(self) -> str:
        return "Resources(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__) + ")"

    @classmethod
    def from_spec(cls, res: dict) -> Resources:  # type: ignore[type-arg]
        mem = res.get("memory") or {}
        cpu = res.get("cpu") or {}
        pids = res.get("pids") or {}
        blk = res.get("blockIO") or {}
        net = res.get("network") or {}
        try:
            return cls(memory=mem.get("limit"), memory_swap=mem.get("swap"),
                       cpu_shares=cpu.get("shares"), cpu_quota=cpu.get("quota"),
                       cpu_period=cpu.get("period"), cpuset_cpus=cpu.get("cpus"),
                       cpuset_mems=cpu.get("mems"), pids_limit=pids.get("limit"),
                       devices=tuple(res.get("devices") or ()),
                       memory_reservation=mem.get("reservation"),
                       memory_swappiness=mem.get("swappiness"),
                       oom_kill_disable=bool(mem.get("disableOOMKiller")),
                       kernel_memory=mem.get("kernel"), kernel_tcp=mem.get("kernelTCP"),
                       blkio_weight=blk.get("weight"),
                       blkio_leaf_weight=blk.get("leafWeight"),
                       blkio_weight_devices=tuple(
                           (int(d["major"]), int(d["minor"]), int(d["weight"]))
                           for d in blk.get("weightDevice") or () if d.get("weight")),
                       blkio_leaf_weight_devices=tuple(
                           (int(d["major"]), int(d["minor"]), int(d["leafWeight"]))
                           for d in blk.get("weightDevice") or () if d.get("leafWeight")),
                       blkio_throttle=tuple((kind, int(d["major"]), int(d["minor"]),
                                             int(d["rate"]))
                                            for kind in THROTTLE_KINDS
                                            for d in blk.get(kind) or ()),
                       net_classid=net.get("classID"),
                       net_priorities=tuple((str(p["name"]), int(p["priority"]))
                                            for p in net.get("priorities") or ()),
                       hugetlb=tuple((str(h["pageSize"]), int(h["limit"]))
                                     for h in res.get("hugepageLimits") or ()),
                       rdma=tuple((str(dev), _opt_int(v.get("hcaHandles")),
                                   _opt_int(v.get("hcaObjects")))
                                  for dev, v in (res.get("rdma") or {}).items()),
                       cpu_rt_runtime=cpu.get("realtimeRuntime"),
                       cpu_rt_period=cpu.get("realtimePeriod"), cpu_idle=cpu.get("idle"),
                       cpu_burst=cpu.get("burst"),
                       memory_use_hierarchy=mem.get("useHierarchy"),
                       unified=tuple((str(k), str(v))
                                     for k, v in (res.get("unified") or {}).items()))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise InvalidArgument(f"invalid linux.resources: {e!r}") from None


def _opt_int(v: object) -> int | None:
    return None if v is None else int(v)  # type: ignore[call-overload]


# runtime-spec blockIO throttle keys → (v1 file suffix, v2 io.max key)
THROTTLE_KINDS = {
    "throttleReadBpsDevice": ("read_bps_device", "rbps"),
    "throttleWriteBpsDevice": ("write_bps_device", "wbps"),
    "throttleReadIOPSDevice": ("read_iops_device", "riops"),
    "throttleWriteIOPSDevice": ("write_iops_device", "wiops"),
}
BLKIO_WEIGHT_UNSUPPORTED = ("Your kernel does not support Block I/O weight or the cgroup is "
                            "not mounted")


def kernel_memory_enforced(release: str | None = None) -> bool:
    """Whether this kernel still enforces a v1 kernel memory limit: Linux 5.16 and later
    accept a write to memory.kmem.limit_in_bytes and ignore it."""
    parts = (release or os.uname().release).split(".")
    try:
        return (int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)) < (5, 16)
    except (IndexError, ValueError):
        return False


def _check_word(value: str, what: str) -> None:
    """A name written into a cgroup file as one word of a line: nothing that would add a
    field or a line."""
    if not value or any(c.isspace() for c in value) or "/" in value:
        raise InvalidArgument(f"invalid {what}: {value!r}")


def _rdma_line(dev: str, handles: int | None, objects: int | None) -> str:
    return (f"{dev} hca_handle={'max' if handles is None else handles} "
            f"hca_object={'max' if objects is None else objects}")


def _first_present(d: str, names: tuple[str, ...]) -> str | None:
    for n in names:
        if os.path.exists(os.path.join(d, n)):
            return os.path.join(d, n)
    return None


class Stats:
    __slots__ = ("memory_usage", "memory_limit", "pids", "cpu_usage_ns", "extra", "io_read",
                 "io_write")

    def __init__(self) -> None:
        self.memory_usage = 0
        self.memory_limit = 0
        self.pids = 0
        self.cpu_usage_ns = 0
        self.extra: dict[str, int] = {}
        self.io_read = 0       # bytes
        self.io_write = 0


class CgroupManager(Protocol):
    """Lifecycle: create(limits) → a child forked into unified_dir() (linux.fork_into_cgroup)
    calls join_self(), or add(pid) from outside … → oom_killed()/stats() → remove().

    `path` is relative to the hierarchy root(s), e.g. `berth/<id>`."""

    path: str

    def create(self, res: Resources) -> None: ...
    def procs_files(self) -> list[str]: ...
    def add(self, pid: int) -> None: ...
    def join_self(self) -> None: ...
    def unified_dir(self) -> str | None: ...
    def oom_killed(self) -> int: ...
    def stats(self) -> Stats: ...
    def freeze(self, frozen: bool) -> None: ...
    def remove(self) -> None: ...


# cgroup files through os.open/os.read/os.write (writes as open() would: created, truncated): a
# Python file object costs ~15 us to set up, and a container's start reads or writes some forty


def _write(path: str, value: str | int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        try:
            os.write(fd, str(value).encode())
        finally:
            os.close(fd)
    except OSError as e:
        raise System(f"write {value} to {path}: {e.strerror}") from e


def _read(path: str) -> str:
    try:
        return linux.read_text(path)
    except OSError:
        return ""


def _device_rule(rule: dict) -> str:  # type: ignore[type-arg]
    """A runtime-spec device rule as the v1 devices controller writes it: `c 1:3 rwm`."""
    typ = rule.get("type") or "a"
    if typ == "a":
        return "a"
    major = "*" if rule.get("major") in (None, -1) else rule["major"]
    minor = "*" if rule.get("minor") in (None, -1) else rule["minor"]
    return f"{typ} {major}:{minor} {rule.get('access') or 'rwm'}"


def _attach_devices(cgroup_dir: str, rules: tuple[dict, ...]) -> None:  # type: ignore[type-arg]
    """Enforce the device rules on a cgroup v2 directory, which has no devices controller: a
    BPF device program built from them (`devices`), attached before any process joins. A
    failure raises: a container must not start with its device rules dropped."""
    from berth.cgroups import devices  # only where there is a v2 cgroup with rules
    from berth.linux import bpf
    prog = devices.compile_rules(rules)
    try:
        bpf.attach_cgroup_device(cgroup_dir, prog)
    except OSError as e:
        raise System(f"cannot apply the device rules to cgroup {cgroup_dir}: loading or "
                     f"attaching its BPF device program failed: {e.strerror or e}") from e


def _rmdir_retry(path: str) -> None:
    for _ in range(50):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY:
                return
            time.sleep(0.01)


def _flat_kv(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


class V1:
    """cgroup v1: one directory per controller hierarchy."""

    # name=systemd is no controller, but runc makes the container's cgroup there too, and
    # the container sees that directory at /sys/fs/cgroup/systemd
    CONTROLLERS = ("memory", "cpu", "cpuacct", "cpuset", "pids", "freezer", "devices", "blkio",
                   "net_cls", "net_prio", "hugetlb", "rdma", "perf_event",
                   "name=systemd", "")  # "": the unified hierarchy of a hybrid layout

    def __init__(self, path: str, *, mounts: dict[str, str],
                 bases: dict[str, str] | None = None) -> None:
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

    def _dirs(self) -> list[str]:
        return sorted({os.path.join(m, self._rel(c)) for c, m in self.mounts.items()})

    def create(self, res: Resources) -> None:
        cpuset = self._dir("cpuset")
        if cpuset:
            # cpuset refuses tasks until cpus and mems are set: fill each new level from its parent
            root = self.mounts["cpuset"]
            cur = root
            for part in self._rel("cpuset").split("/"):
                parent, cur = cur, os.path.join(cur, part)
                os.makedirs(cur, exist_ok=True)
                for f in ("cpuset.cpus", "cpuset.mems"):
                    if not _read(os.path.join(cur, f)).strip():
                        _write(os.path.join(cur, f), _read(os.path.join(parent, f)).strip())
        for d in self._dirs():
            os.makedirs(d, exist_ok=True)
        mem = self._dir("memory")
        if mem:
            if res.memory:
                _write(os.path.join(mem, "memory.limit_in_bytes"), res.memory)
            if res.memory_swap and os.path.exists(os.path.join(mem, "memory.memsw.limit_in_bytes")):
                _write(os.path.join(mem, "memory.memsw.limit_in_bytes"), res.memory_swap)
            if res.memory_reservation:
                _write(os.path.join(mem, "memory.soft_limit_in_bytes"), res.memory_reservation)
            if res.memory_swappiness is not None and res.memory_swappiness >= 0:
                _write(os.path.join(mem, "memory.swappiness"), res.memory_swappiness)
            if res.oom_kill_disable:
                _write(os.path.join(mem, "memory.oom_control"), 1)
        elif res.memory_reservation or res.memory_swappiness is not None or res.oom_kill_disable \
                or res.kernel_tcp:
            raise InvalidArgument("no memory cgroup controller is mounted: cannot apply the "
                                  "memory reservation, swappiness, OOM killer or kernelTCP "
                                  "setting")
        if mem and res.memory_use_hierarchy is not None:
            _write(os.path.join(mem, "memory.use_hierarchy"), int(res.memory_use_hierarchy))
        if mem and res.kernel_tcp:
            f = os.path.join(mem, "memory.kmem.tcp.limit_in_bytes")
            if not os.path.exists(f):
                raise InvalidArgument("linux.resources.memory.kernelTCP: this kernel has no "
                                      "kernel TCP memory accounting (memory.kmem.tcp)")
            _write(f, res.kernel_tcp)
        if mem and res.kernel_memory and kernel_memory_enforced():
            _write(os.path.join(mem, "memory.kmem.limit_in_bytes"), res.kernel_memory)
        self._blkio(res)
        self._v1_only(res)
        cpu = self._dir("cpu")
        if cpu:
            if res.cpu_shares:
                _write(os.path.join(cpu, "cpu.shares"), res.cpu_shares)
            if res.cpu_period:
                _write(os.path.join(cpu, "cpu.cfs_period_us"), res.cpu_period)
            if res.cpu_quota:
                _write(os.path.join(cpu, "cpu.cfs_quota_us"), res.cpu_quota)
            # the period first: the kernel checks the runtime against it
            if res.cpu_rt_period:
                _write(os.path.join(cpu, "cpu.rt_period_us"), res.cpu_rt_period)
            if res.cpu_rt_runtime:
                _write(os.path.join(cpu, "cpu.rt_runtime_us"), res.cpu_rt_runtime)
            if res.cpu_idle is not None:
                _write(os.path.join(cpu, "cpu.idle"), res.cpu_idle)
            if res.cpu_burst is not None:
                _write(os.path.join(cpu, "cpu.cfs_burst_us"), res.cpu_burst)
        elif res.cpu_rt_period or res.cpu_rt_runtime or res.cpu_idle is not None or \
                res.cpu_burst is not None:
            raise InvalidArgument("no cpu cgroup controller is mounted: cannot apply the "
                                  "realtime or idle setting")
        if cpuset and res.cpuset_cpus:
            try:
                _write(os.path.join(cpuset, "cpuset.cpus"), res.cpuset_cpus)
            except System as e:
                raise InvalidArgument(f"invalid cpuset.cpus {res.cpuset_cpus!r}: {e}") from e
        if cpuset and res.cpuset_mems:
            _write(os.path.join(cpuset, "cpuset.mems"), res.cpuset_mems)
        pids = self._dir("pids")
        if pids and res.pids_limit and res.pids_limit > 0:
            _write(os.path.join(pids, "pids.max"), res.pids_limit)
        dev = self._dir("devices")
        if dev and res.devices:
            for rule in res.devices:
                _write(os.path.join(dev, "devices.allow" if rule.get("allow") else
                                    "devices.deny"), _device_rule(rule))
        elif res.devices:
            # no v1 devices controller: the unified hierarchy of a hybrid layout enforces
            # them as v2 does; with neither, the container would get every device
            unified = self._dir("")
            if not unified:
                raise System("cannot apply the device rules: no devices cgroup controller "
                             "and no cgroup2 hierarchy is mounted")
            _attach_devices(unified, res.devices)

    def _v1_only(self, res: Resources) -> None:
        """net_cls, net_prio, hugetlb and rdma: each an error where its hierarchy is not
        mounted (runc drops such a limit without a word), and unified, which needs v2."""
        if res.unified:
            raise InvalidArgument("linux.resources.unified needs cgroup v2: this host's "
                                  "cgroups are v1")
        wanted = (("net_cls", res.net_classid is not None, "network.classID"),
                  ("net_prio", bool(res.net_priorities), "network.priorities"),
                  ("hugetlb", bool(res.hugetlb), "hugepageLimits"),
                  ("rdma", bool(res.rdma), "rdma"))
        for ctrl, asked, field in wanted:
            if asked and not self._dir(ctrl):
                raise InvalidArgument(f"linux.resources.{field}: no {ctrl} cgroup controller "
                                      "is mounted on this host")
        if res.net_classid is not None:
            _write(os.path.join(self._dir("net_cls") or "", "net_cls.classid"),
                   res.net_classid)
        for name, prio in res.net_priorities:
            _check_word(name, "network.priorities name")
            _write(os.path.join(self._dir("net_prio") or "", "net_prio.ifpriomap"),
                   f"{name} {prio}")
        for size, limit in res.hugetlb:
            _check_word(size, "hugepageLimits pageSize")
            f = os.path.join(self._dir("hugetlb") or "", f"hugetlb.{size}.limit_in_bytes")
            if not os.path.exists(f):
                raise InvalidArgument(f"linux.resources.hugepageLimits: this host has no "
                                      f"huge pages of size {size}")
            _write(f, limit)
        for dev, handles, objects in res.rdma:
            _check_word(dev, "rdma device")
            _write(os.path.join(self._dir("rdma") or "", "rdma.max"), _rdma_line(
                dev, handles, objects))

    def _blkio(self, res: Resources) -> None:
        """blkio.weight (CFQ) or blkio.bfq.weight (BFQ), per-device weights, the leaf
        weights (CFQ only) and the throttling files; an error where the kernel has none of a
        file asked for."""
        if res.blkio_leaf_weight or res.blkio_leaf_weight_devices:
            blk = self._dir("blkio")
            if not blk or not os.path.exists(os.path.join(blk, "blkio.leaf_weight")):
                raise InvalidArgument("linux.resources.blockIO leafWeight: this kernel has no "
                                      "blkio.leaf_weight (the CFQ I/O scheduler is gone)")
            if res.blkio_leaf_weight:
                _write(os.path.join(blk, "blkio.leaf_weight"), res.blkio_leaf_weight)
            for major, minor, weight in res.blkio_leaf_weight_devices:
                _write(os.path.join(blk, "blkio.leaf_weight_device"),
                       f"{major}:{minor} {weight}")
        if not (res.blkio_weight or res.blkio_weight_devices or res.blkio_throttle):
            return
        blk = self._dir("blkio")
        if not blk:
            raise InvalidArgument("no blkio cgroup controller is mounted: cannot apply the "
                                  "block I/O weight or throttling")
        if res.blkio_weight:
            f = _first_present(blk, ("blkio.weight", "blkio.bfq.weight"))
            if f is None:
                raise InvalidArgument(BLKIO_WEIGHT_UNSUPPORTED)
            _write(f, res.blkio_weight)
        if res.blkio_weight_devices:
            f = _first_present(blk, ("blkio.weight_device", "blkio.bfq.weight_device"))
            if f is None:
                raise InvalidArgument("Your kernel does not support Block I/O weight_device "
                                      "or the cgroup is not mounted")
            for major, minor, weight in res.blkio_weight_devices:
                _write(f, f"{major}:{minor} {weight}")
        for kind, major, minor, limit in res.blkio_throttle:
            _write(os.path.join(blk, "blkio.throttle." + THROTTLE_KINDS[kind][0]),
                   f"{major}:{minor} {limit}")

    def procs_files(self) -> list[str]:
        return [os.path.join(d, "cgroup.procs") for d in self._dirs()]

    def add(self, pid: int) -> None:
        for f in self.procs_files():
            _write(f, pid)

    def join_self(self) -> None:
        """Move the calling process, which must be single-threaded, into the v1 hierarchies;
        the unified one of a hybrid layout is `unified_dir`, for `linux.fork_into_cgroup`.

        Written as "0" to each hierarchy's `tasks`: a thread moving itself skips the kernel's
        thread-group lock, whose first writer after a quiet spell waits out an RCU grace
        period (6 to 15 ms per start or exec here), which a write to `cgroup.procs` pays."""
        files = {os.path.join(m, self._rel(c), "tasks") for c, m in self.mounts.items() if c}
        for f in sorted(files):
            _write(f, 0)

    def unified_dir(self) -> str | None:
        return self._dir("")

    def oom_killed(self) -> int:
        mem = self._dir("memory")
        return _flat_kv(_read(os.path.join(mem, "memory.oom_control"))).get("oom_kill", 0) if mem else 0

    def stats(self) -> Stats:
        s = Stats()
        mem = self._dir("memory")
        if mem:
            s.memory_usage = int(_read(os.path.join(mem, "memory.usage_in_bytes")) or 0)
            s.memory_limit = int(_read(os.path.join(mem, "memory.limit_in_bytes")) or 0)
            s.extra = _flat_kv(_read(os.path.join(mem, "memory.stat")))
        pids = self._dir("pids")
        if pids:
            s.pids = int(_read(os.path.join(pids, "pids.current")) or 0)
        acct = self._dir("cpuacct")
        if acct:
            s.cpu_usage_ns = int(_read(os.path.join(acct, "cpuacct.usage")) or 0)
        blk = self._dir("blkio")
        if blk:
            # lines "MAJ:MIN Read N" / "MAJ:MIN Write N"
            for line in _read(os.path.join(blk, "blkio.throttle.io_service_bytes_recursive")
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
            _write(os.path.join(fr, "freezer.state"), "FROZEN" if frozen else "THAWED")

    def remove(self) -> None:
        for d in self._dirs():
            _rmdir_retry(d)


class V2:
    """cgroup v2: one unified hierarchy; controllers enabled down the path."""

    def __init__(self, path: str, *, root: str = "/sys/fs/cgroup") -> None:
        self.path = path.strip("/")
        self.root = root

    @property
    def dir(self) -> str:
        return os.path.join(self.root, self.path)

    def create(self, res: Resources) -> None:
        available = _read(os.path.join(self.root, "cgroup.controllers")).split()
        cur = self.root
        for part in self.path.split("/"):
            want = [c for c in ("cpu", "cpuset", "memory", "pids", "io", "hugetlb", "rdma")
                    if c in available]
            if want:
                try:
                    _write(os.path.join(cur, "cgroup.subtree_control"), " ".join("+" + c for c in want))
                except System:
                    pass  # a controller the parent cannot delegate: limits on it fail below
            cur = os.path.join(cur, part)
            os.makedirs(cur, exist_ok=True)
        d = self.dir
        if res.devices:  # before any process joins: its first open is already checked
            _attach_devices(d, res.devices)
        if res.memory:
            _write(os.path.join(d, "memory.max"), res.memory)
            if res.memory_swap:
                swap = "max" if res.memory_swap < 0 else max(res.memory_swap - res.memory, 0)
                if os.path.exists(os.path.join(d, "memory.swap.max")):
                    _write(os.path.join(d, "memory.swap.max"), swap)
        if res.memory_reservation:
            _write(os.path.join(d, "memory.low"), res.memory_reservation)
        # swappiness and the OOM killer switch have no v2 file: the daemon warned and
        # discarded them at create, as dockerd
        self._io(res)
        if res.cpu_quota or res.cpu_period:
            quota = res.cpu_quota if res.cpu_quota and res.cpu_quota > 0 else "max"
            _write(os.path.join(d, "cpu.max"), f"{quota} {res.cpu_period or 100000}")
        if res.cpu_shares:
            # the conversion runc and crun use: shares [2, 262144] → weight [1, 10000]
            weight = 1 + ((res.cpu_shares - 2) * 9999) // 262142
            _write(os.path.join(d, "cpu.weight"), max(1, min(weight, 10000)))
        if res.cpuset_cpus:
            _write(os.path.join(d, "cpuset.cpus"), res.cpuset_cpus)
        if res.cpuset_mems:
            _write(os.path.join(d, "cpuset.mems"), res.cpuset_mems)
        if res.pids_limit and res.pids_limit > 0:
            _write(os.path.join(d, "pids.max"), res.pids_limit)
        self._v2_rest(res)

    def _v2_rest(self, res: Resources) -> None:
        """hugetlb and rdma in their v2 files; `unified` as given; an error for what v2 has
        no file for (net_cls, net_prio, kernelTCP, leaf weights)."""
        d = self.dir
        if res.cpu_idle is not None:
            _write(os.path.join(d, "cpu.idle"), res.cpu_idle)
        if res.cpu_burst is not None:
            _write(os.path.join(d, "cpu.max.burst"), res.cpu_burst)
        for field, asked in (("memory.useHierarchy", res.memory_use_hierarchy is False),
                             ("cpu.realtimeRuntime", bool(res.cpu_rt_runtime)),
                             ("cpu.realtimePeriod", bool(res.cpu_rt_period)),
                             ("network.classID", res.net_classid is not None),
                             ("network.priorities", bool(res.net_priorities)),
                             ("memory.kernelTCP", bool(res.kernel_tcp)),
                             ("blockIO leafWeight", bool(res.blkio_leaf_weight or
                                                         res.blkio_leaf_weight_devices))):
            if asked:
                raise InvalidArgument(f"linux.resources.{field} has no cgroup v2 equivalent")
        for size, limit in res.hugetlb:
            _check_word(size, "hugepageLimits pageSize")
            f = os.path.join(d, f"hugetlb.{size}.max")
            if not os.path.exists(f):
                raise InvalidArgument(f"linux.resources.hugepageLimits: no hugetlb controller "
                                      f"or no huge pages of size {size}")
            _write(f, limit)
        for dev, handles, objects in res.rdma:
            _check_word(dev, "rdma device")
            _write(os.path.join(d, "rdma.max"), _rdma_line(dev, handles, objects))
        for key, value in res.unified:
            # a plain file of this cgroup, never one that moves processes or delegates
            if not key or "/" in key or key.startswith(".") or "." not in key or \
                    key in ("cgroup.procs", "cgroup.threads", "cgroup.subtree_control",
                            "cgroup.type", "cgroup.kill"):
                raise InvalidArgument(f"linux.resources.unified: invalid key {key!r}")
            f = os.path.join(d, key)
            if not os.path.exists(f):
                raise InvalidArgument(f"linux.resources.unified: {key}: no such file in the "
                                      "cgroup (controller not enabled?)")
            _write(f, value)

    def _io(self, res: Resources) -> None:
        """The io controller: io.bfq.weight as it is, else io.weight with runc's conversion
        of a blkio weight [10, 1000] to [1, 10000]; throttling in io.max."""
        d = self.dir
        if not (res.blkio_weight or res.blkio_weight_devices or res.blkio_throttle):
            return
        if not os.path.exists(os.path.join(d, "io.max")) and not _first_present(
                d, ("io.weight", "io.bfq.weight")):
            raise InvalidArgument("the io cgroup controller is not enabled: cannot apply the "
                                  "block I/O weight or throttling")

        def weight_file() -> tuple[str, bool]:
            bfq = os.path.join(d, "io.bfq.weight")
            if os.path.exists(bfq):
                return bfq, False
            if os.path.exists(os.path.join(d, "io.weight")):
                return os.path.join(d, "io.weight"), True
            raise InvalidArgument(BLKIO_WEIGHT_UNSUPPORTED)

        def conv(w: int, convert: bool) -> int:
            return 1 + (w - 10) * 9999 // 990 if convert else w

        if res.blkio_weight:
            f, convert = weight_file()
            _write(f, f"default {conv(res.blkio_weight, convert)}" if convert
                   else res.blkio_weight)
        for major, minor, weight in res.blkio_weight_devices:
            f, convert = weight_file()
            _write(f, f"{major}:{minor} {conv(weight, convert)}")
        for kind, major, minor, limit in res.blkio_throttle:
            _write(os.path.join(d, "io.max"), f"{major}:{minor} {THROTTLE_KINDS[kind][1]}={limit}")

    def procs_files(self) -> list[str]:
        return [os.path.join(self.dir, "cgroup.procs")]

    def add(self, pid: int) -> None:
        _write(os.path.join(self.dir, "cgroup.procs"), pid)

    def join_self(self) -> None:
        pass  # all in `unified_dir`, which `linux.fork_into_cgroup` places a child in

    def unified_dir(self) -> str | None:
        return self.dir

    def oom_killed(self) -> int:
        return _flat_kv(_read(os.path.join(self.dir, "memory.events"))).get("oom_kill", 0)

    def stats(self) -> Stats:
        d = self.dir
        s = Stats()
        s.memory_usage = int(_read(os.path.join(d, "memory.current")) or 0)
        lim = _read(os.path.join(d, "memory.max")).strip()
        s.memory_limit = int(lim) if lim.isdigit() else 0
        s.pids = int(_read(os.path.join(d, "pids.current")) or 0)
        s.cpu_usage_ns = _flat_kv(_read(os.path.join(d, "cpu.stat"))).get("usage_usec", 0) * 1000
        s.extra = _flat_kv(_read(os.path.join(d, "memory.stat")))
        for line in _read(os.path.join(d, "io.stat")).splitlines():  # "MAJ:MIN rbytes=N ..."
            for kv in line.split()[1:]:
                k, _, v = kv.partition("=")
                if k == "rbytes" and v.isdigit():
                    s.io_read += int(v)
                elif k == "wbytes" and v.isdigit():
                    s.io_write += int(v)
        return s

    def freeze(self, frozen: bool) -> None:
        _write(os.path.join(self.dir, "cgroup.freeze"), 1 if frozen else 0)

    def remove(self) -> None:
        _rmdir_retry(self.dir)


def v1_mounts(mountinfo: str = "/proc/self/mountinfo") -> dict[str, str]:
    """controller name → mount point of its v1 hierarchy, from mountinfo."""
    out: dict[str, str] = {}
    for line in _read(mountinfo).splitlines():
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


def is_v2(root: str = "/sys/fs/cgroup") -> bool:
    try:
        return any(line.split(" - ")[1].startswith("cgroup2 ")
                   for line in _read("/proc/self/mountinfo").splitlines()
                   if f" {root} " in line.split(" - ")[0])
    except IndexError:
        return False


def own_cgroups(self_cgroup: str = "/proc/self/cgroup") -> dict[str, str]:
    """controller (or "" for the unified hierarchy) -> this process's cgroup in it."""
    out: dict[str, str] = {}
    for line in _read(self_cgroup).splitlines():
        _, ctrls, cg = line.split(":", 2)
        for c in ctrls.split(",") if ctrls else [""]:
            out[c] = cg.strip("/")
    return out


def for_spec(path: str, bases: dict[str, str] | None = None) -> CgroupManager:
    """The manager for a runtime-spec cgroupsPath: an absolute one from each hierarchy's root,
    a relative one under the caller's own cgroup in each hierarchy (as runc reads it), or under
    `bases` (what own_cgroups() said for the caller that created it)."""
    if path.startswith("/"):
        return detect(path.strip("/"))
    own = bases if bases is not None else own_cgroups()
    if is_v2():
        return V2(f"{own.get('', '')}/{path}".strip("/"))
    return V1(path, mounts=v1_mounts(), bases=own)


def remove_parent(path: str) -> None:
    """Remove the daemon's parent cgroup where it is empty (at shutdown); a parent that still
    holds running containers stays."""
    dirs = [os.path.join("/sys/fs/cgroup", path)] if is_v2() else [
        os.path.join(m, path.strip("/")) for m in set(v1_mounts().values())]
    for d in dirs:
        try:
            os.rmdir(d)
        except OSError:
            pass


def detect(path: str) -> CgroupManager:
    """The manager for this machine: v2 where /sys/fs/cgroup is cgroup2, else v1."""
    if is_v2():
        return V2(path)
    return V1(path, mounts=v1_mounts())


__all__ = ["Resources", "Stats", "kernel_memory_enforced",
           "CgroupManager", "V1", "V2", "detect", "is_v2",
           "THROTTLE_KINDS", "BLKIO_WEIGHT_UNSUPPORTED",
           "remove_parent", "for_spec", "own_cgroups",
           "v1_mounts"]
