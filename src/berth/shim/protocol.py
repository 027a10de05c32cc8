"""The shim protocol: what berthd and a shim (the per-container monitor) say to each other.

Imports nothing of berth's: berthd's container service imports this module and no other of the
shim's, so the runtime's code never loads into the daemon; the shim imports it too. Everything
that goes over the wire is encoded and decoded here.

A connection to the fork server starts with one JSON line, a `StartRequest` (or a
`NetSetupRequest` between a monitor and the fork server with netlink). From then on both
directions carry frames, `[type, 0, 0, 0, size32be] + payload`, the shape of Docker's stream
framing (`FrameType`):

  shim → daemon    STDOUT, STDERR: output as it comes (also written to the log);
                   CONTROL, JSON: `Ready` once the process has exec'd, or `StartFailed` if it could
                   not; `Exit` at its end; `Plugged`, `Unplugged` or `CommandFailed` in answer
                   to a command.
  daemon → shim    STDIN data; CLOSE_STDIN; RESIZE, JSON `Resize`;
                   CONTROL, JSON: a command, `Plug` or `Unplug` (network connect/disconnect
                   of a running container) or `Signal`.

A restarted daemon reconnects to the monitor's own socket (`StartRequest.socket`): it gets
`Ready` again, and output from then on. The `Exit` record is also left in the state directory
(`exit.json`) for a daemon that was not there to hear it.

Versions: a request carries `PROTOCOL_VERSION`; a shim refuses a request of a newer version
than its own (a request without one is version 1). Messages are JSON objects told apart by
their keys, so a newer peer may add keys an older one ignores.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

PROTOCOL_VERSION = 1

# the environment variable that carries berthd's own soft RLIMIT_NOFILE, from before it
# raised it, to the fork server (which gives it back to the monitors and containers)
NOFILE_ENV = "BERTH_NOFILE_SOFT"


def lean_socket(path: str) -> str:
    """The socket of the lean fork server, for the fork server on `path`: the monitors of
    execs and of most containers."""
    return path + ".lean"


def dns_socket(path: str) -> str:
    """The socket of the fork server with the DNS library: the monitors of containers on
    user-defined networks, which answer their DNS queries."""
    return path + ".dns"


# the longest request line a shim reads (a container on many networks, with their names)
MAX_REQUEST = 16 << 20

_HEADER = struct.Struct(">BxxxI")
HEADER_SIZE = _HEADER.size


class FrameType(IntEnum):
    STDIN = 0
    STDOUT = 1
    STDERR = 2
    CLOSE_STDIN = 3
    RESIZE = 4
    CONTROL = 10


T_STDIN, T_STDOUT, T_STDERR = FrameType.STDIN, FrameType.STDOUT, FrameType.STDERR
T_CLOSE_STDIN, T_RESIZE, T_CONTROL = (FrameType.CLOSE_STDIN, FrameType.RESIZE, FrameType.CONTROL)


class ProtocolError(ValueError):
    """A message that is not what the protocol allows."""


def frame(typ: int, payload: bytes = b"") -> bytes:
    return _HEADER.pack(typ, len(payload)) + payload


def frame_header(head: bytes) -> tuple[int, int]:
    """(type, payload size) of an 8-byte frame header."""
    typ, size = _HEADER.unpack(head)
    return typ, size


def split_frames(buf: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """The complete frames at the start of `buf`, and what is left of it."""
    out = []
    while len(buf) >= HEADER_SIZE:
        typ, size = _HEADER.unpack_from(buf)
        if len(buf) < HEADER_SIZE + size:
            break
        out.append((typ, buf[HEADER_SIZE : HEADER_SIZE + size]))
        buf = buf[HEADER_SIZE + size :]
    return out, buf


# --- the request that starts a shim ----------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class RootfsMount:
    """The container's root filesystem, mounted by the shim in a mount namespace of its own:
    an overlay, or a bind mount of the copying driver's full copy."""

    type: str
    source: str = ""
    options: tuple[str, ...] = ()

    def encode(self) -> dict[str, Any]:
        return {"type": self.type, "source": self.source, "options": list(self.options)}

    @classmethod
    def decode(cls, d: dict[str, Any]) -> RootfsMount:
        return cls(
            type=str(d["type"]),
            source=str(d.get("source") or ""),
            options=tuple(str(o) for o in d.get("options") or ()),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class DnsConfig:
    """The embedded DNS server of a container on user-defined networks."""

    hosts: tuple[str, ...] = ()  # the name tables the daemon writes, one per network
    upstream: tuple[str, ...] = ()  # resolvers for other names
    forward: bool = False  # whether other names go upstream (no: all internal)
    # the endpoints' links: alias -> the name in the tables it stands for, for this
    # container only
    links: dict[str, str] = field(default_factory=dict)

    def encode(self) -> dict[str, Any]:
        d = {"hosts": list(self.hosts), "upstream": list(self.upstream), "forward": self.forward}
        if self.links:
            d["links"] = dict(self.links)
        return d

    @classmethod
    def decode(cls, d: dict[str, Any]) -> DnsConfig:
        return cls(
            hosts=tuple(d.get("hosts") or ()),
            upstream=tuple(d.get("upstream") or ()),
            forward=bool(d.get("forward")),
            links={str(k): str(v) for k, v in (d.get("links") or {}).items()},
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class StartRequest:
    """Start a container (from `bundle`/config.json) or, with `exec_pid`, an exec (from
    `bundle`/process.json) in the container whose process is `exec_pid`."""

    id: str
    state_dir: str
    bundle: str = ""
    log_path: str = ""
    socket: str = ""  # where later channels connect
    rootfs_mount: RootfsMount | None = None
    stdin: bool = False  # keep a stdin pipe (OpenStdin)
    tty: bool = False
    console_size: tuple[int, int] | None = None
    exec_pid: int = 0  # an exec: join this container process instead
    log_max_size: int = 0  # bytes; 0: no rotation
    log_max_file: int = 1
    networks: tuple[dict[str, str], ...] = ()  # netlink.Endpoint fields
    dns: DnsConfig | None = None
    runtime: str = ""  # an OCI runtime binary (runc, crun) instead of berth's
    runtime_root: str = ""
    container_id: str = ""  # an exec's container, by the runtime's id
    version: int = PROTOCOL_VERSION

    def encode(self) -> bytes:
        d: dict[str, Any] = {
            "version": self.version,
            "id": self.id,
            "state_dir": self.state_dir,
            "bundle": self.bundle,
            "log_path": self.log_path,
            "socket": self.socket,
            "rootfs_mount": self.rootfs_mount.encode() if self.rootfs_mount else None,
            "stdin": self.stdin,
            "tty": self.tty,
            "console_size": list(self.console_size) if self.console_size else None,
            "exec_pid": self.exec_pid,
            "log_max_size": self.log_max_size,
            "log_max_file": self.log_max_file,
            "networks": [dict(n) for n in self.networks],
            "dns": self.dns.encode() if self.dns else None,
            "runtime": self.runtime,
            "runtime_root": self.runtime_root,
            "container_id": self.container_id,
        }
        return json.dumps(d).encode() + b"\n"

    @classmethod
    def decode(cls, d: dict[str, Any]) -> StartRequest:
        version = int(d.get("version") or 1)
        if version > PROTOCOL_VERSION:
            raise ProtocolError(
                f"protocol version {version} is newer than the shim's ({PROTOCOL_VERSION})"
            )
        cs = d.get("console_size")
        rm = d.get("rootfs_mount")
        dns = d.get("dns")
        return cls(
            id=d["id"],
            bundle=d.get("bundle", ""),
            log_path=d.get("log_path", ""),
            state_dir=d["state_dir"],
            socket=d.get("socket", ""),
            rootfs_mount=RootfsMount.decode(rm) if rm else None,
            stdin=bool(d.get("stdin")),
            tty=bool(d.get("tty")),
            console_size=(int(cs[0]), int(cs[1])) if cs else None,
            exec_pid=int(d.get("exec_pid") or 0),
            log_max_size=int(d.get("log_max_size") or 0),
            log_max_file=max(1, int(d.get("log_max_file") or 1)),
            networks=tuple({str(k): str(v) for k, v in n.items()} for n in d.get("networks") or ()),
            dns=DnsConfig.decode(dns) if dns else None,
            runtime=d.get("runtime", ""),
            runtime_root=d.get("runtime_root", ""),
            container_id=d.get("container_id", ""),
            version=version,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class NetSetupRequest:
    """A monitor forked without netlink asks the fork server that has it to plug and
    configure `networks` (netlink.Endpoint fields) in the network namespace of `pid`."""

    pid: int
    networks: tuple[dict[str, str], ...]

    def encode(self) -> bytes:
        return (
            json.dumps(
                {"netsetup": {"pid": self.pid, "networks": [dict(n) for n in self.networks]}}
            ).encode()
            + b"\n"
        )

    @classmethod
    def decode(cls, d: dict[str, Any]) -> NetSetupRequest:
        return cls(pid=int(d["pid"]), networks=tuple(d["networks"]))


def decode_request(line: bytes) -> StartRequest | NetSetupRequest:
    """The first line of a connection to the fork server."""
    d = json.loads(line)
    if not isinstance(d, dict):
        raise ProtocolError("protocol error: the request is not an object")
    if "netsetup" in d:
        return NetSetupRequest.decode(d["netsetup"])
    return StartRequest.decode(d)


# --- shim → daemon -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class Ready:
    """The process runs (it has exec'd): its pid, and the monitor's."""

    pid: int
    monitor: int

    def encode(self) -> dict[str, Any]:
        return {"pid": self.pid, "monitor": self.monitor}


@dataclass(frozen=True, slots=True, kw_only=True)
class StartFailed:
    """The process could not be started (before any `Ready`), with the exit code a CLI shows
    for it: 125 (engine), 126 (cannot be invoked), 127 (not found)."""

    error: str
    code: int = 125

    def encode(self) -> dict[str, Any]:
        return {"error": self.error, "code": self.code}


@dataclass(frozen=True, slots=True, kw_only=True)
class Exit:
    """The end of the process: its exit code (128+N when killed by signal N), whether the
    OOM killer took it, when (ns since the epoch); with `error` set when it never started."""

    exit: int
    oom: bool = False
    finished_at: int = 0
    error: str = ""
    code: int | None = None

    def encode(self) -> dict[str, Any]:
        d: dict[str, Any] = {"exit": self.exit, "oom": self.oom, "finished_at": self.finished_at}
        if self.error:
            d["error"] = self.error
        if self.code is not None:
            d["code"] = self.code
        return d

    def to_json(self) -> bytes:
        """As the state directory keeps it (exit.json)."""
        return json.dumps(self.encode()).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> Exit:
        msg = decode_control(data.encode() if isinstance(data, str) else data)
        if not isinstance(msg, Exit):
            raise ProtocolError("not an exit record")
        return msg


@dataclass(frozen=True, slots=True, kw_only=True)
class Plugged:
    ifname: str

    def encode(self) -> dict[str, Any]:
        return {"plugged": self.ifname}


@dataclass(frozen=True, slots=True, kw_only=True)
class Unplugged:
    ifname: str

    def encode(self) -> dict[str, Any]:
        return {"unplugged": self.ifname}


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandFailed:
    why: str

    def encode(self) -> dict[str, Any]:
        return {"failed": self.why}


ShimMessage = Ready | StartFailed | Exit | Plugged | Unplugged | CommandFailed
Answer = Plugged | Unplugged | CommandFailed


# --- daemon → shim -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class Resize:
    h: int
    w: int

    def encode(self) -> dict[str, Any]:
        return {"h": self.h, "w": self.w}

    @classmethod
    def decode(cls, payload: bytes) -> Resize:
        d = json.loads(payload)
        return cls(h=int(d["h"]), w=int(d["w"]))


@dataclass(frozen=True, slots=True, kw_only=True)
class Plug:
    """Plug one interface into the running container (`network connect`); its network's
    name table joins what the embedded DNS answers; `dns_forward`: whether the DNS forwards
    other names from now on (not if all the container's networks are internal); `dns`: the
    embedded DNS server to start if the monitor runs none yet (a container started on the
    default bridge and connected to a user-defined network later, as dockerd does)."""

    endpoint: dict[str, str] = field(default_factory=dict)
    hosts: str = ""
    dns_forward: bool | None = None
    dns: DnsConfig | None = None
    links: dict[str, str] = field(default_factory=dict)  # the endpoint's (`DnsConfig.links`)

    def encode(self) -> dict[str, Any]:
        d: dict[str, Any] = {"plug": dict(self.endpoint)}
        if self.links:
            d["links"] = dict(self.links)
        if self.hosts:
            d["hosts"] = self.hosts
        if self.dns_forward is not None:
            d["dns_forward"] = self.dns_forward
        if self.dns is not None:
            d["dns"] = self.dns.encode()
        return d


@dataclass(frozen=True, slots=True, kw_only=True)
class Unplug:
    """Unplug one interface (`network disconnect`); `hosts`: its network's name table, which
    the embedded DNS no longer answers from."""

    ifname: str
    dns_forward: bool | None = None
    hosts: str = ""

    def encode(self) -> dict[str, Any]:
        d: dict[str, Any] = {"unplug": self.ifname}
        if self.hosts:
            d["hosts"] = self.hosts
        if self.dns_forward is not None:
            d["dns_forward"] = self.dns_forward
        return d


@dataclass(frozen=True, slots=True, kw_only=True)
class Signal:
    """Send signal `signo` to the container's (or exec's) process."""

    signo: int

    def encode(self) -> dict[str, Any]:
        return {"signal": self.signo}


Command = Plug | Unplug | Signal


def encode_control(msg: ShimMessage | Command) -> bytes:
    """A control message as a CONTROL frame."""
    return frame(T_CONTROL, json.dumps(msg.encode()).encode())


def _opt_bool(d: dict[str, Any], key: str) -> bool | None:
    return bool(d[key]) if key in d else None


def decode_control(payload: bytes) -> ShimMessage:
    """A control message from a shim."""
    d = json.loads(payload)
    if not isinstance(d, dict):
        raise ProtocolError("protocol error: a control message is not an object")
    if "exit" in d:
        code = d.get("code")
        return Exit(
            exit=int(d["exit"]),
            oom=bool(d.get("oom")),
            finished_at=int(d.get("finished_at") or 0),
            error=str(d.get("error") or ""),
            code=None if code is None else int(code),
        )
    if "pid" in d:
        return Ready(pid=int(d["pid"]), monitor=int(d.get("monitor") or 0))
    if "error" in d:
        return StartFailed(error=str(d["error"]), code=int(d.get("code", 125)))
    if "plugged" in d:
        return Plugged(ifname=str(d["plugged"]))
    if "unplugged" in d:
        return Unplugged(ifname=str(d["unplugged"]))
    if "failed" in d:
        return CommandFailed(why=str(d["failed"]))
    raise ProtocolError(f"protocol error: unknown message {sorted(d)}")


def decode_command(payload: bytes) -> Command:
    """A control message from the daemon."""
    d = json.loads(payload)
    if not isinstance(d, dict):
        raise ProtocolError("protocol error: a command is not an object")
    if "plug" in d:
        dns = d.get("dns")
        return Plug(
            endpoint=dict(d["plug"]),
            hosts=str(d.get("hosts") or ""),
            dns_forward=_opt_bool(d, "dns_forward"),
            dns=DnsConfig.decode(dns) if isinstance(dns, dict) else None,
            links={str(k): str(v) for k, v in (d.get("links") or {}).items()},
        )
    if "unplug" in d:
        return Unplug(
            ifname=str(d["unplug"]),
            dns_forward=_opt_bool(d, "dns_forward"),
            hosts=str(d.get("hosts") or ""),
        )
    if "signal" in d:
        return Signal(signo=int(d["signal"]))
    raise ProtocolError(f"unknown command {sorted(d)}")


__all__ = [
    "PROTOCOL_VERSION",
    "NOFILE_ENV",
    "lean_socket",
    "dns_socket",
    "FrameType",
    "ProtocolError",
    "frame",
    "frame_header",
    "split_frames",
    "HEADER_SIZE",
    "RootfsMount",
    "DnsConfig",
    "StartRequest",
    "NetSetupRequest",
    "decode_request",
    "Ready",
    "StartFailed",
    "Exit",
    "Plugged",
    "Unplugged",
    "CommandFailed",
    "ShimMessage",
    "Answer",
    "Resize",
    "Plug",
    "Unplug",
    "Signal",
    "Command",
    "encode_control",
    "decode_control",
    "decode_command",
    "T_STDIN",
    "T_STDOUT",
    "T_STDERR",
    "T_CLOSE_STDIN",
    "T_RESIZE",
    "T_CONTROL",
]
