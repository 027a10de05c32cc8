"""Container and pod sandbox stats for the CRI, from the container service's samples (cgroup
CPU and memory, the pod's interfaces). CPU in nano-cores is the rate since the previous
sample of the same container, as containerd reports it (0 on the first)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from berth.containers import ContainerService
from berth.containers.record import ContainerRecord
from berth.containers.resources import StatsSample
from berth.cri import containers as cc
from berth.cri.gen import api
from berth.cri.sandboxes import Sandbox


def _u64(v: int) -> Any:
    return api().UInt64Value(value=max(0, int(v)))


def net_dev(pid: int) -> dict[str, tuple[int, int, int, int]]:
    """/proc/PID/net/dev of the process's network namespace: per interface, received bytes
    and errors, sent bytes and errors."""
    out = {}
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.read(1 << 16).splitlines()[2:]
    except OSError:
        return {}
    for line in lines:
        name, _, rest = line.partition(":")
        w = rest.split()
        if len(w) >= 11:
            out[name.strip()] = (int(w[0]), int(w[2]), int(w[8]), int(w[10]))
    return out


class Stats:
    def __init__(self, containers: ContainerService) -> None:
        self.containers = containers
        self.last: dict[str, tuple[int, int]] = {}  # container → (cpu ns, when ns)

    async def sample(self, rec: ContainerRecord) -> StatsSample:
        return await asyncio.to_thread(self.containers.stats, rec.id)

    def _nano_cores(self, cid: str, cpu_ns: int, now: int) -> int:
        prev = self.last.get(cid)
        self.last[cid] = (cpu_ns, now)
        if prev is None or now <= prev[1] or cpu_ns < prev[0]:
            return 0
        return (cpu_ns - prev[0]) * 1_000_000_000 // (now - prev[1])

    def forget(self, cid: str) -> None:
        self.last.pop(cid, None)

    async def container(self, rec: ContainerRecord, metadata: Any) -> Any:
        a = api()
        s = await self.sample(rec)
        now = time.time_ns()
        extra = s.memory_extra
        inactive = extra.get("total_inactive_file", extra.get("inactive_file", 0))
        rss = extra.get("total_rss", extra.get("anon", extra.get("rss", 0)))
        limit = s.memory_limit
        memory = a.MemoryUsage(
            timestamp=now,
            working_set_bytes=_u64(max(0, s.memory_usage - inactive)),
            usage_bytes=_u64(s.memory_usage),
            rss_bytes=_u64(rss),
            page_faults=_u64(extra.get("total_pgfault", extra.get("pgfault", 0))),
            major_page_faults=_u64(extra.get("total_pgmajfault", extra.get("pgmajfault", 0))),
        )
        if limit:
            memory.available_bytes.value = max(0, limit - s.memory_usage)
        cpu = a.CpuUsage(
            timestamp=now,
            usage_core_nano_seconds=_u64(s.cpu_usage_ns),
            usage_nano_cores=_u64(self._nano_cores(rec.id, s.cpu_usage_ns, now)),
        )
        attrs = a.ContainerAttributes(
            id=rec.id,
            metadata=metadata,
            labels=cc.labels_of(rec),
            annotations=cc.annotations_of(rec),
        )
        return a.ContainerStats(attributes=attrs, cpu=cpu, memory=memory)

    async def pod(self, sb: Sandbox, metadata: Any, recs: list[tuple[ContainerRecord, Any]]) -> Any:
        """The pod's stats: its containers' summed, and its interfaces' counters (read in
        any running container of it, which shares the pod's network namespace)."""
        a = api()
        now = time.time_ns()
        items = [await self.container(r, md) for r, md in recs]
        cpu_total = sum(i.cpu.usage_core_nano_seconds.value for i in items)
        cpu = a.CpuUsage(
            timestamp=now,
            usage_core_nano_seconds=_u64(cpu_total),
            usage_nano_cores=_u64(sum(i.cpu.usage_nano_cores.value for i in items)),
        )
        memory = a.MemoryUsage(
            timestamp=now,
            working_set_bytes=_u64(sum(i.memory.working_set_bytes.value for i in items)),
            usage_bytes=_u64(sum(i.memory.usage_bytes.value for i in items)),
            rss_bytes=_u64(sum(i.memory.rss_bytes.value for i in items)),
        )
        network = a.NetworkUsage(timestamp=now)
        if sb.pid and not sb.host_network:
            for name, (rx, rx_err, tx, tx_err) in sorted(net_dev(sb.pid).items()):
                if name == "lo":
                    continue
                iface = a.NetworkInterfaceUsage(
                    name=name,
                    rx_bytes=_u64(rx),
                    rx_errors=_u64(rx_err),
                    tx_bytes=_u64(tx),
                    tx_errors=_u64(tx_err),
                )
                network.interfaces.append(iface)
                if name == "eth0":
                    network.default_interface.CopyFrom(iface)
        procs = 0
        for r, _ in recs:
            if r.state.status.is_running:
                procs += (await self.sample(r)).pids
        attrs = a.PodSandboxAttributes(
            id=sb.id, metadata=metadata, labels=sb.labels, annotations=sb.annotations
        )
        return a.PodSandboxStats(
            attributes=attrs,
            linux=a.LinuxPodSandboxStats(
                cpu=cpu,
                memory=memory,
                network=network,
                containers=items,
                process=a.ProcessUsage(timestamp=now, process_count=_u64(procs)),
            ),
        )


__all__ = ["Stats"]
