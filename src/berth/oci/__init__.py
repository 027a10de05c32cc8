"""OCI image-spec bits: media types, digests, chain IDs, the canonical JSON berth hashes;
runtime-spec data in `oci.defaults` (Docker's default spec) and `oci.sysctl` (which sysctls a
container may set).

Imports only `errors`. Lean at import (hashlib, json and re come with their first use):
berth-runtime imports this package's runtime-spec modules on every `create`.
"""

from __future__ import annotations

from berth.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MEDIA_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"

_HEX = frozenset("0123456789abcdef")


def sha256_digest(data: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()


def validate_digest(d: str) -> str:
    # r"^sha256:[a-f0-9]{64}$", without importing re
    if not (isinstance(d, str) and len(d) == 71 and d.startswith("sha256:") and set(d[7:]) <= _HEX):
        raise InvalidArgument(f"invalid digest: {d!r}")
    return d


def hex_of(d: str) -> str:
    return validate_digest(d).split(":", 1)[1]


def chain_ids(diff_ids: list[str]) -> list[str]:
    """ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    out: list[str] = []
    for d in diff_ids:
        out.append(d if not out else sha256_digest(f"{out[-1]} {d}".encode()))
    return out


def canonical_json(obj: Any) -> bytes:
    import json

    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


__all__ = [n for n in list(globals()) if n.startswith("MEDIA_")] + [
    "sha256_digest",
    "validate_digest",
    "hex_of",
    "chain_ids",
    "canonical_json",
]
