"""The container service: create, start, stop, kill, wait, remove, rename, prune; the restore of
running containers at start-up. Its parts, each an object it holds and hands the shared
`ContainerStore`: `Networking` (networks, endpoints, /etc files, links), `Mounts` (volumes,
binds, tmpfs), `Output` (logs, attach, resize, export), `Resources` (the cgroup: pause,
update, top, stats), `Ipc` (shared IPC and PID namespaces), `Restarts` (restart policies) and
`Views` (inspect, ps, counts).
Two more parts: `Creator` (`containers.creator`: create) and `Stopping` (`containers.stopping`:
kill, stop, restart, wait). The service's public calls are the parts', one line each.

Imports `images`, `storage`, `metadata`, `networks`, `volumes`, `errors`, and of the shim only
`shim.protocol`. The runtime is reached only as processes: a request to the fork server starts
a shim (a monitor) per container, and the service talks to it through the shim protocol. This
module never forks.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import os
import shutil
import signal as signal_mod
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, BinaryIO

from berth import storage
from berth.containers import names
from berth.containers.bundle import Bundles
from berth.containers.channel import Attachment, Channel
from berth.containers.config import ZERO_TIME, ChannelOpener, Config
from berth.containers.create import CreateRequest
from berth.containers.creator import Creator
from berth.containers.hostconfig import ResourcesUpdate
from berth.containers.ipc import Ipc
from berth.containers.monitors import MONITOR_DIED, Monitors, monitor_died
from berth.containers.mounts import Mounts
from berth.containers.networking import Networking
from berth.containers.output import Output
from berth.containers.record import ContainerRecord, NetworkRequest, WaitResult
from berth.containers.resources import ProcessTable, Resources, StatsSample
from berth.containers.restarts import Restarts
from berth.containers.status import ContainerStatus
from berth.containers.stopping import Stopping
from berth.containers.store import ContainerStore, Emit, Live
from berth.containers.templates import TemplateStore
from berth.containers.views import ContainerView, Views
from berth.errors import (
    BerthError,
    Conflict,
    InvalidArgument,
    NotFound,
    NotModified,
    System,
)
from berth.images import ImageService, rfc3339
from berth.metadata import MetadataStore
from berth.networks import NetworkService
from berth.shim import protocol
from berth.shim.protocol import Exit, Ready
from berth.volumes import VolumeService

log = logging.getLogger(__name__)


class ContainerService:
    def __init__(
        self,
        cfg: Config,
        meta: MetadataStore,
        images: ImageService,
        driver: storage.Driver,
        *,
        emit: Emit | None = None,
        volumes: VolumeService | None = None,
        networks: NetworkService | None = None,
        open_channel: ChannelOpener | None = None,
    ) -> None:
        self.cfg = cfg
        self.networks = networks
        self.volumes = volumes or VolumeService(meta, os.path.join(cfg.data_root, "volumes"))
        self.meta = meta
        self.images = images
        self.driver = driver
        self.on_remove: builtins.list[
            Callable[[str], None]
        ] = []  # e.g. execs forgetting their records
        self.on_start: builtins.list[Callable[[str], None]] = []  # e.g. health checks beginning
        self.ncpu = os.cpu_count() or 1
        # closed to other local users (berthd gives them the modes and group of
        # --userns-remap before this runs)
        os.makedirs(os.path.join(cfg.data_root, "containers"), mode=0o700, exist_ok=True)
        os.makedirs(os.path.join(cfg.exec_root, "containers"), mode=0o700, exist_ok=True)
        self.store = ContainerStore(cfg, meta, emit)
        # compose projects' service templates, for the dashboard (`templates`)
        self.templates = TemplateStore(os.path.join(cfg.data_root, "compose"))
        self.monitors = Monitors(self.store, open_channel or Channel.open)
        self.net = Networking(self.store, networks)
        self.mounts = Mounts(self.store, self.volumes)
        self.output = Output(self.store, driver, images)
        self.resources = Resources(self.store, self.ncpu)
        self.ipc = Ipc(self.store)
        self.restarts = Restarts(self.store, self.start)
        self.stopping = Stopping(self.store, self.resources, self.restarts, self.start)
        self.creator = Creator(self.store, cfg, self.ncpu, images, driver, self.mounts, self.net)
        self.views = Views(self.store, images, driver, self.net)
        self.bundles = Bundles(
            self.store,
            self.ipc,
            self.mounts,
            self.net,
            images=images,
            driver=driver,
            output=self.output,
        )
        self.volumes.users = self.mounts.volume_users

    @property
    def emit(self) -> Emit:
        return self.store.emit

    @property
    def open_channel(self) -> ChannelOpener:
        """How the service reaches a fork server or a shim (a fake shim's, in unit tests)."""
        return self.monitors.open_channel

    @open_channel.setter
    def open_channel(self, opener: ChannelOpener) -> None:
        self.monitors.open_channel = opener

    async def close(self) -> None:
        await self.store.close()

    def resolve(self, ref: str) -> ContainerRecord:
        return self.store.resolve(ref)

    def exists(self, cid: str) -> bool:
        """Whether the container of this full ID is still there (not removed)."""
        return self.store.get(cid) is not None

    def containers_using(self, image_id: str) -> builtins.list[dict[str, Any]]:
        """The containers made from an image, as the image service asks (their ID and whether
        they run)."""
        return [
            {"Id": r.id, "State": {"Running": r.state.running}}
            for r in self.store.all()
            if r.image == image_id
        ]

    def layers_in_use(self) -> set[str]:
        return {c for d in self.store.all() for c in d.layers}

    # --- create: `Creator`'s ----------------------------------------------------------------
    async def create(self, req: CreateRequest, name: str = "") -> tuple[str, builtins.list[str]]:
        """A container of `req` (read from Docker's JSON at the API edge); its ID and the
        warnings of its HostConfig."""
        return await self.creator.create(req, name)

    # --- start ------------------------------------------------------------------------------
    async def start(self, ref: str, *, restarting: bool = False) -> None:
        rec = self.store.resolve(ref)
        cid = rec.id
        live = self.store.live[cid]
        if not restarting:
            self.restarts.cancel(rec)
            rec.manually_stopped = False
        async with live.lock:
            status = rec.state.status
            if status.is_running:
                raise NotModified("container already started")
            if not status.can_start():
                raise Conflict(f"container {cid[:12]} is marked for removal and cannot be started")
            try:
                await self._start_locked(rec)
            except BerthError as e:
                rec.state.error = e.message
                self.store.save(rec)
                if rec.host_config.auto_remove:
                    self.store.spawn(self._auto_remove(cid))
                raise

    async def _start_locked(self, rec: ContainerRecord) -> None:
        cid = rec.id
        live = self.store.live[cid]
        bundle, state_dir = self.bundles.write(rec)
        # each step registers its undo: a start that fails leaves no address nor port behind
        with contextlib.ExitStack() as undo:
            eps = self.net.plug(rec)
            undo.callback(self.net.unplug, rec)
            await self.net.publish(rec, eps)
            req = self.bundles.start_request(rec, bundle, state_dir, eps)
            try:
                # a monitor that answers DNS queries comes from the fork server with dnslib
                ch = await self.open_channel(
                    self.cfg.dns_forkserver if req.dns else self.cfg.lean_forkserver, req
                )
            except OSError as e:
                raise System(f"cannot reach the fork server: {e}") from e
            undo.callback(ch.close)
            try:
                msg = await ch.read_control(live.fanout)
            except ValueError as e:
                msg = protocol.StartFailed(error=f"monitor: {e}")
            if not isinstance(msg, Ready):
                if isinstance(msg, protocol.StartFailed | Exit) and msg.error:
                    code = msg.code if msg.code is not None else 125
                    error = msg.error
                else:
                    code, error = 125, "monitor died before starting"
                rec.state.exit_code, rec.state.error = code, error
                self.store.save(rec)
                live.fanout.end()
                err_cls = InvalidArgument if code in (126, 127) else System
                raise err_cls(error)
            undo.pop_all()
        now = time.time()
        rec.state.become(ContainerStatus.RUNNING)
        rec.state.oom_killed, rec.state.pid, rec.state.exit_code, rec.state.error = (
            False,
            msg.pid,
            0,
            "",
        )
        rec.state.started_at, rec.state.finished_at = rfc3339(now), ZERO_TIME
        rec.monitor = msg.monitor
        self.store.save(rec)
        live.channel = ch
        live.reader = self.store.spawn(self._watch(cid, ch))
        for hook in self.on_start:
            hook(cid)
        async with live.changed:
            live.changed.notify_all()
        log.info("started container %s pid %s", cid[:12], msg.pid, extra={"container": cid})
        self.store.event(rec, "start")

    async def _watch(self, cid: str, ch: Channel) -> None:
        """Pass output on until the monitor's exit message (or its death); record the exit."""
        await self._on_exit(cid, await self.monitors.watch(cid, ch))

    async def _on_exit(self, cid: str, record: Exit) -> None:
        rec = self.store.records.get(cid)
        if rec is None:
            return
        if record.error == MONITOR_DIED:
            # nothing watches what it ran any more (its shim host was killed, say): it goes,
            # so an exited container never has processes left running
            await asyncio.to_thread(self.resources.reclaim, rec)
        code = record.exit
        st = rec.state
        st.become(ContainerStatus.EXITED)
        st.oom_killed, st.pid, st.exit_code, st.error = record.oom, 0, code, record.error
        st.finished_at = rfc3339((record.finished_at or time.time_ns()) / 1e9)
        rec.monitor = 0
        self.net.unplug(rec)
        self.ipc.unmount_shm(cid)
        try:
            self.store.save(rec)
        except (sqlite3.Error, OSError) as e:
            # a full or read-only disk: the exit is known all the same to its waiters (an
            # `rm -f` waited for it for good; found by the faults campaign); the record says
            # running until its next save, and a restart finds the exit the monitor left
            log.error(
                "container %s: its exit could not be saved: %s",
                cid[:12],
                e,
                extra={"container": cid},
            )
        live = self.store.live[cid]
        live.exits += 1
        async with live.changed:
            live.changed.notify_all()
        log.info("container %s exited with %s", cid[:12], code, extra={"container": cid})
        if record.oom:
            self.store.event(rec, "oom")
        self.store.event(rec, "die", exitCode=str(code))
        if rec.host_config.auto_remove:
            await self._auto_remove(cid)
        elif self.restarts.should_restart(rec, code):
            self.restarts.schedule(rec)

    async def _auto_remove(self, cid: str) -> None:
        try:
            await self.remove(cid, force=True, volumes=True)
        except NotFound:
            pass
        except BerthError as e:
            log.warning("auto-remove of %s failed: %s", cid[:12], e, extra={"container": cid})

    async def restore(self) -> None:
        """At start-up: reconnect to the monitors of running containers; the others get
        their exit, from the record their monitor left."""
        for cid, rec in list(self.store.records.items()):
            if not rec.state.status.is_running:
                await asyncio.to_thread(self.resources.reclaim, rec)
                continue
            live = self.store.live[cid]
            record = self.monitors.exit_file(cid)
            if record is None:
                ch, hello = await self.monitors.reconnect(cid, rec.monitor)
                if ch is not None and isinstance(hello, Ready):
                    if self.networks is not None and rec.endpoints:
                        self.networks.restore(cid, [e.to_dict() for e in rec.endpoints])
                        with contextlib.suppress(BerthError):
                            await self.net.publish(rec, rec.endpoints, restoring=True)
                    live.channel = ch
                    live.reader = self.store.spawn(self._watch(cid, ch))
                    for hook in self.on_start:
                        hook(cid)
                    log.info("restored running container %s", cid[:12], extra={"container": cid})
                    continue
                if isinstance(hello, Exit):
                    record = hello
            await self._on_exit(cid, record or self.monitors.exit_file(cid) or monitor_died())
            await asyncio.to_thread(self.resources.reclaim, rec)
        if self.networks is not None:
            known = {
                ep.host_if
                for rec in self.store.records.values()
                if rec.state.status.is_running
                for ep in rec.endpoints
            }
            await asyncio.to_thread(self.networks.reclaim_links, known)

    # --- the parts' calls, as the API and the daemon reach them ------------------------------
    def inspect(self, ref: str, size: bool = False) -> ContainerView:
        return self.views.inspect(ref, size)

    def list(
        self,
        *,
        all_: bool = False,
        limit: int = -1,
        size: bool = False,
        filters: dict[str, builtins.list[str]] | None = None,
    ) -> builtins.list[ContainerView]:
        return self.views.list(all_=all_, limit=limit, size=size, filters=filters)

    def counts(self) -> dict[str, int]:
        return self.views.counts()

    def network_users(self, net: str) -> builtins.list[str]:
        return self.net.network_users(net)

    async def connect(self, net: str, ref: str, ec: NetworkRequest) -> None:
        await self.net.connect(net, ref, ec)

    async def disconnect(self, net: str, ref: str, *, force: bool = False) -> None:
        await self.net.disconnect(net, ref, force=force)

    def logs(
        self,
        ref: str,
        *,
        follow: bool = False,
        stdout: bool = True,
        stderr: bool = True,
        since: float = 0,
        until: float = 0,
        tail: str = "all",
        timestamps: bool = False,
    ) -> AsyncIterator[tuple[int, bytes]]:
        return self.output.logs(
            ref,
            follow=follow,
            stdout=stdout,
            stderr=stderr,
            since=since,
            until=until,
            tail=tail,
            timestamps=timestamps,
        )

    def attach(
        self, ref: str, *, stdout: bool = True, stderr: bool = True, logs: bool = False
    ) -> Attachment:
        return self.output.attach(ref, stdout=stdout, stderr=stderr, logs=logs)

    def resize(self, ref: str, h: int, w: int) -> None:
        self.output.resize(ref, h, w)

    def export(self, ref: str, out: BinaryIO) -> None:
        self.output.export(ref, out)

    async def pause(self, ref: str) -> None:
        await self.resources.pause(ref)

    async def unpause(self, ref: str) -> None:
        await self.resources.unpause(ref)

    async def update(self, ref: str, changes: ResourcesUpdate) -> builtins.list[str]:
        return await self.resources.update(ref, changes)

    def top(self, ref: str, ps_args: str = "-ef") -> ProcessTable:
        return self.resources.top(ref, ps_args)

    def stats(self, ref: str) -> StatsSample:
        return self.resources.stats(ref)

    async def start_restartable(self) -> None:
        await self.restarts.start_all()

    # --- kill, stop, restart, wait: `Stopping`'s ---------------------------------------------
    async def kill(self, ref: str, sig: str | int | None = None) -> None:
        await self.stopping.kill(ref, sig)

    async def stop(self, ref: str, timeout: int | None = None, sig: str | None = None) -> None:
        await self.stopping.stop(ref, timeout, sig)

    async def restart(self, ref: str, timeout: int | None = None, sig: str | None = None) -> None:
        await self.stopping.restart(ref, timeout, sig)

    async def wait(self, ref: str, condition: str = "not-running") -> WaitResult:
        return await self.stopping.wait(ref, condition)

    def prepare_wait(self, ref: str) -> str:
        """Resolve now, so a wait request fails fast on an unknown container."""
        return self.stopping.prepare_wait(ref)

    # --- remove -----------------------------------------------------------------------------
    async def remove(
        self, ref: str, *, force: bool = False, volumes: bool = False, link: bool = False
    ) -> None:
        if link:  # `rm --link`: the legacy link /PARENT/ALIAS, not a container
            self.net.remove_link(ref)
            return
        rec = self.store.resolve(ref)
        live = self.store.live[rec.id]
        if live.removing or live.removed:
            # as dockerd: one removal wins; the others hear it is under way
            raise Conflict(f"removal of container {rec.name.lstrip('/')} is already in progress")
        status = rec.state.status
        if not status.can_remove(force=force) and status is not ContainerStatus.REMOVING:
            what = "restarting" if status is ContainerStatus.RESTARTING else "running"
            raise Conflict(
                f'cannot remove container "{rec.name}": container is {what}: '
                "stop the container before removing or force remove"
            )
        live.removing = True
        try:
            await self._remove(rec, live, force=force, volumes=volumes)
        finally:
            live.removing = False

    async def _remove(
        self, rec: ContainerRecord, live: Live, *, force: bool, volumes: bool
    ) -> None:
        cid = rec.id
        status = rec.state.status
        if status is ContainerStatus.RESTARTING:
            self.restarts.cancel(rec)
        if status.is_running:
            exits = live.exits
            await self.resources.thaw(rec)
            self.stopping.signal(rec, signal_mod.SIGKILL)
            await self.stopping.wait_exit(cid, exits, None)
        if live.removed:
            return
        async with live.lock:
            if live.removed:
                return
            rec.state.become(ContainerStatus.REMOVING)
            # streams still reading the log (the output of a `run --rm`) finish first
            async with live.changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(live.changed.wait_for(lambda: live.followers == 0), 10)
            try:
                # its monitor removes its cgroup as it ends, but a busy cgroup outlasts the
                # monitor's tries (a loaded machine; seen in the soak campaign): gone with it
                await asyncio.to_thread(self.resources.reclaim, rec)
                await asyncio.to_thread(self._remove_files, cid)
                self.meta.delete_container(cid)
            except BaseException:
                # as dockerd: a removal that fails half-way leaves a dead container, which
                # may be removed again
                rec.state.become(ContainerStatus.DEAD)
                with contextlib.suppress(BerthError):
                    self.store.save(rec)
                raise
            self.store.records.pop(cid, None)
            live.removed = True
        async with live.changed:
            live.changed.notify_all()
        self.store.live.pop(cid, None)
        for hook in self.on_remove:
            hook(cid)
        if volumes:
            for m in rec.mounts:
                if m.type != "volume":
                    continue
                with contextlib.suppress(BerthError):
                    if self.volumes.get(m.name).anonymous:
                        self.volumes.remove(m.name)
        if not self.meta.get_image(rec.image):
            await asyncio.to_thread(self.images.gc)
        self.store.event(rec, "destroy")

    def _remove_files(self, cid: str) -> None:
        self.ipc.unmount_shm(cid)
        self.driver.remove(cid)
        shutil.rmtree(self.store.dir(cid), ignore_errors=True)
        shutil.rmtree(self.store.run_dir(cid), ignore_errors=True)
        # an OCI runtime's state, should its monitor have died before `delete`
        for name in self.cfg.runtimes:
            shutil.rmtree(
                os.path.join(self.cfg.exec_root, "runtimes", name, cid), ignore_errors=True
            )

    async def prune(
        self, filters: dict[str, builtins.list[str]] | None = None
    ) -> builtins.list[str]:
        """Remove the stopped containers (with the labels asked for); their IDs."""
        deleted = []
        for rec in list(self.store.records.values()):
            if rec.state.status.is_running:
                continue
            if not self.views.labels_match(rec, (filters or {}).get("label", [])):
                continue
            await self.remove(rec.id)
            deleted.append(rec.id)
        return deleted

    async def rename(self, ref: str, new: str) -> None:
        rec = self.store.resolve(ref)
        new = names.validate(new)
        if rec.name == "/" + new:
            raise Conflict("Renaming a container with the same name as its current name")
        if any(d.name == "/" + new for d in self.store.records.values()):
            raise Conflict(f'Conflict. The container name "/{new}" is already in use')
        old = rec.name
        rec.name = "/" + new
        try:
            self.store.save(rec)
        except BerthError:
            rec.name = old
            raise
        self.store.event(rec, "rename", oldName=old)


__all__ = ["ContainerService"]
