"""A container's host configuration, typed: what Docker calls its HostConfig (mounts, namespaces,
networking, restart policy, resources, security options, devices, DNS, logging).

Each field declares its JSON name (`metadata["json"]`, as Docker's Go struct tags do) and
whether Docker leaves it out when unset (`omitempty`). `to_json`/`from_json` are that declared
form: the record stores it (as records before version 3 did, so they load unchanged) and the API
edge (`berth.api.containers_wire`) checks a client's HostConfig through `from_json(strict=True)`
and shows it through `to_json`. Keys berth never acts on (the Windows and real-time fields it
refuses unless unset, and any it does not know) stay in `extra`, only to be shown again.

Imports `containers.ports`, `errors`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from berth.containers.ports import PortMap, port_map_from_json, port_map_to_json
from berth.errors import InvalidArgument

Json = dict[str, Any]


def _j(name: str, *, omitempty: bool = False, **kw: Any) -> Any:
    """A field and its JSON name."""
    return field(metadata={"json": name, "omitempty": omitempty}, **kw)


@dataclass(frozen=True, slots=True, kw_only=True)
class RestartPolicy:
    name: str = _j("Name", default="no")  # no, always, unless-stopped, on-failure
    maximum_retry_count: int = _j("MaximumRetryCount", default=0)


@dataclass(frozen=True, slots=True, kw_only=True)
class LogConfig:
    type: str = _j("Type", default="")
    config: dict[str, str] | None = _j("Config", default=None)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceMapping:
    """`--device HOST[:CONTAINER[:PERMS]]`."""

    path_on_host: str = _j("PathOnHost", default="")
    path_in_container: str = _j("PathInContainer", default="")
    cgroup_permissions: str = _j("CgroupPermissions", default="")


@dataclass(frozen=True, slots=True, kw_only=True)
class WeightDevice:
    path: str = _j("Path", default="")
    weight: int = _j("Weight", default=0)


@dataclass(frozen=True, slots=True, kw_only=True)
class ThrottleDevice:
    path: str = _j("Path", default="")
    rate: int = _j("Rate", default=0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Ulimit:
    name: str = _j("Name", default="")
    soft: int = _j("Soft", default=0)
    hard: int = _j("Hard", default=0)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceRequest:
    """`--gpus`, `--device vendor/class=name`: devices asked of a driver (CDI)."""

    driver: str = _j("Driver", default="")
    count: int = _j("Count", default=0)
    device_ids: tuple[str, ...] | None = _j("DeviceIDs", default=None)
    capabilities: tuple[tuple[str, ...], ...] | None = _j("Capabilities", default=None)
    options: dict[str, str] | None = _j("Options", default=None)


@dataclass(slots=True, kw_only=True)
class HostConfig:
    """Docker's HostConfig (API 1.50), in its order. A list Docker may show as null is None
    when unset; create fills in dockerd's defaults (`containers.create.fill_defaults`)."""

    binds: tuple[str, ...] | None = _j("Binds", default=None)
    container_id_file: str = _j("ContainerIDFile", default="")
    log_config: LogConfig = _j("LogConfig", default_factory=LogConfig)
    network_mode: str = _j("NetworkMode", default="")
    port_bindings: PortMap | None = _j("PortBindings", default=None)
    restart_policy: RestartPolicy = _j("RestartPolicy", default_factory=RestartPolicy)
    auto_remove: bool = _j("AutoRemove", default=False)
    volumes_from: tuple[str, ...] | None = _j("VolumesFrom", default=None)
    console_size: tuple[int, ...] | None = _j("ConsoleSize", default=None)  # (h, w)
    annotations: dict[str, str] | None = _j("Annotations", omitempty=True, default=None)
    cap_add: tuple[str, ...] | None = _j("CapAdd", default=None)
    cap_drop: tuple[str, ...] | None = _j("CapDrop", default=None)
    cgroupns_mode: str = _j("CgroupnsMode", default="")
    dns: tuple[str, ...] | None = _j("Dns", default=None)
    dns_options: tuple[str, ...] | None = _j("DnsOptions", default=None)
    dns_search: tuple[str, ...] | None = _j("DnsSearch", default=None)
    extra_hosts: tuple[str, ...] | None = _j("ExtraHosts", default=None)
    group_add: tuple[str, ...] | None = _j("GroupAdd", default=None)
    ipc_mode: str = _j("IpcMode", default="")
    links: tuple[str, ...] | None = _j("Links", default=None)
    oom_score_adj: int = _j("OomScoreAdj", default=0)
    pid_mode: str = _j("PidMode", default="")
    privileged: bool = _j("Privileged", default=False)
    publish_all_ports: bool = _j("PublishAllPorts", default=False)
    readonly_rootfs: bool = _j("ReadonlyRootfs", default=False)
    security_opt: tuple[str, ...] | None = _j("SecurityOpt", default=None)
    storage_opt: dict[str, str] | None = _j("StorageOpt", omitempty=True, default=None)
    tmpfs: dict[str, str] | None = _j("Tmpfs", omitempty=True, default=None)
    uts_mode: str = _j("UTSMode", default="")
    userns_mode: str = _j("UsernsMode", default="")
    shm_size: int = _j("ShmSize", default=0)
    sysctls: dict[str, str] | None = _j("Sysctls", omitempty=True, default=None)
    runtime: str = _j("Runtime", omitempty=True, default="")
    # Resources
    cpu_shares: int = _j("CpuShares", default=0)
    memory: int = _j("Memory", default=0)
    nano_cpus: int = _j("NanoCpus", default=0)
    cgroup_parent: str = _j("CgroupParent", default="")
    blkio_weight: int = _j("BlkioWeight", default=0)
    blkio_weight_device: tuple[WeightDevice, ...] | None = _j("BlkioWeightDevice", default=None)
    blkio_device_read_bps: tuple[ThrottleDevice, ...] | None = _j(
        "BlkioDeviceReadBps", default=None
    )
    blkio_device_write_bps: tuple[ThrottleDevice, ...] | None = _j(
        "BlkioDeviceWriteBps", default=None
    )
    blkio_device_read_iops: tuple[ThrottleDevice, ...] | None = _j(
        "BlkioDeviceReadIOps", default=None
    )
    blkio_device_write_iops: tuple[ThrottleDevice, ...] | None = _j(
        "BlkioDeviceWriteIOps", default=None
    )
    cpu_period: int = _j("CpuPeriod", default=0)
    cpu_quota: int = _j("CpuQuota", default=0)
    cpuset_cpus: str = _j("CpusetCpus", default="")
    cpuset_mems: str = _j("CpusetMems", default="")
    devices: tuple[DeviceMapping, ...] | None = _j("Devices", default=None)
    device_cgroup_rules: tuple[str, ...] | None = _j("DeviceCgroupRules", default=None)
    device_requests: tuple[DeviceRequest, ...] | None = _j("DeviceRequests", default=None)
    memory_reservation: int = _j("MemoryReservation", default=0)
    memory_swap: int = _j("MemorySwap", default=0)
    memory_swappiness: int | None = _j("MemorySwappiness", default=None)
    oom_kill_disable: bool | None = _j("OomKillDisable", default=None)
    pids_limit: int | None = _j("PidsLimit", default=None)
    ulimits: tuple[Ulimit, ...] | None = _j("Ulimits", default=None)
    # Docker's mount objects (`--mount`), as `volumes.parse_mount` reads them
    mounts: tuple[dict[str, Any], ...] | None = _j("Mounts", omitempty=True, default=None)
    masked_paths: tuple[str, ...] | None = _j("MaskedPaths", default=None)
    readonly_paths: tuple[str, ...] | None = _j("ReadonlyPaths", default=None)
    init: bool | None = _j("Init", omitempty=True, default=None)
    # keys berth does not act on (see the module's docstring), as given
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> Json:
        """The declared JSON form (Docker's)."""
        return encode(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any], *, strict: bool = False) -> HostConfig:
        """From the declared JSON form. `strict` (a client's): a value of the wrong type is a
        400 naming the field, as dockerd's typed decoding refuses it."""
        hc: HostConfig = decode(cls, d, "HostConfig", strict)
        return hc


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourcesUpdate:
    """What `docker update` changes in a HostConfig: each field given, None where not."""

    memory: int | None = None
    memory_swap: int | None = None
    nano_cpus: int | None = None
    cpu_shares: int | None = None
    cpu_quota: int | None = None
    cpu_period: int | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    pids_limit: int | None = None
    restart_policy: RestartPolicy | None = None

    def apply(self, hc: HostConfig) -> HostConfig:
        """A copy of `hc` with these changes (a memory limit below the swap limit kept drops
        the swap limit, as dockerd)."""
        out = dataclasses.replace(hc)
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if v is not None:
                setattr(out, f.name, v)
        if self.memory and self.memory_swap is None and 0 < out.memory_swap < out.memory:
            out.memory_swap = 0
        return out


# --- the declared JSON form -------------------------------------------------------------------
def encode(obj: Any) -> Json:
    out: Json = {}
    for f in dataclasses.fields(obj):
        if "json" not in f.metadata:
            continue
        v = getattr(obj, f.name)
        if f.metadata["omitempty"] and v in (None, "", 0, False, {}, ()):
            continue
        out[f.metadata["json"]] = _encode_value(v, f.name)
    out.update(getattr(obj, "extra", {}))
    return out


def _encode_value(v: Any, name: str) -> Any:
    if name == "port_bindings" and v is not None:
        return port_map_to_json(v)
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return encode(v)
    if isinstance(v, tuple):
        return [_encode_value(x, "") for x in v]
    if isinstance(v, dict):
        return dict(v)
    return v


_HINTS: dict[type, dict[str, Any]] = {}


def decode(cls: type[Any], d: Any, where: str, strict: bool) -> Any:
    if not isinstance(d, Mapping):
        if strict:
            raise InvalidArgument(f"invalid {where}: an object is expected")
        d = {}
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    kw: dict[str, Any] = {}
    known = set()
    for f in dataclasses.fields(cls):
        if "json" not in f.metadata:
            continue
        key = f.metadata["json"]
        known.add(key)
        if key not in d:
            continue
        at = f"{where}.{key}"
        if f.name == "port_bindings":
            kw[f.name] = _port_map(d[key], at, strict)
        else:
            kw[f.name] = _decode_value(hints[f.name], d[key], at, strict)
    if any(f.name == "extra" for f in dataclasses.fields(cls)):
        kw["extra"] = {k: v for k, v in d.items() if k not in known}
    return cls(**kw)


def _port_map(v: Any, at: str, strict: bool) -> PortMap | None:
    if v is None:
        return None
    if not isinstance(v, Mapping) or not all(
        b is None or isinstance(b, list) and all(isinstance(x, Mapping) for x in b)
        for b in v.values()
    ):
        raise InvalidArgument(f"invalid {at}: a map of ports to lists of bindings is expected")
    return port_map_from_json(v)


def _decode_value(tp: Any, v: Any, at: str, strict: bool) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (types.UnionType, typing.Union):  # X | None
        if v is None:
            return None
        return _decode_value(next(a for a in args if a is not type(None)), v, at, strict)
    if v is None:  # Go's zero value
        return _zero(tp)
    if origin is tuple:
        if isinstance(v, str) and args[0] is str:  # dockerd's strslice: one string
            return (v,)
        if not isinstance(v, list):
            return _bad(at, "a list", strict, ())
        return tuple(_decode_value(args[0], x, f"{at}[{i}]", strict) for i, x in enumerate(v))
    if origin is dict:
        if not isinstance(v, Mapping):
            return _bad(at, "an object", strict, {})
        if args[1] is str:
            if strict and not all(isinstance(x, str) for x in v.values()):
                raise InvalidArgument(f"invalid {at}: a map of strings is expected")
            return {str(k): str(x) for k, x in v.items()}
        return dict(v)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return decode(tp, v, at, strict)
    if tp is bool:
        return v if isinstance(v, bool) else _bad(at, "a boolean", strict, bool(v))
    if tp is int:
        if isinstance(v, int | float) and not isinstance(v, bool) and int(v) == v:
            return int(v)
        return _bad(at, "an integer", strict, _lenient_int(v))
    if tp is str:
        return v if isinstance(v, str) else _bad(at, "a string", strict, str(v))
    return v


def _lenient_int(v: Any) -> int:
    """A stored value berthd once kept as the client sent it (`"64"`): as it read it then."""
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


def _zero(tp: Any) -> Any:
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return tp()
    return {bool: False, int: 0, str: ""}.get(tp)


def _bad(at: str, what: str, strict: bool, lenient: Any) -> Any:
    if strict:
        raise InvalidArgument(f"invalid {at}: {what} is expected")
    return lenient


__all__ = [
    "DeviceMapping",
    "DeviceRequest",
    "HostConfig",
    "LogConfig",
    "ResourcesUpdate",
    "RestartPolicy",
    "ThrottleDevice",
    "Ulimit",
    "WeightDevice",
    "decode",
    "encode",
]
