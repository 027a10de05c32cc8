"""What every handler module shares at the wire: Docker's JSON replies, query parameters,
`filters`, the multiplexed stream framing, streamed responses and blocking views of a body.
`Any` is allowed here: this is where JSON enters.

Imports `errors`, aiohttp, and the containers' and networks' types whose JSON it makes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import struct
import time
from typing import Any

from aiohttp import web

from berth import __version__
from berth.containers.execs import Exec
from berth.containers.record import ContainerState, NetworkRequest
from berth.containers.resources import StatsSample
from berth.containers.status import ContainerStatus
from berth.containers.views import ContainerView
from berth.errors import InvalidArgument
from berth.networks import ps_ports

API_VERSION = "1.50"          # the docker 28 CLI's own maximum
MIN_API_VERSION = "1.24"
ENGINE_VERSION = "28.0.0-berth." + __version__


def qbool(request: web.Request, name: str, default: bool = False) -> bool:
    v = request.query.get(name)
    if v is None:
        return default
    return v.strip().lower() not in ("", "0", "false", "no")


def qint(request: web.Request, name: str, default: int | None = None) -> int | None:
    v = request.query.get(name)
    if v in (None, ""):
        return default
    try:
        return int(v)
    except ValueError:
        raise InvalidArgument(f"invalid value for {name}: {v!r}") from None


def qsize(request: web.Request) -> tuple[int, int]:
    """`h` and `w` of a resize, both required and positive."""
    h, w = qint(request, "h", 0), qint(request, "w", 0)
    if not h or not w or h < 0 or w < 0:
        raise InvalidArgument("Bad parameters: h and w are required")
    return h, w


def parse_filters(raw: str | None) -> dict[str, list[str]]:
    """`filters` in both shapes Docker accepts: {"k": ["v"]} and the legacy {"k": {"v": true}}."""
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise InvalidArgument(f"invalid filters: {raw}") from None
    if not isinstance(data, dict):
        raise InvalidArgument(f"invalid filters: {raw}")
    out: dict[str, list[str]] = {}
    for k, v in data.items():
        if isinstance(v, dict):
            out[k] = [x for x, on in v.items() if on]
        elif isinstance(v, list):
            out[k] = [str(x) for x in v]
        else:
            out[k] = [str(v)]
    return out


def filters(request: web.Request) -> dict[str, list[str]]:
    """The request's `filters` query parameter, parsed."""
    return parse_filters(request.query.get("filters"))


def frame(stream: int, data: bytes) -> bytes:
    """Docker's multiplexed stream framing: [stream, 0, 0, 0, size32be] + payload."""
    return struct.pack(">BxxxI", stream, len(data)) + data


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(data).encode(), status=status,
                        content_type="application/json")


def error_message(message: str, **extra: Any) -> bytes:
    """An error inside a JSON message stream that has begun, as dockerd writes it."""
    return json.dumps({"errorDetail": {**extra, "message": message},
                       "error": message}).encode() + b"\r\n"


def stream_response(content_type: str = "application/json",
                    status: int = 200) -> web.StreamResponse:
    """A response written piece by piece, with the headers the middleware gives the others
    (a prepared response is past its reach)."""
    resp = web.StreamResponse(status=status)
    resp.content_type = content_type
    resp.headers.update({"Api-Version": API_VERSION, "Ostype": "linux",
                         "Server": f"Docker/{ENGINE_VERSION} (linux)"})
    return resp


# The largest JSON body a route reads whole (a container's config, a network's, an exec's...).
# dockerd decodes these as a stream with no bound of its own; berth holds them in memory, so it
# bounds them as Go's net/http bounds a form body (10 MB): far above any real configuration.
# Bodies that are streams (build contexts, image tarballs, archives) are not read this way.
MAX_JSON_BODY = 10 << 20


class BodyTooLarge(InvalidArgument):
    """A request body above what its route accepts: 413, with Docker's message body."""

    status = 413


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object (every JSON body of the Engine API is one); {} for an
    empty one. A body above MAX_JSON_BODY is refused before it is read whole."""
    if (request.content_length or 0) > MAX_JSON_BODY:
        raise BodyTooLarge(f"request body too large: {request.content_length} bytes, the "
                           f"limit is {MAX_JSON_BODY}")
    raw = bytearray()
    while chunk := await request.content.readany():
        raw += chunk
        if len(raw) > MAX_JSON_BODY:
            raise BodyTooLarge(f"request body too large: more than {MAX_JSON_BODY} bytes")
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise InvalidArgument(f"invalid JSON body: {e}") from None
    return json_object(data, "JSON body")


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number")


def json_object(value: Any, field: str) -> dict[str, Any]:
    """`value` of a client's JSON as an object ({} for null)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument(f"invalid {field}: an object is expected, not {_kind(value)}")
    return value


def json_text(value: Any, field: str) -> str:
    """`value` of a client's JSON as a string ("" for null)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidArgument(f"invalid {field}: a string is expected, not {_kind(value)}")
    return value


def json_strings(value: Any, field: str) -> dict[str, str]:
    """`value` of a client's JSON as a map of strings ({} for null)."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidArgument(f"invalid {field}: a map of strings is expected")
    return {str(k): v for k, v in value.items()}


class SyncReader:
    """A blocking file-like view of the request body, for a worker thread."""

    def __init__(self, request: web.Request, loop: asyncio.AbstractEventLoop) -> None:
        self.content = request.content
        self.loop = loop
        self.buf = b""
        self.eof = False

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        while not self.eof and (n < 0 or len(self.buf) < n):
            chunk = asyncio.run_coroutine_threadsafe(self.content.readany(), self.loop).result()
            if not chunk:
                self.eof = True
                break
            self.buf += chunk
        if n < 0:
            out, self.buf = self.buf, b""
        else:
            out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def readinto(self, b: bytearray) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)

    def peek(self, n: int = 1) -> bytes:
        if len(self.buf) < n:
            more = self.read(n)
            self.buf = more + self.buf
        return self.buf[:n]

    def close(self) -> None:
        pass

    @property
    def closed(self) -> bool:
        return False


class SyncWriter:
    """A blocking file-like that streams into an aiohttp response, for a worker thread."""

    def __init__(self, resp: web.StreamResponse, loop: asyncio.AbstractEventLoop) -> None:
        self.resp = resp
        self.loop = loop
        self.buf = bytearray()

    def write(self, data: bytes) -> int:
        self.buf += data
        if len(self.buf) >= 1 << 20:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self.buf:
            data, self.buf = bytes(self.buf), bytearray()
            asyncio.run_coroutine_threadsafe(self.resp.write(data), self.loop).result()

    def tell(self) -> int:
        return 0


__all__ = ["API_VERSION", "MIN_API_VERSION", "ENGINE_VERSION", "qbool", "qint", "qsize",
           "parse_filters", "filters", "frame", "json_response", "error_message",
           "stream_response", "read_json", "json_object", "json_text", "json_strings",
           "MAX_JSON_BODY", "BodyTooLarge", "SyncReader", "SyncWriter"]


# --- containers: Docker's JSON of the containers service's typed records ------------------------
def _rfc3339_ns(ns: int) -> str:
    secs, nanos = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    return f"{base}.{nanos:09d}Z" if nanos else base + "Z"


def container_state(st: ContainerState) -> dict[str, Any]:
    """State as `GET /containers/{id}/json` shows it."""
    out: dict[str, Any] = {
        "Status": st.status.value, "Running": st.running, "Paused": st.paused,
        "Restarting": st.restarting, "OOMKilled": st.oom_killed,
        "Dead": st.status is ContainerStatus.DEAD, "Pid": st.pid, "ExitCode": st.exit_code,
        "Error": st.error, "StartedAt": st.started_at, "FinishedAt": st.finished_at}
    if st.health is not None:
        out["Health"] = st.health.to_json()
    return out


def _endpoint(ep: dict[str, Any] | None, nid: str = "",
              req: NetworkRequest | None = None) -> dict[str, Any]:
    """One network's entry: what was asked of it (`req`) and this run's endpoint (`ep`)."""
    ep = ep or {}
    ipam = {k: v for k, v in (("IPv4Address", req.ip), ("IPv6Address", req.ip6),
                              ("LinkLocalIPs", req.link_local)) if v} if req else {}
    return {"IPAMConfig": ipam or None, "Links": (req.links if req else None) or None,
            "Aliases": (req.aliases if req else None) or None,
            "MacAddress": ep.get("mac", ""), "NetworkID": nid or ep.get("network", ""),
            "EndpointID": ep.get("endpoint", ""), "Gateway": ep.get("gateway", ""),
            "IPAddress": ep.get("ip", ""), "IPPrefixLen": ep.get("prefix", 0),
            "IPv6Gateway": ep.get("gateway6", ""), "GlobalIPv6Address": ep.get("ip6", ""),
            "GlobalIPv6PrefixLen": ep.get("prefix6", 0),
            "DriverOpts": (req.driver_opts if req else None) or None, "DNSNames": None}


def container_networks(v: ContainerView) -> dict[str, Any]:
    """NetworkSettings.Networks: one entry per network asked for (with this run's endpoint
    while it runs), or the host's or none's."""
    r = v.record
    mode = r.host_config.get("NetworkMode", "bridge")
    by_net = {e["netname"]: e for e in r.endpoints}
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
    first = next((e for e in r.endpoints if e["netname"] == "bridge"), {})
    return {"Bridge": "", "SandboxID": "", "SandboxKey": "", "Ports": r.ports,
            "HairpinMode": False, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
            "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None,
            "EndpointID": first.get("endpoint", ""), "Gateway": first.get("gateway", ""),
            "GlobalIPv6Address": first.get("ip6", ""),
            "GlobalIPv6PrefixLen": first.get("prefix6", 0), "IPAddress": first.get("ip", ""),
            "IPPrefixLen": first.get("prefix", 0), "IPv6Gateway": first.get("gateway6", ""),
            "MacAddress": first.get("mac", ""), "Networks": container_networks(v)}


def container_inspect(v: ContainerView) -> dict[str, Any]:
    """`GET /containers/{id}/json`: dockerd's keys, in dockerd's order."""
    r = v.record
    out: dict[str, Any] = {
        "Id": r.id, "Created": _rfc3339_ns(r.created_ns), "Path": r.path, "Args": r.args,
        "State": container_state(r.state), "Image": r.image,
        "ResolvConfPath": r.resolv_conf_path, "HostnamePath": r.hostname_path,
        "HostsPath": r.hosts_path, "LogPath": r.log_path, "Name": r.name,
        "RestartCount": r.restart_count, "Driver": r.driver, "Platform": "linux",
        "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "",
        "ExecIDs": list(r.exec_ids) or None,
        "HostConfig": {**r.host_config, "Links": v.links,
                       **({"Runtime": v.runtime} if v.runtime else {})},
        "GraphDriver": {"Name": r.driver, "Data": {"UpperDir": r.upper_dir,
                                                   "LowerDir": ":".join(r.lower_dirs)}},
        "Mounts": [m.to_json() for m in r.mounts], "Config": r.config,
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
        "Id": r.id, "Names": [r.name], "Image": r.config["Image"], "ImageID": r.image,
        "Command": " ".join([r.path, *r.args]), "Created": r.created,
        "Ports": ps_ports(r.ports) if r.state.running else [],
        "Labels": r.config.get("Labels") or {}, "State": r.state.status.value,
        "Status": v.status_text,
        "HostConfig": {"NetworkMode": r.host_config.get("NetworkMode", "bridge")},
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
        "ID": ex.id, "Running": ex.running, "ExitCode": ex.exit_code,
        "ProcessConfig": {"tty": c.tty, "entrypoint": c.cmd[0], "arguments": list(c.cmd[1:]),
                          "privileged": c.privileged, "user": c.user},
        "OpenStdin": c.attach_stdin, "OpenStderr": c.attach_stderr,
        "OpenStdout": c.attach_stdout, "CanRemove": False, "ContainerID": ex.cid,
        "DetachKeys": c.detach_keys, "Pid": ex.pid,
    }


def container_stats(cur: StatsSample, prev: StatsSample) -> dict[str, Any]:
    """One entry of `GET /containers/{id}/stats`: a sample and the one before it (whose CPU
    figures are `precpu_stats`), in Docker's shape."""
    out = _stats(cur)
    out["precpu_stats"] = _stats(prev)["cpu_stats"]
    out["preread"] = prev.read
    return out


def _stats(s: StatsSample) -> dict[str, Any]:
    base: dict[str, Any] = {"read": s.read, "name": s.name, "id": s.id, "num_procs": 0,
                            "storage_stats": {}, "networks": {}}
    if not s.running:
        return {**base, "pids_stats": {}, "blkio_stats": {}, "cpu_stats": {
            "cpu_usage": {"total_usage": 0}, "throttling_data": {}}, "memory_stats": {}}
    return {**base,
            "pids_stats": {"current": s.pids, **({"limit": s.pids_limit} if s.pids_limit else {})},
            "blkio_stats": {"io_service_bytes_recursive": [
                {"major": 0, "minor": 0, "op": "read", "value": s.io_read},
                {"major": 0, "minor": 0, "op": "write", "value": s.io_write}]},
            "networks": {name: dataclasses.asdict(n) for name, n in s.networks.items()},
            "cpu_stats": {"cpu_usage": {"total_usage": s.cpu_usage_ns, "usage_in_kernelmode": 0,
                                        "usage_in_usermode": 0},
                          "system_cpu_usage": s.system_cpu_ns, "online_cpus": s.online_cpus,
                          "throttling_data": {"periods": 0, "throttled_periods": 0,
                                              "throttled_time": 0}},
            "memory_stats": {"usage": s.memory_usage, "limit": s.memory_limit,
                             "stats": s.memory_extra}}
