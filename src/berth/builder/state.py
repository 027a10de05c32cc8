"""What one build works with: its options, the state of a stage, and the errors of a step.

Imports `errors`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from berth.errors import BerthError, InvalidArgument

Message = dict[str, Any]
PROXY_ARGS = {
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
}
DEFAULT_SHELL = ["/bin/sh", "-c"]
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# BuildKit's entitlements that berth's builder knows; only network.host does anything here
NETWORK_HOST = "network.host"
ENTITLEMENTS = (NETWORK_HOST,)


def check_entitlements(names: list[str]) -> list[str]:
    """Entitlement names as `--allow` and `--allow-insecure-entitlement` give them."""
    for n in names:
        if n == "security.insecure":
            raise InvalidArgument(
                "entitlement security.insecure is not supported: berth's "
                "builder has no RUN --security=insecure"
            )
        if n not in ENTITLEMENTS:
            raise InvalidArgument(f"unknown entitlement {n!r} (berth knows {NETWORK_HOST})")
    return sorted(set(names))


class BuildError(BerthError):
    """A failed step. `code` is a RUN's exit status, for errorDetail."""

    status = 400

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass(slots=True)
class Options:
    tags: list[str] = field(default_factory=list)
    dockerfile: str = "Dockerfile"
    buildargs: dict[str, str | None] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    target: str = ""
    nocache: bool = False
    pull: bool = False
    quiet: bool = False
    cachefrom: list[str] = field(default_factory=list)
    network: str = ""
    platform: str = ""
    rm: bool = True
    forcerm: bool = False
    secrets: dict[str, bytes] = field(default_factory=dict)
    registry_auth: dict[str, Any] = field(default_factory=dict)
    # entitlements the client asks for (`berth build --allow network.host`); a RUN step gets
    # one only if the daemon grants it too (Builder.entitlements)
    allow: list[str] = field(default_factory=list)
    # `--add-host name:ip` (`extrahosts`): lines of each RUN step's /etc/hosts; the ip may be
    # `host-gateway`
    extra_hosts: list[str] = field(default_factory=list)


@dataclass(slots=True)
class State:
    """Where a stage is: the image of its last step (None on scratch before any step)."""

    image_id: str | None
    config: dict[str, Any]  # the whole image config (architecture, config, history...)
    layers: list[str]  # chain IDs
    cmd_set: bool = False  # a CMD in this stage (ENTRYPOINT then keeps it)
    amended: str = ""  # what the builder changed in the config of image_id

    @property
    def cfg(self) -> dict[str, Any]:
        cfg: dict[str, Any] = self.config.setdefault("config", {})
        return cfg

    @property
    def parent_key(self) -> str:
        base = self.image_id or f"scratch:{self.config.get('os')}/{self.config.get('architecture')}"
        return base + self.amended


__all__ = [
    "Options",
    "State",
    "BuildError",
    "check_entitlements",
    "Message",
    "PROXY_ARGS",
    "DEFAULT_SHELL",
    "DEFAULT_PATH",
    "NETWORK_HOST",
    "ENTITLEMENTS",
]
