"""RuntimeService, its containers' part: berth containers in pods, through the same container
and exec services as the Engine API; their logs, stats and streams. The runtime and pod part is
`pods`. Each method takes the request message and returns the response message; `server` maps
berth's errors to gRPC codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from typing import Any

from berth.containers import ContainerService, cdi
from berth.containers.channel import T_STDERR, T_STDOUT, Attachment
from berth.containers.execs import ExecConfig, ExecService
from berth.containers.hostconfig import DeviceRequest, ResourcesUpdate
from berth.containers.record import ContainerRecord
from berth.cri import containers as cc
from berth.cri.cni import Cni
from berth.cri.events import CriEvents
from berth.cri.gen import api
from berth.cri.logs import CriLog
from berth.cri.sandboxes import Pods, Sandbox
from berth.cri.stats import Stats
from berth.cri.streaming import StreamRequest, StreamServer
from berth.errors import BerthError, Conflict, InvalidArgument, NotFound, NotImplemented_

log = logging.getLogger(__name__)

EXEC_OUTPUT_MAX = 16 << 20  # ExecSync's output kept, per stream (the rest is dropped)


def labels_match(have: dict[str, str], selector: Any) -> bool:
    return all(have.get(k) == v for k, v in selector.items())


def _text(v: str | bytes) -> str:
    return v.decode(errors="replace") if isinstance(v, bytes) else v


def _profile(p: Any) -> tuple[int, str]:
    return int(p.profile_type), str(p.localhost_ref)


def _legacy_apparmor(name: str) -> tuple[int, str]:
    """The deprecated apparmor_profile string: runtime/default, unconfined, localhost/NAME."""
    if name.startswith("localhost/"):
        return cc.PROFILE_LOCALHOST, name
    if name == "unconfined":
        return cc.PROFILE_UNCONFINED, ""
    return cc.PROFILE_RUNTIME_DEFAULT, ""


def refuse_userns(nso: Any, what: str) -> None:
    """A user namespace of the pod's own (UserNamespace mode POD, as kubelets ask with
    hostUsers: false) is refused, clearly: berth's runtime maps IDs, but its storage remaps a
    rootfs's owners only daemon-wide (--userns-remap), not per pod's mappings."""
    if not nso.HasField("userns_options"):
        return
    mode = nso.userns_options.mode
    if mode == 2:  # NODE: the host's user namespace, which every container is in anyway
        return
    if mode == 0:  # POD
        raise NotImplemented_(
            f"{what}: user namespaces of a pod's own (hostUsers: false) are not supported: "
            "berth remaps image files only daemon-wide (berthd --userns-remap)"
        )
    raise InvalidArgument(f"{what}: user namespace mode {mode} is not POD or NODE")


class ContainerHandlers:
    def __init__(
        self,
        pods: Pods,
        containers: ContainerService,
        execs: ExecService,
        cni: Cni,
        streams: StreamServer | None = None,
        events: CriEvents | None = None,
    ) -> None:
        self.events = events or CriEvents(None)
        self.streams = streams
        self.pods = pods
        self.containers = containers
        self.execs = execs
        self.cni = cni
        self.logs: dict[str, tuple[CriLog, asyncio.Task[None]]] = {}
        self.stats = Stats(containers)

    def runtimes(self) -> list[str]:
        """The daemon's OCI runtimes by name (a pod's runtime handler names one)."""
        return [self.containers.cfg.runtime_shown(k) for k in self.containers.cfg.runtimes]

    def resume_logs(self) -> None:
        """After a daemon restart: the CRI logs of the running containers are written on
        (what they printed while no daemon ran is in their json-file log only)."""
        for rec in self.containers.store.all():
            path = cc.label(rec, cc.L_LOG) if cc.is_cri(rec) else ""
            if path and rec.state.status.is_running and rec.id not in self.logs:
                with contextlib.suppress(BerthError, OSError):
                    writer = CriLog(path)
                    self._follow(
                        rec.id, writer, self.containers.attach(rec.id, stdout=True, stderr=True)
                    )

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

    def pod_containers(self, sid: str) -> list[ContainerRecord]:
        return [r for r in self.containers.store.all() if cc.label(r, cc.L_SANDBOX) == sid]

    # --- containers -------------------------------------------------------------------------
    @staticmethod
    def _spec(c: Any) -> cc.Spec:
        sc = c.linux.security_context
        res = c.linux.resources
        return cc.Spec(
            name=c.metadata.name,
            attempt=c.metadata.attempt,
            image=c.image.image,
            shown_image=c.image.user_specified_image,
            command=list(c.command),
            args=list(c.args),
            working_dir=c.working_dir,
            env=[(e.key, _text(e.value)) for e in c.envs],
            mounts=[(m.host_path, m.container_path, m.readonly, m.propagation) for m in c.mounts],
            devices=[(d.host_path, d.container_path, d.permissions) for d in c.devices],
            labels=dict(c.labels),
            annotations=dict(c.annotations),
            log_path=c.log_path,
            stdin=c.stdin,
            stdin_once=c.stdin_once,
            tty=c.tty,
            run_as_user=sc.run_as_user.value if sc.HasField("run_as_user") else None,
            run_as_group=sc.run_as_group.value if sc.HasField("run_as_group") else None,
            run_as_username=sc.run_as_username,
            privileged=sc.privileged,
            readonly_rootfs=sc.readonly_rootfs,
            no_new_privs=sc.no_new_privs,
            cap_add=list(sc.capabilities.add_capabilities),
            cap_drop=list(sc.capabilities.drop_capabilities),
            masked_paths=list(sc.masked_paths) if sc.masked_paths else None,
            readonly_paths=list(sc.readonly_paths) if sc.readonly_paths else None,
            supplemental_groups=list(sc.supplemental_groups),
            seccomp=(sc.seccomp.profile_type, sc.seccomp.localhost_ref)
            if sc.HasField("seccomp")
            else (cc.PROFILE_RUNTIME_DEFAULT, ""),
            apparmor=_profile(sc.apparmor)
            if sc.HasField("apparmor")
            else _legacy_apparmor(sc.apparmor_profile),
            cdi_devices=[d.name for d in c.CDI_devices],
            cpu_shares=res.cpu_shares,
            cpu_period=res.cpu_period,
            cpu_quota=res.cpu_quota,
            memory=res.memory_limit_in_bytes,
            cpuset_cpus=res.cpuset_cpus,
            cpuset_mems=res.cpuset_mems,
        )

    async def CreateContainer(self, req: Any) -> Any:  # noqa: N802
        sb = self.pods.resolve(req.pod_sandbox_id)
        if not self.pods.ready(sb):
            raise Conflict(f"pod sandbox {sb.id} is not ready")
        refuse_userns(req.config.linux.security_context.namespace_options, "container")
        spec = self._spec(req.config)
        if not spec.name:
            raise InvalidArgument("container metadata needs a name")
        if spec.log_path:
            if not sb.log_directory:
                raise InvalidArgument("log_path given but the sandbox has no log_directory")
            if spec.log_path.startswith("/") or ".." in spec.log_path.split("/"):
                raise InvalidArgument(
                    f"log_path {spec.log_path!r} is not relative to the sandbox's log directory"
                )
            spec.log_path = f"{sb.log_directory.rstrip('/')}/{spec.log_path}"
        name = cc.container_name(spec, sb)
        body = cc.create_body(spec, sb)
        if spec.cdi_devices:  # refused now, not at the start: unknown, hooked, missing nodes
            await asyncio.to_thread(self._check_cdi, spec.cdi_devices)
        cid, _ = await self.containers.create(body, name)
        return api().CreateContainerResponse(container_id=cid)

    def _check_cdi(self, names: list[str]) -> None:
        """The CDI devices' edits, tried on an empty spec against the specs on the host now
        (the container's start reads them again, as vendor tools may rewrite them)."""
        registry = cdi.Registry(self.containers.cfg.cdi_spec_dirs).load()
        cdi.resolve([DeviceRequest(driver="cdi", device_ids=tuple(names))], registry)
        cdi.apply({"process": {}, "linux": {}, "mounts": []}, names, registry)

    def _resolve(self, ref: str) -> ContainerRecord:
        rec = self.containers.resolve(ref)
        if not cc.is_cri(rec):
            raise NotFound(f"container {ref!r} is not a CRI container")
        return rec

    async def StartContainer(self, req: Any) -> Any:  # noqa: N802
        rec = self._resolve(req.container_id)
        sb = self.pods.resolve(cc.label(rec, cc.L_SANDBOX))
        if not self.pods.ready(sb):
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
            await self.stop_container(rec, max(0, int(req.timeout)))
        return api().StopContainerResponse()

    async def stop_container(self, rec: ContainerRecord, timeout: int) -> None:
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

    async def remove_container(self, cid: str) -> None:
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
        await self.remove_container(rec.id)
        return api().RemoveContainerResponse()

    def metadata(self, rec: ContainerRecord) -> Any:
        return api().ContainerMetadata(
            name=cc.label(rec, cc.L_NAME), attempt=int(cc.label(rec, cc.L_ATTEMPT) or 0)
        )

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
                if not labels_match(labels, f.label_selector):
                    continue
            items.append(
                a.Container(
                    id=rec.id,
                    pod_sandbox_id=sid,
                    metadata=self.metadata(rec),
                    image=a.ImageSpec(image=cc.label(rec, cc.L_IMAGE)),
                    image_ref=rec.image,
                    image_id=rec.image,
                    state=state,
                    created_at=rec.created_ns,
                    labels=labels,
                    annotations=cc.annotations_of(rec),
                )
            )
        return a.ListContainersResponse(containers=items)

    def status_of(self, rec: ContainerRecord) -> Any:
        """The container's ContainerStatus message."""
        a = api()
        mounts = [
            a.Mount(container_path=m.destination, host_path=m.source, readonly=not m.rw)
            for m in rec.mounts
        ]
        return a.ContainerStatus(
            id=rec.id,
            metadata=self.metadata(rec),
            state=cc.state_of(rec),
            created_at=rec.created_ns,
            started_at=cc.time_ns(rec.state.started_at),
            finished_at=cc.time_ns(rec.state.finished_at),
            exit_code=rec.state.exit_code,
            image=a.ImageSpec(image=cc.label(rec, cc.L_IMAGE)),
            image_ref=rec.image,
            image_id=rec.image,
            reason=cc.reason_of(rec),
            message=rec.state.error,
            labels=cc.labels_of(rec),
            annotations=cc.annotations_of(rec),
            mounts=mounts,
            log_path=cc.label(rec, cc.L_LOG),
            resources=a.ContainerResources(linux=a.LinuxContainerResources(**cc.resources_of(rec))),
        )

    async def ContainerStatus(self, req: Any) -> Any:  # noqa: N802
        rec = self._resolve(req.container_id)
        info = {"pid": str(rec.state.pid)} if req.verbose else {}
        return api().ContainerStatusResponse(status=self.status_of(rec), info=info)

    # --- resources and stats ----------------------------------------------------------------
    async def UpdateContainerResources(self, req: Any) -> Any:  # noqa: N802
        rec = self._resolve(req.container_id)
        r = req.linux
        # as before: a field left at zero (or empty) is not changed
        await self.containers.update(
            rec.id,
            ResourcesUpdate(
                cpu_shares=r.cpu_shares or None,
                cpu_period=r.cpu_period or None,
                cpu_quota=r.cpu_quota or None,
                memory=r.memory_limit_in_bytes or None,
                cpuset_cpus=r.cpuset_cpus or None,
                cpuset_mems=r.cpuset_mems or None,
            ),
        )
        return api().UpdateContainerResourcesResponse()

    def _cri_containers(
        self, *, cid: str = "", sid: str = "", labels: Any = None
    ) -> list[ContainerRecord]:
        out = []
        for rec in self.containers.store.all():
            if not cc.is_cri(rec) or (cid and not rec.id.startswith(cid)):
                continue
            if sid and not cc.label(rec, cc.L_SANDBOX).startswith(sid):
                continue
            if labels and not labels_match(cc.labels_of(rec), labels):
                continue
            out.append(rec)
        return out

    async def ContainerStats(self, req: Any) -> Any:  # noqa: N802
        rec = self._resolve(req.container_id)
        return api().ContainerStatsResponse(
            stats=await self.stats.container(rec, self.metadata(rec))
        )

    async def ListContainerStats(self, req: Any) -> Any:  # noqa: N802
        f = req.filter
        recs = self._cri_containers(cid=f.id, sid=f.pod_sandbox_id, labels=f.label_selector)
        return api().ListContainerStatsResponse(
            stats=[
                await self.stats.container(r, self.metadata(r))
                for r in recs
                if r.state.status.is_running
            ]
        )

    async def ReopenContainerLog(self, req: Any) -> Any:  # noqa: N802
        rec = self._resolve(req.container_id)
        entry = self.logs.get(rec.id)
        if entry is None or not rec.state.status.is_running:
            raise Conflict(f"container {rec.id} is not running")
        entry[0].reopen()
        return api().ReopenContainerLogResponse()

    # --- streams ----------------------------------------------------------------------------
    def stream_url(self, req: StreamRequest) -> str:
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
        url = self.stream_url(
            StreamRequest(
                kind="exec",
                container_id=rec.id,
                cmd=list(req.cmd),
                tty=req.tty,
                stdin=req.stdin,
                stdout=req.stdout,
                stderr=req.stderr,
            )
        )
        return api().ExecResponse(url=url)

    async def Attach(self, req: Any) -> Any:  # noqa: N802
        rec = self._resolve(req.container_id)
        if not (req.stdin or req.stdout or req.stderr):
            raise InvalidArgument("one of stdin, stdout, or stderr must be set")
        url = self.stream_url(
            StreamRequest(
                kind="attach",
                container_id=rec.id,
                tty=req.tty,
                stdin=req.stdin,
                stdout=req.stdout,
                stderr=req.stderr,
            )
        )
        return api().AttachResponse(url=url)

    async def ExecSync(self, req: Any) -> Any:  # noqa: N802
        rec = self._resolve(req.container_id)
        if not req.cmd:
            raise InvalidArgument("ExecSync needs a command")
        eid = self.execs.create(
            rec.id, ExecConfig(cmd=tuple(req.cmd), attach_stdout=True, attach_stderr=True)
        )
        att = self.execs.attach(eid)
        out: dict[int, bytearray] = {T_STDOUT: bytearray(), T_STDERR: bytearray()}

        async def collect() -> None:
            async for stream, data in att.output():
                buf = out.get(stream)
                if buf is not None and len(buf) < EXEC_OUTPUT_MAX:
                    buf += data[: EXEC_OUTPUT_MAX - len(buf)]

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
                raise BerthError(
                    f"command {list(req.cmd)} timed out after {req.timeout}s"
                ) from None
            code = await self.execs.wait(eid, 10.0)
        finally:
            att.close()
        return api().ExecSyncResponse(
            stdout=bytes(out[T_STDOUT]),
            stderr=bytes(out[T_STDERR]),
            exit_code=code if code is not None else -1,
        )


__all__ = ["ContainerHandlers", "labels_match"]
