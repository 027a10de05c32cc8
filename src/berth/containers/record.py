"""The container record: what the service knows of a container, typed, and its serialised form
in the metadata store.

The record is the service's truth; Docker's inspect JSON is made from it at the API edge
(`berth.api.containers_wire`). It is saved as its own versioned JSON (`"v": 3`). Older forms
load too (`from_stored`), so a daemon upgraded in place still sees its containers: version 2
(which kept Docker's Config; its HostConfig, ports and endpoints are stored as they are now)
and, before it, Docker's inspect document with berth's fields under `_berth`.

NetworkSettings is not kept: the API makes it from the networks asked for, the endpoints and
the published ports. The parts: `config` (`containers.settings.ContainerConfig`),
`host_config` (`containers.hostconfig.HostConfig`), `ports` (`containers.ports.PortMap`),
`endpoints` (`ContainerEndpoint`: the networks service's endpoint and its network's name).

Imports `containers.settings`, `containers.hostconfig`, `containers.ports`,
`containers.status`, `networks.records`, `errors`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from berth.containers.hostconfig import HostConfig
from berth.containers.ports import PortMap, port_map_from_json, port_map_to_json
from berth.containers.settings import ContainerConfig
from berth.containers.status import ContainerStatus
from berth.errors import System
from berth.networks.records import Endpoint

ZERO_TIME = "0001-01-01T00:00:00Z"
VERSION = 3

Json = dict[str, Any]


class HealthStatus(enum.StrEnum):
    STARTING = "starting"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthProbe:
    """One run of the health check, as Docker logs it."""

    start: str  # RFC 3339
    end: str
    exit_code: int
    output: str

    def to_json(self) -> Json:
        return {
            "Start": self.start,
            "End": self.end,
            "ExitCode": self.exit_code,
            "Output": self.output,
        }

    @classmethod
    def from_json(cls, j: Json) -> HealthProbe:
        return cls(
            start=j.get("Start") or "",
            end=j.get("End") or "",
            exit_code=int(j.get("ExitCode") or 0),
            output=j.get("Output") or "",
        )


@dataclass(slots=True, kw_only=True)
class Health:
    """Docker's State.Health: the check's status, its failing streak and its last probes."""

    status: HealthStatus = HealthStatus.STARTING
    failing_streak: int = 0
    log: list[HealthProbe] = field(default_factory=list)

    def to_json(self) -> Json:
        """Docker's shape, which is also the stored one."""
        return {
            "Status": self.status.value,
            "FailingStreak": self.failing_streak,
            "Log": [p.to_json() for p in self.log],
        }

    @classmethod
    def from_json(cls, j: Json) -> Health:
        return cls(
            status=HealthStatus(j.get("Status") or "starting"),
            failing_streak=int(j.get("FailingStreak") or 0),
            log=[HealthProbe.from_json(p) for p in j.get("Log") or []],
        )


@dataclass(slots=True, kw_only=True)
class ContainerState:
    """Docker's State: the status and the last run's process, exit and times."""

    status: ContainerStatus = ContainerStatus.CREATED
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    oom_killed: bool = False
    started_at: str = ZERO_TIME  # RFC 3339, as Docker shows them
    finished_at: str = ZERO_TIME
    health: Health | None = None  # where the container has a health check

    @property
    def running(self) -> bool:
        return self.status.is_running

    @property
    def paused(self) -> bool:
        return self.status is ContainerStatus.PAUSED

    @property
    def restarting(self) -> bool:
        return self.status is ContainerStatus.RESTARTING

    def become(self, status: ContainerStatus) -> None:
        """Move to `status`: a Conflict where that transition is not allowed."""
        self.status = self.status.check(status)

    def to_json(self) -> Json:
        return {
            "status": self.status.value,
            "pid": self.pid,
            "exit_code": self.exit_code,
            "error": self.error,
            "oom_killed": self.oom_killed,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            **({"health": self.health.to_json()} if self.health is not None else {}),
        }

    @classmethod
    def from_json(cls, j: Json) -> ContainerState:
        return cls(
            status=ContainerStatus(j["status"]),
            pid=int(j.get("pid") or 0),
            exit_code=int(j.get("exit_code") or 0),
            error=str(j.get("error") or ""),
            oom_killed=bool(j.get("oom_killed")),
            started_at=str(j.get("started_at") or ZERO_TIME),
            finished_at=str(j.get("finished_at") or ZERO_TIME),
            health=Health.from_json(j["health"]) if j.get("health") else None,
        )


@dataclass(frozen=True, slots=True)
class WaitResult:
    """How a container's wait ended: its exit code and the error of its last run, if any."""

    code: int
    error: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Link:
    """A legacy link (`--link NAME:ALIAS` on the default bridge): the target's ID, so that
    inspect shows it under the target's current name."""

    id: str
    alias: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MountPoint:
    """One of the container's mounts (Docker's MountPoint): a volume, a bind or a tmpfs."""

    type: str  # "volume", "bind" or "tmpfs"
    destination: str
    source: str = ""  # the host directory ("" for a tmpfs)
    name: str = ""  # a volume's name
    driver: str = ""  # a volume's driver
    mode: str = ""  # a tmpfs's options; "z" for a named volume
    rw: bool = True
    propagation: str = ""

    def to_json(self) -> Json:
        """Docker's shape, which is also the stored one (a volume's has Name and Driver)."""
        out: Json = {"Type": self.type}
        if self.type == "volume":
            out["Name"] = self.name
        out["Source"] = self.source
        out["Destination"] = self.destination
        if self.type == "volume":
            out["Driver"] = self.driver
        out.update({"Mode": self.mode, "RW": self.rw, "Propagation": self.propagation})
        return out

    @classmethod
    def from_json(cls, j: Json) -> MountPoint:
        return cls(
            type=j["Type"],
            destination=j["Destination"],
            source=j.get("Source") or "",
            name=j.get("Name") or "",
            driver=j.get("Driver") or "",
            mode=j.get("Mode") or "",
            rw=bool(j.get("RW", True)),
            propagation=j.get("Propagation") or "",
        )


@dataclass(slots=True, kw_only=True)
class NetworkRequest:
    """A network the container joins whenever it runs: asked for at create (NetworkMode,
    NetworkingConfig) or by `network connect`."""

    net: str  # the network's name
    aliases: list[str] = field(default_factory=list)
    ip: str = ""  # the IPv4 address asked for ("" for one from IPAM)
    mac: str = ""
    links: list[str] | None = None  # the endpoint's links (`NAME[:ALIAS]`, user networks)
    ip6: str = ""  # the IPv6 address asked for
    link_local: list[str] = field(default_factory=list)
    driver_opts: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> Json:
        return {
            "net": self.net,
            "aliases": list(self.aliases),
            "ip": self.ip,
            "mac": self.mac,
            **({"links": list(self.links)} if self.links is not None else {}),
            "ip6": self.ip6,
            "link_local": list(self.link_local),
            "driver_opts": dict(self.driver_opts),
        }

    @classmethod
    def from_json(cls, j: Json) -> NetworkRequest:
        """This version's form, or an older berthd's (which had no IPv6 nor driver options)."""
        links = j.get("links")
        return cls(
            net=j["net"],
            aliases=list(j.get("aliases") or []),
            ip=j.get("ip") or "",
            mac=j.get("mac") or "",
            links=list(links) if links is not None else None,
            ip6=j.get("ip6") or "",
            link_local=list(j.get("link_local") or []),
            driver_opts=dict(j.get("driver_opts") or {}),
        )


@dataclass(slots=True, kw_only=True)
class ContainerEndpoint(Endpoint):
    """The container's endpoint on one network for this run: the networks service's endpoint
    and the name of the network it was asked for by."""

    netname: str = ""

    @classmethod
    def of(cls, d: Mapping[str, Any], netname: str) -> ContainerEndpoint:
        """From the form the networks service hands out (`Endpoint.to_dict`)."""
        ep = Endpoint.from_dict(dict(d))
        return cls(netname=netname, **{f.name: getattr(ep, f.name) for f in fields(Endpoint)})

    def to_json(self) -> Json:
        """The stored form: the networks service's, with the network's name."""
        return {**self.to_dict(), "netname": self.netname}

    @classmethod
    def from_json(cls, j: Json) -> ContainerEndpoint:
        return cls.of(j, str(j.get("netname") or ""))


@dataclass(slots=True, kw_only=True)
class ContainerRecord:
    id: str
    name: str  # with its leading "/", as Docker names containers
    created_ns: int  # nanoseconds since the epoch
    image: str  # the image's ID
    path: str  # the process: its executable and arguments
    args: list[str]
    config: ContainerConfig  # as create merged the request's with the image's
    host_config: HostConfig  # with the defaults create filled in
    state: ContainerState = field(default_factory=ContainerState)
    restart_count: int = 0
    driver: str = ""  # the storage driver
    upper_dir: str = ""  # its writable layer
    lower_dirs: list[str] = field(default_factory=list)  # the image's layers, top first
    resolv_conf_path: str = ""
    hostname_path: str = ""
    hosts_path: str = ""
    log_path: str = ""  # "" with the `none` log driver
    mounts: list[MountPoint] = field(default_factory=list)
    ports: PortMap = field(default_factory=dict)  # published while it runs
    exec_ids: list[str] = field(default_factory=list)
    # berth's own
    layers: list[str] = field(default_factory=list)  # the image's layers' chain IDs
    nets: list[NetworkRequest] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    endpoints: list[ContainerEndpoint] = field(default_factory=list)  # while it runs
    monitor: int = 0  # its shim's PID while it runs
    manually_stopped: bool = False  # for `unless-stopped` and the restart policies
    link_env: list[str] = field(default_factory=list)

    @property
    def created(self) -> int:
        """Seconds since the epoch."""
        return self.created_ns // 1_000_000_000

    @property
    def short_name(self) -> str:
        return self.name[1:]

    # --- the stored form --------------------------------------------------------------------
    def to_json(self) -> Json:
        return {
            "v": VERSION,
            "id": self.id,
            "name": self.name,
            "created_ns": self.created_ns,
            "image": self.image,
            "path": self.path,
            "args": list(self.args),
            "config": self.config.to_json(),
            "host_config": self.host_config.to_json(),
            "state": self.state.to_json(),
            "restart_count": self.restart_count,
            "driver": self.driver,
            "upper_dir": self.upper_dir,
            "lower_dirs": list(self.lower_dirs),
            "resolv_conf_path": self.resolv_conf_path,
            "hostname_path": self.hostname_path,
            "hosts_path": self.hosts_path,
            "log_path": self.log_path,
            "mounts": [m.to_json() for m in self.mounts],
            "ports": port_map_to_json(self.ports),
            "exec_ids": list(self.exec_ids),
            "layers": list(self.layers),
            "nets": [n.to_json() for n in self.nets],
            "links": [{"id": lk.id, "alias": lk.alias} for lk in self.links],
            "endpoints": [e.to_json() for e in self.endpoints],
            "monitor": self.monitor,
            "manually_stopped": self.manually_stopped,
            "link_env": list(self.link_env),
        }

    @classmethod
    def from_stored(cls, j: Json) -> ContainerRecord:
        """A record as the metadata store holds it: this version's form, or the Docker-shaped
        document of berthd before it."""
        version = j.get("v")
        if version is None and "Id" in j:
            return cls._from_docker_doc(j)
        if version not in (2, VERSION):
            raise System(
                f"container record of an unknown version {version!r}: {str(j.get('id'))[:12]}"
            )
        return cls(
            id=j["id"],
            name=j["name"],
            created_ns=int(j["created_ns"]),
            image=j["image"],
            path=j["path"],
            args=list(j["args"]),
            config=ContainerConfig.from_json(j["config"])
            if version == VERSION
            else ContainerConfig.from_legacy(j["config"]),
            host_config=HostConfig.from_json(j["host_config"]),
            state=ContainerState.from_json(j["state"]),
            restart_count=int(j.get("restart_count") or 0),
            driver=j.get("driver", ""),
            upper_dir=j.get("upper_dir", ""),
            lower_dirs=list(j.get("lower_dirs") or []),
            resolv_conf_path=j.get("resolv_conf_path", ""),
            hostname_path=j.get("hostname_path", ""),
            hosts_path=j.get("hosts_path", ""),
            log_path=j.get("log_path", ""),
            mounts=[MountPoint.from_json(m) for m in j.get("mounts") or []],
            ports=port_map_from_json(j.get("ports")),
            exec_ids=list(j.get("exec_ids") or []),
            layers=list(j.get("layers") or []),
            nets=[NetworkRequest.from_json(n) for n in j.get("nets") or []],
            links=[Link(id=lk["id"], alias=lk["alias"]) for lk in j.get("links") or []],
            endpoints=[ContainerEndpoint.from_json(e) for e in j.get("endpoints") or []],
            monitor=int(j.get("monitor") or 0),
            manually_stopped=bool(j.get("manually_stopped")),
            link_env=list(j.get("link_env") or []),
        )

    @classmethod
    def _from_docker_doc(cls, d: Json) -> ContainerRecord:
        """berthd's record before version 2: Docker's inspect document, berth's own fields
        under `_berth`."""
        st = d.get("State") or {}
        own = d.get("_berth") or {}
        graph = (d.get("GraphDriver") or {}).get("Data") or {}
        lower = graph.get("LowerDir") or ""
        created_ns = own.get("created_ns") or int(own.get("created") or 0) * 1_000_000_000
        return cls(
            id=d["Id"],
            name=d["Name"],
            created_ns=int(created_ns),
            image=d["Image"],
            path=d.get("Path", ""),
            args=list(d.get("Args") or []),
            config=ContainerConfig.from_legacy(d.get("Config") or {}),
            host_config=HostConfig.from_json(d.get("HostConfig") or {}),
            state=ContainerState(
                status=ContainerStatus(st.get("Status") or "created"),
                pid=int(st.get("Pid") or 0),
                exit_code=int(st.get("ExitCode") or 0),
                error=st.get("Error") or "",
                oom_killed=bool(st.get("OOMKilled")),
                started_at=st.get("StartedAt") or ZERO_TIME,
                finished_at=st.get("FinishedAt") or ZERO_TIME,
                health=Health.from_json(st["Health"]) if st.get("Health") else None,
            ),
            restart_count=int(d.get("RestartCount") or 0),
            driver=d.get("Driver", ""),
            upper_dir=graph.get("UpperDir", ""),
            lower_dirs=lower.split(":") if lower else [],
            resolv_conf_path=d.get("ResolvConfPath", ""),
            hostname_path=d.get("HostnamePath", ""),
            hosts_path=d.get("HostsPath", ""),
            log_path=d.get("LogPath", ""),
            mounts=[MountPoint.from_json(m) for m in d.get("Mounts") or []],
            ports=port_map_from_json((d.get("NetworkSettings") or {}).get("Ports")),
            exec_ids=list(d.get("ExecIDs") or []),
            layers=list(own.get("layers") or []),
            nets=[NetworkRequest.from_json(n) for n in own.get("nets") or []],
            links=[Link(id=lk["id"], alias=lk["alias"]) for lk in own.get("links") or []],
            endpoints=[ContainerEndpoint.from_json(e) for e in own.get("endpoints") or []],
            monitor=int(own.get("monitor") or 0),
            manually_stopped=bool(own.get("manually_stopped")),
            link_env=list(own.get("link_env") or []),
        )


__all__ = [
    "VERSION",
    "ZERO_TIME",
    "ContainerRecord",
    "ContainerState",
    "Health",
    "HealthProbe",
    "HealthStatus",
    "Link",
    "MountPoint",
    "NetworkRequest",
    "WaitResult",
]
