"""A container made from the dashboard's form: image, name, command, environment, published
ports, volumes, restart policy and network, read into the same typed `CreateRequest` that the
Engine API's `POST /containers/create` builds, and given to the containers service.

The form is a browser's (hostile) input: a JSON object of the dashboard's own shape, every
field of a known type and bounded in length and count, each part of a `-v` string checked so
that no `:` or `,` of a value can add a mode or another part, before the service checks
what it checks for every client (the image exists, the name is free, the restart policy).

Imports the containers' typed config and ports, and `errors`.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass
from typing import Any

from berth.containers.create import CreateRequest
from berth.containers.hostconfig import HostConfig, RestartPolicy
from berth.containers.ports import Port, PortBinding, PortMap
from berth.containers.settings import ContainerConfig
from berth.errors import InvalidArgument

MAX_TEXT = 4096  # one field's characters
MAX_ITEMS = 128  # environment variables, ports or volumes
RESTART = ("no", "always", "unless-stopped", "on-failure")
VOLUME_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}")
ENV_NAME = re.compile(r"[^=\x00]+")
NETWORK = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}")


@dataclass(frozen=True, slots=True)
class Form:
    """What the form asked for, typed: the request, the name, and whether to start it."""

    request: CreateRequest
    name: str
    start: bool


def _text(v: Any, field: str, *, limit: int = MAX_TEXT) -> str:
    if v is None:
        return ""
    if not isinstance(v, str):
        raise InvalidArgument(f"{field}: want text")
    if len(v) > limit:
        raise InvalidArgument(f"{field}: longer than {limit} characters")
    if "\x00" in v:
        raise InvalidArgument(f"{field}: holds a NUL character")
    return v.strip()


def _items(v: Any, field: str) -> list[Any]:
    if v is None:
        return []
    if not isinstance(v, list):
        raise InvalidArgument(f"{field}: want a list")
    if len(v) > MAX_ITEMS:
        raise InvalidArgument(f"{field}: more than {MAX_ITEMS}")
    return v


def _object(v: Any, field: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise InvalidArgument(f"{field}: want an object")
    return v


def command(v: Any) -> tuple[str, ...] | None:
    """The command as the shell would split it (`sh -c 'echo hi'`), or a list as it is; none
    given is the image's."""
    if isinstance(v, list):
        words = [_text(w, "command") for w in _items(v, "command")]
    else:
        line = _text(v, "command")
        try:
            words = shlex.split(line)
        except ValueError as e:
            raise InvalidArgument(f"command: {e}") from None
    return tuple(words) or None


def env(v: Any) -> tuple[str, ...] | None:
    out = []
    for i, item in enumerate(_items(v, "env")):
        line = _text(item, f"env {i + 1}")
        if not line:
            continue
        name, eq, _value = line.partition("=")
        if not eq or not ENV_NAME.fullmatch(name) or name != name.strip():
            raise InvalidArgument(f"env {i + 1}: want NAME=VALUE, not {line!r}")
        out.append(line)
    return tuple(out) or None


def ports(v: Any) -> tuple[tuple[Port, ...], PortMap | None]:
    """The published ports: each container port (`80`, `80/udp`) on a host port (empty: one
    the kernel picks) and address (empty: every address)."""
    bindings: dict[Port, list[PortBinding]] = {}
    for i, item in enumerate(_items(v, "ports")):
        d = _object(item, f"port {i + 1}")
        spec = _text(d.get("port"), f"port {i + 1}", limit=16)
        if not spec:
            continue
        proto = _text(d.get("proto"), f"port {i + 1}", limit=8) or "tcp"
        port = Port.parse(spec if "/" in spec else f"{spec}/{proto}")
        host_port = _text(d.get("hostPort"), f"port {i + 1}: host port", limit=5)
        if host_port and not (host_port.isdigit() and 0 < int(host_port) <= 65535):
            raise InvalidArgument(f"port {i + 1}: host port {host_port!r} is not a port number")
        host_ip = _text(d.get("hostIp"), f"port {i + 1}: host address", limit=64)
        if host_ip:
            try:
                ipaddress.ip_address(host_ip)
            except ValueError:
                raise InvalidArgument(
                    f"port {i + 1}: host address {host_ip!r} is not an IP address"
                ) from None
        bindings.setdefault(port, []).append(PortBinding(host_ip=host_ip, host_port=host_port))
    if not bindings:
        return (), None
    return tuple(bindings), {p: tuple(b) for p, b in bindings.items()}


def binds(v: Any) -> tuple[str, ...] | None:
    """`-v` strings: a named volume (`data:/srv`), a host directory (`/host:/srv`), or an
    anonymous volume (`/srv`), read-only if asked. The parts are checked one by one, so that
    a value cannot bring a part (or a mode) of its own."""
    out = []
    for i, item in enumerate(_items(v, "volumes")):
        d = _object(item, f"volume {i + 1}")
        src = _text(d.get("source"), f"volume {i + 1}: source")
        dst = _text(d.get("target"), f"volume {i + 1}: target")
        if not src and not dst:
            continue
        for what, part in (("source", src), ("target", dst)):
            if ":" in part or "," in part:
                raise InvalidArgument(f"volume {i + 1}: the {what} may not hold ':' or ','")
        if not dst.startswith("/"):
            raise InvalidArgument(f"volume {i + 1}: the target must be an absolute path")
        if src and not src.startswith("/") and not VOLUME_NAME.fullmatch(src):
            raise InvalidArgument(
                f"volume {i + 1}: {src!r} is neither a volume name nor an absolute host path"
            )
        spec = f"{src}:{dst}" if src else dst
        if d.get("readOnly") is True:
            if not src:
                raise InvalidArgument(f"volume {i + 1}: an anonymous volume cannot be read-only")
            spec += ":ro"
        out.append(spec)
    return tuple(out) or None


def restart_policy(v: Any, retries: Any) -> RestartPolicy:
    name = _text(v, "restart policy", limit=32) or "no"
    if name not in RESTART:
        raise InvalidArgument(f"restart policy: want one of {', '.join(RESTART)}")
    if retries in (None, ""):
        count = 0
    elif isinstance(retries, int) and not isinstance(retries, bool) and 0 <= retries <= 1000:
        count = retries
    else:
        raise InvalidArgument("restart policy: the retries are a number from 0 to 1000")
    if count and name != "on-failure":
        raise InvalidArgument("restart policy: only on-failure takes a number of retries")
    return RestartPolicy(name=name, maximum_retry_count=count)


def parse(body: Any) -> Form:
    """The form's JSON, typed; a 400 naming the field that is wrong."""
    d = _object(body, "the form")
    image = _text(d.get("image"), "image", limit=512)
    if not image:
        raise InvalidArgument("image: choose an image")
    name = _text(d.get("name"), "name", limit=255)
    network = _text(d.get("network"), "network", limit=255)
    if network and not NETWORK.fullmatch(network):
        raise InvalidArgument(f"network: {network!r} is not a network's name")
    tty = d.get("tty") is True
    interactive = d.get("interactive") is True
    exposed, bindings = ports(d.get("ports"))
    config = ContainerConfig(
        image=image,
        cmd=command(d.get("command")),
        env=env(d.get("env")),
        tty=tty,
        open_stdin=interactive,
        attach_stdin=False,
        exposed_ports=exposed,
    )
    hc = HostConfig(
        binds=binds(d.get("volumes")),
        port_bindings=bindings,
        restart_policy=restart_policy(d.get("restart"), d.get("maxRetries")),
        network_mode=network or "bridge",
    )
    return Form(
        request=CreateRequest(config=config, host_config=hc),
        name=name,
        start=d.get("start") is not False,
    )


__all__ = ["Form", "parse", "command", "env", "ports", "binds", "restart_policy"]
