"""Which endpoints a registry's name goes to, and which of them are secure.

Docker's rules: `docker.io` is registry-1.docker.io (after the configured mirrors, for pulls);
any other domain is itself. A registry is *secure* (HTTPS with verified certificates) unless it
is named in the insecure list, or its address is in an insecure CIDR (127.0.0.0/8 and ::1 by
default). Imports nothing of berth's.
"""

from __future__ import annotations

import contextlib
import ipaddress
from dataclasses import dataclass, field
from urllib.parse import urlsplit

DOCKER_HUB_HOST = "registry-1.docker.io"
DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL, the default port filled in: credentials go only to the
    origin they belong to."""
    u = urlsplit(url)
    scheme = u.scheme.lower()
    try:
        port = u.port
    except ValueError:
        port = None
    return scheme, (u.hostname or "").lower(), port or {"https": 443, "http": 80}.get(scheme, 0)


@dataclass(slots=True)
class RegistryOptions:
    mirrors: list[str] = field(default_factory=list)  # for docker.io: http(s)://host[:port]
    insecure: list[str] = field(default_factory=list)  # host[:port] or CIDR
    certs_dir: str = "/etc/docker/certs.d"
    docker_hub: bool = True  # False: docker.io names go to the mirrors only, never the Hub

    def insecure_cidrs(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = [
            ipaddress.ip_network("127.0.0.0/8"),
            ipaddress.ip_network("::1/128"),
        ]
        for e in self.insecure:
            if "/" in e:
                with contextlib.suppress(ValueError):
                    nets.append(ipaddress.ip_network(e, strict=False))
        return nets

    def is_secure(self, host: str) -> bool:
        """`host` is host[:port]. Names are matched as written; only address literals and
        `localhost` are checked against the CIDRs (berth does not resolve other names here)."""
        if host in self.insecure:
            return False
        name = _strip_port(host)
        if name in self.insecure:
            return False
        if name == "localhost":
            name = "127.0.0.1"
        try:
            ip = ipaddress.ip_address(name.strip("[]"))
        except ValueError:
            return True
        return not any(ip in n for n in self.insecure_cidrs())


def _strip_port(host: str) -> str:
    if host.startswith("["):
        return host[1 : host.index("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def registry_host(domain: str) -> str:
    return DOCKER_HUB_HOST if domain == "docker.io" else domain


def auth_key(domain: str) -> str:
    """The key of a registry's entry in ~/.docker/config.json and in X-Registry-Auth."""
    return DOCKER_HUB_AUTH_KEY if domain == "docker.io" else domain


def normalize_server(server: str) -> str:
    """`https://host:5000/v2/` and `host:5000` name the same registry, as in `docker login`."""
    s = server.strip()
    if s in (
        "",
        "docker.io",
        "index.docker.io",
        "registry-1.docker.io",
        DOCKER_HUB_AUTH_KEY,
        "https://index.docker.io/v1",
        "https://registry-1.docker.io",
    ):
        return "docker.io"
    if "://" in s:
        s = urlsplit(s).netloc
    return s.rstrip("/").split("/", 1)[0]


@dataclass(frozen=True, slots=True)
class Endpoint:
    base: str  # https://host:port
    verify: bool
    mirror: bool = False

    @property
    def host(self) -> str:
        return urlsplit(self.base).netloc


__all__ = [
    "DOCKER_HUB_AUTH_KEY",
    "DOCKER_HUB_HOST",
    "Endpoint",
    "RegistryOptions",
    "auth_key",
    "normalize_server",
    "origin",
    "registry_host",
]
