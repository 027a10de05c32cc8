"""RuntimeService: pods (`sandboxes`) and their containers (berth containers, through the same
container and exec services as the Engine API). Each method takes the request message and
returns the response message; `server` maps berth's errors to gRPC codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import time
from typing import Any

from berth import __version__
from berth.containers import ContainerService
from berth.containers.channel import T_STDERR, T_STDOUT, Attachment
from berth.containers.execs import ExecService
from berth.containers.record import ContainerRecord
from berth.cri import containers as cc
from berth.cri.cni import Cni
from berth.cri.gen import api
from berth.cri.logs import CriLog
from berth.cri.sandboxes import DnsConfig, Pods, PortMapping, Sandbox, SandboxState
from berth.cri.stats import Stats
from berth.cri.streaming import StreamRequest, StreamServer, check_ports
from berth.errors import BerthError, Conflict, InvalidArgument, NotFound, NotImplemented_

log = logging.getLogger(__name__)

RUNTIME_NAME = "berth"
RUNTIME_API_VERSION = "v1"
# NamespaceMode
NS_POD, NS_CONTAINER, NS_NODE, NS_TARGET = 0, 1, 2, 3
EXEC_OUTPUT_MAX = 16 << 20   # ExecSync's output kept, per stream (the rest is dropped)
_PROTOCOLS = {0: "tcp", 1: "udp", 2: "sctp"}
_IPC_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")
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


def _labels_match(have: dict[str, str], selector: Any) -> bool:
    return all(have.get(k) == v for k, v in selector.items())


def _text(v: str | bytes) -> str:
    return v.decode(errors="replace") if isinstance(v, bytes) else v


class RuntimeHandlers:
    def __init__(self, pods: Pods, containers: ContainerService, execs: ExecService,
                 cni: Cni, streams: StreamServer | None = None) -> None:
        self.streams = streams
        self.pods = pods
        self.containers = containers
        self.execs = execs
        self.cni = cni
        self.logs: dict[str, tuple[CriLog, asyncio.Task[None]]] = {}
        self.stats = Stats(containers)

    def resume_logs(self) -> None:
        """After a daemon restart: the CRI logs of the running containers are written on
        (what they printed while no daemon ran is in their json-file log only)."""
        for rec in self.containers.store.all():
            path = cc.label(rec, cc.L_LOG) if cc.is_cri(rec) else ""
            if path and rec.state.status.is_running and rec.id not in self.logs:
                with contextlib.suppress(BerthError, OSError):
                    writer = CriLog(path)
                    self._follow(rec.id, writer,
                                 self.containers.attach(rec.id, stdout=True, stderr=True))

    async def close(self) -> None:
        """At the daemon's shutdown: the spare holder goes; the CRI logs are flushed and
        closed (a restarted daemon writes them on: `resume_logs`)."""
        await self.pods.close()
        if self.streams is not None:
            await self.streams.stop()
        for _, task in list(self.logs.values()):
            task.cancel()
        for _, task in list(self.logs.values()):
            with contextlib.suppress(BaseException):
                await task

    # --- runtime ----------------------------------------------------------------------------
    async def Version(self, req: Any) -> Any:  # noqa: N802 - the RPC's name
        return api().VersionResponse(version="0.1.0", runtime_name=RUNTIME_NAME,
                                     runtime_version=__version__,
                                     runtime_api_version=RUNTIME_API_VERSION)

    async def Status(self, req: Any) -> Any:  # noqa: N802
        a = api()
        net_ok, why = True, ""
        try:
            self.cni.network()
        except BerthError as e:
            net_ok, why = False, str(e)
        conds = [a.RuntimeCondition(type="RuntimeReady", status=True),
                 a.RuntimeCondition(type="NetworkReady", status=net_ok,
                                    reason="" if net_ok else "NetworkPluginNotReady",
                                    message=why)]
        return a.StatusResponse(status=a.RuntimeStatus(conditions=conds),
                                runtime_handlers=[a.RuntimeHandler(name="")])

    async def UpdateRuntimeConfig(self, req: Any) -> Any:  # noqa: N802
        # the pod CIDR goes to the CNI config, which kubelets' deployments write themselves
        return api().UpdateRuntimeConfigResponse()

    # --- pods -------------------------------------------------------------------------------
    async def RunPodSandbox(self, req: Any) -> Any:  # noqa: N802
        c = req.config
        md = c.metadata
        if not md.name or not md.namespace or not md.uid:
            raise InvalidArgument("sandbox metadata needs a name, a namespace and a uid")
        hostname = (c.hostname or md.name)[:63]
        if not _HOSTNAME.fullmatch(hostname):
            raise InvalidArgument(f"hostname {hostname!r} is not a valid host name")
        nso = c.linux.security_context.namespace_options
        sb = Sandbox(id="", name=md.name, uid=md.uid, namespace=md.namespace,
                     attempt=md.attempt, hostname=hostname,
                     log_directory=c.log_directory,
                     host_network=nso.network == NS_NODE, host_ipc=nso.ipc == NS_NODE,
                     host_pid=nso.pid == NS_NODE, share_pid=nso.pid == NS_POD,
                     dns=DnsConfig(servers=list(c.dns_config.servers),
                                   searches=list(c.dns_config.searches),
                                   options=list(c.dns_config.options)),
                     ports=[PortMapping(protocol=_PROTOCOLS.get(p.protocol, "tcp"),
                                        container_port=p.container_port,
                                        host_port=p.host_port, host_ip=p.host_ip)
                            for p in c.port_mappings],
                     labels=dict(c.labels), annotations=dict(c.annotations),
                     runtime_handler=req.runtime_handler,
                     cgroup_parent=c.linux.cgroup_parent,
                     sysctls=pod_sysctls(dict(c.linux.sysctls), nso.network == NS_NODE,
                                         nso.ipc == NS_NODE))
        sb = await self.pods.run(sb)
        return api().RunPodSandboxResponse(pod_sandbox_id=sb.id)

    def _pod_containers(self, sid: str) -> list[ContainerRecord]:
        return [r for r in self.containers.store.all()
                if cc.label(r, cc.L_SANDBOX) == sid]

    async def StopPodSandbox(self, req: Any) -> Any:  # noqa: N802
        try:
            sb = self.pods.resolve(req.pod_sandbox_id)
        except NotFound:   # idempotent: a sandbox already gone is stopped
            return api().StopPodSandboxResponse()
        for rec in self._pod_containers(sb.id):
            if rec.state.status.is_running:
                await self._stop_container(rec, 0)
        await self.pods.stop(sb)
        return api().StopPodSandboxResponse()

    async def RemovePodSandbox(self, req: Any) -> Any:  # noqa: N802
        try:
            sb = self.pods.resolve(req.pod_sandbox_id)
        except NotFound:
            return api().RemovePodSandboxResponse()
        for rec in self._pod_containers(sb.id):
            await self._remove_container(rec.id)
        await self.pods.remove(sb)
        return api().RemovePodSandboxResponse()

    def _sandbox_metadata(self, sb: Sandbox) -> Any:
        return api().PodSandboxMetadata(name=sb.name, uid=sb.uid, namespace=sb.namespace,
                                        attempt=sb.attempt)

    def _state(self, sb: Sandbox) -> int:
        ready = sb.state is SandboxState.READY and self.pods.holder_alive(sb)
        return 0 if ready else 1   # SANDBOX_READY, SANDBOX_NOTREADY

    async def PodSandboxStatus(self, req: Any) -> Any:  # noqa: N802
        a = api()
        sb = self.pods.resolve(req.pod_sandbox_id)
        ns = a.NamespaceOption(network=NS_NODE if sb.host_network else NS_POD,
                               ipc=NS_NODE if sb.host_ipc else NS_POD,
                               pid=NS_NODE if sb.host_pid else
                               NS_POD if sb.share_pid else NS_CONTAINER)
        status = a.PodSandboxStatus(
            id=sb.id, metadata=self._sandbox_metadata(sb), state=self._state(sb),
            created_at=sb.created_ns,
            network=a.PodSandboxNetworkStatus(
                ip=sb.ip, additional_ips=[a.PodIP(ip=ip) for ip in sb.additional_ips]),
            linux=a.LinuxPodSandboxStatus(namespaces=a.Namespace(options=ns)),
            labels=sb.labels, annotations=sb.annotations, runtime_handler=sb.runtime_handler)
        info = {"pid": str(sb.pid)} if req.verbose else {}
        return a.PodSandboxStatusResponse(status=status, info=info, timestamp=time.time_ns())

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
                if not _labels_match(sb.labels, f.label_selector):
                    continue
            items.append(a.PodSandbox(id=sb.id, metadata=self._sandbox_metadata(sb),
                                      state=state, created_at=sb.created_ns,
                                      labels=sb.labels, annotations=sb.annotations,
                                      runtime_handler=sb.runtime_handler))
        return a.ListPodSandboxResponse(items=items)

    # --- containers -------------------------------------------------------------------------
    @staticmethod
    def _spec(c: Any) -> cc.Spec:
        sc = c.linux.security_context
        res = c.linux.resources
        return cc.Spec(
            name=c.metadata.name, attempt=c.metadata.attempt, image=c.image.image,
            command=list(c.command), args=list(c.args), working_dir=c.working_dir,
            env=[(e.key, _text(e.value)) for e in c.envs],
            mounts=[(m.host_path, m.container_path, m.readonly, m.propagation)
                    for m in c.mounts],
            labels=dict(c.labels), annotations=dict(c.annotations), log_path=c.log_path,
            stdin=c.stdin, stdin_once=c.stdin_once, tty=c.tty,
            run_as_user=sc.run_as_user.value if sc.HasField("run_as_user") else None,
            run_as_group=sc.run_as_group.value if sc.HasField("run_as_group") else None,
            run_as_username=sc.run_as_username, privileged=sc.privileged,
            readonly_rootfs=sc.readonly_rootfs, no_new_privs=sc.no_new_privs,
            cap_add=list(sc.capabilities.add_capabilities),
            cap_drop=list(sc.capabilities.drop_capabilities),
            masked_paths=list(sc.masked_paths) if sc.masked_paths else None,
            readonly_paths=list(sc.readonly_paths) if sc.readonly_paths else None,
            supplemental_groups=list(sc.supplemental_groups),
            seccomp=(sc.seccomp.profile_type, sc.seccomp.localhost_ref)
            if sc.HasField("seccomp") else (cc.PROFILE_RUNTIME_DEFAULT, ""),
            cpu_shares=res.cpu_shares, cpu_period=res.cpu_period, cpu_quota=res.cpu_quota,
            memory=res.memory_limit_in_bytes, cpuset_cpus=res.cpuset_cpus,
            cpuset_mems=res.cpuset_mems)

    async def CreateContainer(self, req: Any) -> Any:  # noqa: N802
        sb = self.pods.resolve(req.pod_sandbox_id)
        if self._state(sb) != 0:
            raise Conflict(f"pod sandbox {sb.id} is not ready")
        spec = self._spec(req.config)
        if not spec.name:
            raise InvalidArgument("container metadata needs a name")
        if spec.log_path:
            if not sb.log_directory:
                raise InvalidArgument("log_path given but the sandbox has no log_directory")
            if spec.log_path.startswith("/") or ".." in spec.log_path.split("/"):
                raise InvalidArgument(f"log_path {spec.log_path!r} is not relative to the "
                                      "sandbox's log directory")
            spec.log_path = f"{sb.log_directory.rstrip('/')}/{spec.log_path}"
        name = cc.container_name(spec, sb)
        cid, _ = await self.containers.create(cc.create_body(spec, sb), name)
        return api().CreateContainerResponse(container_id=cid)

    def _resolve(self, ref: str) -> ContainerRecord:
        rec = self.containers.resolve(ref)
        if not cc.is_cri(rec):
            raise NotFound(f"container {ref!r} is not a CRI container")
        return rec

    async def StartContainer(self, req: Any) -> Any:  # noqa: N802
        rec = self._resolve(req.container_id)
        sb = self.pods.resolve(cc.label(rec, cc.L_SANDBOX))
        if self._state(sb) != 0:
            raise Conflict(f"pod sandbox {sb.id} is not ready")
        path = cc.label(rec, cc.L_LOG)
        if not path:
            await self.containers.start(rec.id)
            return api().StartContainerResponse()
        # attached before the start: the log misses none of the output
        writer = CriLog(path)
        att = self.containers.attach(rec.id, stdout=True, stderr=True)
        try:
            await self.containers.start(rec.id)
        except BaseException:
            att.close()
            writer.close()
            raise
        self._follow(rec.id, writer, att)
        return api().StartContainerResponse()

    def _follow(self, cid: str, writer: CriLog, att: Attachment) -> None:
        old = self.logs.pop(cid, None)
        if old is not None:
            old[1].cancel()

        async def run() -> None:
            try:
                await writer.follow(att.output())
            finally:
                with contextlib.suppress(Exception):
                    att.close()
                if self.logs.get(cid, (None, None))[0] is writer:
                    del self.logs[cid]
        self.logs[cid] = (writer, asyncio.get_running_loop().create_task(run()))

    async def StopContainer(self, req: Any) -> Any:  # noqa: N802
        rec = self._resolve(req.container_id)
        if rec.state.status.is_running:
            await self._stop_container(rec, max(0, int(req.timeout)))
        return api().StopContainerResponse()

    async def _stop_container(self, rec: ContainerRecord, timeout: int) -> None:
        """The container service's stop; in a pod with a PID namespace of its own, what the
        container's init leaves running when it exits is killed too (no PID namespace ends
        with it to do so; its output pipes would keep the exit from being seen), as
        containerd's shim does."""
        try:
            sb: Sandbox | None = self.pods.resolve(cc.label(rec, cc.L_SANDBOX))
        except NotFound:
            sb = None
        if sb is None or not sb.share_pid:
            await self.containers.stop(rec.id, timeout)
            return
        init = rec.state.pid
        stop = asyncio.get_running_loop().create_task(self.containers.stop(rec.id, timeout))
        while not stop.done():
            await asyncio.wait({stop}, timeout=0.1)
            if stop.done() or not init or os.path.exists(f"/proc/{init}"):
                continue
            with contextlib.suppress(BerthError, OSError):
                table = await asyncio.to_thread(self.containers.top, rec.id, "-eo pid")
                for row in table.processes:
                    with contextlib.suppress(OSError, ValueError):
                        os.kill(int(row[0]), signal.SIGKILL)
        await stop

    async def _remove_container(self, cid: str) -> None:
        with contextlib.suppress(NotFound):
            await self.containers.remove(cid, force=True)
        entry = self.logs.pop(cid, None)
        if entry is not None:
            entry[1].cancel()
        self.stats.forget(cid)

    async def RemoveContainer(self, req: Any) -> Any:  # noqa: N802
        try:
            rec = self._resolve(req.container_id)
        except NotFound:
            return api().RemoveContainerResponse()
        await self._remove_container(rec.id)
        return api().RemoveContainerResponse()

    def _metadata(self, rec: ContainerRecord) -> Any:
        return api().ContainerMetadata(name=cc.label(rec, cc.L_NAME),
                                       attempt=int(cc.label(rec, cc.L_ATTEMPT) or 0))

    async def ListContainers(self, req: Any) -> Any:  # noqa: N802
        a = api()
        f = req.filter if req.HasField("filter") else None
        items = []
        for rec in self.containers.store.all():
            if not cc.is_cri(rec):
                continue
            state = cc.state_of(rec)
            labels = cc.labels_of(rec)
            sid = cc.label(rec, cc.L_SANDBOX)
            if f is not None:
                if f.id and not rec.id.startswith(f.id):
                    continue
                if f.HasField("state") and f.state.state != state:
                    continue
                if f.pod_sandbox_id and not sid.startswith(f.pod_sandbox_id):
                    continue
                if not _labels_match(labels, f.label_selector):
                    continue
            items.append(a.Container(
                id=rec.id, pod_sandbox_id=sid, metadata=self._metadata(rec),
                image=a.ImageSpec(image=cc.label(rec, cc.L_IMAGE)), image_ref=rec.image,
                image_id=rec.image, state=state, created_at=rec.created_ns, labels=labels,
                annotations=cc.annotations_of(rec)))
        return a.ListContainersResponse(containers=items)

    async def ContainerStatus(self, req: Any) -> Any:  # noqa: N802
        a = api()
        rec = self._resolve(req.container_id)
        mounts = [a.Mount(container_path=m.destination, host_path=m.source,
                          readonly=not m.rw) for m in rec.mounts]
        st = a.ContainerStatus(
            id=rec.id, metadata=self._metadata(rec), state=cc.state_of(rec),
            created_at=rec.created_ns, started_at=cc.time_ns(rec.state.started_at),
            finished_at=cc.time_ns(rec.state.finished_at), exit_code=rec.state.exit_code,
            image=a.ImageSpec(image=cc.label(rec, cc.L_IMAGE)), image_ref=rec.image,
            image_id=rec.image, reason=cc.reason_of(rec), message=rec.state.error,
            labels=cc.labels_of(rec), annotations=cc.annotations_of(rec), mounts=mounts,
            log_path=cc.label(rec, cc.L_LOG))
        info = {"pid": str(rec.state.pid)} if req.verbose else {}
        return a.ContainerStatusResponse(status=st, info=info)

    # --- resources and stats ----------------------------------------------------------------
    async def UpdateContainerResources(self, req: Any) -> Any:  # noqa: N802
        rec = self._resolve(req.container_id)
        r = req.linux
        body = {"CpuShares": r.cpu_shares, "CpuPeriod": r.cpu_period, "CpuQuota": r.cpu_quota,
                "Memory": r.memory_limit_in_bytes, "CpusetCpus": r.cpuset_cpus,
                "CpusetMems": r.cpuset_mems}
        await self.containers.update(rec.id, {k: v for k, v in body.items() if v})
        return api().UpdateContainerResourcesResponse()

    def _cri_containers(self, *, cid: str = "", sid: str = "",
                        labels: Any = None) -> list[ContainerRecord]:
        out = []
        for rec in self.containers.store.all():
            if not cc.is_cri(rec) or (cid and not rec.id.startswith(cid)):
                continue
            if sid and not cc.label(rec, cc.L_SANDBOX).startswith(sid):
                continue
            if labels and not _labels_match(cc.labels_of(rec), labels):
                continue
            out.append(rec)
        return out

    async def ContainerStats(self, req: Any) -> Any:  # noqa: N802
        rec = self._resolve(req.container_id)
        return api().ContainerStatsResponse(
            stats=await self.stats.container(rec, self._metadata(rec)))

    async def ListContainerStats(self, req: Any) -> Any:  # noqa: N802
        f = req.filter
        recs = self._cri_containers(cid=f.id, sid=f.pod_sandbox_id, labels=f.label_selector)
        return api().ListContainerStatsResponse(stats=[
            await self.stats.container(r, self._metadata(r)) for r in recs
            if r.state.status.is_running])

    async def _pod_stats(self, sb: Sandbox) -> Any:
        recs = [(r, self._metadata(r)) for r in self._pod_containers(sb.id)]
        return await self.stats.pod(sb, self._sandbox_metadata(sb), recs)

    async def PodSandboxStats(self, req: Any) -> Any:  # noqa: N802
        sb = self.pods.resolve(req.pod_sandbox_id)
        return api().PodSandboxStatsResponse(stats=await self._pod_stats(sb))

    async def ListPodSandboxStats(self, req: Any) -> Any:  # noqa: N802
        f = req.filter
        out = []
        for sb in list(self.pods.all.values()):
            if f.id and not sb.id.startswith(f.id):
                continue
            if not _labels_match(sb.labels, f.label_selector) or self._state(sb) != 0:
                continue
            out.append(await self._pod_stats(sb))
        return api().ListPodSandboxStatsResponse(stats=out)

    async def ReopenContainerLog(self, req: Any) -> Any:  # noqa: N802
        rec = self._resolve(req.container_id)
        entry = self.logs.get(rec.id)
        if entry is None or not rec.state.status.is_running:
            raise Conflict(f"container {rec.id} is not running")
        entry[0].reopen()
        return api().ReopenContainerLogResponse()

    # --- streams ----------------------------------------------------------------------------
    def _stream_url(self, req: StreamRequest) -> str:
        if self.streams is None:
            raise NotImplemented_("the CRI streaming server is not running")
        return self.streams.register(req)

    async def Exec(self, req: Any) -> Any:  # noqa: N802
        rec = self._resolve(req.container_id)
        if not req.cmd:
            raise InvalidArgument("Exec needs a command")
        if not (req.stdin or req.stdout or req.stderr):
            raise InvalidArgument("one of stdin, stdout, or stderr must be set")
        if not rec.state.status.is_running:
            raise Conflict(f"container {rec.id} is not running")
        url = self._stream_url(StreamRequest(
            kind="exec", container_id=rec.id, cmd=list(req.cmd), tty=req.tty,
            stdin=req.stdin, stdout=req.stdout, stderr=req.stderr))
        return api().ExecResponse(url=url)

    async def Attach(self, req: Any) -> Any:  # noqa: N802
        rec = self._resolve(req.container_id)
        if not (req.stdin or req.stdout or req.stderr):
            raise InvalidArgument("one of stdin, stdout, or stderr must be set")
        url = self._stream_url(StreamRequest(
            kind="attach", container_id=rec.id, tty=req.tty, stdin=req.stdin,
            stdout=req.stdout, stderr=req.stderr))
        return api().AttachResponse(url=url)

    async def PortForward(self, req: Any) -> Any:  # noqa: N802
        sb = self.pods.resolve(req.pod_sandbox_id)
        if self._state(sb) != 0:
            raise Conflict(f"pod sandbox {sb.id} is not ready")
        target = "127.0.0.1" if sb.host_network else sb.ip
        if not target:
            raise Conflict(f"pod sandbox {sb.id} has no address to forward to")
        url = self._stream_url(StreamRequest(kind="portforward", target=target,
                                             ports=check_ports(list(req.port))))
        return api().PortForwardResponse(url=url)

    async def ExecSync(self, req: Any) -> Any:  # noqa: N802
        rec = self._resolve(req.container_id)
        if not req.cmd:
            raise InvalidArgument("ExecSync needs a command")
        eid = self.execs.create(rec.id, {"Cmd": list(req.cmd), "AttachStdout": True,
                                         "AttachStderr": True})
        att = self.execs.attach(eid)
        out: dict[int, bytearray] = {T_STDOUT: bytearray(), T_STDERR: bytearray()}

        async def collect() -> None:
            async for stream, data in att.output():
                buf = out.get(stream)
                if buf is not None and len(buf) < EXEC_OUTPUT_MAX:
                    buf += data[:EXEC_OUTPUT_MAX - len(buf)]
        try:
            await self.execs.start(eid)
            timeout = float(req.timeout) if req.timeout > 0 else None
            try:
                await asyncio.wait_for(collect(), timeout)
            except TimeoutError:
                ex = self.execs.get(eid)
                if ex.pid:
                    with contextlib.suppress(OSError):
                        os.kill(ex.pid, signal.SIGKILL)
                raise BerthError(f"command {list(req.cmd)} timed out after {req.timeout}s"
                                 ) from None
            code = await self.execs.wait(eid, 10.0)
        finally:
            att.close()
        return api().ExecSyncResponse(stdout=bytes(out[T_STDOUT]), stderr=bytes(out[T_STDERR]),
                                      exit_code=code if code is not None else -1)


__all__ = ["RuntimeHandlers"]
