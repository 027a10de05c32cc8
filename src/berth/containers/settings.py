"""A container's configuration, typed: what Docker calls its Config (the process, its
environment, its terminal, labels, exposed ports, health check, stop signal and timeout).

One type serves the create request (where `None` means "not given": the image's value applies)
and the container's record (the request merged with the image's config by
`containers.create`). Docker's JSON of it is made and read at the API edge
(`berth.api.containers_wire`); here are the record's stored form (`to_json`/`from_json`) and
the Docker-shaped Config that records before version 3 kept (`from_legacy`).

Imports `containers.ports`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from berth.containers.ports import Port

Json = dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthConfig:
    """Config.Healthcheck: the test and its timings (nanoseconds; 0 for the default)."""

    test: tuple[str, ...] | None = None  # ("CMD", ...), ("CMD-SHELL", cmd), ("NONE",)
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0

    def to_json(self) -> Json:
        return {
            "test": None if self.test is None else list(self.test),
            "interval": self.interval,
            "timeout": self.timeout,
            "start_period": self.start_period,
            "start_interval": self.start_interval,
            "retries": self.retries,
        }

    @classmethod
    def from_json(cls, j: Mapping[str, Any]) -> HealthConfig:
        test = j.get("test")
        return cls(
            test=None if test is None else tuple(test),
            interval=int(j.get("interval") or 0),
            timeout=int(j.get("timeout") or 0),
            start_period=int(j.get("start_period") or 0),
            start_interval=int(j.get("start_interval") or 0),
            retries=int(j.get("retries") or 0),
        )

    @classmethod
    def from_doc(cls, d: Mapping[str, Any]) -> HealthConfig:
        """Docker's shape, as an image's config and records before version 3 keep it."""
        test = d.get("Test")
        return cls(
            test=None if test is None else tuple(test),
            interval=int(d.get("Interval") or 0),
            timeout=int(d.get("Timeout") or 0),
            start_period=int(d.get("StartPeriod") or 0),
            start_interval=int(d.get("StartInterval") or 0),
            retries=int(d.get("Retries") or 0),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainerConfig:
    """Docker's Config. In a request, `None` is "not given"; in a record, the merged values
    (`None` where the container has none: Env, Cmd, Entrypoint, Volumes as dockerd shows
    null)."""

    image: str = ""  # as the client named it
    hostname: str = ""
    domainname: str = ""
    user: str | None = None
    attach_stdin: bool = False
    attach_stdout: bool = False
    attach_stderr: bool = False
    tty: bool = False
    open_stdin: bool = False
    stdin_once: bool = False
    env: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    # ("",) in a request: no entrypoint, not even the image's
    entrypoint: tuple[str, ...] | None = None
    working_dir: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    volumes: tuple[str, ...] | None = None  # anonymous volumes' targets
    exposed_ports: tuple[Port, ...] = ()
    healthcheck: HealthConfig | None = None
    stop_signal: str = ""
    stop_timeout: int | None = None  # seconds
    mac_address: str = ""  # the older, container-wide field
    # Config keys berth does not act on, as a client or dockerd gave them: kept only to be
    # shown again (a request's are dropped at create, as they have always been)
    extra: dict[str, Any] = field(default_factory=dict)

    # --- the record's stored form -----------------------------------------------------------
    def to_json(self) -> Json:
        def opt(v: tuple[str, ...] | None) -> list[str] | None:
            return None if v is None else list(v)

        return {
            "image": self.image,
            "hostname": self.hostname,
            "domainname": self.domainname,
            "user": self.user,
            "attach_stdin": self.attach_stdin,
            "attach_stdout": self.attach_stdout,
            "attach_stderr": self.attach_stderr,
            "tty": self.tty,
            "open_stdin": self.open_stdin,
            "stdin_once": self.stdin_once,
            "env": opt(self.env),
            "cmd": opt(self.cmd),
            "entrypoint": opt(self.entrypoint),
            "working_dir": self.working_dir,
            "labels": dict(self.labels),
            "volumes": opt(self.volumes),
            "exposed_ports": [str(p) for p in self.exposed_ports],
            "healthcheck": self.healthcheck.to_json() if self.healthcheck else None,
            "stop_signal": self.stop_signal,
            "stop_timeout": self.stop_timeout,
            "mac_address": self.mac_address,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_json(cls, j: Mapping[str, Any]) -> ContainerConfig:
        def opt(v: Any) -> tuple[str, ...] | None:
            return None if v is None else tuple(str(x) for x in v)

        hc = j.get("healthcheck")
        timeout = j.get("stop_timeout")
        return cls(
            image=str(j.get("image") or ""),
            hostname=str(j.get("hostname") or ""),
            domainname=str(j.get("domainname") or ""),
            user=j.get("user"),
            attach_stdin=bool(j.get("attach_stdin")),
            attach_stdout=bool(j.get("attach_stdout")),
            attach_stderr=bool(j.get("attach_stderr")),
            tty=bool(j.get("tty")),
            open_stdin=bool(j.get("open_stdin")),
            stdin_once=bool(j.get("stdin_once")),
            env=opt(j.get("env")),
            cmd=opt(j.get("cmd")),
            entrypoint=opt(j.get("entrypoint")),
            working_dir=str(j.get("working_dir") or ""),
            labels={str(k): str(v) for k, v in (j.get("labels") or {}).items()},
            volumes=opt(j.get("volumes")),
            exposed_ports=tuple(Port.parse(p) for p in j.get("exposed_ports") or []),
            healthcheck=HealthConfig.from_json(hc) if hc is not None else None,
            stop_signal=str(j.get("stop_signal") or ""),
            stop_timeout=int(timeout) if timeout is not None else None,
            mac_address=str(j.get("mac_address") or ""),
            extra=dict(j.get("extra") or {}),
        )

    @classmethod
    def from_legacy(cls, d: Mapping[str, Any]) -> ContainerConfig:
        """The Docker-shaped Config of a record of berthd before version 3 (trusted: berthd
        wrote it)."""

        def opt(v: Any) -> tuple[str, ...] | None:
            if v is None:
                return None
            return (v,) if isinstance(v, str) else tuple(str(x) for x in v)

        known = {
            "Image",
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
            "Entrypoint",
            "WorkingDir",
            "Labels",
            "Volumes",
            "ExposedPorts",
            "Healthcheck",
            "StopSignal",
            "StopTimeout",
            "MacAddress",
            "OnBuild",
        }
        hc = d.get("Healthcheck")
        timeout = d.get("StopTimeout")
        return cls(
            image=str(d.get("Image") or ""),
            hostname=str(d.get("Hostname") or ""),
            domainname=str(d.get("Domainname") or ""),
            user=d.get("User"),
            attach_stdin=bool(d.get("AttachStdin")),
            attach_stdout=bool(d.get("AttachStdout")),
            attach_stderr=bool(d.get("AttachStderr")),
            tty=bool(d.get("Tty")),
            open_stdin=bool(d.get("OpenStdin")),
            stdin_once=bool(d.get("StdinOnce")),
            env=opt(d.get("Env")),
            cmd=opt(d.get("Cmd")),
            entrypoint=opt(d.get("Entrypoint")),
            working_dir=str(d.get("WorkingDir") or ""),
            labels={str(k): str(v) for k, v in (d.get("Labels") or {}).items()},
            volumes=tuple(d["Volumes"]) if d.get("Volumes") is not None else None,
            exposed_ports=tuple(Port.parse(p) for p in d.get("ExposedPorts") or {}),
            healthcheck=HealthConfig.from_doc(hc) if hc else None,
            stop_signal=str(d.get("StopSignal") or ""),
            stop_timeout=int(timeout) if timeout is not None else None,
            mac_address=str(d.get("MacAddress") or ""),
            extra={
                k: v for k, v in d.items() if k not in known or (k == "OnBuild" and v is not None)
            },
        )


__all__ = ["ContainerConfig", "HealthConfig"]
