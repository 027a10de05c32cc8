"""The cgroup manager's data: the `linux.resources` subset berth applies (`Resources`), what a
manager reads back (`Stats`), and the `CgroupManager` interface that v1 and v2 implement."""

from __future__ import annotations

import os

from berth.errors import InvalidArgument

TYPE_CHECKING = False  # not typing's (~3 ms of berth-runtime's start-up)
if TYPE_CHECKING:
    from typing import Any, Protocol
else:
    Protocol = object  # CgroupManager is a protocol for the type checker only


class Resources:
    """The runtime-spec `linux.resources` subset berth applies. Plain classes here, not
    dataclasses: berth-runtime imports this module, and `dataclasses` costs ~4 ms of its
    start-up."""

    __slots__ = (
        "memory",
        "memory_swap",
        "cpu_shares",
        "cpu_quota",
        "cpu_period",
        "cpuset_cpus",
        "cpuset_mems",
        "pids_limit",
        "devices",
        "memory_reservation",
        "memory_swappiness",
        "oom_kill_disable",
        "blkio_weight",
        "blkio_weight_devices",
        "blkio_throttle",
        "kernel_memory",
        "kernel_tcp",
        "blkio_leaf_weight",
        "blkio_leaf_weight_devices",
        "net_classid",
        "net_priorities",
        "hugetlb",
        "rdma",
        "unified",
        "cpu_rt_runtime",
        "cpu_rt_period",
        "cpu_idle",
        "cpu_burst",
        "memory_use_hierarchy",
    )

    def __init__(
        self,
        *,
        memory: int | None = None,
        memory_swap: int | None = None,
        cpu_shares: int | None = None,
        cpu_quota: int | None = None,
        cpu_period: int | None = None,
        cpuset_cpus: str | None = None,
        cpuset_mems: str | None = None,
        pids_limit: int | None = None,
        devices: tuple[dict, ...] = (),  # type: ignore[type-arg]
        memory_reservation: int | None = None,
        memory_swappiness: int | None = None,
        oom_kill_disable: bool = False,
        blkio_weight: int | None = None,
        blkio_weight_devices: tuple[tuple[int, int, int], ...] = (),
        blkio_throttle: tuple[tuple[str, int, int, int], ...] = (),
        kernel_memory: int | None = None,
        kernel_tcp: int | None = None,
        blkio_leaf_weight: int | None = None,
        blkio_leaf_weight_devices: tuple[tuple[int, int, int], ...] = (),
        net_classid: int | None = None,
        net_priorities: tuple[tuple[str, int], ...] = (),
        hugetlb: tuple[tuple[str, int], ...] = (),
        rdma: tuple[tuple[str, int | None, int | None], ...] = (),
        unified: tuple[tuple[str, str], ...] = (),
        cpu_rt_runtime: int | None = None,
        cpu_rt_period: int | None = None,
        cpu_idle: int | None = None,
        cpu_burst: int | None = None,
        memory_use_hierarchy: bool | None = None,
    ) -> None:
        self.memory = memory  # bytes
        self.memory_swap = memory_swap  # memory + swap, bytes; -1 unlimited
        self.memory_reservation = memory_reservation  # soft limit, bytes
        self.memory_swappiness = memory_swappiness  # 0..100 (v1 only)
        self.oom_kill_disable = oom_kill_disable  # v1 only
        self.blkio_weight = blkio_weight  # 10..1000
        self.blkio_weight_devices = blkio_weight_devices  # (major, minor, weight)
        # (kind, major, minor, limit): kind one of THROTTLE_KINDS
        self.blkio_throttle = blkio_throttle
        self.blkio_leaf_weight = blkio_leaf_weight  # v1 CFQ only
        self.blkio_leaf_weight_devices = blkio_leaf_weight_devices  # (major, minor, weight)
        self.kernel_memory = kernel_memory  # v1 before Linux 5.16 only
        self.kernel_tcp = kernel_tcp  # v1 only: memory.kmem.tcp.limit_in_bytes
        self.net_classid = net_classid  # v1 net_cls.classid
        self.net_priorities = net_priorities  # v1 net_prio.ifpriomap: (interface, priority)
        self.hugetlb = hugetlb  # (page size as "2MB", limit in bytes)
        self.rdma = rdma  # (device, hca_handle, hca_object); None is "max"
        # v2 files by name, written as they are (runtime-spec linux.resources.unified)
        self.unified = unified
        self.cpu_rt_runtime = cpu_rt_runtime  # v1 cpu.rt_runtime_us
        self.cpu_rt_period = cpu_rt_period  # v1 cpu.rt_period_us
        self.cpu_idle = cpu_idle  # cpu.idle (SCHED_IDLE for the group)
        self.cpu_burst = cpu_burst  # microseconds: cfs_burst_us, cpu.max.burst
        self.memory_use_hierarchy = memory_use_hierarchy  # v1 memory.use_hierarchy
        self.cpu_shares = cpu_shares
        self.cpu_quota = cpu_quota  # microseconds per period
        self.cpu_period = cpu_period
        self.cpuset_cpus = cpuset_cpus
        self.cpuset_mems = cpuset_mems
        self.pids_limit = pids_limit  # <= 0 unlimited
        # runtime-spec device rules, in order: {"allow", "type", "major", "minor", "access"}
        self.devices = devices

    def replace(self, **changes: Any) -> Resources:
        return Resources(**{**{k: getattr(self, k) for k in self.__slots__}, **changes})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Resources) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__
        )

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
            return cls(
                memory=mem.get("limit"),
                memory_swap=mem.get("swap"),
                cpu_shares=cpu.get("shares"),
                cpu_quota=cpu.get("quota"),
                cpu_period=cpu.get("period"),
                cpuset_cpus=cpu.get("cpus"),
                cpuset_mems=cpu.get("mems"),
                pids_limit=pids.get("limit"),
                devices=tuple(res.get("devices") or ()),
                memory_reservation=mem.get("reservation"),
                memory_swappiness=mem.get("swappiness"),
                oom_kill_disable=bool(mem.get("disableOOMKiller")),
                kernel_memory=mem.get("kernel"),
                kernel_tcp=mem.get("kernelTCP"),
                blkio_weight=blk.get("weight"),
                blkio_leaf_weight=blk.get("leafWeight"),
                blkio_weight_devices=tuple(
                    (int(d["major"]), int(d["minor"]), int(d["weight"]))
                    for d in blk.get("weightDevice") or ()
                    if d.get("weight")
                ),
                blkio_leaf_weight_devices=tuple(
                    (int(d["major"]), int(d["minor"]), int(d["leafWeight"]))
                    for d in blk.get("weightDevice") or ()
                    if d.get("leafWeight")
                ),
                blkio_throttle=tuple(
                    (kind, int(d["major"]), int(d["minor"]), int(d["rate"]))
                    for kind in THROTTLE_KINDS
                    for d in blk.get(kind) or ()
                ),
                net_classid=net.get("classID"),
                net_priorities=tuple(
                    (str(p["name"]), int(p["priority"])) for p in net.get("priorities") or ()
                ),
                hugetlb=tuple(
                    (str(h["pageSize"]), int(h["limit"])) for h in res.get("hugepageLimits") or ()
                ),
                rdma=tuple(
                    (str(dev), _opt_int(v.get("hcaHandles")), _opt_int(v.get("hcaObjects")))
                    for dev, v in (res.get("rdma") or {}).items()
                ),
                cpu_rt_runtime=cpu.get("realtimeRuntime"),
                cpu_rt_period=cpu.get("realtimePeriod"),
                cpu_idle=cpu.get("idle"),
                cpu_burst=cpu.get("burst"),
                memory_use_hierarchy=mem.get("useHierarchy"),
                unified=tuple((str(k), str(v)) for k, v in (res.get("unified") or {}).items()),
            )
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
BLKIO_WEIGHT_UNSUPPORTED = (
    "Your kernel does not support Block I/O weight or the cgroup is not mounted"
)


def kernel_memory_enforced(release: str | None = None) -> bool:
    """Whether this kernel still enforces a v1 kernel memory limit: Linux 5.16 and later
    accept a write to memory.kmem.limit_in_bytes and ignore it."""
    parts = (release or os.uname().release).split(".")
    try:
        return (int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)) < (5, 16)
    except (IndexError, ValueError):
        return False


class Stats:
    __slots__ = (
        "memory_usage",
        "memory_limit",
        "pids",
        "cpu_usage_ns",
        "extra",
        "io_read",
        "io_write",
    )

    def __init__(self) -> None:
        self.memory_usage = 0
        self.memory_limit = 0
        self.pids = 0
        self.cpu_usage_ns = 0
        self.extra: dict[str, int] = {}
        self.io_read = 0  # bytes
        self.io_write = 0


class CgroupManager(Protocol):
    """Lifecycle: create(limits) → a child forked into unified_dir() (linux.fork_into_cgroup)
    calls join_self(), or add(pid) from outside … → oom_killed()/stats() → remove().

    `path` is relative to the hierarchy root(s), e.g. `berth/<id>`."""

    path: str

    def create(self, res: Resources) -> None: ...
    def dirs(self) -> list[str]: ...
    def procs_files(self) -> list[str]: ...
    def add(self, pid: int) -> None: ...
    def join_self(self) -> None: ...
    def unified_dir(self) -> str | None: ...
    def oom_killed(self) -> int: ...
    def stats(self) -> Stats: ...
    def freeze(self, frozen: bool) -> None: ...
    def frozen(self) -> bool: ...
    def remove(self) -> None: ...
