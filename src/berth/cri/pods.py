"""RuntimeService, its runtime and pod part: Version, Status, the pod sandboxes (`sandboxes`),
their stats and port forwarding. The containers' part is `runtime`'s ContainerHandlers, which
this part reaches for a pod's containers. Each method takes the request message and returns
the response message; `server` maps berth's errors to gRPC codes.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from berth import __version__
from berth.cri import events
from berth.cri.cni import Cni
from berth.cri.gen import api
from berth.cri.runtime import ContainerHandlers, labels_match, refuse_userns
from berth.cri.sandboxes import DnsConfig, Pods, PortMapping, Sandbox
from berth.cri.streaming import StreamRequest, check_ports
from berth.errors import BerthError, Conflict, InvalidArgument, NotFound

log = logging.getLogger(__name__)

RUNTIME_NAME = "berth"
RUNTIME_API_VERSION = "v1"
# NamespaceMode
NS_POD, NS_CONTAINER, NS_NODE, NS_TARGET = 0, 1, 2, 3
_PROTOCOLS = {0: "tcp", 1: "udp", 2: "sctp"}
_IPC_SYSCTLS = (
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
)
_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,62})")


def pod_sysctls(sysctls: dict[str, str], host_net: bool, host_ipc: bool) -> dict[str, str]:
    """The pod's sysctls, each one of its own namespaces' (network, IPC) as runc allows them;
    any other is refused, as is a namespace the pod shares with the host."""
    for key in sysctls:
        ipc = key in _IPC_SYSCTLS or key.startswith("fs.mqueue.")
        if not re.fullmatch(r"[a-z0-9_]+(\.[a-z0-9_-]+)+", key) or ".." in key:
            raise InvalidArgument(f"sysctl {key!r} is not a valid name")
        if not (ipc or key.startswith("net.")):
            raise InvalidArgument(f"sysctl {key!r} is not in a pod's namespaces")
        if (ipc and host_ipc) or (key.startswith("net.") and host_net):
            raise InvalidArgument(f"sysctl {key!r} cannot be set in the host's namespace")
    return sysctls


class PodHandlers:
    def __init__(self, pods: Pods, cni: Cni, containers: ContainerHandlers) -> None:
        self.pods = pods
        self.cni = cni
        self.c = containers

    def _state(self, sb: Sandbox) -> int:
        return 0 if self.pods.ready(sb) else 1  # SANDBOX_READY, SANDBOX_NOTREADY

    async def Version(self, req: Any) -> Any:  # noqa: N802 - the RPC's name
        return api().VersionResponse(
            version="0.1.0",
            runtime_name=RUNTIME_NAME,
            runtime_version=__version__,
            runtime_api_version=RUNTIME_API_VERSION,
        )

    async def Status(self, req: Any) -> Any:  # noqa: N802
        a = api()
        net_ok, why = True, ""
        try:
            self.cni.network()
        except BerthError as e:
            net_ok, why = False, str(e)
        conds = [
            a.RuntimeCondition(type="RuntimeReady", status=True),
            a.RuntimeCondition(
                type="NetworkReady",
                status=net_ok,
                reason="" if net_ok else "NetworkPluginNotReady",
                message=why,
            ),
        ]
        # "" is the default runtime; the others are berthd's runtimes by name (berth, runc,
        # crun, --add-runtime's), which a RuntimeClass's handler names
        handlers = [a.RuntimeHandler(name=n) for n in ["", *sorted(self.c.runtimes())]]
        return a.StatusResponse(status=a.RuntimeStatus(conditions=conds), runtime_handlers=handlers)

    async def RuntimeConfig(self, req: Any) -> Any:  # noqa: N802
        """The cgroup driver, for a kubelet to match: berth manages cgroups itself
        (cgroupfs), with no systemd slices."""
        a = api()
        return a.RuntimeConfigResponse(
            linux=a.LinuxRuntimeConfiguration(cgroup_driver=a.CgroupDriver.Value("CGROUPFS"))
        )

    async def UpdateRuntimeConfig(self, req: Any) -> Any:  # noqa: N802
        # the pod CIDR goes to the CNI config, which kubelets' deployments write themselves
        return api().UpdateRuntimeConfigResponse()

    async def RunPodSandbox(self, req: Any) -> Any:  # noqa: N802
        c = req.config
        md = c.metadata
        if not md.name or not md.namespace or not md.uid:
            raise InvalidArgument("sandbox metadata needs a name, a namespace and a uid")
        hostname = (c.hostname or md.name)[:63]
        if not _HOSTNAME.fullmatch(hostname):
            raise InvalidArgument(f"hostname {hostname!r} is not a valid host name")
        if req.runtime_handler and req.runtime_handler not in self.c.runtimes():
            raise InvalidArgument(
                f"no runtime for {req.runtime_handler!r} is configured "
                f"(berthd has {', '.join(sorted(self.c.runtimes()))})"
            )
        nso = c.linux.security_context.namespace_options
        refuse_userns(nso, "pod sandbox")
        sb = Sandbox(
            id="",
            name=md.name,
            uid=md.uid,
            namespace=md.namespace,
            attempt=md.attempt,
            hostname=hostname,
            log_directory=c.log_directory,
            host_network=nso.network == NS_NODE,
            host_ipc=nso.ipc == NS_NODE,
            host_pid=nso.pid == NS_NODE,
            share_pid=nso.pid == NS_POD,
            dns=DnsConfig(
                servers=list(c.dns_config.servers),
                searches=list(c.dns_config.searches),
                options=list(c.dns_config.options),
            ),
            ports=[
                PortMapping(
                    protocol=_PROTOCOLS.get(p.protocol, "tcp"),
                    container_port=p.container_port,
                    host_port=p.host_port,
                    host_ip=p.host_ip,
                )
                for p in c.port_mappings
            ],
            labels=dict(c.labels),
            annotations=dict(c.annotations),
            runtime_handler=req.runtime_handler,
            cgroup_parent=c.linux.cgroup_parent,
            sysctls=pod_sysctls(dict(c.linux.sysctls), nso.network == NS_NODE, nso.ipc == NS_NODE),
        )
        sb = await self.pods.run(sb)
        self.c.events.sandbox(sb.id, events.CREATED)
        self.c.events.sandbox(sb.id, events.STARTED)
        return api().RunPodSandboxResponse(pod_sandbox_id=sb.id)

    async def StopPodSandbox(self, req: Any) -> Any:  # noqa: N802
        try:
            sb = self.pods.resolve(req.pod_sandbox_id)
        except NotFound:  # idempotent: a sandbox already gone is stopped
            return api().StopPodSandboxResponse()
        for rec in self.c.pod_containers(sb.id):
            if rec.state.status.is_running:
                await self.c.stop_container(rec, 0)
        await self.pods.stop(sb)
        self.c.events.sandbox(sb.id, events.STOPPED)
        return api().StopPodSandboxResponse()

    async def RemovePodSandbox(self, req: Any) -> Any:  # noqa: N802
        try:
            sb = self.pods.resolve(req.pod_sandbox_id)
        except NotFound:
            return api().RemovePodSandboxResponse()
        for rec in self.c.pod_containers(sb.id):
            await self.c.remove_container(rec.id)
        await self.pods.remove(sb)
        self.c.events.sandbox(sb.id, events.DELETED)
        return api().RemovePodSandboxResponse()

    def _sandbox_metadata(self, sb: Sandbox) -> Any:
        return api().PodSandboxMetadata(
            name=sb.name, uid=sb.uid, namespace=sb.namespace, attempt=sb.attempt
        )

    def status_of(self, sb: Sandbox) -> Any:
        """The pod's PodSandboxStatus message."""
        a = api()
        ns = a.NamespaceOption(
            network=NS_NODE if sb.host_network else NS_POD,
            ipc=NS_NODE if sb.host_ipc else NS_POD,
            pid=NS_NODE if sb.host_pid else NS_POD if sb.share_pid else NS_CONTAINER,
        )
        return a.PodSandboxStatus(
            id=sb.id,
            metadata=self._sandbox_metadata(sb),
            state=self._state(sb),
            created_at=sb.created_ns,
            network=a.PodSandboxNetworkStatus(
                ip=sb.ip, additional_ips=[a.PodIP(ip=ip) for ip in sb.additional_ips]
            ),
            linux=a.LinuxPodSandboxStatus(namespaces=a.Namespace(options=ns)),
            labels=sb.labels,
            annotations=sb.annotations,
            runtime_handler=sb.runtime_handler,
        )

    async def PodSandboxStatus(self, req: Any) -> Any:  # noqa: N802
        sb = self.pods.resolve(req.pod_sandbox_id)
        info = {"pid": str(sb.pid)} if req.verbose else {}
        return api().PodSandboxStatusResponse(
            status=self.status_of(sb), info=info, timestamp=time.time_ns()
        )

    async def GetContainerEvents(self, req: Any) -> AsyncIterator[Any]:  # noqa: N802
        """The pods' and their containers' lifecycle, as it happens (kubelets' evented PLEG),
        each event with its pod's status and its containers' then."""
        a = api()
        async for ev in self.c.events.stream():
            resp = a.ContainerEventResponse(
                container_id=ev.id, container_event_type=ev.kind, created_at=ev.at_ns
            )
            sb = self.pods.all.get(ev.sandbox_id)
            if sb is not None:
                resp.pod_sandbox_status.CopyFrom(self.status_of(sb))
            resp.containers_statuses.extend(
                self.c.status_of(r) for r in self.c.pod_containers(ev.sandbox_id)
            )
            yield resp

    async def ListPodSandbox(self, req: Any) -> Any:  # noqa: N802
        a = api()
        f = req.filter if req.HasField("filter") else None
        items = []
        for sb in list(self.pods.all.values()):
            state = self._state(sb)
            if f is not None:
                if f.id and not sb.id.startswith(f.id):
                    continue
                if f.HasField("state") and f.state.state != state:
                    continue
                if not labels_match(sb.labels, f.label_selector):
                    continue
            items.append(
                a.PodSandbox(
                    id=sb.id,
                    metadata=self._sandbox_metadata(sb),
                    state=state,
                    created_at=sb.created_ns,
                    labels=sb.labels,
                    annotations=sb.annotations,
                    runtime_handler=sb.runtime_handler,
                )
            )
        return a.ListPodSandboxResponse(items=items)

    async def _pod_stats(self, sb: Sandbox) -> Any:
        recs = [(r, self.c.metadata(r)) for r in self.c.pod_containers(sb.id)]
        return await self.c.stats.pod(sb, self._sandbox_metadata(sb), recs)

    async def PodSandboxStats(self, req: Any) -> Any:  # noqa: N802
        sb = self.pods.resolve(req.pod_sandbox_id)
        return api().PodSandboxStatsResponse(stats=await self._pod_stats(sb))

    async def ListPodSandboxStats(self, req: Any) -> Any:  # noqa: N802
        f = req.filter
        out = []
        for sb in list(self.pods.all.values()):
            if f.id and not sb.id.startswith(f.id):
                continue
            if not labels_match(sb.labels, f.label_selector) or not self.pods.ready(sb):
                continue
            out.append(await self._pod_stats(sb))
        return api().ListPodSandboxStatsResponse(stats=out)

    async def PortForward(self, req: Any) -> Any:  # noqa: N802
        sb = self.pods.resolve(req.pod_sandbox_id)
        if not self.pods.ready(sb):
            raise Conflict(f"pod sandbox {sb.id} is not ready")
        target = "127.0.0.1" if sb.host_network else sb.ip
        if not target:
            raise Conflict(f"pod sandbox {sb.id} has no address to forward to")
        url = self.c.stream_url(
            StreamRequest(kind="portforward", target=target, ports=check_ports(list(req.port)))
        )
        return api().PortForwardResponse(url=url)


__all__ = ["NS_CONTAINER", "NS_NODE", "NS_POD", "PodHandlers", "pod_sysctls"]
