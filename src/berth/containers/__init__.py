"""The container service: create, start, stop, kill, wait, remove, list, inspect, logs,
attach (output), rename, prune, export; and the restore of running containers at start-up.

Imports `images`, `storage`, `metadata`, `cgroups`, `errors`, `containers.spec`, and of the
shim only `shim.protocol`. The runtime is reached only as processes: a request to the fork
server starts a shim (a monitor) per container, and the service talks to it through the shim
protocol. This module never forks.

A container record is kept in Docker's inspect shape (what `GET /containers/{id}/json`
returns), plus a private `_berth` section; the metadata store holds it, this service caches it.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal as signal_mod
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from berth import linux, storage
from berth.containers import cdi, names, seccomp
from berth.containers._mounts import MountsMixin
from berth.containers._networking import NetworkingMixin
from berth.containers._output import OutputMixin
from berth.containers._resources import ResourcesMixin
from berth.containers.channel import Channel, Fanout
from berth.containers.spec import (
    build_spec,
    cgroupns_mode,
    container_caps,
    host_device,
    merge_env,
    no_new_privileges,
    refuse_unsupported,
    validate_healthcheck,
    validate_host_config,
    validate_sysctls,
)
from berth.errors import (
    BerthError,
    Conflict,
    InvalidArgument,
    NotFound,
    NotModified,
    System,
)
from berth.fs import atomic_write
from berth.images import ImageService, parse_rfc3339, rfc3339
from berth.metadata import MetadataStore
from berth.networks import NetworkService, link_spec, ps_ports
from berth.shim import protocol
from berth.shim.protocol import Exit, Ready, StartRequest
from berth.units import human_duration
from berth.volumes import VolumeService

log = logging.getLogger(__name__)

ZERO_TIME = "0001-01-01T00:00:00Z"
_STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    data_root: str
    exec_root: str
    forkserver: str                     # the fork server's socket
    cgroup_parent: str = "berth"
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    runtime: str = "berth"
    runtimes: dict[str, str] = field(default_factory=lambda: {"berth": ""})  # name -> path
    idmap: tuple[int, int, int] | None = None   # --userns-remap: (uid, gid, size) outside
    init_path: str = ""                 # a static init (tini) for --init, mounted in
    cdi_spec_dirs: tuple[str, ...] = cdi.DEFAULT_SPEC_DIRS   # CDI specs for DeviceRequests
    # unlike Docker, logs rotate by default, so a chatty container cannot fill the disk
    log_max_size: int = 20 * 1024 * 1024
    log_max_file: int = 5

    @property
    def lean_forkserver(self) -> str:
        """The lean fork server's socket."""
        return protocol.lean_socket(self.forkserver)

    @property
    def dns_forkserver(self) -> str:
        """The socket of the fork server with dnslib."""
        return protocol.dns_socket(self.forkserver)


# connects to a fork server with a request, or to a running shim's socket without one: the seam
# where unit tests put a fake shim
ChannelOpener = Callable[[str, StartRequest | None], Awaitable[Channel]]


def parse_signal(sig: str | int | None, default: int = signal_mod.SIGTERM) -> int:
    if sig is None or sig == "":
        return default
    if isinstance(sig, int) or str(sig).isdigit():
        n = int(sig)
        if not 0 < n < 65:
            raise InvalidArgument(f"Invalid signal: {sig}")
        return n
    name = str(sig).upper()
    name = name if name.startswith("SIG") else "SIG" + name
    try:
        return int(signal_mod.Signals[name])
    except KeyError:
        if name.startswith("SIGRTMIN+") and name[9:].isdigit():
            return int(signal_mod.SIGRTMIN) + int(name[9:])
        raise InvalidArgument(f"Invalid signal: {sig}") from None


# json-file and local keep Docker's json-file lines (local's compressed format is Docker's own)
LOG_DRIVERS = ("json-file", "local", "none")


def _log_config(given: dict[str, Any] | None) -> dict[str, Any]:
    """HostConfig.LogConfig as dockerd keeps it: no type is json-file; an unknown one is
    refused at create."""
    given = given or {}
    kind = given.get("Type") or "json-file"
    if kind not in LOG_DRIVERS:
        raise InvalidArgument(f"logger: no log driver named '{kind}' is registered")
    return {"Type": kind, "Config": dict(given.get("Config") or {})}


class _Live:
    """What the service knows of a container beyond its record: locks, waiters, output."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.exits = 0                         # how many times it has exited
        self.changed = asyncio.Condition()     # notified on start, exit, removal
        self.removed = False
        self.followers = 0                     # log streams reading the log file
        self.reader: asyncio.Task[None] | None = None
        self.channel: Channel | None = None    # to the monitor, while it runs
        self.fanout = Fanout()                 # output to the attach streams
        self.restart_delay = 0.0
        self.answer: asyncio.Future[protocol.Answer] | None = None  # to a monitor command
        self.restart_task: asyncio.Task[None] | None = None


class ContainerService(NetworkingMixin, ResourcesMixin, OutputMixin, MountsMixin):
    def __init__(self, cfg: Config, meta: MetadataStore, images: ImageService,
                 driver: storage.Driver, *,
                 emit: Callable[[str, str, str, dict[str, str]], None] | None = None,
                 volumes: VolumeService | None = None,
                 networks: NetworkService | None = None,
                 open_channel: ChannelOpener | None = None) -> None:
        self.cfg = cfg
        self.open_channel: ChannelOpener = open_channel or Channel.open
        self.networks = networks
        self.volumes = volumes or VolumeService(meta, os.path.join(cfg.data_root, "volumes"))
        self.volumes.users = self.volume_users
        self.meta = meta
        self.images = images
        self.driver = driver
        self.emit = emit or (lambda typ, action, actor, attrs: None)
        self._docs: dict[str, dict[str, Any]] = {}
        self._live: dict[str, _Live] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.on_remove: list[Callable[[str], None]] = []  # e.g. execs forgetting their records
        self.on_start: list[Callable[[str], None]] = []   # e.g. health checks beginning
        self.ncpu = os.cpu_count() or 1
        # closed to other local users (berthd gives them the modes and group of
        # --userns-remap before this runs)
        os.makedirs(os.path.join(cfg.data_root, "containers"), mode=0o700, exist_ok=True)
        os.makedirs(os.path.join(cfg.exec_root, "containers"), mode=0o700, exist_ok=True)
        for doc in meta.containers():
            self._docs[doc["Id"]] = doc
            self._live[doc["Id"]] = _Live()

    # --- helpers ----------------------------------------------------------------------------
    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        t: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return t

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(BaseException):
                await t

    def _event(self, doc: dict[str, Any], action: str, **extra: str) -> None:
        """A container event with Docker's attributes: its labels, name and image."""
        attrs = {**(doc["Config"].get("Labels") or {}), "name": doc["Name"][1:],
                 "image": doc["Config"]["Image"], **extra}
        self.emit("container", action, doc["Id"], attrs)

    def _save(self, doc: dict[str, Any]) -> None:
        self.meta.put_container(doc["Id"], doc["Name"].lstrip("/"), doc["Image"],
                                doc["_berth"]["created"], doc)









    def containers_using(self, image_id: str) -> list[dict[str, Any]]:
        return [d for d in self._docs.values() if d["Image"] == image_id]

    def layers_in_use(self) -> set[str]:
        return {c for d in self._docs.values() for c in d["_berth"]["layers"]}

    def resolve(self, ref: str) -> dict[str, Any]:
        if not ref:
            raise NotFound("No such container: ")
        if ref in self._docs:
            return self._docs[ref]
        name = "/" + ref.lstrip("/")
        for d in self._docs.values():
            if d["Name"] == name:
                return d
        matches = [d for d in self._docs.values() if d["Id"].startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidArgument(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def _dir(self, cid: str) -> str:
        return os.path.join(self.cfg.data_root, "containers", cid)

    def _run_dir(self, cid: str) -> str:
        return os.path.join(self.cfg.exec_root, "containers", cid)

    # --- create -----------------------------------------------------------------------------
    async def create(self, body: dict[str, Any], name: str = "") -> tuple[str, list[str]]:
        if not isinstance(body, dict):
            raise InvalidArgument("invalid container config")
        image_name = body.get("Image") or ""
        if not image_name:
            raise InvalidArgument("image name cannot be blank")
        try:
            image = self.images.resolve(image_name)
        except NotFound:
            from berth import reference
            try:
                shown = reference.parse(image_name).familiar
            except InvalidArgument:
                shown = image_name
            raise NotFound(f"No such image: {shown}") from None
        hc: dict[str, Any] = dict(body.get("HostConfig") or {})
        warnings = validate_host_config(hc, self.ncpu)
        refuse_unsupported(hc, body)
        validate_healthcheck(body.get("Healthcheck"))
        if hc.get("UTSMode") == "host" and body.get("Hostname"):
            raise InvalidArgument("conflicting options: hostname and the UTS mode")
        if self.cfg.idmap is not None and hc.get("UsernsMode") != "host":
            if hc.get("Privileged"):
                raise InvalidArgument("privileged mode is incompatible with user namespaces.  "
                                      "You must run the container in the host namespace when "
                                      "running privileged mode")
            if (hc.get("NetworkMode") or "") == "host":
                raise InvalidArgument("cannot share the host's network namespace when user "
                                      "namespaces are enabled")
        elif hc.get("UsernsMode") not in (None, "", "host"):
            raise InvalidArgument(f"invalid USER mode: {hc['UsernsMode']}")
        hc["Runtime"] = hc.get("Runtime") or self.cfg.runtime
        if hc["Runtime"] == "berth-runtime":
            hc["Runtime"] = "berth"
        if hc["Runtime"] not in self.cfg.runtimes:
            raise InvalidArgument(f"unknown or invalid runtime name: {hc['Runtime']}")
        # a bad seccomp profile, no-new-privileges or cgroupns mode fails the create, not the start
        seccomp.for_container(hc, container_caps(hc))
        no_new_privileges(hc)
        cgroupns_mode(hc)
        joined = ""
        if (hc.get("NetworkMode") or "").startswith("container:") and hc.get("Sysctls"):
            with contextlib.suppress(NotFound):
                joined = self.resolve(hc["NetworkMode"].split(":", 1)[1])[
                    "HostConfig"].get("NetworkMode") or ""
        validate_sysctls(hc, joined)
        icfg = image.container_config
        cfg: dict[str, Any] = {k: v for k, v in body.items()
                               if k not in ("HostConfig", "NetworkingConfig")}
        entrypoint = cfg.get("Entrypoint")
        if entrypoint is None:
            entrypoint = icfg.get("Entrypoint")
        elif entrypoint == [""] or entrypoint == "":
            entrypoint = None
        if isinstance(entrypoint, str):
            entrypoint = [entrypoint]
        cmd = cfg.get("Cmd")
        if not cmd and cfg.get("Entrypoint") is None:
            cmd = icfg.get("Cmd")
        if isinstance(cmd, str):
            cmd = [cmd]
        args = list(entrypoint or []) + list(cmd or [])
        if not args:
            raise InvalidArgument("no command specified")
        cid = secrets.token_hex(32)
        if name:
            name = names.validate(name)
            if any(d["Name"] == "/" + name for d in self._docs.values()):
                other = next(d for d in self._docs.values() if d["Name"] == "/" + name)
                raise Conflict(f'Conflict. The container name "/{name}" is already in use by '
                               f'container "{other["Id"]}". You have to remove (or rename) '
                               "that container to be able to reuse that name.")
        else:
            taken = {d["Name"] for d in self._docs.values()}
            name = names.random_name()
            while "/" + name in taken:
                name = names.random_name() + str(secrets.randbelow(10))
        host_uts = hc.get("NetworkMode") == "host" or hc.get("UTSMode") == "host"
        hostname = cfg.get("Hostname") or ("" if host_uts else cid[:12])
        if host_uts:
            hostname = hostname or os.uname().nodename
        full_cfg = {
            "Hostname": hostname, "Domainname": cfg.get("Domainname", ""),
            "User": cfg.get("User") if cfg.get("User") is not None else icfg.get("User", ""),
            "AttachStdin": bool(cfg.get("AttachStdin")),
            "AttachStdout": bool(cfg.get("AttachStdout")),
            "AttachStderr": bool(cfg.get("AttachStderr")),
            "ExposedPorts": cfg.get("ExposedPorts") or icfg.get("ExposedPorts"),
            "Tty": bool(cfg.get("Tty")), "OpenStdin": bool(cfg.get("OpenStdin")),
            "StdinOnce": bool(cfg.get("StdinOnce")),
            "Env": merge_env(icfg.get("Env"), cfg.get("Env")),
            "Cmd": cmd or None,
            "Image": image_name,
            "Volumes": cfg.get("Volumes") or icfg.get("Volumes"),
            "WorkingDir": cfg.get("WorkingDir") or icfg.get("WorkingDir", ""),
            "Entrypoint": entrypoint or None,
            "OnBuild": None,
            "Labels": {**(icfg.get("Labels") or {}), **(cfg.get("Labels") or {})},
        }
        if cfg.get("Healthcheck") or icfg.get("Healthcheck"):
            full_cfg["Healthcheck"] = cfg.get("Healthcheck") or icfg.get("Healthcheck")
        if cfg.get("StopSignal") or icfg.get("StopSignal"):
            full_cfg["StopSignal"] = cfg.get("StopSignal") or icfg.get("StopSignal")
            parse_signal(full_cfg["StopSignal"])
        if cfg.get("StopTimeout") is not None:
            full_cfg["StopTimeout"] = cfg["StopTimeout"]
        for dev in hc.get("Devices") or []:
            host_device(dev)  # a missing device fails the create, not only the start
        mount_specs = self._mount_specs(cfg, hc, icfg.get("Volumes"))
        nets = self._requested_networks(hc, body.get("NetworkingConfig") or {})
        links = self._register_links(hc, nets)
        if body.get("MacAddress") and nets:  # the older, container-wide field
            nets[0]["mac"] = nets[0]["mac"] or body["MacAddress"]
            full_cfg["MacAddress"] = body["MacAddress"]   # inspect shows it, as dockerd
        cdir = self._dir(cid)
        now = time.time()
        layers = self.images.layers_of(image)
        hc.setdefault("RestartPolicy", {"Name": "no", "MaximumRetryCount": 0})
        hc["LogConfig"] = _log_config(hc.get("LogConfig"))
        doc: dict[str, Any] = {
            "Id": cid,
            "Created": rfc3339(now),
            "Path": args[0],
            "Args": args[1:],
            "State": {"Status": "created", "Running": False, "Paused": False,
                      "Restarting": False, "OOMKilled": False, "Dead": False, "Pid": 0,
                      "ExitCode": 0, "Error": "", "StartedAt": ZERO_TIME,
                      "FinishedAt": ZERO_TIME},
            "Image": image.id,
            "ResolvConfPath": os.path.join(cdir, "resolv.conf"),
            "HostnamePath": os.path.join(cdir, "hostname"),
            "HostsPath": os.path.join(cdir, "hosts"),
            "LogPath": "" if hc["LogConfig"]["Type"] == "none" else
            os.path.join(cdir, f"{cid}-json.log"),
            "Name": "/" + name,
            "RestartCount": 0,
            "Driver": self.driver.name,
            "Platform": "linux",
            "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "",
            "ExecIDs": None,
            "HostConfig": hc,
            "GraphDriver": {"Name": self.driver.name, "Data": {
                "UpperDir": self.driver.upper(cid),
                "LowerDir": ":".join(la.path for la in reversed(layers))}},
            "Mounts": [],
            "Config": full_cfg,
            "NetworkSettings": self._network_settings(hc.get("NetworkMode", "bridge"), nets),
            "_berth": {"layers": [la.chain_id for la in layers], "created": int(now),
                       "nets": nets, **({"links": links} if links else {}),
                       "created_ns": int(now * 1e9), "monitor": 0},
        }
        os.makedirs(cdir, exist_ok=True)
        try:
            await asyncio.to_thread(self.driver.prepare, cid, layers)
            doc["Mounts"] = await asyncio.to_thread(self._make_mounts, cid, mount_specs, layers)
            self._write_etc_files(doc)
            self._docs[cid] = doc
            self._live[cid] = _Live()
            self._save(doc)
        except BaseException:
            self._docs.pop(cid, None)
            self._live.pop(cid, None)
            for m in doc.get("Mounts") or []:  # nothing half made: our anonymous volumes go
                if m["Type"] == "volume" and not any(
                        sp.source == m["Name"] for sp in mount_specs):
                    with contextlib.suppress(BerthError):
                        self.volumes.remove(m["Name"])
            self.driver.remove(cid)
            shutil.rmtree(cdir, ignore_errors=True)
            raise
        log.info("created container %s", cid[:12], extra={"container": cid})
        self._event(doc, "create")
        return cid, warnings







    # --- start ------------------------------------------------------------------------------
    async def start(self, ref: str, *, restarting: bool = False) -> None:
        doc = self.resolve(ref)
        cid = doc["Id"]
        live = self._live[cid]
        if not restarting:
            self._cancel_restart(doc)
            doc["_berth"]["manually_stopped"] = False
        async with live.lock:
            if doc["State"]["Running"]:
                raise NotModified("container already started")
            if doc["State"]["Status"] == "removing":
                raise Conflict(f"container {cid[:12]} is marked for removal and cannot be started")
            try:
                await self._start_locked(doc)
            except BerthError as e:
                doc["State"]["Error"] = e.message
                self._save(doc)
                if doc["HostConfig"].get("AutoRemove"):
                    self._spawn(self._auto_remove(cid))
                raise

    async def _start_locked(self, doc: dict[str, Any]) -> None:
        cid = doc["Id"]
        run_dir = self._run_dir(cid)
        bundle = os.path.join(run_dir, "bundle")
        state_dir = os.path.join(run_dir, "state")
        shutil.rmtree(state_dir, ignore_errors=True)
        os.makedirs(bundle, exist_ok=True)
        os.makedirs(os.path.join(bundle, "rootfs"), exist_ok=True)
        layers = [self.images.layer_store.get(c) for c in doc["_berth"]["layers"]]
        netns = None
        mode = doc["HostConfig"].get("NetworkMode", "bridge")
        if mode.startswith("container:"):
            other = self.resolve(mode.split(":", 1)[1])
            if not other["State"]["Running"]:
                raise Conflict(f"cannot join network of a non running container: {other['Id']}")
            netns = f"/proc/{other['State']['Pid']}/ns/net"
        # DeviceRequests (--gpus, CDI --device): CDI devices, or dockerd's error
        requests = doc["HostConfig"].get("DeviceRequests") or []
        registry = cdi.Registry(self.cfg.cdi_spec_dirs).load() if requests else None
        cdi_devices = cdi.resolve(requests, registry) if registry else []
        pidns = ipcns = None
        pid_mode = doc["HostConfig"].get("PidMode") or ""
        if pid_mode.startswith("container:"):
            pidns = f"/proc/{self._running_donor(pid_mode)['State']['Pid']}/ns/pid"
        ipc_mode = doc["HostConfig"].get("IpcMode") or ""
        if ipc_mode.startswith("container:"):
            donor = self._running_donor(ipc_mode)
            if self._shm_path(donor) is None:
                raise InvalidArgument(f"container {ipc_mode[10:]}: non-shareable IPC (hint: use "
                                      "IpcMode:shareable for the donor container)")
            ipcns = f"/proc/{donor['State']['Pid']}/ns/ipc"
        elif ipc_mode == "shareable":
            self._mount_shm(doc)
        if doc["HostConfig"].get("Init") and not (
                self.cfg.init_path and os.path.exists(self.cfg.init_path)):
            raise System('exec: "docker-init": executable file not found in $PATH '
                         "(berthd --init-path names a static tini)")
        # legacy links: their targets run, and their environment is the process's
        doc["_berth"]["link_env"] = self._link_env(doc)
        spec = build_spec(cid=cid, config=doc["Config"], host_config=doc["HostConfig"],
                          link_env=doc["_berth"]["link_env"],
                          hostname_path=doc["HostnamePath"], hosts_path=doc["HostsPath"],
                          resolv_path=doc["ResolvConfPath"], cgroup_parent=self.cfg.cgroup_parent,
                          netns_path=netns, init_path=self.cfg.init_path,
                          mounts=self._runtime_mounts(doc), idmap=self.cfg.idmap,
                          pidns_path=pidns, ipcns_path=ipcns, shm_path=self._shm_path(doc))
        if registry is not None:
            cdi.apply(spec, cdi_devices, registry)
        if self.cfg.idmap is not None:
            # the files the runtime binds in belong to the container's root, as in Docker
            for key in ("HostnamePath", "HostsPath", "ResolvConfPath"):
                with contextlib.suppress(OSError):
                    os.chown(doc[key], self.cfg.idmap[0], self.cfg.idmap[1])
        if mode == "host":
            spec["linux"]["namespaces"] = [ns for ns in spec["linux"]["namespaces"]
                                           if ns["type"] != "network"]
        # the container's environment is in it: 0600 (no fsync: made again at every start)
        atomic_write(os.path.join(bundle, "config.json"), json.dumps(spec).encode(), sync=False)
        cfg = doc["Config"]
        eps = self._plug_networks(doc)
        try:
            await self._publish(doc, eps)
        except BaseException:
            self._unplug_networks(doc)
            raise
        rotation = self._log_rotation(doc)
        runtime, runtime_root = self._runtime_of(doc)
        mount = self.driver.mount(cid, layers)
        dns = protocol.DnsConfig(
            hosts=tuple(self.networks.hosts_files(eps) if self.networks else ()),
            upstream=tuple(self._upstream_dns(doc["HostConfig"], False)),
            forward=self._dns_forward([ep["netname"] for ep in eps]),
            links=self._dns_links(doc["_berth"].get("nets") or [])) if any(
            self.networks and self.networks.user_defined(ep["netname"]) for ep in eps) else None
        size = doc["HostConfig"].get("ConsoleSize")
        req = StartRequest(
            id=cid, bundle=bundle, log_path=doc["LogPath"], state_dir=state_dir,
            runtime=runtime, runtime_root=runtime_root, socket=self._monitor_socket(cid),
            rootfs_mount=protocol.RootfsMount(type=mount.type, source=mount.source,
                                              options=tuple(mount.options)),
            stdin=bool(cfg.get("OpenStdin")), tty=bool(cfg.get("Tty")),
            console_size=(int(size[0]), int(size[1])) if size else None,
            networks=tuple(link_spec(ep) for ep in eps),
            dns=dns, log_max_size=rotation["log_max_size"],
            log_max_file=rotation["log_max_file"])
        live = self._live[cid]
        try:
            # a monitor that answers DNS queries comes from the fork server with dnslib
            ch = await self.open_channel(self.cfg.dns_forkserver if req.dns else
                                         self.cfg.lean_forkserver, req)
        except OSError as e:
            self._unplug_networks(doc)
            raise System(f"cannot reach the fork server: {e}") from e
        try:
            msg = await ch.read_control(live.fanout)
        except ValueError as e:
            msg = protocol.StartFailed(error=f"monitor: {e}")
        if not isinstance(msg, Ready):
            self._unplug_networks(doc)
            ch.close()
            if isinstance(msg, protocol.StartFailed | Exit) and msg.error:
                code = msg.code if msg.code is not None else 125
                error = msg.error
            else:
                code, error = 125, "monitor died before starting"
            doc["State"].update({"ExitCode": code, "Error": error})
            self._save(doc)
            live.fanout.end()
            err_cls = InvalidArgument if code in (126, 127) else System
            raise err_cls(error)
        now = time.time()
        doc["State"].update({"Status": "running", "Running": True, "Paused": False,
                             "Restarting": False, "OOMKilled": False, "Dead": False,
                             "Pid": msg.pid, "ExitCode": 0, "Error": "",
                             "StartedAt": rfc3339(now), "FinishedAt": ZERO_TIME})
        doc["_berth"]["monitor"] = msg.monitor
        self._save(doc)
        live.channel = ch
        live.reader = self._spawn(self._watch(cid, ch))
        for hook in self.on_start:
            hook(cid)
        async with live.changed:
            live.changed.notify_all()
        log.info("started container %s pid %s", cid[:12], msg.pid, extra={"container": cid})
        self._event(doc, "start")







    def _running_donor(self, mode: str) -> dict[str, Any]:
        """The container a `container:NAME` PID or IPC mode joins: dockerd's errors where it
        does not exist (400) or does not run (409)."""
        ref = mode.split(":", 1)[1]
        try:
            other = self.resolve(ref)
        except NotFound as e:
            raise InvalidArgument(e.message) from None
        if not other["State"]["Running"] or not other["State"]["Pid"]:
            raise Conflict(f"container {ref} is not running")
        if other["State"].get("Restarting"):
            raise Conflict(f"Container {other['Id']} is restarting, wait until the container "
                           "is running")
        return other

    def _shm_dir(self, cid: str) -> str:
        return os.path.join(self._dir(cid), "mounts", "shm")

    def _shm_path(self, doc: dict[str, Any], depth: int = 0) -> str | None:
        """The host directory a container's /dev/shm is, where others may share it (dockerd's
        ShmPath): a shareable one's own tmpfs, the host's, or the donor's; None for a
        private one (or a shareable one not running)."""
        mode = doc["HostConfig"].get("IpcMode") or ""
        if mode == "host":
            return "/dev/shm"
        if mode == "shareable":
            d = self._shm_dir(doc["Id"])
            return d if os.path.ismount(d) else None
        if mode.startswith("container:") and depth < 8:  # no loop through renamed donors
            with contextlib.suppress(NotFound):
                return self._shm_path(self.resolve(mode.split(":", 1)[1]), depth + 1)
        return None

    def _mount_shm(self, doc: dict[str, Any]) -> None:
        """A shareable IPC's /dev/shm: a tmpfs on the host (containers/<id>/mounts/shm, as
        dockerd), which a `container:` one binds too; unmounted when the container stops."""
        d = self._shm_dir(doc["Id"])
        if os.path.ismount(d):
            return
        os.makedirs(d, exist_ok=True)
        size = int(doc["HostConfig"].get("ShmSize") or 64 * 1024 * 1024)
        try:
            linux.mount("shm", d, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC,
                        f"mode=1777,size={size}")
        except OSError as e:
            raise System(f"mounting shm tmpfs: {e}") from e
        if self.cfg.idmap is not None:
            with contextlib.suppress(OSError):
                os.chown(d, self.cfg.idmap[0], self.cfg.idmap[1])

    def _unmount_shm(self, cid: str) -> None:
        d = self._shm_dir(cid)
        if os.path.ismount(d):
            with contextlib.suppress(OSError):
                linux.umount(d, linux.MNT_DETACH)

    def _runtime_of(self, doc: dict[str, Any]) -> tuple[str, str]:
        """For the shim: an OCI runtime binary to drive and its root ("" for berth's own)."""
        name = doc["HostConfig"].get("Runtime") or "berth"
        path = self.cfg.runtimes.get(name, "")
        if not path:
            return "", ""
        return path, os.path.join(self.cfg.exec_root, "runtimes", name)

    def _monitor_socket(self, cid: str) -> str:
        return os.path.join(self._run_dir(cid), "state", "monitor.sock")

    async def _watch(self, cid: str, ch: Channel) -> None:
        """Pass output on until the monitor's exit message (or its death); record the exit."""
        live = self._live[cid]

        def answer(msg: protocol.Answer) -> None:
            if live.answer is not None and not live.answer.done():
                live.answer.set_result(msg)
        try:
            record = await ch.until_exit(live.fanout, answer)
        finally:
            ch.close()
            live.channel = None
            live.fanout.end()
        if record is None:
            record = self._read_exit_file(cid) or _monitor_died()
        await self._on_exit(cid, record)

    def _read_exit_file(self, cid: str) -> Exit | None:
        try:
            with open(os.path.join(self._run_dir(cid), "state", "exit.json"), "rb") as f:
                return Exit.from_json(f.read())
        except (OSError, ValueError):
            return None

    async def _on_exit(self, cid: str, record: Exit) -> None:
        doc = self._docs.get(cid)
        if doc is None:
            return
        code = record.exit
        doc["State"].update({"Status": "exited", "Running": False, "Paused": False,
                             "Restarting": False, "OOMKilled": record.oom,
                             "Pid": 0, "ExitCode": code, "Error": record.error,
                             "FinishedAt": rfc3339((record.finished_at or time.time_ns()) / 1e9)})
        doc["_berth"]["monitor"] = 0
        self._unplug_networks(doc)
        self._unmount_shm(cid)
        self._save(doc)
        live = self._live[cid]
        live.exits += 1
        async with live.changed:
            live.changed.notify_all()
        log.info("container %s exited with %s", cid[:12], code, extra={"container": cid})
        if record.oom:
            self._event(doc, "oom")
        self._event(doc, "die", exitCode=str(code))
        if doc["HostConfig"].get("AutoRemove"):
            await self._auto_remove(cid)
        elif self._should_restart(doc, code):
            self._schedule_restart(doc)

    # --- restart policies -------------------------------------------------------------------
    @staticmethod
    def _should_restart(doc: dict[str, Any], code: int) -> bool:
        policy = doc["HostConfig"].get("RestartPolicy") or {}
        name = policy.get("Name") or "no"
        if doc["_berth"].get("manually_stopped") or name == "no":
            return False
        if name == "on-failure":
            limit = int(policy.get("MaximumRetryCount") or 0)
            return code != 0 and (limit == 0 or doc["RestartCount"] < limit)
        return name in ("always", "unless-stopped")

    def _schedule_restart(self, doc: dict[str, Any]) -> None:
        """Docker's back-off: 100 ms, doubling to at most a minute; back to 100 ms after a
        run of 10 s or more. A container in a restart loop costs the daemon a timer."""
        cid = doc["Id"]
        live = self._live[cid]
        ran = parse_rfc3339(doc["State"]["FinishedAt"]) - parse_rfc3339(doc["State"]["StartedAt"])
        live.restart_delay = 0.1 if ran >= 10 or not live.restart_delay else min(
            live.restart_delay * 2, 60.0)
        doc["State"].update({"Status": "restarting", "Restarting": True})

        async def later() -> None:
            await asyncio.sleep(live.restart_delay)
            if live.removed or doc["State"]["Running"] or not doc["State"]["Restarting"]:
                return
            doc["RestartCount"] += 1
            try:
                await self.start(cid, restarting=True)
            except NotModified:
                pass  # started by hand in the meantime
            except BerthError as e:
                log.warning("restart of %s failed: %s", cid[:12], e, extra={"container": cid})
                doc["State"].update({"Status": "exited", "Restarting": False})
                self._save(doc)
        live.restart_task = self._spawn(later())

    def _cancel_restart(self, doc: dict[str, Any]) -> None:
        live = self._live.get(doc["Id"])
        if live and live.restart_task is not None:
            live.restart_task.cancel()
            live.restart_task = None
        if doc["State"]["Restarting"]:
            doc["State"].update({"Status": "exited", "Restarting": False})

    async def start_restartable(self) -> None:
        """At daemon start: `always` containers start again, and `unless-stopped` ones that
        were not stopped by hand."""
        for doc in list(self._docs.values()):
            name = (doc["HostConfig"].get("RestartPolicy") or {}).get("Name")
            manual = doc["_berth"].get("manually_stopped")
            if doc["State"]["Running"] or doc["State"]["Restarting"]:
                continue
            if name == "always" or (name == "unless-stopped" and not manual):
                try:
                    await self.start(doc["Id"])
                except BerthError as e:
                    log.warning("start of %s failed: %s", doc["Id"][:12], e)

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
        for cid, doc in list(self._docs.items()):
            if not doc["State"]["Running"]:
                continue
            live = self._live[cid]
            record = self._read_exit_file(cid)
            if record is None:
                ch, hello = await self._reconnect(cid, doc["_berth"].get("monitor", 0))
                if ch is not None and isinstance(hello, Ready):
                    if self.networks is not None and doc["_berth"].get("endpoints"):
                        self.networks.restore(cid, doc["_berth"]["endpoints"])
                        with contextlib.suppress(BerthError):
                            await self._publish(doc, doc["_berth"]["endpoints"])
                    live.channel = ch
                    live.reader = self._spawn(self._watch(cid, ch))
                    for hook in self.on_start:
                        hook(cid)
                    log.info("restored running container %s", cid[:12],
                             extra={"container": cid})
                    continue
                if isinstance(hello, Exit):
                    record = hello
            await self._on_exit(cid, record or self._read_exit_file(cid) or _monitor_died())

    async def _reconnect(self, cid: str, monitor: int
                         ) -> tuple[Channel | None, protocol.ShimMessage | None]:
        """A channel to a running container's monitor and its first message. A monitor that
        is alive but does not answer yet (a loaded machine, its listener's backlog) gets a few
        more tries before the container counts as exited."""
        live = self._live[cid]
        deadline = time.monotonic() + 5
        while True:
            reason = ""
            try:
                ch = await self.open_channel(self._monitor_socket(cid), None)
                hello = await asyncio.wait_for(ch.read_control(live.fanout), 5)
                if hello is not None:
                    return ch, hello
                reason = "closed without a word"
            except (OSError, ValueError, TimeoutError) as e:
                reason = str(e) or type(e).__name__
            if self._read_exit_file(cid) is not None or not _alive(monitor) \
                    or time.monotonic() > deadline:
                log.warning("monitor of %s not reached at start-up: %s", cid[:12], reason,
                            extra={"container": cid})
                return None, None
            await asyncio.sleep(0.1)

    # --- signals ----------------------------------------------------------------------------
    async def kill(self, ref: str, sig: str | int | None = None) -> None:
        doc = self.resolve(ref)
        signo = parse_signal(sig, signal_mod.SIGKILL)
        if not doc["State"]["Running"]:
            raise Conflict(f"Cannot kill container: {ref}: Container {doc['Id']} is not running")
        if signo in (signal_mod.SIGKILL, signal_mod.SIGTERM):
            doc["_berth"]["manually_stopped"] = True
        exits = self._live[doc["Id"]].exits
        self._signal(doc, signo)
        self._event(doc, "kill", signal=str(signo))
        if signo == signal_mod.SIGKILL:
            # as dockerd: the call returns once SIGKILL has taken effect, so an inspect right
            # after shows the container exited (137); a frozen process dies only when thawed
            await self._thaw(doc)
            await self._wait_exit(doc["Id"], exits, 10)

    @staticmethod
    def _signal(doc: dict[str, Any], signo: int) -> None:
        pid = doc["State"]["Pid"]
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signo)

    async def stop(self, ref: str, timeout: int | None = None, sig: str | None = None) -> None:
        doc = self.resolve(ref)
        doc["_berth"]["manually_stopped"] = True
        if doc["State"]["Restarting"]:
            self._cancel_restart(doc)
            self._save(doc)
            return
        if not doc["State"]["Running"]:
            raise NotModified("container already stopped")
        await self._stop(doc, timeout, sig)
        self._event(doc, "stop")

    async def _stop(self, doc: dict[str, Any], timeout: int | None, sig: str | None) -> None:
        cid = doc["Id"]
        signo = parse_signal(sig or doc["Config"].get("StopSignal"))
        if timeout is None:
            timeout = doc["Config"].get("StopTimeout")
            timeout = 10 if timeout is None else int(timeout)
        exits = self._live[cid].exits
        await self._thaw(doc)
        self._signal(doc, signo)
        if timeout < 0:
            await self._wait_exit(cid, exits, None)
            return
        if not await self._wait_exit(cid, exits, timeout):
            self._signal(doc, signal_mod.SIGKILL)
            await self._wait_exit(cid, exits, None)

    async def _wait_exit(self, cid: str, exits_before: int, timeout: float | None) -> bool:
        live = self._live[cid]

        async def exited() -> None:
            async with live.changed:
                await live.changed.wait_for(lambda: live.exits > exits_before or live.removed)
        try:
            await asyncio.wait_for(exited(), timeout)
            return True
        except TimeoutError:
            return False

    async def restart(self, ref: str, timeout: int | None = None, sig: str | None = None) -> None:
        doc = self.resolve(ref)
        if doc["State"]["Running"]:
            doc["_berth"]["manually_stopped"] = True  # no policy restart on the way
            await self._stop(doc, timeout, sig)
        await self.start(doc["Id"])
        self._event(doc, "restart")

    # --- wait -------------------------------------------------------------------------------
    async def wait(self, ref: str, condition: str = "not-running") -> dict[str, Any]:
        doc = self.resolve(ref)
        cid = doc["Id"]
        live = self._live[cid]
        if condition not in ("not-running", "next-exit", "removed", ""):
            raise InvalidArgument(f"invalid condition: {condition!r}")
        exits = live.exits
        async with live.changed:
            if condition == "removed":
                await live.changed.wait_for(lambda: live.removed)
            elif condition == "next-exit":
                await live.changed.wait_for(lambda: live.exits > exits or live.removed)
            else:
                await live.changed.wait_for(lambda: not doc["State"]["Running"] or live.removed)
        err = doc["State"].get("Error") or ""
        return {"StatusCode": doc["State"]["ExitCode"],
                "Error": {"Message": err} if err else None}

    def prepare_wait(self, ref: str) -> str:
        """Resolve now, so a wait request fails fast on an unknown container."""
        return str(self.resolve(ref)["Id"])

    # --- remove -----------------------------------------------------------------------------
    async def remove(self, ref: str, *, force: bool = False, volumes: bool = False,
                     link: bool = False) -> None:
        if link:  # `rm --link`: the legacy link /PARENT/ALIAS, not a container
            self.remove_link(ref)
            return
        doc = self.resolve(ref)
        cid = doc["Id"]
        live = self._live[cid]
        if doc["State"]["Restarting"]:
            if not force:
                raise Conflict(f'cannot remove container "{doc["Name"]}": container is '
                               "restarting: stop the container before removing or force remove")
            self._cancel_restart(doc)
        if doc["State"]["Running"]:
            if not force:
                raise Conflict(f'cannot remove container "{doc["Name"]}": container is running: '
                               "stop the container before removing or force remove")
            exits = live.exits
            await self._thaw(doc)
            self._signal(doc, signal_mod.SIGKILL)
            await self._wait_exit(cid, exits, None)
        if live.removed:
            return
        async with live.lock:
            if live.removed:
                return
            doc["State"]["Status"] = "removing"
            # streams still reading the log (the output of a `run --rm`) finish first
            async with live.changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(live.changed.wait_for(lambda: live.followers == 0), 10)
            await asyncio.to_thread(self._remove_files, cid)
            self.meta.delete_container(cid)
            self._docs.pop(cid, None)
            live.removed = True
        async with live.changed:
            live.changed.notify_all()
        self._live.pop(cid, None)
        for hook in self.on_remove:
            hook(cid)
        if volumes:
            for m in doc.get("Mounts") or []:
                if m["Type"] != "volume":
                    continue
                with contextlib.suppress(BerthError):
                    if self.volumes.get(m["Name"]).anonymous:
                        self.volumes.remove(m["Name"])
        if not self.meta.get_image(doc["Image"]):
            await asyncio.to_thread(self.images.gc)
        self._event(doc, "destroy")

    def _remove_files(self, cid: str) -> None:
        self._unmount_shm(cid)
        self.driver.remove(cid)
        shutil.rmtree(self._dir(cid), ignore_errors=True)
        shutil.rmtree(self._run_dir(cid), ignore_errors=True)
        # an OCI runtime's state, should its monitor have died before `delete`
        for name in self.cfg.runtimes:
            shutil.rmtree(os.path.join(self.cfg.exec_root, "runtimes", name, cid),
                          ignore_errors=True)

    async def prune(self, filters: dict[str, list[str]] | None = None) -> dict[str, Any]:
        deleted = []
        for doc in list(self._docs.values()):
            if doc["State"]["Running"]:
                continue
            if not self._labels_match(doc, (filters or {}).get("label", [])):
                continue
            await self.remove(doc["Id"])
            deleted.append(doc["Id"])
        return {"ContainersDeleted": deleted or None, "SpaceReclaimed": 0}

    # --- cgroup views and changes -----------------------------------------------------------








    # --- views ------------------------------------------------------------------------------
    def inspect(self, ref: str, size: bool = False) -> dict[str, Any]:
        doc = self.resolve(ref)
        out = {k: v for k, v in doc.items() if k != "_berth"}
        out["HostConfig"] = {**doc["HostConfig"], "Links": self.links_view(doc)}
        if size:
            rw = _du(self.driver.upper(doc["Id"]))
            out["SizeRw"] = rw
            out["SizeRootFs"] = rw + sum(
                self.images.layer_store.get(c).size for c in doc["_berth"]["layers"]
                if self.images.layer_store.exists(c))
        return out

    def list(self, *, all_: bool = False, limit: int = -1, size: bool = False,
             filters: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        filters = filters or {}
        for k in filters:
            if k not in ("status", "name", "label", "ancestor", "id", "exited", "before",
                         "since", "network", "volume", "health", "is-task", "publish", "expose"):
                raise InvalidArgument(f"invalid filter '{k}'")
        for s in filters.get("status", []):
            if s not in _STATUSES:
                raise InvalidArgument(f"invalid filter 'status={s}'")
        docs = sorted(self._docs.values(), reverse=True, key=lambda d: d["_berth"].get(
            "created_ns", d["_berth"]["created"] * 10**9))
        if not all_ and limit <= 0 and "status" not in filters:
            docs = [d for d in docs if d["State"]["Running"]]
        out = []
        for d in docs:
            if not self._filter(d, filters):
                continue
            out.append(self._summary(d, size))
            if 0 < limit <= len(out):
                break
        return out

    def _filter(self, d: dict[str, Any], f: dict[str, builtins.list[str]]) -> bool:
        import re
        if f.get("status") and d["State"]["Status"] not in f["status"]:
            return False
        if f.get("id") and not any(d["Id"].startswith(i) for i in f["id"]):
            return False
        if f.get("name") and not any(re.search(n, d["Name"][1:]) for n in f["name"]):
            return False
        if f.get("exited") and not (d["State"]["Status"] == "exited" and str(
                d["State"]["ExitCode"]) in f["exited"]):
            return False
        if not self._labels_match(d, f.get("label", [])):
            return False
        if f.get("ancestor"):
            ok = False
            for a in f["ancestor"]:
                try:
                    if self.images.resolve(a).id == d["Image"]:
                        ok = True
                except BerthError:
                    pass
                if a == d["Config"]["Image"]:
                    ok = True
            if not ok:
                return False
        return True

    @staticmethod
    def _labels_match(d: dict[str, Any], wanted: builtins.list[str]) -> bool:
        labels = d["Config"].get("Labels") or {}
        for w in wanted:
            k, eq, v = w.partition("=")
            if k not in labels or (eq and labels[k] != v):
                return False
        return True

    def _summary(self, d: dict[str, Any], size: bool) -> dict[str, Any]:
        st = d["State"]
        now = time.time()
        if st["Restarting"]:
            status = (f"Restarting ({st['ExitCode']}) "
                      f"{human_duration(now - parse_rfc3339(st['FinishedAt']))} ago")
        elif st["Running"]:
            status = "Up " + human_duration(now - parse_rfc3339(st["StartedAt"]))
            if st["Paused"]:
                status += " (Paused)"
            elif st.get("Health"):
                h = st["Health"]["Status"]
                status += " (health: starting)" if h == "starting" else f" ({h})"
        elif st["Status"] == "exited":
            status = (f"Exited ({st['ExitCode']}) "
                      f"{human_duration(now - parse_rfc3339(st['FinishedAt']))} ago")
        elif st["Status"] == "removing":
            status = "Removal In Progress"
        else:
            status = "Created"
        cmd = " ".join([d["Path"], *d["Args"]])
        mode = d["HostConfig"].get("NetworkMode", "bridge")
        s: dict[str, Any] = {
            "Id": d["Id"], "Names": [d["Name"]], "Image": d["Config"]["Image"],
            "ImageID": d["Image"], "Command": cmd, "Created": d["_berth"]["created"],
            "Ports": ps_ports(d["NetworkSettings"].get("Ports")) if st["Running"] else [],
            "Labels": d["Config"].get("Labels") or {}, "State": st["Status"],
            "Status": status, "HostConfig": {"NetworkMode": mode},
            "NetworkSettings": {"Networks": d["NetworkSettings"]["Networks"]},
            "Mounts": d.get("Mounts") or [],
        }
        if size:
            rw = _du(self.driver.upper(d["Id"]))
            s["SizeRw"] = rw
            s["SizeRootFs"] = rw + sum(
                self.images.layer_store.get(c).size for c in d["_berth"]["layers"]
                if self.images.layer_store.exists(c))
        return s

    async def rename(self, ref: str, new: str) -> None:
        doc = self.resolve(ref)
        new = names.validate(new)
        if doc["Name"] == "/" + new:
            raise Conflict("Renaming a container with the same name as its current name")
        if any(d["Name"] == "/" + new for d in self._docs.values()):
            raise Conflict(f'Conflict. The container name "/{new}" is already in use')
        old = doc["Name"]
        doc["Name"] = "/" + new
        try:
            self._save(doc)
        except BerthError:
            doc["Name"] = old
            raise
        self._event(doc, "rename", oldName=old)

    # --- output -----------------------------------------------------------------------------







    def counts(self) -> dict[str, int]:
        running = sum(1 for d in self._docs.values() if d["State"]["Running"])
        paused = sum(1 for d in self._docs.values() if d["State"]["Paused"])
        return {"Containers": len(self._docs), "ContainersRunning": running,
                "ContainersPaused": paused,
                "ContainersStopped": len(self._docs) - running - paused}


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _monitor_died() -> Exit:
    return Exit(exit=255, finished_at=time.time_ns(), error="container monitor died")


def _du(path: str) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total


__all__ = ["ContainerService", "Config", "parse_signal"]
