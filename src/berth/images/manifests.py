"""Manifests and indexes as a registry sends them, read into typed descriptors. A registry is
not trusted: every digest is checked for its form and every field for its type before anything
is fetched by it (an index's entry names the next URL asked for).

Imports `oci`, `errors`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from berth import oci
from berth.errors import InvalidArgument

MANIFEST_TYPES = (oci.MEDIA_OCI_MANIFEST, oci.MEDIA_DOCKER_MANIFEST)
INDEX_TYPES = (oci.MEDIA_OCI_INDEX, oci.MEDIA_DOCKER_LIST)


@dataclass(frozen=True, slots=True, kw_only=True)
class Platform:
    """What an image runs on (OCI image-spec's platform): "" and () are fields not set."""

    os: str = ""
    architecture: str = ""
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()

    @classmethod
    def from_doc(cls, d: dict[str, Any]) -> Platform:
        """An index entry's `platform`, or the same fields of an image config."""

        def s(key: str) -> str:
            v = d.get(key)
            return v if isinstance(v, str) else ""

        feats = d.get("os.features")
        return cls(
            os=s("os"),
            architecture=s("architecture"),
            variant=s("variant"),
            os_version=s("os.version"),
            os_features=tuple(str(f) for f in feats) if isinstance(feats, list) else (),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Descriptor:
    """A blob or manifest a manifest points at (OCI image-spec's descriptor)."""

    media_type: str
    digest: str  # sha256:HEX, checked
    size: int  # 0 where the document did not say
    platform: Platform | None = None  # an index's entries

    @property
    def short(self) -> str:
        """The 12 hex digits Docker's progress shows."""
        return self.digest[7:19]

    def to_doc(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "size": self.size, "digest": self.digest}

    @classmethod
    def from_doc(cls, d: object, what: str) -> Descriptor:
        if not isinstance(d, dict) or not isinstance(d.get("digest"), str):
            raise InvalidArgument(f"{what}: malformed descriptor")
        oci.validate_digest(d["digest"])
        size, media, platform = d.get("size", 0), d.get("mediaType", ""), d.get("platform")
        if (
            not isinstance(size, int)
            or isinstance(size, bool)
            or size < 0
            or not isinstance(media, str)
        ):
            raise InvalidArgument(f"{what}: malformed descriptor of {d['digest']}")
        return cls(
            media_type=media,
            digest=d["digest"],
            size=size,
            platform=Platform.from_doc(platform) if isinstance(platform, dict) else None,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    """An image manifest: its config blob and its layers, the bottom first."""

    config: Descriptor
    layers: tuple[Descriptor, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Index:
    """An index (a manifest list): one manifest per platform."""

    manifests: tuple[Descriptor, ...]

    def select(self, os: str, arch: str, variant: str) -> Descriptor | None:
        """The entry for this platform: an exact variant first, else one of the architecture
        when no variant is asked for (arm64's v8 is arm64's default)."""
        best = None
        for e in self.manifests:
            p = e.platform or Platform()
            if p.os != os or p.architecture != arch:
                continue
            v = "" if arch == "arm64" and p.variant == "v8" else p.variant
            if variant and v != variant:
                continue
            if v == variant:
                return e
            best = best or e
        return best


def document(raw: bytes, what: str) -> dict[str, Any]:
    """A registry's JSON document: an object, or an error that says what it was."""
    try:
        doc = json.loads(raw)
    except ValueError:
        raise InvalidArgument(f"{what}: not JSON") from None
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{what}: not a JSON object")
    return doc


def is_index(media: str, doc: dict[str, Any]) -> bool:
    """An index by its media type, or, with none given, by its shape (as containerd)."""
    return media in INDEX_TYPES or (not media and "manifests" in doc)


def parse_index(doc: dict[str, Any], what: str) -> Index:
    entries = doc.get("manifests")
    if not isinstance(entries, list):
        raise InvalidArgument(f"{what}: malformed index")
    return Index(manifests=tuple(Descriptor.from_doc(e, what) for e in entries))


def parse_manifest(doc: dict[str, Any], what: str) -> Manifest:
    layers = doc.get("layers") or []
    if not isinstance(layers, list):
        raise InvalidArgument(f"{what}: malformed manifest")
    return Manifest(
        config=Descriptor.from_doc(doc.get("config"), what),
        layers=tuple(Descriptor.from_doc(la, what) for la in layers),
    )


__all__ = [
    "Descriptor",
    "INDEX_TYPES",
    "Index",
    "MANIFEST_TYPES",
    "Manifest",
    "Platform",
    "document",
    "is_index",
    "parse_index",
    "parse_manifest",
]
