"""An image as the image service keeps it, and the formats its documents use (RFC 3339 times,
Go's architecture names).

Imports nothing of berth's.
"""

from __future__ import annotations

import platform
import re
import time
from dataclasses import dataclass
from typing import Any

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
         "s390x": "s390x", "riscv64": "riscv64"}


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
class Image:
    id: str
    config: dict[str, Any]       # the OCI image config document
    layers: list[str]            # chain IDs, bottom first
    size: int
    created: int

    @property
    def container_config(self) -> dict[str, Any]:
        c: dict[str, Any] = self.config.get("config") or {}
        return c



__all__ = ["Image", "host_arch", "parse_rfc3339", "rfc3339"]
