"""The container service's configuration (a part of the daemon's), the seam where a fake shim
plugs in, and the small parsers of create's fields that several parts use.

Imports `shim.protocol`, `containers.cdi`, `errors`."""

from __future__ import annotations

import signal as signal_mod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from berth.containers import cdi
from berth.containers.channel import Channel
from berth.containers.hostconfig import LogConfig
from berth.errors import InvalidArgument
from berth.shim import protocol
from berth.shim.protocol import StartRequest

ZERO_TIME = "0001-01-01T00:00:00Z"


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    data_root: str
    exec_root: str
    forkserver: str  # the fork server's socket
    cgroup_parent: str = "berth"
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    runtime: str = "berth"
    runtimes: dict[str, str] = field(default_factory=lambda: {"berth": ""})  # name -> path
    idmap: tuple[int, int, int] | None = None  # --userns-remap: (uid, gid, size) outside
    init_path: str = ""  # a static init (tini) for --init, mounted in
    cdi_spec_dirs: tuple[str, ...] = cdi.DEFAULT_SPEC_DIRS  # CDI specs for DeviceRequests
    # unlike Docker, logs rotate by default, so a chatty container cannot fill the disk
    log_max_size: int = 20 * 1024 * 1024
    log_max_file: int = 5

    # --- runtime names ----------------------------------------------------------------------
    # berth's own runtime is "berth" in the runtimes table (a real runc, crun or one of
    # --add-runtime beside it under their names). Clients expect dockerd's name for the default
    # runtime, "runc" (issue 15), so where no real runc is in the table "runc" names berth's
    # own runtime, in what the API shows and in what it accepts. Where berthd has a real runc,
    # "runc" keeps meaning that binary, and berth's own runtime is shown as "berth".
    @property
    def runc_is_berth(self) -> bool:
        return "runc" not in self.runtimes

    def runtime_key(self, name: str | None) -> str:
        """The table's name of a runtime a client named ("" for the default)."""
        name = name or self.runtime
        if name == "berth-runtime" or (name == "runc" and self.runc_is_berth):
            return "berth"
        return name

    def runtime_shown(self, key: str) -> str:
        """The name the API shows for a runtime of the table."""
        return "runc" if key == "berth" and self.runc_is_berth else key

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


def log_config(given: LogConfig) -> LogConfig:
    """HostConfig.LogConfig as dockerd keeps it: no type is json-file; an unknown one is
    refused at create."""
    kind = given.type or "json-file"
    if kind not in LOG_DRIVERS:
        raise InvalidArgument(f"logger: no log driver named '{kind}' is registered")
    return LogConfig(type=kind, config=dict(given.config or {}))


__all__ = ["LOG_DRIVERS", "ZERO_TIME", "ChannelOpener", "Config", "log_config", "parse_signal"]
