"""The cgroup v2 manager: one unified hierarchy, controllers enabled down the path, device
rules as a BPF program."""

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
from berth.cgroups.resources import BLKIO_WEIGHT_UNSUPPORTED, THROTTLE_KINDS, Resources, Stats
from berth.errors import InvalidArgument, System


class V2:
    """cgroup v2: one unified hierarchy; controllers enabled down the path."""

    def __init__(self, path: str, *, root: str = "/sys/fs/cgroup") -> None:
        self.path = path.strip("/")
        self.root = root

    @property
    def dir(self) -> str:
        return os.path.join(self.root, self.path)

    def dirs(self) -> list[str]:
        """The cgroup's one directory, in the unified hierarchy."""
        return [self.dir]

    def create(self, res: Resources) -> None:
        available = read(os.path.join(self.root, "cgroup.controllers")).split()
        cur = self.root
        for part in self.path.split("/"):
            want = [
                c
                for c in ("cpu", "cpuset", "memory", "pids", "io", "hugetlb", "rdma")
                if c in available
            ]
            if want:
                try:
                    write(
                        os.path.join(cur, "cgroup.subtree_control"), " ".join("+" + c for c in want)
                    )
                except System:
                    pass  # a controller the parent cannot delegate: limits on it fail below
            cur = os.path.join(cur, part)
            os.makedirs(cur, exist_ok=True)
        d = self.dir
        if res.devices:  # before any process joins: its first open is already checked
            attach_devices(d, res.devices)
        if res.memory:
            write(os.path.join(d, "memory.max"), res.memory)
            if res.memory_swap:
                swap = "max" if res.memory_swap < 0 else max(res.memory_swap - res.memory, 0)
                if os.path.exists(os.path.join(d, "memory.swap.max")):
                    write(os.path.join(d, "memory.swap.max"), swap)
        if res.memory_reservation:
            write(os.path.join(d, "memory.low"), res.memory_reservation)
        # swappiness and the OOM killer switch have no v2 file: the daemon warned and
        # discarded them at create, as dockerd
        self._io(res)
        if res.cpu_quota or res.cpu_period:
            quota = res.cpu_quota if res.cpu_quota and res.cpu_quota > 0 else "max"
            write(os.path.join(d, "cpu.max"), f"{quota} {res.cpu_period or 100000}")
        if res.cpu_shares:
            # the conversion runc and crun use: shares [2, 262144] → weight [1, 10000]
            weight = 1 + ((res.cpu_shares - 2) * 9999) // 262142
            write(os.path.join(d, "cpu.weight"), max(1, min(weight, 10000)))
        if res.cpuset_cpus:
            write(os.path.join(d, "cpuset.cpus"), res.cpuset_cpus)
        if res.cpuset_mems:
            write(os.path.join(d, "cpuset.mems"), res.cpuset_mems)
        if res.pids_limit and res.pids_limit > 0:
            write(os.path.join(d, "pids.max"), res.pids_limit)
        self._v2_rest(res)

    def _v2_rest(self, res: Resources) -> None:
        """hugetlb and rdma in their v2 files; `unified` as given; an error for what v2 has
        no file for (net_cls, net_prio, kernelTCP, leaf weights)."""
        d = self.dir
        if res.cpu_idle is not None:
            write(os.path.join(d, "cpu.idle"), res.cpu_idle)
        if res.cpu_burst is not None:
            write(os.path.join(d, "cpu.max.burst"), res.cpu_burst)
        for field, asked in (
            ("memory.useHierarchy", res.memory_use_hierarchy is False),
            ("cpu.realtimeRuntime", bool(res.cpu_rt_runtime)),
            ("cpu.realtimePeriod", bool(res.cpu_rt_period)),
            ("network.classID", res.net_classid is not None),
            ("network.priorities", bool(res.net_priorities)),
            ("memory.kernelTCP", bool(res.kernel_tcp)),
            ("blockIO leafWeight", bool(res.blkio_leaf_weight or res.blkio_leaf_weight_devices)),
        ):
            if asked:
                raise InvalidArgument(f"linux.resources.{field} has no cgroup v2 equivalent")
        for size, limit in res.hugetlb:
            check_word(size, "hugepageLimits pageSize")
            f = os.path.join(d, f"hugetlb.{size}.max")
            if not os.path.exists(f):
                raise InvalidArgument(
                    f"linux.resources.hugepageLimits: no hugetlb controller "
                    f"or no huge pages of size {size}"
                )
            write(f, limit)
        for dev, handles, objects in res.rdma:
            check_word(dev, "rdma device")
            write(os.path.join(d, "rdma.max"), rdma_line(dev, handles, objects))
        for key, value in res.unified:
            # a plain file of this cgroup, never one that moves processes or delegates
            if (
                not key
                or "/" in key
                or key.startswith(".")
                or "." not in key
                or key
                in (
                    "cgroup.procs",
                    "cgroup.threads",
                    "cgroup.subtree_control",
                    "cgroup.type",
                    "cgroup.kill",
                )
            ):
                raise InvalidArgument(f"linux.resources.unified: invalid key {key!r}")
            f = os.path.join(d, key)
            if not os.path.exists(f):
                raise InvalidArgument(
                    f"linux.resources.unified: {key}: no such file in the "
                    "cgroup (controller not enabled?)"
                )
            write(f, value)

    def _io(self, res: Resources) -> None:
        """The io controller: io.bfq.weight as it is, else io.weight with runc's conversion
        of a blkio weight [10, 1000] to [1, 10000]; throttling in io.max."""
        d = self.dir
        if not (res.blkio_weight or res.blkio_weight_devices or res.blkio_throttle):
            return
        if not os.path.exists(os.path.join(d, "io.max")) and not first_present(
            d, ("io.weight", "io.bfq.weight")
        ):
            raise InvalidArgument(
                "the io cgroup controller is not enabled: cannot apply the "
                "block I/O weight or throttling"
            )

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
            write(f, f"default {conv(res.blkio_weight, convert)}" if convert else res.blkio_weight)
        for major, minor, weight in res.blkio_weight_devices:
            f, convert = weight_file()
            try:
                write(f, f"{major}:{minor} {conv(weight, convert)}")
            except System as e:
                # io.weight takes a device's weight only where io.cost is on for it (runc
                # 1.1, which writes device weights to io.bfq.weight only, drops them silently)
                raise InvalidArgument(
                    f"linux.resources.blockIO.weightDevice: the kernel refused a weight for "
                    f"device {major}:{minor} (no BFQ scheduler, no io.cost on it): "
                    f"{e.message}"
                ) from None
        for kind, major, minor, limit in res.blkio_throttle:
            write(os.path.join(d, "io.max"), f"{major}:{minor} {THROTTLE_KINDS[kind][1]}={limit}")

    def procs_files(self) -> list[str]:
        return [os.path.join(self.dir, "cgroup.procs")]

    def add(self, pid: int) -> None:
        write(os.path.join(self.dir, "cgroup.procs"), pid)

    def join_self(self) -> None:
        pass  # all in `unified_dir`, which `linux.fork_into_cgroup` places a child in

    def unified_dir(self) -> str | None:
        return self.dir

    def oom_killed(self) -> int:
        return flat_kv(read(os.path.join(self.dir, "memory.events"))).get("oom_kill", 0)

    def stats(self) -> Stats:
        d = self.dir
        s = Stats()
        s.memory_usage = int(read(os.path.join(d, "memory.current")) or 0)
        lim = read(os.path.join(d, "memory.max")).strip()
        s.memory_limit = int(lim) if lim.isdigit() else 0
        s.pids = int(read(os.path.join(d, "pids.current")) or 0)
        s.cpu_usage_ns = flat_kv(read(os.path.join(d, "cpu.stat"))).get("usage_usec", 0) * 1000
        s.extra = flat_kv(read(os.path.join(d, "memory.stat")))
        for line in read(os.path.join(d, "io.stat")).splitlines():  # "MAJ:MIN rbytes=N ..."
            for kv in line.split()[1:]:
                k, _, v = kv.partition("=")
                if k == "rbytes" and v.isdigit():
                    s.io_read += int(v)
                elif k == "wbytes" and v.isdigit():
                    s.io_write += int(v)
        return s

    def freeze(self, frozen: bool) -> None:
        write(os.path.join(self.dir, "cgroup.freeze"), 1 if frozen else 0)

    def frozen(self) -> bool:
        """Whether every process of the cgroup is frozen (cgroup.events), not just asked to."""
        return flat_kv(read(os.path.join(self.dir, "cgroup.events"))).get("frozen") == 1

    def remove(self) -> None:
        rmdir_retry(self.dir)
