"""Pod sandbox metrics for the CRI (ListMetricDescriptors, ListPodSandboxMetrics): cadvisor's
names, from the same samples as the stats (`berth.cri.stats`: the containers' cgroups) and the
pod's interfaces (/proc/PID/net/dev of its holder), for a kubelet that takes its metrics from
the runtime instead of cadvisor.

The descriptors are fixed at start, as the RPC asks. A Metric's value is an integer: CPU time
is in whole seconds, as containerd gives it (ContainerStats has the nanoseconds). Each metric's
labels are `id`, `name`, `image` (the container's ID, its CRI name and image; the pod's ID,
`POD` and "" for the pod's own metrics), and `interface` for the network's.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from berth.containers.record import ContainerRecord
from berth.containers.resources import StatsSample
from berth.cri import containers as cc
from berth.cri.gen import api
from berth.cri.runtime import ContainerHandlers
from berth.cri.sandboxes import Pods, Sandbox

COUNTER, GAUGE = 0, 1  # MetricType
LABELS = ("id", "name", "image")
NET_LABELS = (*LABELS, "interface")
NET_DEV_MAX = 1 << 16  # /proc/PID/net/dev read (a pod has a few interfaces)


@dataclass(frozen=True, slots=True)
class Descriptor:
    name: str
    help: str
    kind: int
    labels: tuple[str, ...] = LABELS


CONTAINER = (
    Descriptor("container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", COUNTER),
    Descriptor("container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed.", GAUGE),
    Descriptor("container_memory_working_set_bytes", "Current working set in bytes.", GAUGE),
    Descriptor("container_memory_rss", "Size of RSS in bytes.", GAUGE),
    Descriptor("container_memory_cache", "Number of bytes of page cache memory.", GAUGE),
    Descriptor("container_memory_failures_total", "Cumulative count of memory allocation failures (page faults).", COUNTER),
    Descriptor("container_spec_memory_limit_bytes", "Memory limit for the container.", GAUGE),
    Descriptor("container_fs_reads_bytes_total", "Cumulative count of bytes read.", COUNTER),
    Descriptor("container_fs_writes_bytes_total", "Cumulative count of bytes written.", COUNTER),
    Descriptor("container_processes", "Number of processes running inside the container.", GAUGE),
    Descriptor("container_spec_processes_limit", "Process limit of the container (0: none).", GAUGE),
    Descriptor("container_start_time_seconds", "Start time of the container since unix epoch in seconds.", GAUGE),
)  # fmt: skip
NETWORK = (
    Descriptor("container_network_receive_bytes_total", "Cumulative count of bytes received.", COUNTER, NET_LABELS),
    Descriptor("container_network_receive_packets_total", "Cumulative count of packets received.", COUNTER, NET_LABELS),
    Descriptor("container_network_receive_errors_total", "Cumulative count of errors encountered while receiving.", COUNTER, NET_LABELS),
    Descriptor("container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while receiving.", COUNTER, NET_LABELS),
    Descriptor("container_network_transmit_bytes_total", "Cumulative count of bytes transmitted.", COUNTER, NET_LABELS),
    Descriptor("container_network_transmit_packets_total", "Cumulative count of packets transmitted.", COUNTER, NET_LABELS),
    Descriptor("container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting.", COUNTER, NET_LABELS),
    Descriptor("container_network_transmit_packets_dropped_total", "Cumulative count of packets dropped while transmitting.", COUNTER, NET_LABELS),
)  # fmt: skip
DESCRIPTORS = CONTAINER + NETWORK
# /proc/net/dev's columns, in NETWORK's order: rx bytes, packets, errs, drop; tx the same
_NET_COLUMNS = (0, 1, 2, 3, 8, 9, 10, 11)


def net_counters(pid: int) -> dict[str, tuple[int, ...]]:
    """Per interface of the process's network namespace (loopback left out), NETWORK's
    counters; {} when the process is gone."""
    try:
        with open(f"/proc/{pid}/net/dev", "rb") as f:
            lines = f.read(NET_DEV_MAX).decode(errors="replace").splitlines()[2:]
    except OSError:
        return {}
    out = {}
    for line in lines:
        name, _, rest = line.partition(":")
        w = rest.split()
        if len(w) >= 16 and name.strip() != "lo" and all(x.isdigit() for x in w):
            out[name.strip()] = tuple(int(w[i]) for i in _NET_COLUMNS)
    return out


def descriptors() -> list[Any]:
    a = api()
    return [
        a.MetricDescriptor(name=d.name, help=d.help, label_keys=list(d.labels)) for d in DESCRIPTORS
    ]


def _metric(d: Descriptor, value: int, labels: list[str]) -> Any:
    a = api()
    return a.Metric(
        name=d.name,
        timestamp=0,  # gathered live
        metric_type=d.kind,
        label_values=labels,
        value=a.UInt64Value(value=max(0, int(value))),
    )


def container_values(rec: ContainerRecord, s: StatsSample) -> list[int]:
    """CONTAINER's values, in its order, from a stats sample."""
    extra = s.memory_extra
    inactive = extra.get("total_inactive_file", extra.get("inactive_file", 0))
    rss = extra.get("total_rss", extra.get("anon", extra.get("rss", 0)))
    cache = extra.get("total_cache", extra.get("file", extra.get("cache", 0)))
    faults = extra.get("total_pgfault", extra.get("pgfault", 0))
    return [
        s.cpu_usage_ns // 1_000_000_000,
        s.memory_usage,
        max(0, s.memory_usage - inactive),
        rss,
        cache,
        faults,
        rec.host_config.memory,
        s.io_read,
        s.io_write,
        s.pids,
        s.pids_limit,
        cc.time_ns(rec.state.started_at) // 1_000_000_000,
    ]


class Metrics:
    def __init__(self, sample: Any) -> None:
        self.sample = sample  # async (ContainerRecord) -> StatsSample: `Stats.sample`

    async def pod(self, sb: Sandbox, recs: list[ContainerRecord]) -> Any:
        """The pod's metrics: its running containers' from their cgroups, its interfaces'."""
        a = api()
        out = a.PodSandboxMetrics(pod_sandbox_id=sb.id)
        if sb.pid and not sb.host_network:
            nets = await asyncio.to_thread(net_counters, sb.pid)
            for iface, values in sorted(nets.items()):
                labels = [sb.id, "POD", "", iface]
                out.metrics.extend(
                    _metric(d, v, labels) for d, v in zip(NETWORK, values, strict=True)
                )
        for rec in recs:
            if not rec.state.status.is_running:
                continue
            s = await self.sample(rec)
            labels = [rec.id, cc.label(rec, cc.L_NAME), cc.label(rec, cc.L_IMAGE)]
            cm = a.ContainerMetrics(container_id=rec.id)
            cm.metrics.extend(
                _metric(d, v, labels)
                for d, v in zip(CONTAINER, container_values(rec, s), strict=True)
            )
            out.container_metrics.append(cm)
        return out


class MetricsHandlers:
    """The RPCs, over the pods and their containers."""

    def __init__(self, pods: Pods, containers: ContainerHandlers) -> None:
        self.pods = pods
        self.c = containers
        self.metrics = Metrics(containers.stats.sample)

    async def ListMetricDescriptors(self, req: Any) -> Any:  # noqa: N802 - the RPC's name
        return api().ListMetricDescriptorsResponse(descriptors=descriptors())

    async def ListPodSandboxMetrics(self, req: Any) -> Any:  # noqa: N802
        out = []
        for sb in list(self.pods.all.values()):
            if self.pods.ready(sb):
                out.append(await self.metrics.pod(sb, self.c.pod_containers(sb.id)))
        return api().ListPodSandboxMetricsResponse(pod_metrics=out)


__all__ = ["DESCRIPTORS", "Descriptor", "Metrics", "MetricsHandlers", "descriptors", "net_counters"]
