"""Docker's JSON of containers, both ways: the containers service's typed records as inspect,
`ps` and stats show them, and the typed values of what clients send (a create's body, an
update's, a network connect's endpoint). The HostConfig's JSON names are declared on its type
(`containers.hostconfig`, as Docker's Go struct tags are): its conversion is called from here.

`Any` is allowed here: this is where a container's JSON enters and leaves. Imports the
containers' types and `errors`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

from berth.containers.channel import parse_detach_keys
from berth.containers.create import CRI_PREFIX, CreateRequest
from berth.containers.execs import Exec, ExecConfig
from berth.containers.hostconfig import HostConfig, ResourcesUpdate
from berth.containers.ports import Port, PortBinding, PortMap, port_set
from berth.containers.record import ContainerEndpoint, ContainerState, NetworkRequest
from berth.containers.resources import StatsSample
from berth.containers.settings import ContainerConfig, HealthConfig
from berth.containers.spec import refuse_unsupported, validate_healthcheck
from berth.containers.status import ContainerStatus
from berth.containers.views import ContainerView
from berth.errors import InvalidArgument

from .wire import json_object, json_strings, json_text


# --- ports -------------------------------------------------------------------------------------
def port_map_to_docker(ports: PortMap) -> dict[str, Any]:
    """A PortMap (NetworkSettings.Ports, HostConfig.PortBindings): {"80/tcp": [{"HostIp":
    "", "HostPort": "8080"}]}, null for a port exposed but not published."""
    return {
        str(p): None
        if binds is None
        else [{"HostIp": b.host_ip, "HostPort": b.host_port} for b in binds]
        for p, binds in ports.items()
    }


def port_map_from_docker(value: Any, field: str) -> PortMap:
    """A client's PortMap, typed; a bad port or binding is a 400 naming `field`."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"invalid {field}: an object is expected")
    out: PortMap = {}
    for key, binds in value.items():
        port = Port.parse(key)
        if binds is None:
            out[port] = None
            continue
        if not isinstance(binds, list) or not all(isinstance(b, Mapping) for b in binds):
            raise InvalidArgument(f"invalid {field}: {key}: a list of bindings is expected")
        out[port] = tuple(
            PortBinding(host_ip=str(b.get("HostIp") or ""), host_port=str(b.get("HostPort") or ""))
            for b in binds
        )
    return out


def ps_ports(ports: PortMap) -> list[dict[str, Any]]:
    """`/containers/json`'s Ports list: one entry per binding (a port without one has no
    public side)."""
    out: list[dict[str, Any]] = []
    for p, binds in ports.items():
        for b in binds or (None,):
            e: dict[str, Any] = {"PrivatePort": p.number, "Type": p.proto}
            if b is not None:
                e.update({"IP": b.host_ip, "PublicPort": int(b.host_port or 0)})
            out.append(e)
    return out


# --- Config ------------------------------------------------------------------------------------
CONFIG_KEYS = (
    "Hostname",
    "Domainname",
    "User",
    "AttachStdin",
    "AttachStdout",
    "AttachStderr",
    "Tty",
    "OpenStdin",
    "StdinOnce",
    "Env",
    "Cmd",
    "Image",
    "Volumes",
    "WorkingDir",
    "Entrypoint",
    "OnBuild",
    "Labels",
    "ExposedPorts",
    "Healthcheck",
    "StopSignal",
    "StopTimeout",
    "MacAddress",
)
# what a create body holds beside the Config (read by create_request, not kept in `extra`)
_NOT_CONFIG = ("HostConfig", "NetworkingConfig")


def health_to_docker(h: HealthConfig) -> dict[str, Any]:
    """Config.Healthcheck as dockerd shows it: the durations and retries only where set."""
    out: dict[str, Any] = {}
    if h.test is not None:
        out["Test"] = list(h.test)
    for key, v in (
        ("Interval", h.interval),
        ("Timeout", h.timeout),
        ("StartPeriod", h.start_period),
        ("StartInterval", h.start_interval),
        ("Retries", h.retries),
    ):
        if v:
            out[key] = v
    return out


def health_from_docker(value: Any) -> HealthConfig | None:
    """A client's Config.Healthcheck, checked as dockerd checks it."""
    if value is None:
        return None
    d = json_object(value, "Config.Healthcheck")
    test = d.get("Test")
    health = HealthConfig(
        test=None if test is None else _strings(test, "Healthcheck.Test"),
        interval=_int(d.get("Interval"), "Healthcheck.Interval"),
        timeout=_int(d.get("Timeout"), "Healthcheck.Timeout"),
        start_period=_int(d.get("StartPeriod"), "Healthcheck.StartPeriod"),
        start_interval=_int(d.get("StartInterval"), "Healthcheck.StartInterval"),
        retries=_int(d.get("Retries"), "Healthcheck.Retries"),
    )
    validate_healthcheck(health)
    return health


def config_to_docker(c: ContainerConfig) -> dict[str, Any]:
    """Config as dockerd's inspect shows it (the optional keys only where set, as dockerd)."""

    def opt(v: tuple[str, ...] | None) -> list[str] | None:
        return None if v is None else list(v)

    out: dict[str, Any] = {
        "Hostname": c.hostname,
        "Domainname": c.domainname,
        "User": c.user or "",
        "AttachStdin": c.attach_stdin,
        "AttachStdout": c.attach_stdout,
        "AttachStderr": c.attach_stderr,
        "Tty": c.tty,
        "OpenStdin": c.open_stdin,
        "StdinOnce": c.stdin_once,
        "Env": opt(c.env),
        "Cmd": opt(c.cmd),
        "Image": c.image,
        "Volumes": None if c.volumes is None else {v: {} for v in c.volumes},
        "WorkingDir": c.working_dir,
        "Entrypoint": opt(c.entrypoint),
        "OnBuild": None,
        "Labels": dict(c.labels),
    }
    if c.exposed_ports:
        out["ExposedPorts"] = {str(p): {} for p in c.exposed_ports}
    if c.healthcheck is not None:
        out["Healthcheck"] = health_to_docker(c.healthcheck)
    if c.stop_signal:
        out["StopSignal"] = c.stop_signal
    if c.stop_timeout is not None:
        out["StopTimeout"] = c.stop_timeout
    if c.mac_address:
        out["MacAddress"] = c.mac_address
    out.update(c.extra)
    return out


def config_from_docker(d: Mapping[str, Any]) -> ContainerConfig:
    """A Config (a create body, or dockerd's inspect Config), typed; a value of the wrong JSON
    type is a 400, as dockerd's typed decoding makes it. Keys berth does not act on go to
    `extra`."""
    refuse_unsupported({}, dict(d))
    entrypoint = d.get("Entrypoint")
    cmd = d.get("Cmd")
    timeout = d.get("StopTimeout")
    volumes = d.get("Volumes")
    exposed = d.get("ExposedPorts")
    return ContainerConfig(
        image=json_text(d.get("Image"), "Config.Image"),
        hostname=json_text(d.get("Hostname"), "Config.Hostname"),
        domainname=json_text(d.get("Domainname"), "Config.Domainname"),
        user=None if d.get("User") is None else json_text(d["User"], "Config.User"),
        attach_stdin=_bool(d.get("AttachStdin"), "Config.AttachStdin"),
        attach_stdout=_bool(d.get("AttachStdout"), "Config.AttachStdout"),
        attach_stderr=_bool(d.get("AttachStderr"), "Config.AttachStderr"),
        tty=_bool(d.get("Tty"), "Config.Tty"),
        open_stdin=_bool(d.get("OpenStdin"), "Config.OpenStdin"),
        stdin_once=_bool(d.get("StdinOnce"), "Config.StdinOnce"),
        env=None if d.get("Env") is None else _string_list(d["Env"], "Config.Env"),
        # a string is one word (dockerd's strslice)
        cmd=None if cmd is None else () if cmd == "" else _strings(cmd, "Config.Cmd"),
        entrypoint=None if entrypoint is None else _strings(entrypoint, "Config.Entrypoint"),
        working_dir=json_text(d.get("WorkingDir"), "Config.WorkingDir"),
        labels=json_strings(d.get("Labels"), "Config.Labels"),
        volumes=None if volumes is None else tuple(json_object(volumes, "Config.Volumes")),
        exposed_ports=port_set(json_object(exposed, "Config.ExposedPorts")),
        healthcheck=health_from_docker(d.get("Healthcheck")),
        stop_signal=json_text(d.get("StopSignal"), "Config.StopSignal"),
        stop_timeout=None if timeout is None else _int(timeout, "Config.StopTimeout"),
        mac_address=json_text(d.get("MacAddress"), "Config.MacAddress"),
        extra={
            k: v
            for k, v in d.items()
            if k not in CONFIG_KEYS and k not in _NOT_CONFIG or (k == "OnBuild" and v is not None)
        },
    )


def create_request(body: Any) -> CreateRequest:
    """`POST /containers/create`'s body, typed: its Config, HostConfig and NetworkingConfig's
    EndpointsConfig. A value of the wrong JSON type is a 400 naming the field."""
    if not isinstance(body, dict):
        raise InvalidArgument("invalid container config")
    try:
        config = config_from_docker(body)
    except (TypeError, AttributeError, ValueError) as e:
        raise InvalidArgument(f"invalid container config: {e}") from None
    nc = json_object(body.get("NetworkingConfig"), "NetworkingConfig")
    eps = json_object(nc.get("EndpointsConfig"), "NetworkingConfig.EndpointsConfig")
    host_config = HostConfig.from_json(
        json_object(body.get("HostConfig"), "HostConfig"), strict=True
    )
    for key in host_config.annotations or {}:
        # the CRI's namespace paths (a pod's, or the host's /proc/1/ns/*) would pass by
        # --network/--ipc/--pid and their checks: only the CRI, which does not come this
        # way, gives them
        if key.startswith(CRI_PREFIX):
            raise InvalidArgument(
                f"invalid annotation {key!r}: the {CRI_PREFIX} prefix is the CRI's own"
            )
    return CreateRequest(
        config=config,
        host_config=host_config,
        endpoints={
            str(name): endpoint_request(ec, f"NetworkingConfig.EndpointsConfig.{name}")
            for name, ec in eps.items()
        },
    )


def endpoint_request(value: Any, field: str) -> NetworkRequest:
    """An EndpointSettings a client gives (create's EndpointsConfig, `network connect`'s
    EndpointConfig): what it asks of one network. `net` is left for the service to fill."""
    ec = json_object(value, field)
    ipam = json_object(ec.get("IPAMConfig"), f"{field}.IPAMConfig")
    links = ec.get("Links")
    return NetworkRequest(
        net="",
        aliases=list(_string_list(ec.get("Aliases") or [], f"{field}.Aliases")),
        ip=json_text(ipam.get("IPv4Address"), f"{field}.IPAMConfig.IPv4Address"),
        ip6=json_text(ipam.get("IPv6Address"), f"{field}.IPAMConfig.IPv6Address"),
        link_local=list(
            _string_list(ipam.get("LinkLocalIPs") or [], f"{field}.IPAMConfig.LinkLocalIPs")
        ),
        mac=json_text(ec.get("MacAddress"), f"{field}.MacAddress"),
        links=None if links is None else list(_string_list(links, f"{field}.Links")),
        driver_opts=json_strings(ec.get("DriverOpts"), f"{field}.DriverOpts"),
    )


# what `POST /containers/{id}/update` may change (dockerd's Resources and RestartPolicy)
UPDATE_KEYS = (
    "Memory",
    "MemorySwap",
    "NanoCpus",
    "CpuShares",
    "CpuQuota",
    "CpuPeriod",
    "CpusetCpus",
    "CpusetMems",
    "PidsLimit",
    "RestartPolicy",
)


def update_request(body: dict[str, Any]) -> ResourcesUpdate:
    """`POST /containers/{id}/update`'s body: the HostConfig fields it gives (null or "" is
    not given), typed."""
    given = {k: body[k] for k in UPDATE_KEYS if k in body and body[k] not in (None, "")}
    typed = HostConfig.from_json(given, strict=True)
    names = {
        f.metadata["json"]: f.name for f in dataclasses.fields(HostConfig) if "json" in f.metadata
    }
    return ResourcesUpdate(**{names[k]: getattr(typed, names[k]) for k in given})


def host_config_to_docker(hc: HostConfig) -> dict[str, Any]:
    """HostConfig as dockerd's inspect shows it: every key of its Go struct (the `omitempty`
    ones where set), in its order."""
    return hc.to_json()


def _bool(v: Any, field: str) -> bool:
    if v is None:
        return False
    if not isinstance(v, bool):
        raise InvalidArgument(f"invalid {field}: a boolean is expected")
    return v


def _int(v: Any, field: str) -> int:
    if v is None:
        return 0
    if isinstance(v, bool) or not isinstance(v, int | float) or int(v) != v:
        raise InvalidArgument(f"invalid {field}: an integer is expected")
    return int(v)


def _strings(v: Any, field: str) -> tuple[str, ...]:
    """A list of strings, or one string as a list of one (dockerd's strslice)."""
    return (v,) if isinstance(v, str) else _string_list(v, field)


def _string_list(v: Any, field: str) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise InvalidArgument(f"invalid {field}: a list of strings is expected")
    return tuple(v)


# --- exec ------------------------------------------------------------------------------------
def exec_config(body: dict[str, Any]) -> ExecConfig:
    """`POST /containers/{id}/exec`'s body, typed; a missing command or bad detach keys are
    refused (400), as dockerd's router does before it looks for the container."""
    cmd = body.get("Cmd")
    cmd = () if cmd is None or cmd == "" else _strings(cmd, "Cmd")
    if not cmd:
        raise InvalidArgument("No exec command specified")
    keys = json_text(body.get("DetachKeys"), "DetachKeys")
    if keys:
        try:
            parse_detach_keys(keys)
        except ValueError as e:
            raise InvalidArgument(str(e)) from None
    size = body.get("ConsoleSize")
    if size is not None and not (
        isinstance(size, list)
        and len(size) == 2
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in size)
    ):
        raise InvalidArgument("invalid ConsoleSize: two sizes are expected")
    return ExecConfig(
        cmd=cmd,
        tty=_bool(body.get("Tty"), "Tty"),
        attach_stdin=_bool(body.get("AttachStdin"), "AttachStdin"),
        attach_stdout=_bool(body.get("AttachStdout"), "AttachStdout"),
        attach_stderr=_bool(body.get("AttachStderr"), "AttachStderr"),
        privileged=_bool(body.get("Privileged"), "Privileged"),
        user=json_text(body.get("User"), "User"),
        working_dir=json_text(body.get("WorkingDir"), "WorkingDir"),
        env=() if body.get("Env") is None else _string_list(body["Env"], "Env"),
        detach_keys=keys,
        console_size=(size[0], size[1]) if size else None,
    )


# --- containers --------------------------------------------------------------------------------
def _rfc3339_ns(ns: int) -> str:
    secs, nanos = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    return f"{base}.{nanos:09d}Z" if nanos else base + "Z"


def container_state(st: ContainerState) -> dict[str, Any]:
    """State as `GET /containers/{id}/json` shows it."""
    out: dict[str, Any] = {
        "Status": st.status.value,
        "Running": st.running,
        "Paused": st.paused,
        "Restarting": st.restarting,
        "OOMKilled": st.oom_killed,
        "Dead": st.status is ContainerStatus.DEAD,
        "Pid": st.pid,
        "ExitCode": st.exit_code,
        "Error": st.error,
        "StartedAt": st.started_at,
        "FinishedAt": st.finished_at,
    }
    if st.health is not None:
        out["Health"] = st.health.to_json()
    return out


def _endpoint(
    ep: ContainerEndpoint | None, nid: str = "", req: NetworkRequest | None = None
) -> dict[str, Any]:
    """One network's entry: what was asked of it (`req`) and this run's endpoint (`ep`)."""
    ipam = (
        {
            k: v
            for k, v in (
                ("IPv4Address", req.ip),
                ("IPv6Address", req.ip6),
                ("LinkLocalIPs", req.link_local),
            )
            if v
        }
        if req
        else {}
    )
    return {
        "IPAMConfig": ipam or None,
        "Links": (req.links if req else None) or None,
        "Aliases": (req.aliases if req else None) or None,
        "MacAddress": ep.mac if ep else "",
        "NetworkID": nid or (ep.network if ep else ""),
        "EndpointID": ep.endpoint if ep else "",
        "Gateway": ep.gateway if ep else "",
        "IPAddress": ep.ip if ep else "",
        "IPPrefixLen": ep.prefix if ep else 0,
        "IPv6Gateway": ep.gateway6 if ep else "",
        "GlobalIPv6Address": ep.ip6 if ep else "",
        "GlobalIPv6PrefixLen": ep.prefix6 if ep else 0,
        "DriverOpts": (req.driver_opts if req else None) or None,
        "DNSNames": None,
    }


def container_networks(v: ContainerView) -> dict[str, Any]:
    """NetworkSettings.Networks: one entry per network asked for (with this run's endpoint
    while it runs), or the host's or none's."""
    r = v.record
    mode = r.host_config.network_mode or "bridge"
    by_net = {e.netname: e for e in r.endpoints}
    networks: dict[str, Any] = {}
    if mode in ("host", "none"):
        networks[mode] = _endpoint(None)
    for n in r.nets:
        networks[n.net] = _endpoint(by_net.get(n.net), v.network_ids.get(n.net, ""), n)
    return networks


def container_network_settings(v: ContainerView) -> dict[str, Any]:
    """NetworkSettings; its top-level (older) fields are the default bridge's endpoint's,
    empty on other networks, as dockerd fills them."""
    r = v.record
    first = _endpoint(next((e for e in r.endpoints if e.netname == "bridge"), None))
    return {
        "Bridge": "",
        "SandboxID": "",
        "SandboxKey": "",
        "Ports": port_map_to_docker(r.ports),
        "HairpinMode": False,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "SecondaryIPAddresses": None,
        "SecondaryIPv6Addresses": None,
        **{
            k: first[k]
            for k in (
                "EndpointID",
                "Gateway",
                "GlobalIPv6Address",
                "GlobalIPv6PrefixLen",
                "IPAddress",
                "IPPrefixLen",
                "IPv6Gateway",
                "MacAddress",
            )
        },
        "Networks": container_networks(v),
    }


def container_inspect(v: ContainerView) -> dict[str, Any]:
    """`GET /containers/{id}/json`: dockerd's keys, in dockerd's order."""
    r = v.record
    out: dict[str, Any] = {
        "Id": r.id,
        "Created": _rfc3339_ns(r.created_ns),
        "Path": r.path,
        "Args": r.args,
        "State": container_state(r.state),
        "Image": r.image,
        "ResolvConfPath": r.resolv_conf_path,
        "HostnamePath": r.hostname_path,
        "HostsPath": r.hosts_path,
        "LogPath": r.log_path,
        "Name": r.name,
        "RestartCount": r.restart_count,
        "Driver": r.driver,
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": list(r.exec_ids) or None,
        "HostConfig": {
            **host_config_to_docker(r.host_config),
            "Links": v.links,
            **({"Runtime": v.runtime} if v.runtime else {}),
        },
        "GraphDriver": {
            "Name": r.driver,
            "Data": {"UpperDir": r.upper_dir, "LowerDir": ":".join(r.lower_dirs)},
        },
        "Mounts": [m.to_json() for m in r.mounts],
        "Config": config_to_docker(r.config),
        "NetworkSettings": container_network_settings(v),
    }
    if v.size_rw is not None:
        out["SizeRw"] = v.size_rw
        out["SizeRootFs"] = v.size_root_fs
    return out


def container_summary(v: ContainerView) -> dict[str, Any]:
    """One entry of `GET /containers/json`."""
    r = v.record
    out: dict[str, Any] = {
        "Id": r.id,
        "Names": [r.name],
        "Image": r.config.image,
        "ImageID": r.image,
        "Command": " ".join([r.path, *r.args]),
        "Created": r.created,
        "Ports": ps_ports(r.ports) if r.state.running else [],
        "Labels": dict(r.config.labels),
        "State": r.state.status.value,
        "Status": v.status_text,
        "HostConfig": {"NetworkMode": r.host_config.network_mode or "bridge"},
        "NetworkSettings": {"Networks": container_networks(v)},
        "Mounts": [m.to_json() for m in r.mounts],
    }
    if v.size_rw is not None:
        out["SizeRw"] = v.size_rw
        out["SizeRootFs"] = v.size_root_fs
    return out


def exec_inspect(ex: Exec) -> dict[str, Any]:
    """`GET /exec/{id}/json`."""
    c = ex.config
    return {
        "ID": ex.id,
        "Running": ex.running,
        "ExitCode": ex.exit_code,
        "ProcessConfig": {
            "tty": c.tty,
            "entrypoint": c.cmd[0],
            "arguments": list(c.cmd[1:]),
            "privileged": c.privileged,
            "user": c.user,
        },
        "OpenStdin": c.attach_stdin,
        "OpenStderr": c.attach_stderr,
        "OpenStdout": c.attach_stdout,
        "CanRemove": False,
        "ContainerID": ex.cid,
        "DetachKeys": c.detach_keys,
        "Pid": ex.pid,
    }


def container_stats(cur: StatsSample, prev: StatsSample) -> dict[str, Any]:
    """One entry of `GET /containers/{id}/stats`: a sample and the one before it (whose CPU
    figures are `precpu_stats`), in Docker's shape."""
    out = _stats(cur)
    out["precpu_stats"] = _stats(prev)["cpu_stats"]
    out["preread"] = prev.read
    return out


def _stats(s: StatsSample) -> dict[str, Any]:
    base: dict[str, Any] = {
        "read": s.read,
        "name": s.name,
        "id": s.id,
        "num_procs": 0,
        "storage_stats": {},
        "networks": {},
    }
    if not s.running:
        return {
            **base,
            "pids_stats": {},
            "blkio_stats": {},
            "cpu_stats": {"cpu_usage": {"total_usage": 0}, "throttling_data": {}},
            "memory_stats": {},
        }
    return {
        **base,
        "pids_stats": {"current": s.pids, **({"limit": s.pids_limit} if s.pids_limit else {})},
        "blkio_stats": {
            "io_service_bytes_recursive": [
                {"major": 0, "minor": 0, "op": "read", "value": s.io_read},
                {"major": 0, "minor": 0, "op": "write", "value": s.io_write},
            ]
        },
        "networks": {name: dataclasses.asdict(n) for name, n in s.networks.items()},
        "cpu_stats": {
            "cpu_usage": {
                "total_usage": s.cpu_usage_ns,
                "usage_in_kernelmode": 0,
                "usage_in_usermode": 0,
            },
            "system_cpu_usage": s.system_cpu_ns,
            "online_cpus": s.online_cpus,
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        },
        "memory_stats": {"usage": s.memory_usage, "limit": s.memory_limit, "stats": s.memory_extra},
    }
