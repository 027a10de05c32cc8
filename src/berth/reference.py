"""Image references as Docker reads them: `busybox` is `docker.io/library/busybox:latest`.

Imports only `errors`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from berth.errors import InvalidArgument

DEFAULT_DOMAIN = "docker.io"
_LEGACY_DOMAIN = "index.docker.io"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_PATH_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_DOMAIN_RE = re.compile(
    r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])"
    r"(?::[0-9]+)?$"
)
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
_ID_RE = re.compile(r"^[a-f0-9]{64}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Reference:
    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        """The full repository name, `docker.io/library/busybox`."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_repository(self) -> str:
        """The name Docker shows: `busybox`, `user/app`, `host:5000/app`."""
        if self.domain == DEFAULT_DOMAIN:
            if self.path.startswith("library/") and self.path.count("/") == 1:
                return self.path[len("library/") :]
            return self.path
        return self.repository

    def __str__(self) -> str:
        s = self.repository
        if self.tag:
            s += ":" + self.tag
        if self.digest:
            s += "@" + self.digest
        return s

    @property
    def familiar(self) -> str:
        s = self.familiar_repository
        if self.tag:
            s += ":" + self.tag
        if self.digest:
            s += "@" + self.digest
        return s


def parse(name: str, *, default_tag: bool = True) -> Reference:
    """Parse and normalise a reference; raises InvalidArgument with Docker's wording."""
    if not name or name != name.strip():
        raise InvalidArgument(
            f'invalid reference format: "{name}"' if name else "invalid reference format"
        )
    rest = name
    digest = None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST_RE.match(digest):
            raise InvalidArgument(f"invalid reference format: {name}")
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG_RE.match(tag):
            raise InvalidArgument(f"invalid reference format: {name}")
    first, _, remainder = rest.partition("/")
    if remainder and (
        "." in first or ":" in first or first == "localhost" or first != first.lower()
    ):
        domain, path = first, remainder
        if not _DOMAIN_RE.match(domain):
            raise InvalidArgument(f"invalid reference format: {name}")
    else:
        domain, path = DEFAULT_DOMAIN, rest
    if domain == _LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if path != path.lower():
        raise InvalidArgument(
            f"invalid reference format: repository name ({path}) must be lowercase"
        )
    if not _PATH_RE.match(path):
        raise InvalidArgument(f"invalid reference format: {name}")
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = "library/" + path
    if len(domain) + 1 + len(path) > 255:
        raise InvalidArgument(
            "invalid reference format: repository name must not be more than 255 characters"
        )
    if tag is None and digest is None and default_tag:
        tag = "latest"
    return Reference(domain=domain, path=path, tag=tag, digest=digest)


def is_full_id(s: str) -> bool:
    return bool(_ID_RE.match(s.removeprefix("sha256:")))


def validate_tag(tag: str) -> str:
    if not _TAG_RE.match(tag):
        raise InvalidArgument(f"invalid tag format: {tag}")
    return tag


__all__ = ["Reference", "parse", "is_full_id", "validate_tag", "DEFAULT_DOMAIN"]
