"""The container service: create, start, stop, kill, wait, remove, list, inspect, logs,
attach (output), rename, prune, export; and the restore of running containers at start-up.

Imports `images`, `storage`, `metadata`, `cgroups`, `errors`, `containers.spec`. The runtime is
reached only as processes: a request to the fork server starts a monitor per container (see
`berth.runtime.monitor` for the protocol). This module never forks.

A container record is kept in Docker's inspect shape (what `GET /containers/{id}/json`
returns), plus a private `_berth` section; the metadata store holds it, this service caches it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal as signal_mod
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from berth import cgroups, storage
from berth.containers import names
from berth.containers.channel import Attachment, Channel, Fanout
from berth.containers.spec import build_spec, merge_env, validate_host_config
from berth.errors import (
    BerthError,
    Conflict,
    Forbidden,
    InvalidArgument,
    NotFound,
    NotModified,
    System,
)
from berth.images import ImageService, parse_rfc3339, rfc3339
from berth.metadata import MetadataStore
from berth.networks import NetworkService, ps_ports
from berth.units import human_duration
from berth.volumes import ANONYMOUS, MountSpec, VolumeService, parse_bind, parse_mount

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
    init_path: str = ""                 # a static init (tini) for --init, mounted in
    # unlike Docker, logs rotate by default, so a chatty container cannot fill the disk
    log_max_size: int = 20 * 1024 * 1024
    log_max_file: int = 5


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
        self.answer: asyncio.Future[dict[str, Any]] | None = None  # to a monitor command
        self.restart_task: asyncio.Task[None] | None = None


class ContainerService:
    def __init__(self, cfg: Config, meta: MetadataStore, images: ImageService,
                 driver: storage.Driver, *,
                 emit: Callable[[str, str, str, dict[str, str]], None] | None = None,
                 volumes: VolumeService | None = None,
                 networks: NetworkService | None = None) -> None:
        self.cfg = cfg
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
        os.makedirs(os.path.join(cfg.data_root, "containers"), exist_ok=True)
        os.makedirs(os.path.join(cfg.exec_root, "containers"), exist_ok=True)
        for doc in meta.containers():
            self._docs[doc["Id"]] = doc
            self._live[doc["Id"]] = _Live()

    # --- helpers ----------------------------------------------------------------------------
    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        t = asyncio.ensure_future(coro)
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

    def volume_users(self, name: str) -> list[str]:
        return [d["Id"] for d in self._docs.values()
                if any(m.get("Name") == name for m in d.get("Mounts") or [])]

    def _mount_specs(self, body: dict[str, Any], hc: dict[str, Any],
                     image_volumes: dict[str, Any] | None) -> list[MountSpec]:
        """What -v, --mount, --volumes-from and the image's VOLUME ask for, one per target."""
        specs = [parse_bind(b) for b in hc.get("Binds") or []]
        specs += [parse_mount(m) for m in hc.get("Mounts") or []]
        seen: set[str] = set()
        for sp in specs:
            if sp.target in seen:
                raise InvalidArgument(f"Duplicate mount point: {sp.target}")
            seen.add(sp.target)
        for ref in hc.get("VolumesFrom") or []:
            name, _, mode = ref.partition(":")
            other = self.resolve(name)
            for m in other.get("Mounts") or []:
                if m["Destination"] in seen or m["Type"] == "tmpfs":
                    continue
                seen.add(m["Destination"])
                ro = mode == "ro" or (mode != "rw" and not m.get("RW", True))
                specs.append(MountSpec(type=m["Type"], target=m["Destination"],
                                       source=m.get("Name") or m["Source"], read_only=ro))
        for target in [*(image_volumes or {}), *(body.get("Volumes") or {})]:
            if target not in seen:
                seen.add(target)
                specs.append(MountSpec(type="volume", target=target))
        return specs

    def _make_mounts(self, cid: str, specs: list[MountSpec],
                     layers: list[storage.Layer]) -> list[dict[str, Any]]:
        """Create the volumes (filled from the image) and bind sources; Docker's Mounts."""
        out = []
        for sp in specs:
            if sp.type == "volume":
                new = not sp.source or self.volumes.meta.get_volume(sp.source) is None
                vol = self.volumes.create(sp.source, anonymous=not sp.source)
                if new and not sp.nocopy:
                    self.volumes.copy_up(vol["Name"], [la.path for la in reversed(layers)],
                                         sp.target)
                out.append({"Type": "volume", "Name": vol["Name"], "Source": vol["Mountpoint"],
                            "Destination": sp.target, "Driver": "local", "Mode": "z",
                            "RW": not sp.read_only, "Propagation": ""})
            elif sp.type == "bind":
                if not os.path.exists(sp.source):
                    os.makedirs(sp.source, exist_ok=True)  # -v creates a missing source
                out.append({"Type": "bind", "Source": sp.source, "Destination": sp.target,
                            "Mode": "", "RW": not sp.read_only,
                            "Propagation": sp.propagation or "rprivate"})
            else:
                out.append({"Type": "tmpfs", "Source": "", "Destination": sp.target,
                            "Mode": sp.tmpfs_options, "RW": not sp.read_only,
                            "Propagation": ""})
        return out

    def _runtime_mounts(self, doc: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for m in doc.get("Mounts") or []:
            ro = [] if m.get("RW", True) else ["ro"]
            if m["Type"] == "volume":
                out.append(self.volumes.runtime_mount(m["Name"], m["Destination"],
                                                      not m.get("RW", True)))
            elif m["Type"] == "bind":
                out.append({"destination": m["Destination"], "type": "bind",
                            "source": m["Source"],
                            "options": ["rbind", m.get("Propagation") or "rprivate", *ro]})
            else:
                opts = [o for o in (m.get("Mode") or "").split(",") if o]
                out.append({"destination": m["Destination"], "type": "tmpfs", "source": "tmpfs",
                            "options": ["nosuid", "nodev", "noexec", *opts, *ro]})
        return out

    def network_users(self, net: str) -> list[str]:
        return [d["Id"] for d in self._docs.values()
                if any(n["net"] == net for n in d["_berth"].get("nets") or [])]

    async def _monitor_command(self, cid: str, cmd: dict[str, Any]) -> dict[str, Any]:
        live = self._live[cid]
        if live.channel is None:
            raise Conflict(f"Container {cid} is not running")
        async with live.lock:
            live.answer = asyncio.get_running_loop().create_future()
            live.channel.command(cmd)
            try:
                return await asyncio.wait_for(live.answer, 30)
            finally:
                live.answer = None

    async def connect(self, net: str, ref: str, ec: dict[str, Any]) -> None:
        """`network connect`; a running container gets its interface plugged at once."""
        doc = self.resolve(ref)
        assert self.networks is not None
        n = self.networks.resolve(net)
        if n["Driver"] in ("host", "null"):
            raise Forbidden(f"container cannot be disconnected from host network or "
                            f"connected to {n['Name']} network")
        if doc["HostConfig"].get("NetworkMode") in ("host", "none") or \
                doc["HostConfig"].get("NetworkMode", "").startswith("container:"):
            raise Forbidden("container sharing network namespace with another container or "
                            "host cannot be connected to any other network")
        nets = doc["_berth"].setdefault("nets", [])
        if any(x["net"] == n["Name"] for x in nets):
            raise Forbidden(f"endpoint with name {doc['Name'][1:]} already exists in "
                            f"network {n['Name']}")
        entry = {"net": n["Name"], "aliases": list(ec.get("Aliases") or []),
                 "ip": (ec.get("IPAMConfig") or {}).get("IPv4Address") or "",
                 "mac": ec.get("MacAddress") or ""}
        if doc["State"]["Running"]:
            eps = doc["_berth"].setdefault("endpoints", [])
            used = {e["ifname"] for e in eps}
            ifname = next(f"eth{i}" for i in range(64) if f"eth{i}" not in used)
            ep = self.networks.allocate(n["Name"], doc["Id"], name=doc["Name"][1:],
                                        aliases=entry["aliases"], ip=entry["ip"],
                                        ifname=ifname, mac=entry["mac"])
            ep["netname"] = n["Name"]
            plug = {k: ep.get(k, "") for k in ("bridge", "host_if", "ifname", "mac", "kind",
                                               "parent", "mode")}
            plug.update({"address": f"{ep['ip']}/{ep['prefix']}", "gateway": ""})
            answer = await self._monitor_command(
                doc["Id"], {"plug": plug, "hosts": self.networks.hosts_files([ep])[0]})
            if "plugged" not in answer:
                self.networks.release_one(doc["Id"], n["Id"])
                raise System(f"connect {doc['Name'][1:]} to {n['Name']}: "
                             f"{answer.get('failed')}")
            eps.append(ep)
        nets.append(entry)
        doc["NetworkSettings"] = self._network_settings(
            doc["HostConfig"].get("NetworkMode", "bridge"), nets,
            doc["_berth"].get("endpoints") if doc["State"]["Running"] else None)
        self._save(doc)
        self._event(doc, "connect", network=n["Name"])

    async def disconnect(self, net: str, ref: str, *, force: bool = False) -> None:
        doc = self.resolve(ref)
        assert self.networks is not None
        n = self.networks.resolve(net)
        nets = doc["_berth"].get("nets") or []
        if not any(x["net"] == n["Name"] for x in nets):
            raise Forbidden(f"container {doc['Id'][:12]} is not connected to network "
                            f"{n['Name']}")
        eps = doc["_berth"].get("endpoints") or []
        ep = next((e for e in eps if e["netname"] == n["Name"]), None)
        if doc["State"]["Running"] and ep is not None:
            answer = await self._monitor_command(doc["Id"], {"unplug": ep["ifname"]})
            if "unplugged" not in answer and not force:
                raise System(f"disconnect: {answer.get('failed')}")
            self.networks.release_one(doc["Id"], ep["network"])
            doc["_berth"]["endpoints"] = [e for e in eps if e is not ep]
        doc["_berth"]["nets"] = [x for x in nets if x["net"] != n["Name"]]
        doc["NetworkSettings"] = self._network_settings(
            doc["HostConfig"].get("NetworkMode", "bridge"), doc["_berth"]["nets"],
            doc["_berth"].get("endpoints") if doc["State"]["Running"] else None)
        self._save(doc)
        self._event(doc, "disconnect", network=n["Name"])

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
        hostname = cfg.get("Hostname") or ("" if hc.get("NetworkMode") == "host" else cid[:12])
        if hc.get("NetworkMode") == "host":
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
        if not any(e.startswith("HOSTNAME=") for e in full_cfg["Env"]) and hostname:
            full_cfg["Env"].insert(0, f"HOSTNAME={hostname}")
        if full_cfg["Tty"] and not any(e.startswith("TERM=") for e in full_cfg["Env"]):
            full_cfg["Env"].append("TERM=xterm")
        mount_specs = self._mount_specs(cfg, hc, icfg.get("Volumes"))
        nets = self._requested_networks(hc, body.get("NetworkingConfig") or {})
        if body.get("MacAddress") and nets:  # the older, container-wide field
            nets[0]["mac"] = nets[0]["mac"] or body["MacAddress"]
        cdir = self._dir(cid)
        now = time.time()
        layers = self.images.layers_of(image)
        hc.setdefault("RestartPolicy", {"Name": "no", "MaximumRetryCount": 0})
        hc.setdefault("LogConfig", {"Type": "json-file", "Config": {}})
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
            "LogPath": os.path.join(cdir, f"{cid}-json.log"),
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
                       "nets": nets,
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

    def _requested_networks(self, hc: dict[str, Any], nc: dict[str, Any]
                            ) -> list[dict[str, Any]]:
        """The bridge networks a container joins: its NetworkMode and NetworkingConfig."""
        mode = hc.get("NetworkMode") or "bridge"
        if mode in ("host", "none") or mode.startswith("container:"):
            return []
        # the docker CLI names the default network "default"
        eps = {("bridge" if k == "default" else k): v
               for k, v in (nc.get("EndpointsConfig") or {}).items()}
        names = [mode] + [n for n in eps if n != mode]
        out = []
        for n in names:
            try:
                if self.networks is None:
                    raise NotFound(n)
                doc = self.networks.resolve(n)
            except NotFound:
                # a 400, not a 404: the docker CLI takes any 404 of create for a missing
                # image, and would try to pull
                raise InvalidArgument(f"network {n} not found") from None
            if doc["Driver"] in ("host", "null"):
                raise InvalidArgument(f"container cannot be connected to network {n} "
                                      "alongside others")
            ec = eps.get(n) or {}
            if doc["Name"] == "bridge" and ec.get("Aliases"):
                raise InvalidArgument("network-scoped alias is supported only for containers "
                                      "in user defined networks")
            out.append({"net": doc["Name"], "aliases": list(ec.get("Aliases") or []),
                        "ip": ((ec.get("IPAMConfig") or {}).get("IPv4Address") or ""),
                        "mac": ec.get("MacAddress") or ""})
        return out

    @staticmethod
    def _endpoint_view(ep: dict[str, Any] | None, nid: str = "",
                       aliases: list[str] | None = None) -> dict[str, Any]:
        ep = ep or {}
        return {"IPAMConfig": None, "Links": None, "Aliases": aliases or None,
                "MacAddress": ep.get("mac", ""), "NetworkID": nid or ep.get("network", ""),
                "EndpointID": ep.get("endpoint", ""), "Gateway": ep.get("gateway", ""),
                "IPAddress": ep.get("ip", ""), "IPPrefixLen": ep.get("prefix", 0),
                "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
                "DriverOpts": None, "DNSNames": None}

    def _network_settings(self, mode: str, nets: list[dict[str, Any]],
                          eps: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        by_net = {e["netname"]: e for e in eps or []}
        networks: dict[str, Any] = {}
        if mode in ("host", "none"):
            networks[mode] = self._endpoint_view(None)
        for n in nets:
            nid = self.networks.resolve(n["net"])["Id"] if self.networks else ""
            networks[n["net"]] = self._endpoint_view(by_net.get(n["net"]), nid, n["aliases"])
        first = by_net.get(nets[0]["net"]) if nets else None
        return {"Bridge": "", "SandboxID": "", "SandboxKey": "", "Ports": {},
                "HairpinMode": False, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
                "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None,
                "EndpointID": (first or {}).get("endpoint", ""),
                "Gateway": (first or {}).get("gateway", ""), "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0, "IPAddress": (first or {}).get("ip", ""),
                "IPPrefixLen": (first or {}).get("prefix", 0), "IPv6Gateway": "",
                "MacAddress": (first or {}).get("mac", ""), "Networks": networks}

    def _write_etc_files(self, doc: dict[str, Any],
                         eps: list[dict[str, Any]] | None = None) -> None:
        hc = doc["HostConfig"]
        cfg = doc["Config"]
        host_net = hc.get("NetworkMode") == "host"
        hostname = cfg["Hostname"]
        with open(doc["HostnamePath"], "w") as f:
            f.write(hostname + "\n")
        if host_net:
            try:
                with open("/etc/hosts") as f:
                    hosts = f.read()
            except OSError:
                hosts = "127.0.0.1\tlocalhost\n"
        else:
            hosts = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                     "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n"
                     "ff02::2\tip6-allrouters\n")
            for extra in hc.get("ExtraHosts") or []:
                h, _, ip = extra.partition(":")
                hosts += f"{ip}\t{h}\n"
            for ep in eps or []:
                hosts += f"{ep['ip']}\t{hostname}\n"
        with open(doc["HostsPath"], "w") as f:
            f.write(hosts)
        user_net = any(self.networks and self.networks.user_defined(n["net"])
                       for n in doc["_berth"].get("nets") or [])
        with open(doc["ResolvConfPath"], "w") as f:
            f.write(self._resolv_conf(hc, host_net, embedded=user_net))

    def _upstream_dns(self, hc: dict[str, Any], host_net: bool) -> list[str]:
        return [line.split()[1] for line in self._resolv_conf(hc, host_net).splitlines()
                if line.startswith("nameserver ")]

    def _resolv_conf(self, hc: dict[str, Any], host_net: bool, embedded: bool = False) -> str:
        if embedded:
            # user-defined networks: the embedded DNS server answers names, forwards the rest
            search = list(hc.get("DnsSearch") or self.cfg.dns_search)
            options = ["ndots:0", *(hc.get("DnsOptions") or self.cfg.dns_options)]
            out = "nameserver 127.0.0.11\n"
            if search:
                out += "search " + " ".join(search) + "\n"
            return out + "options " + " ".join(options) + "\n"
        dns = list(hc.get("Dns") or self.cfg.dns)
        search = list(hc.get("DnsSearch") or self.cfg.dns_search)
        options = list(hc.get("DnsOptions") or self.cfg.dns_options)
        if not dns:
            try:
                with open("/etc/resolv.conf") as f:
                    host = f.read().splitlines()
            except OSError:
                host = []
            for line in host:
                w = line.split()
                if len(w) >= 2 and w[0] == "nameserver":
                    # a loopback resolver of the host is unreachable from a container netns
                    if host_net or not (w[1].startswith("127.") or w[1] == "::1"):
                        dns.append(w[1])
                elif len(w) >= 2 and w[0] == "search" and not search:
                    search = w[1:]
                elif len(w) >= 2 and w[0] == "options" and not options:
                    options = w[1:]
        out = "".join(f"nameserver {d}\n" for d in dns)
        if search:
            out += "search " + " ".join(search) + "\n"
        if options:
            out += "options " + " ".join(options) + "\n"
        return out

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
        if doc["HostConfig"].get("Init") and not (
                self.cfg.init_path and os.path.exists(self.cfg.init_path)):
            raise System('exec: "docker-init": executable file not found in $PATH '
                         "(berthd --init-path names a static tini)")
        spec = build_spec(cid=cid, config=doc["Config"], host_config=doc["HostConfig"],
                          hostname_path=doc["HostnamePath"], hosts_path=doc["HostsPath"],
                          resolv_path=doc["ResolvConfPath"], cgroup_parent=self.cfg.cgroup_parent,
                          netns_path=netns, init_path=self.cfg.init_path,
                          mounts=self._runtime_mounts(doc))
        if mode == "host":
            spec["linux"]["namespaces"] = [ns for ns in spec["linux"]["namespaces"]
                                           if ns["type"] != "network"]
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(spec, f)
        cfg = doc["Config"]
        eps = self._plug_networks(doc)
        try:
            await self._publish(doc, eps)
        except BaseException:
            self._unplug_networks(doc)
            raise
        req = {"id": cid, "bundle": bundle, "log_path": doc["LogPath"], "state_dir": state_dir,
               "socket": self._monitor_socket(cid),
               "rootfs_mount": self.driver.mount(cid, layers).to_dict(),
               "stdin": bool(cfg.get("OpenStdin")), "tty": bool(cfg.get("Tty")),
               "console_size": doc["HostConfig"].get("ConsoleSize") or None,
               "networks": [{k: ep.get(k, "") for k in (
                   "bridge", "host_if", "ifname", "gateway", "mac", "kind", "parent", "mode")}
                   | {"address": f"{ep['ip']}/{ep['prefix']}"} for ep in eps],
               "dns": {"hosts": self.networks.hosts_files(eps) if self.networks else [],
                       "upstream": self._upstream_dns(doc["HostConfig"], False)}
               if any(self.networks and self.networks.user_defined(ep["netname"])
                      for ep in eps) else None,
               **self._log_rotation(doc)}
        live = self._live[cid]
        try:
            ch = await Channel.open(self.cfg.forkserver, req)
        except OSError as e:
            self._unplug_networks(doc)
            raise System(f"cannot reach the fork server: {e}") from e
        msg = await ch.read_control(live.fanout) or {
            "error": "monitor died before starting", "code": 125}
        if "pid" not in msg:
            self._unplug_networks(doc)
            ch.close()
            code = int(msg.get("code", 125))
            doc["State"].update({"ExitCode": code, "Error": msg.get("error", "")})
            self._save(doc)
            live.fanout.end()
            err_cls = InvalidArgument if code in (126, 127) else System
            raise err_cls(msg.get("error", "failed to start container"))
        now = time.time()
        doc["State"].update({"Status": "running", "Running": True, "Paused": False,
                             "Restarting": False, "OOMKilled": False, "Dead": False,
                             "Pid": msg["pid"], "ExitCode": 0, "Error": "",
                             "StartedAt": rfc3339(now), "FinishedAt": ZERO_TIME})
        doc["_berth"]["monitor"] = msg.get("monitor", 0)
        self._save(doc)
        live.channel = ch
        live.reader = self._spawn(self._watch(cid, ch))
        for hook in self.on_start:
            hook(cid)
        async with live.changed:
            live.changed.notify_all()
        log.info("started container %s pid %s", cid[:12], msg["pid"], extra={"container": cid})
        self._event(doc, "start")

    def _log_rotation(self, doc: dict[str, Any]) -> dict[str, int]:
        opts = (doc["HostConfig"].get("LogConfig") or {}).get("Config") or {}
        size = self.cfg.log_max_size
        if opts.get("max-size"):
            from berth.units import parse_size
            size = -1 if opts["max-size"] == "-1" else parse_size(opts["max-size"])
        files = int(opts.get("max-file") or self.cfg.log_max_file)
        return {"log_max_size": max(size, 0), "log_max_file": max(files, 1)}

    def _log_files(self, path: str) -> list[str]:
        """The log and its rotated files, oldest first."""
        old = []
        i = 1
        while os.path.exists(f"{path}.{i}"):
            old.append(f"{path}.{i}")
            i += 1
        return [*reversed(old), path]

    def _plug_networks(self, doc: dict[str, Any]) -> list[dict[str, Any]]:
        """Addresses on the container's bridge networks, for this run; /etc/hosts with them."""
        eps: list[dict[str, Any]] = []
        nets = doc["_berth"].get("nets") or []
        if self.networks is None or not nets:
            self._write_etc_files(doc)
            return eps
        try:
            for i, n in enumerate(nets):
                ep = self.networks.allocate(n["net"], doc["Id"], name=doc["Name"][1:],
                                            aliases=n["aliases"], ip=n.get("ip", ""),
                                            ifname=f"eth{i}", mac=n.get("mac", ""))
                ep["netname"] = n["net"]
                eps.append(ep)
        except BaseException:
            self.networks.release(doc["Id"])
            raise
        doc["_berth"]["endpoints"] = eps
        doc["NetworkSettings"] = self._network_settings(
            doc["HostConfig"].get("NetworkMode", "bridge"), nets, eps)
        self._write_etc_files(doc, eps)
        return eps

    def _bindings(self, doc: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
        hc = doc["HostConfig"]
        binds = dict(hc.get("PortBindings") or {})
        if hc.get("PublishAllPorts"):
            for key in doc["Config"].get("ExposedPorts") or {}:
                binds.setdefault(key if "/" in key else key + "/tcp", [{"HostIp": "",
                                                                          "HostPort": ""}])
        return binds

    async def _publish(self, doc: dict[str, Any], eps: list[dict[str, Any]]) -> None:
        binds = self._bindings(doc)
        if not binds or self.networks is None:
            return
        if not eps or eps[0].get("kind", "veth") != "veth":
            raise InvalidArgument("published ports need a bridge network: "
                                  f"{doc['HostConfig'].get('NetworkMode')} is not one")
        ports = await self.networks.ports.publish(doc["Id"], binds, eps[0]["ip"],
                                                  eps[0]["netname"])
        doc["NetworkSettings"]["Ports"] = ports

    def _unplug_networks(self, doc: dict[str, Any]) -> None:
        if self.networks is not None and doc["_berth"].get("endpoints"):
            self.networks.ports.unpublish(doc["Id"], doc["_berth"]["endpoints"][0]["netname"])
            self.networks.release(doc["Id"])
            doc["_berth"]["endpoints"] = []
            doc["NetworkSettings"] = self._network_settings(
                doc["HostConfig"].get("NetworkMode", "bridge"), doc["_berth"].get("nets") or [])

    def _monitor_socket(self, cid: str) -> str:
        return os.path.join(self._run_dir(cid), "state", "monitor.sock")

    async def _watch(self, cid: str, ch: Channel) -> None:
        """Pass output on until the monitor's exit message (or its death); record the exit."""
        live = self._live[cid]
        record: dict[str, Any] | None = None
        try:
            while True:
                msg = await ch.read_control(live.fanout)
                if msg is None or "exit" in msg:
                    record = msg
                    break
                if live.answer is not None and not live.answer.done():
                    live.answer.set_result(msg)
        except (OSError, ValueError):
            record = None
        finally:
            ch.close()
            live.channel = None
            live.fanout.end()
        if record is None:
            record = self._read_exit_file(cid) or {"exit": 255, "oom": False,
                                                    "finished_at": time.time_ns(),
                                                    "error": "container monitor died"}
        await self._on_exit(cid, record)

    def _read_exit_file(self, cid: str) -> dict[str, Any] | None:
        try:
            with open(os.path.join(self._run_dir(cid), "state", "exit.json")) as f:
                data: dict[str, Any] = json.load(f)
                return data
        except (OSError, ValueError):
            return None

    async def _on_exit(self, cid: str, record: dict[str, Any]) -> None:
        doc = self._docs.get(cid)
        if doc is None:
            return
        code = int(record.get("exit", 255))
        doc["State"].update({"Status": "exited", "Running": False, "Paused": False,
                             "Restarting": False, "OOMKilled": bool(record.get("oom")),
                             "Pid": 0, "ExitCode": code,
                             "Error": record.get("error", "") if "pid" not in record else "",
                             "FinishedAt": rfc3339(record.get("finished_at", time.time_ns()) / 1e9)})
        doc["_berth"]["monitor"] = 0
        self._unplug_networks(doc)
        self._save(doc)
        live = self._live[cid]
        live.exits += 1
        async with live.changed:
            live.changed.notify_all()
        log.info("container %s exited with %s", cid[:12], code, extra={"container": cid})
        if record.get("oom"):
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
                try:
                    ch = await Channel.open(self._monitor_socket(cid))
                    hello = await ch.read_control(live.fanout)
                except OSError:
                    hello = None
                if hello is not None and "pid" in hello:
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
                if hello is not None and "exit" in hello:
                    record = hello
            await self._on_exit(cid, record or self._read_exit_file(cid) or {
                "exit": 255, "oom": False, "finished_at": time.time_ns(),
                "error": "container monitor died"})

    # --- signals ----------------------------------------------------------------------------
    async def kill(self, ref: str, sig: str | int | None = None) -> None:
        doc = self.resolve(ref)
        signo = parse_signal(sig, signal_mod.SIGKILL)
        if not doc["State"]["Running"]:
            raise Conflict(f"Cannot kill container: {ref}: Container {doc['Id']} is not running")
        if signo in (signal_mod.SIGKILL, signal_mod.SIGTERM):
            doc["_berth"]["manually_stopped"] = True
        self._signal(doc, signo)
        self._event(doc, "kill", signal=str(signo))

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
    async def remove(self, ref: str, *, force: bool = False, volumes: bool = False) -> None:
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
                    if ANONYMOUS in (self.volumes.get(m["Name"]).get("Labels") or {}):
                        self.volumes.remove(m["Name"])
        if not self.meta.get_image(doc["Image"]):
            await asyncio.to_thread(self.images.gc)
        self._event(doc, "destroy")

    def _remove_files(self, cid: str) -> None:
        self.driver.remove(cid)
        shutil.rmtree(self._dir(cid), ignore_errors=True)
        shutil.rmtree(self._run_dir(cid), ignore_errors=True)

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
    def _cgroup(self, doc: dict[str, Any]) -> cgroups.CgroupManager:
        parent = doc["HostConfig"].get("CgroupParent") or self.cfg.cgroup_parent
        return cgroups.detect(f"{parent.strip('/')}/{doc['Id']}")

    def _running(self, ref: str) -> dict[str, Any]:
        doc = self.resolve(ref)
        if not doc["State"]["Running"]:
            raise Conflict(f"Container {doc['Id']} is not running")
        return doc

    async def _thaw(self, doc: dict[str, Any]) -> None:
        """A frozen process cannot act on a signal: stopping a paused container thaws it."""
        if doc["State"]["Paused"]:
            await asyncio.to_thread(self._cgroup(doc).freeze, False)
            doc["State"].update({"Paused": False, "Status": "running"})

    async def pause(self, ref: str) -> None:
        doc = self._running(ref)
        if doc["State"]["Paused"]:
            raise Conflict(f"Container {doc['Id']} is already paused")
        await asyncio.to_thread(self._cgroup(doc).freeze, True)
        doc["State"].update({"Paused": True, "Status": "paused"})
        self._save(doc)
        self._event(doc, "pause")

    async def unpause(self, ref: str) -> None:
        doc = self._running(ref)
        if not doc["State"]["Paused"]:
            raise Conflict(f"Container {doc['Id']} is not paused")
        await asyncio.to_thread(self._cgroup(doc).freeze, False)
        doc["State"].update({"Paused": False, "Status": "running"})
        self._save(doc)
        self._event(doc, "unpause")

    async def update(self, ref: str, body: dict[str, Any]) -> list[str]:
        """`docker update`: new limits in HostConfig and, if it runs, in its cgroup."""
        doc = self.resolve(ref)
        keys = ("Memory", "MemorySwap", "NanoCpus", "CpuShares", "CpuQuota", "CpuPeriod",
                "CpusetCpus", "CpusetMems", "PidsLimit", "RestartPolicy")
        hc = dict(doc["HostConfig"])
        for k in keys:
            if k in body and body[k] not in (None, ""):
                hc[k] = body[k]
        if body.get("Memory") and not body.get("MemorySwap") and hc.get("MemorySwap", 0) > 0 \
                and hc["MemorySwap"] < hc["Memory"]:
            hc["MemorySwap"] = 0
        warnings = validate_host_config(hc, self.ncpu)
        if doc["State"]["Running"]:
            spec = build_spec(cid=doc["Id"], config=doc["Config"], host_config=hc,
                              hostname_path="", hosts_path="", resolv_path="",
                              cgroup_parent=self.cfg.cgroup_parent)
            res = cgroups.Resources.from_spec(spec["linux"]["resources"])
            try:
                await asyncio.to_thread(self._cgroup(doc).create, res)
            except BerthError as e:
                raise InvalidArgument(f"Cannot update container {doc['Id']}: {e}") from None
        doc["HostConfig"] = hc
        self._save(doc)
        self._event(doc, "update")
        return warnings

    def top(self, ref: str, ps_args: str = "-ef") -> dict[str, Any]:
        """`docker top`: the host's ps, kept to the container's processes."""
        import subprocess
        doc = self._running(ref)
        pids: set[int] = set()
        for f in self._cgroup(doc).procs_files()[:1]:
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
            raise InvalidArgument('Couldn\'t find PID field in ps output') from None
        procs = []
        for line in lines[1:]:
            fields = line.split(None, len(titles) - 1)
            if len(fields) > col and fields[col].isdigit() and int(fields[col]) in pids:
                procs.append(fields)
        return {"Titles": titles, "Processes": procs}

    def stats(self, ref: str) -> dict[str, Any]:
        """One sample in Docker's stats shape (the API adds `precpu_stats`)."""
        doc = self.resolve(ref)
        now = rfc3339(time.time())
        base: dict[str, Any] = {"read": now, "name": doc["Name"], "id": doc["Id"],
                                "num_procs": 0, "storage_stats": {}, "networks": {}}
        if not doc["State"]["Running"]:
            return {**base, "pids_stats": {}, "blkio_stats": {}, "cpu_stats": {
                "cpu_usage": {"total_usage": 0}, "throttling_data": {}},
                "memory_stats": {}}
        st = self._cgroup(doc).stats()
        limit = doc["HostConfig"].get("PidsLimit") or 0
        mem_limit = st.memory_limit if 0 < st.memory_limit < (1 << 62) else _mem_total()
        return {**base,
                "pids_stats": {"current": st.pids, **({"limit": limit} if limit else {})},
                "blkio_stats": {"io_service_bytes_recursive": None},
                "cpu_stats": {"cpu_usage": {"total_usage": st.cpu_usage_ns,
                                            "usage_in_kernelmode": 0, "usage_in_usermode": 0},
                              "system_cpu_usage": _system_cpu_ns(),
                              "online_cpus": self.ncpu, "throttling_data": {
                                  "periods": 0, "throttled_periods": 0, "throttled_time": 0}},
                "memory_stats": {"usage": st.memory_usage, "limit": mem_limit,
                                 "stats": st.extra}}

    # --- views ------------------------------------------------------------------------------
    def inspect(self, ref: str, size: bool = False) -> dict[str, Any]:
        doc = self.resolve(ref)
        out = {k: v for k, v in doc.items() if k != "_berth"}
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

    def _filter(self, d: dict[str, Any], f: dict[str, list[str]]) -> bool:
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
    def _labels_match(d: dict[str, Any], wanted: list[str]) -> bool:
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
    async def logs(self, ref: str, *, follow: bool = False, stdout: bool = True,
                   stderr: bool = True, since: float = 0, until: float = 0, tail: str = "all",
                   timestamps: bool = False) -> AsyncIterator[tuple[int, bytes]]:
        doc = self.resolve(ref)
        cid = doc["Id"]
        path = doc["LogPath"]
        streams = {"stdout": 1 if stdout else 0, "stderr": 2 if stderr else 0}
        n_tail = -1 if tail in ("all", "", None) else int(tail)
        if n_tail < -1:
            n_tail = -1

        def fmt(entry: dict[str, Any]) -> tuple[int, bytes] | None:
            stream = streams.get(entry.get("stream", "stdout"), 0)
            if not stream:
                return None
            t = entry.get("time", "")
            if since or until:
                ts = parse_rfc3339(t)
                if since and ts < since:
                    return None
                if until and ts > until:
                    return None
            data = entry.get("log", "").encode()
            if timestamps:
                data = t.encode() + b" " + data
            return stream, data

        content = b""
        for p in self._log_files(path):
            try:
                with open(p, "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                continue
            if p != path:
                content += data
            else:
                end = data.rfind(b"\n") + 1
                content += data[:end]
                pos = end
        lines = content.splitlines()
        if not os.path.exists(path):
            pos = 0
        if n_tail >= 0:
            lines = lines[-n_tail:] if n_tail else []
        for raw in lines:
            try:
                item = fmt(json.loads(raw))
            except ValueError:
                continue
            if item:
                yield item
        if not follow:
            return
        if until and until < time.time():
            return
        live = self._live.get(cid)
        async for item in self._follow(cid, path, pos, live, fmt):
            yield item

    async def _follow(self, cid: str, path: str, pos: int, live: _Live | None,
                      fmt: Callable[[dict[str, Any]], tuple[int, bytes] | None]
                      ) -> AsyncIterator[tuple[int, bytes]]:
        """Tail the json log from `pos`; stop once the container is no longer running, after a
        last read."""
        if live is not None:
            live.followers += 1
        try:
            async for item in self._follow_file(cid, path, pos, live, fmt):
                yield item
        finally:
            if live is not None:
                live.followers -= 1
                async with live.changed:
                    live.changed.notify_all()

    async def _follow_file(self, cid: str, path: str, pos: int, live: _Live | None,
                           fmt: Callable[[dict[str, Any]], tuple[int, bytes] | None]
                           ) -> AsyncIterator[tuple[int, bytes]]:
        buf = b""
        delay = 0.005
        while True:
            if live is None or live.removed:
                done = True
            else:
                doc = self._docs.get(cid)
                done = doc is None or not doc["State"]["Running"]
            try:
                with open(path, "rb") as f:
                    if os.fstat(f.fileno()).st_size < pos:
                        # rotated: the rest of the old file is in PATH.1
                        with contextlib.suppress(FileNotFoundError), \
                                open(path + ".1", "rb") as old:
                            old.seek(pos)
                            buf += old.read()
                        pos = 0
                    f.seek(pos)
                    chunk = f.read()
            except FileNotFoundError:
                chunk = b""
            if chunk:
                pos += len(chunk)
                buf += chunk
                *complete, buf = buf.split(b"\n")
                for raw in complete:
                    try:
                        item = fmt(json.loads(raw))
                    except ValueError:
                        continue
                    if item:
                        yield item
                delay = 0.005
                continue
            if done:
                return
            # wake on a state change at once, else poll the file with a growing delay
            assert live is not None
            async with live.changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(live.changed.wait(), delay)
            delay = min(delay * 2, 0.1)

    def attach(self, ref: str, *, stdout: bool = True, stderr: bool = True,
               logs: bool = False) -> Attachment:
        """An attach stream: the container's output from now (after its log, with `logs`)
        until its next exit, and its stdin. Made before the caller answers the client, who
        starts the container as soon as it has the answer."""
        doc = self.resolve(ref)
        st = doc["State"]
        if not st["Running"] and st["Status"] != "created":
            raise Conflict("You cannot attach to a stopped container, start it first")
        cid = doc["Id"]
        live = self._live[cid]
        q = live.fanout.subscribe()

        async def channel() -> Channel | None:
            # input typed before the start waits for the monitor
            async with live.changed:
                await live.changed.wait_for(
                    lambda: live.channel is not None or live.removed or (
                        not doc["State"]["Running"] and doc["State"]["Status"] != "created"))
            return live.channel
        att = Attachment(q, stdout=stdout, stderr=stderr, channel=channel,
                         stdin_once=bool(doc["Config"].get("StdinOnce")),
                         on_close=lambda: live.fanout.unsubscribe(q))
        if logs:
            att.prelude = self._log_entries(doc, stdout, stderr)
        return att

    @staticmethod
    def _log_entries(doc: dict[str, Any], stdout: bool, stderr: bool) -> list[tuple[int, bytes]]:
        want = {"stdout": 1 if stdout else 0, "stderr": 2 if stderr else 0}
        out = []
        try:
            with open(doc["LogPath"], "rb") as f:
                for raw in f:
                    with contextlib.suppress(ValueError):
                        e = json.loads(raw)
                        if want.get(e.get("stream"), 0):
                            out.append((want[e["stream"]], e.get("log", "").encode()))
        except FileNotFoundError:
            pass
        return out

    def resize(self, ref: str, h: int, w: int) -> None:
        doc = self.resolve(ref)
        ch = self._live[doc["Id"]].channel
        if not doc["State"]["Running"] or ch is None:
            raise Conflict(f"Container {doc['Id']} is not running")
        ch.resize(h, w)

    def export(self, ref: str, out: BinaryIO) -> None:
        doc = self.resolve(ref)
        dirs = [self.driver.upper(doc["Id"])]
        if self.driver.name == "overlay2":
            dirs += [self.images.layer_store.get(c).path for c in reversed(doc["_berth"]["layers"])]
        storage.write_merged_tar(dirs, out)

    def counts(self) -> dict[str, int]:
        running = sum(1 for d in self._docs.values() if d["State"]["Running"])
        paused = sum(1 for d in self._docs.values() if d["State"]["Paused"])
        return {"Containers": len(self._docs), "ContainersRunning": running,
                "ContainersPaused": paused,
                "ContainersStopped": len(self._docs) - running - paused}


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


def _du(path: str) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total


__all__ = ["ContainerService", "Config", "parse_signal"]
