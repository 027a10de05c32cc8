"""An image as the image service keeps it: `Image` (its ID, layers, size) with `ImageConfig`,
the typed reading of its config document (OCI image-spec's, which Docker's extends), and the
formats its documents use (RFC 3339 times, Go's architecture names). Docker's JSON of an image
(inspect, history, the list) is made from these at the API edge.

The config document's bytes are the image's identity (the ID is their digest): they are kept as
they came, never written again from the typed reading.

Imports nothing of berth's.
"""

from __future__ import annotations

import platform
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_ARCH = {
    "x86_64": "amd64",
    "aarch64": "arm64",
    "armv7l": "arm",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


def host_arch() -> str:
    m = platform.machine()
    return _ARCH.get(m, m)


def rfc3339(ts: float) -> str:
    secs = int(ts)
    nanos = int(round((ts - secs) * 1e9))
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    return f"{base}.{nanos:09d}Z" if nanos else base + "Z"


def parse_rfc3339(s: str) -> float:
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", s or "")
    if not m:
        return 0.0
    import calendar

    t = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
    frac = float("0." + m.group(2)) if m.group(2) else 0.0
    if m.group(3) != "Z":
        sign = 1 if m.group(3)[0] == "+" else -1
        hh, mm = m.group(3)[1:].split(":")
        t -= sign * (int(hh) * 3600 + int(mm) * 60)
    return t + frac


@dataclass(frozen=True, slots=True, kw_only=True)
class RunConfig:
    """The config document's `config`: what a container made from the image starts with. The
    fields berth reads are typed; the rest (Hostname, Healthcheck, Shell, ArgsEscaped, ...)
    stay in `other` as they came. None is a field the document does not have."""

    user: str = ""
    env: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    working_dir: str = ""
    labels: Mapping[str, str] | None = None
    exposed_ports: tuple[str, ...] | None = None  # "80/tcp"
    volumes: tuple[str, ...] | None = None
    stop_signal: str | None = None
    other: Mapping[str, Any] = field(default_factory=dict)

    _KEYS = (
        "User",
        "Env",
        "Cmd",
        "Entrypoint",
        "WorkingDir",
        "Labels",
        "ExposedPorts",
        "Volumes",
        "StopSignal",
    )

    @classmethod
    def from_doc(cls, doc: object) -> RunConfig:
        if not isinstance(doc, Mapping):
            return cls()
        labels = doc.get("Labels")
        ports, vols = doc.get("ExposedPorts"), doc.get("Volumes")
        return cls(
            user=_str(doc.get("User")),
            env=_strs(doc.get("Env")),
            cmd=_strs(doc.get("Cmd")),
            entrypoint=_strs(doc.get("Entrypoint")),
            working_dir=_str(doc.get("WorkingDir")),
            labels={str(k): _str(v) for k, v in labels.items()}
            if isinstance(labels, Mapping)
            else None,
            exposed_ports=tuple(str(p) for p in ports) if isinstance(ports, Mapping) else None,
            volumes=tuple(str(v) for v in vols) if isinstance(vols, Mapping) else None,
            stop_signal=_str(doc["StopSignal"]) if "StopSignal" in doc else None,
            other={k: v for k, v in doc.items() if k not in cls._KEYS},
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryEntry:
    """One step of the image's history: a layer, or a step that made none (`empty_layer`)."""

    created: float = 0.0  # seconds since the epoch; 0 where unknown
    created_by: str = ""
    comment: str = ""
    author: str = ""
    empty_layer: bool = False

    @classmethod
    def from_doc(cls, doc: object) -> HistoryEntry:
        if not isinstance(doc, Mapping):
            return cls()
        return cls(
            created=parse_rfc3339(_str(doc.get("created"))),
            created_by=_str(doc.get("created_by")),
            comment=_str(doc.get("comment")),
            author=_str(doc.get("author")),
            empty_layer=bool(doc.get("empty_layer")),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageConfig:
    """The typed reading of an image's config document."""

    architecture: str = ""
    os: str = ""
    variant: str = ""
    created: str = ""  # as written (RFC 3339): Docker shows it as it is
    author: str = ""
    comment: str = ""
    config: RunConfig = field(default_factory=RunConfig)
    diff_ids: tuple[str, ...] = ()
    history: tuple[HistoryEntry, ...] = ()

    @classmethod
    def from_doc(cls, doc: object) -> ImageConfig:
        """Any document: what is missing or of the wrong type reads as empty (an image from a
        registry or an archive is not trusted to have the shape the spec gives it)."""
        if not isinstance(doc, Mapping):
            return cls()
        rootfs = doc.get("rootfs")
        diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, Mapping) else None
        history = doc.get("history")
        return cls(
            architecture=_str(doc.get("architecture")),
            os=_str(doc.get("os")),
            variant=_str(doc.get("variant")),
            created=_str(doc.get("created")),
            author=_str(doc.get("author")),
            comment=_str(doc.get("comment")),
            config=RunConfig.from_doc(doc.get("config")),
            diff_ids=_strs(diff_ids) or (),
            history=tuple(HistoryEntry.from_doc(h) for h in history)
            if isinstance(history, list)
            else (),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Image:
    id: str
    config: dict[str, Any]  # the config document as stored (the builder edits a copy)
    layers: list[str]  # chain IDs, bottom first
    size: int
    created: int

    @property
    def spec(self) -> ImageConfig:
        """The config document, typed."""
        return ImageConfig.from_doc(self.config)

    @property
    def container_config(self) -> dict[str, Any]:
        c: dict[str, Any] = self.config.get("config") or {}
        return c


@dataclass(frozen=True, slots=True)
class Removed:
    """A line of rmi's (and prune's) answer: a reference untagged, or an image deleted."""

    ref: str  # the familiar reference untagged, or the image's ID
    deleted: bool = False  # True: the image itself went


@dataclass(frozen=True, slots=True)
class ImageUser:
    """A container made from an image, as the image service sees it (rmi's conflicts, the
    list's counts): the daemon's wiring asks the container service."""

    id: str
    running: bool


def _str(v: object) -> str:
    return v if isinstance(v, str) else ""


def _strs(v: object) -> tuple[str, ...] | None:
    return tuple(str(x) for x in v) if isinstance(v, list) else None


__all__ = [
    "HistoryEntry",
    "Image",
    "ImageConfig",
    "ImageUser",
    "Removed",
    "RunConfig",
    "host_arch",
    "parse_rfc3339",
    "rfc3339",
]
