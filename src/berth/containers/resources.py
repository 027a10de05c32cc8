"""A running container's cgroup: pause, unpause, update, top, stats (typed samples).

A part of the container service (see `berth.containers.service`), holding the shared
`ContainerStore`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import time
from dataclasses import dataclass, field

from berth import cgroups
from berth.containers.hostconfig import ResourcesUpdate
from berth.containers.record import ContainerRecord
from berth.containers.spec import build_spec, validate_host_config
from berth.containers.status import ContainerStatus
from berth.containers.store import ContainerStore
from berth.errors import (
    BerthError,
    Conflict,
    InvalidArgument,
)
from berth.images import rfc3339

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessTable:
    """`docker top`: ps's column titles and the container's rows."""

    titles: list[str]
    processes: list[list[str]]


@dataclass(frozen=True, slots=True, kw_only=True)
class NetStats:
    """An interface's counters, as the container sees them."""

    rx_bytes: int = 0
    rx_packets: int = 0
    rx_errors: int = 0
    rx_dropped: int = 0
    tx_bytes: int = 0
    tx_packets: int = 0
    tx_errors: int = 0
    tx_dropped: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class StatsSample:
    """One reading of a container's cgroup and interfaces (all zero while it is stopped)."""

    read: str  # when, RFC 3339
    name: str
    id: str
    running: bool = False
    pids: int = 0
    pids_limit: int = 0  # 0: none
    io_read: int = 0  # bytes
    io_write: int = 0
    networks: dict[str, NetStats] = field(default_factory=dict)
    cpu_usage_ns: int = 0
    system_cpu_ns: int = 0  # the host's, for the CPU share
    online_cpus: int = 0
    memory_usage: int = 0
    memory_limit: int = 0
    memory_extra: dict[str, int] = field(default_factory=dict)


class Resources:
    """A container's cgroup: pause, unpause, update, top, stats."""

    def __init__(self, store: ContainerStore, ncpu: int) -> None:
        self.store = store
        self.cfg = store.cfg
        self.ncpu = ncpu

    def _cgroup(self, rec: ContainerRecord) -> cgroups.CgroupManager:
        parent = rec.host_config.cgroup_parent or self.cfg.cgroup_parent
        return cgroups.detect(f"{parent.strip('/')}/{rec.id}")

    def reclaim(self, rec: ContainerRecord) -> int:
        """At start, for a container the daemon does not count as running: what runs in its
        cgroup is killed and the cgroup removed (a start cut short by a crash of the daemon
        left its process running under a record that says created; a container whose monitor
        died lives on unwatched). Returns how many processes were killed."""
        cg = self._cgroup(rec)
        killed: set[int] = set()
        for _ in range(100):
            pids: set[int] = set()
            for f in cg.procs_files():
                with contextlib.suppress(OSError), open(f) as fh:
                    pids |= {int(p) for p in fh.read().split()}
            if not pids:
                break
            for pid in pids - killed:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            killed |= pids
            time.sleep(0.02)
        with contextlib.suppress(OSError):
            cg.remove()
        if killed:
            log.warning(
                "container %s: killed %d processes left in its cgroup",
                rec.id[:12],
                len(killed),
                extra={"container": rec.id},
            )
        return len(killed)

    def _running(self, ref: str) -> ContainerRecord:
        rec = self.store.resolve(ref)
        if not rec.state.status.is_running:
            raise Conflict(f"Container {rec.id} is not running")
        return rec

    async def thaw(self, rec: ContainerRecord) -> None:
        """A frozen process cannot act on a signal: stopping a paused container thaws it."""
        if rec.state.status is ContainerStatus.PAUSED:
            await asyncio.to_thread(self._cgroup(rec).freeze, False)
            rec.state.become(ContainerStatus.RUNNING)

    async def pause(self, ref: str) -> None:
        rec = self._running(ref)
        if not rec.state.status.can_pause():
            raise Conflict(f"Container {rec.id} is already paused")
        await asyncio.to_thread(self._cgroup(rec).freeze, True)
        rec.state.become(ContainerStatus.PAUSED)
        self.store.save(rec)
        self.store.event(rec, "pause")

    async def unpause(self, ref: str) -> None:
        rec = self._running(ref)
        if not rec.state.status.can_unpause():
            raise Conflict(f"Container {rec.id} is not paused")
        await asyncio.to_thread(self._cgroup(rec).freeze, False)
        rec.state.become(ContainerStatus.RUNNING)
        self.store.save(rec)
        self.store.event(rec, "unpause")

    async def update(self, ref: str, changes: ResourcesUpdate) -> list[str]:
        """`docker update`: new limits in HostConfig and, if it runs, in its cgroup."""
        rec = self.store.resolve(ref)
        hc = changes.apply(rec.host_config)
        warnings = validate_host_config(hc, self.ncpu)
        if rec.state.status.is_running:
            spec = build_spec(
                cid=rec.id,
                config=rec.config,
                host_config=hc,
                hostname_path="",
                hosts_path="",
                resolv_path="",
                cgroup_parent=self.cfg.cgroup_parent,
            )
            # the device rules stay as they are: rewriting them would deny all for a moment
            res = cgroups.Resources.from_spec(spec["linux"]["resources"]).replace(devices=())
            try:
                await asyncio.to_thread(self._cgroup(rec).create, res)
            except BerthError as e:
                raise InvalidArgument(f"Cannot update container {rec.id}: {e}") from None
        rec.host_config = hc
        self.store.save(rec)
        self.store.event(rec, "update")
        return warnings

    def top(self, ref: str, ps_args: str = "-ef") -> ProcessTable:
        """`docker top`: the host's ps, kept to the container's processes."""
        import subprocess

        rec = self._running(ref)
        pids: set[int] = set()
        for f in self._cgroup(rec).procs_files()[:1]:
            with contextlib.suppress(OSError), open(f) as fh:
                pids = {int(x) for x in fh.read().split()}
        args = ps_args.split() or ["-ef"]
        r = subprocess.run(["ps", *args], capture_output=True, text=True, timeout=10)
        if r.returncode != 0:
            raise InvalidArgument(f"ps: {r.stderr.strip()}")
        lines = r.stdout.splitlines()
        titles = lines[0].split()
        try:
            col = titles.index("PID")
        except ValueError:
            raise InvalidArgument("Couldn't find PID field in ps output") from None
        procs = []
        for line in lines[1:]:
            fields = line.split(None, len(titles) - 1)
            if len(fields) > col and fields[col].isdigit() and int(fields[col]) in pids:
                procs.append(fields)
        return ProcessTable(titles=titles, processes=procs)

    def _net_stats(self, rec: ContainerRecord) -> dict[str, NetStats]:
        """Per interface, from the host side of its veth pair: what the host receives is what
        the container sent."""
        out = {}
        for ep in rec.endpoints:
            if ep.kind != "veth":
                continue
            base = f"/sys/class/net/{ep.host_if}/statistics/"
            out[ep.ifname] = NetStats(
                rx_bytes=_read_int(base + "tx_bytes"),
                rx_packets=_read_int(base + "tx_packets"),
                rx_errors=_read_int(base + "tx_errors"),
                rx_dropped=_read_int(base + "tx_dropped"),
                tx_bytes=_read_int(base + "rx_bytes"),
                tx_packets=_read_int(base + "rx_packets"),
                tx_errors=_read_int(base + "rx_errors"),
                tx_dropped=_read_int(base + "rx_dropped"),
            )
        return out

    def stats(self, ref: str) -> StatsSample:
        """One sample of the container's use (the API makes Docker's stats JSON of two)."""
        rec = self.store.resolve(ref)
        base = StatsSample(read=rfc3339(time.time()), name=rec.name, id=rec.id)
        if not rec.state.status.is_running:
            return base
        st = self._cgroup(rec).stats()
        mem_limit = st.memory_limit if 0 < st.memory_limit < (1 << 62) else _mem_total()
        return dataclasses.replace(
            base,
            running=True,
            pids=st.pids,
            pids_limit=rec.host_config.pids_limit or 0,
            io_read=st.io_read,
            io_write=st.io_write,
            networks=self._net_stats(rec),
            cpu_usage_ns=st.cpu_usage_ns,
            system_cpu_ns=_system_cpu_ns(),
            online_cpus=self.ncpu,
            memory_usage=st.memory_usage,
            memory_limit=mem_limit,
            memory_extra=dict(st.extra),
        )


def _read_int(path: str) -> int:
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def _system_cpu_ns() -> int:
    """The host's CPU time in ns, as Docker computes `system_cpu_usage` from /proc/stat."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:8]
    return sum(int(x) for x in fields) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def _mem_total() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0
