"""A volume as the volume service keeps it: `VolumeRecord` is the truth, stored as its own
document; Docker's JSON (`CreatedAt`, `Mountpoint`, ...) is made from it at the API edge.

A data root written before the record existed holds Docker's inspect JSON as each volume's
document: `VolumeRecord.from_doc` reads both.

Imports nothing of berth's.
"""

from __future__ import annotations

import calendar
import enum
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Docker's label of an anonymous volume (`-v /path`, an image's VOLUME): shown among the
# labels, kept here as the record's `anonymous` flag
ANONYMOUS = "com.docker.volume.anonymous"
# the version of the stored document; the Docker-shaped documents before it have none
DOC_VERSION = 1


class VolumeScope(enum.Enum):
    """Where a volume's name is known: this host (the local driver), or the whole cluster."""

    LOCAL = "local"
    GLOBAL = "global"


@dataclass(frozen=True, slots=True, kw_only=True)
class VolumeRecord:
    name: str
    mountpoint: str  # the directory containers see (ROOT/NAME/_data)
    driver: str = "local"
    # the driver's options as given (DriverOpts); the local driver's are type, device, o
    options: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)  # the user's, without ANONYMOUS
    scope: VolumeScope = VolumeScope.LOCAL
    created: int = 0  # seconds since the epoch
    anonymous: bool = False  # made for one container: `rm -v` and prune take it

    # --- the local driver's options ------------------------------------------------------------
    @property
    def fs_type(self) -> str:
        """The filesystem mounted per use (`type=tmpfs`, `type=nfs`); "" for a directory."""
        t = self.options.get("type", "")
        return "" if t == "none" else t

    @property
    def device(self) -> str:
        return self.options.get("device", "")

    @property
    def mount_options(self) -> list[str]:
        return [x for x in self.options.get("o", "").split(",") if x]

    @property
    def is_directory(self) -> bool:
        """A plain directory under the volume root (no filesystem or device of its own): it
        can be measured and filled from an image."""
        return not self.options.get("type") and not self.device

    def all_labels(self) -> dict[str, str]:
        """The labels as Docker shows them: the anonymous marker among them."""
        return {**self.labels, **({ANONYMOUS: ""} if self.anonymous else {})}

    # --- the stored document ---------------------------------------------------------------------
    def to_doc(self) -> dict[str, Any]:
        return {
            "v": DOC_VERSION,
            "name": self.name,
            "mountpoint": self.mountpoint,
            "driver": self.driver,
            "options": dict(self.options),
            "labels": dict(self.labels),
            "scope": self.scope.value,
            "created": self.created,
            "anonymous": self.anonymous,
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> VolumeRecord:
        """A stored document: this record's (`v`), or the Docker-shaped one berth stored
        before it (Name, Mountpoint, Options, Labels, CreatedAt, ...)."""
        if "v" in doc:
            return cls(
                name=str(doc["name"]),
                mountpoint=str(doc["mountpoint"]),
                driver=str(doc.get("driver") or "local"),
                options=_strings(doc.get("options")),
                labels=_strings(doc.get("labels")),
                scope=VolumeScope(doc.get("scope") or "local"),
                created=int(doc.get("created") or 0),
                anonymous=bool(doc.get("anonymous")),
            )
        labels = _strings(doc.get("Labels"))
        anonymous = ANONYMOUS in labels
        labels.pop(ANONYMOUS, None)
        return cls(
            name=str(doc["Name"]),
            mountpoint=str(doc.get("Mountpoint") or ""),
            driver=str(doc.get("Driver") or "local"),
            options=_strings(doc.get("Options")),
            labels=labels,
            scope=VolumeScope(doc.get("Scope") or "local"),
            created=parse_created(str(doc.get("CreatedAt") or "")),
            anonymous=anonymous,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class VolumeUsage:
    """`system df`'s line of a volume."""

    volume: VolumeRecord
    size: int  # bytes on disk; -1 where it cannot be known (tmpfs, device)
    ref_count: int  # containers that mount it


@dataclass(frozen=True, slots=True, kw_only=True)
class VolumePruneReport:
    deleted: list[str]
    reclaimed: int  # bytes


def format_created(ts: int) -> str:
    """Docker's `CreatedAt` of a volume: RFC 3339 to the second, in UTC."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def parse_created(s: str) -> int:
    """The seconds of a `CreatedAt` berth wrote (UTC, `Z`); 0 if it is not one."""
    try:
        return calendar.timegm(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return 0


def _strings(m: object) -> dict[str, str]:
    if not isinstance(m, Mapping):
        return {}
    return {str(k): str(v) for k, v in m.items()}


__all__ = [
    "ANONYMOUS",
    "VolumePruneReport",
    "VolumeRecord",
    "VolumeScope",
    "VolumeUsage",
    "format_created",
    "parse_created",
]
