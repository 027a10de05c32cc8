"""What berth-runtime checks of a `config.json` before it makes anything: the `ociVersion` it
understands, the namespace list, and the fields it does not implement, each refused by name
(README: "Where berth-runtime differs from runc"). Returns the warnings for what it ignores.

Imports `linux` (for the namespace types) only: berth-runtime loads it on every `create`.
"""

from __future__ import annotations

import os

from berth import linux

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# the runtime-spec major version berth-runtime implements (1.0.2, with the later 1.x fields
# it knows of); another major is refused, as its fields may mean something else
SPEC_MAJOR = 1
CLONE_NEWTIME = 0x80
NAMESPACE_TYPES = (*linux.NAMESPACE_FLAGS, "time")

# fields of runtime-spec 1.x that berth-runtime does not implement: a container that asks
# for one is refused rather than started without it
_NOT_IMPLEMENTED = (
    (("linux", "intelRdt"), "Intel RDT (resctrl) is not supported by berth-runtime"),
    (
        ("linux", "netDevices"),
        "moving network devices into the container is not supported by berth-runtime",
    ),
    (("linux", "memoryPolicy"), "NUMA memory policies are not supported by berth-runtime"),
    (
        ("linux", "seccomp", "listenerPath"),
        "seccomp notify listeners are not supported by berth-runtime",
    ),
    (("process", "execCPUAffinity"), "exec CPU affinity is not supported by berth-runtime"),
    (("linux", "seccomp", "flags"), "seccomp filter flags are not supported by berth-runtime"),
)
_RLIMIT_TYPES = (
    "RLIMIT_NOFILE",
    "RLIMIT_NPROC",
    "RLIMIT_CORE",
    "RLIMIT_STACK",
    "RLIMIT_MEMLOCK",
    "RLIMIT_AS",
    "RLIMIT_CPU",
    "RLIMIT_FSIZE",
    "RLIMIT_DATA",
    "RLIMIT_NICE",
    "RLIMIT_RTPRIO",
    "RLIMIT_MSGQUEUE",
    "RLIMIT_SIGPENDING",
)


class SpecError(Exception):
    """A config.json berth-runtime refuses."""


def _get(spec: dict[str, Any], path: tuple[str, ...]) -> object:
    cur: object = spec
    for key in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(key)
    return cur


def check_version(version: object) -> None:
    """`ociVersion`: SemVer 2.0.0, major 1. Missing is let through, as runc does."""
    if version is None:
        return
    if not isinstance(version, str) or not version:
        raise SpecError(f"invalid ociVersion {version!r}")
    core = version.split("+", 1)[0].split("-", 1)[0].split(".")
    if len(core) != 3 or not all(p.isdigit() and (p == "0" or not p.startswith("0")) for p in core):
        raise SpecError(f"invalid ociVersion {version!r}: not a SemVer 2.0.0 version")
    if int(core[0]) != SPEC_MAJOR:
        raise SpecError(
            f"unsupported ociVersion {version}: berth-runtime implements the "
            f"runtime-spec {SPEC_MAJOR}.x"
        )


def check(spec: dict[str, Any]) -> list[str]:
    """Raise SpecError for what berth-runtime refuses; return warnings for what it ignores."""
    if not isinstance(spec, dict):
        raise SpecError("config.json must hold an object")
    check_version(spec.get("ociVersion"))
    lx = spec.get("linux") or {}
    if not isinstance(lx, dict):
        raise SpecError("linux must be an object")
    seen = set()
    for ns in lx.get("namespaces") or []:
        typ = ns.get("type") if isinstance(ns, dict) else None
        if typ not in NAMESPACE_TYPES:
            raise SpecError(f"unknown namespace type {typ!r}")
        if typ in seen:
            raise SpecError(f"duplicated namespace type {typ!r}")
        seen.add(typ)
    if lx.get("timeOffsets") and not any(
        ns.get("type") == "time" and not ns.get("path") for ns in lx.get("namespaces") or []
    ):
        raise SpecError("linux.timeOffsets needs a new time namespace")
    for path, why in _NOT_IMPLEMENTED:
        if _get(spec, path) not in (None, {}, []):
            raise SpecError(f"{'.'.join(path)}: {why}")
    for rl in _get(spec, ("process", "rlimits")) or []:  # type: ignore[attr-defined]
        typ = rl.get("type") if isinstance(rl, dict) else None
        if typ not in _RLIMIT_TYPES:
            raise SpecError(f"process.rlimits: unknown type {typ!r}")
    warnings = []
    labels = [
        f
        for f, v in (
            ("linux.mountLabel", lx.get("mountLabel")),
            ("process.selinuxLabel", _get(spec, ("process", "selinuxLabel"))),
        )
        if v
    ]
    if labels:
        if selinux_enabled():
            raise SpecError(
                f"{', '.join(labels)}: SELinux labels are not supported by berth-runtime"
            )
        warnings.append(f"{', '.join(labels)} ignored: SELinux is not enabled on this host")
    if _get(spec, ("process", "apparmorProfile")) and not apparmor_enabled():
        raise SpecError("process.apparmorProfile: AppArmor is not enabled on this host")
    sched = _get(spec, ("process", "scheduler"))
    if isinstance(sched, dict) and (
        sched.get("flags")
        or sched.get("runtime")
        or sched.get("deadline")
        or sched.get("period")
        or sched.get("policy") == "SCHED_DEADLINE"
    ):
        raise SpecError(
            "process.scheduler: SCHED_DEADLINE and scheduler flags "
            "(sched_setattr) are not supported by berth-runtime"
        )
    for m in spec.get("mounts") or []:
        if isinstance(m, dict) and (m.get("uidMappings") or m.get("gidMappings")):
            raise SpecError(
                f"mounts: idmapped mounts ({m.get('destination')}) are not "
                "supported by berth-runtime"
            )
    return warnings


def selinux_enabled() -> bool:
    return os.path.exists("/sys/fs/selinux/enforce")


def apparmor_enabled() -> bool:
    return linux.apparmor_enabled()


__all__ = [
    "SpecError",
    "check",
    "check_version",
    "selinux_enabled",
    "apparmor_enabled",
    "SPEC_MAJOR",
    "CLONE_NEWTIME",
    "NAMESPACE_TYPES",
]
