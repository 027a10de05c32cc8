"""One cgroup manager interface over cgroup v1 and v2: create with limits, add a process,
read OOM kills and stats, freeze, remove.

Imports `errors` and `linux`. The manager is picked by `detect()` (crun's get_cgroup_manager): v2 where
/sys/fs/cgroup is a cgroup2 mount, v1 otherwise. Both take a root so unit tests run them on a fake
cgroupfs in a temporary directory.

Device rules: v1 writes them to the devices controller; v2, which has none, attaches a BPF
device program built from them (`devices`, loaded through `linux.bpf`), and refuses to create
the cgroup when it cannot.

The package's modules: `resources` (the limits, the stats and the manager interface), `v1` and
`v2` (the two managers), `files` (reading and writing cgroup files) and `devices` (the BPF
device program). Their public names are all here.
"""

from __future__ import annotations

import os

from berth.cgroups.files import read
from berth.cgroups.resources import (
    BLKIO_WEIGHT_UNSUPPORTED,
    THROTTLE_KINDS,
    CgroupManager,
    Resources,
    Stats,
    kernel_memory_enforced,
)
from berth.cgroups.v1 import V1, v1_mounts
from berth.cgroups.v2 import V2


def is_v2(root: str = "/sys/fs/cgroup") -> bool:
    try:
        return any(
            line.split(" - ")[1].startswith("cgroup2 ")
            for line in read("/proc/self/mountinfo").splitlines()
            if f" {root} " in line.split(" - ")[0]
        )
    except IndexError:
        return False


def own_cgroups(self_cgroup: str = "/proc/self/cgroup") -> dict[str, str]:
    """controller (or "" for the unified hierarchy) -> this process's cgroup in it."""
    out: dict[str, str] = {}
    for line in read(self_cgroup).splitlines():
        _, ctrls, cg = line.split(":", 2)
        for c in ctrls.split(",") if ctrls else [""]:
            out[c] = cg.strip("/")
    return out


def for_spec(path: str, bases: dict[str, str] | None = None) -> CgroupManager:
    """The manager for a runtime-spec cgroupsPath: an absolute one from each hierarchy's root,
    a relative one as runc reads it, or under `bases` (what own_cgroups() said for the caller
    that created it): on v1 under the caller's own cgroup in each hierarchy; on v2 under its
    parent, since the caller's own holds the caller, and a v2 cgroup with processes cannot
    hand controllers to its children."""
    if path.startswith("/"):
        return detect(path.strip("/"))
    own = bases if bases is not None else own_cgroups()
    if is_v2():
        parent = os.path.dirname("/" + own.get("", "").strip("/"))
        return V2(f"{parent}/{path}".strip("/"))
    return V1(path, mounts=v1_mounts(), bases=own)


def remove_parent(path: str) -> None:
    """Remove the daemon's parent cgroup where it is empty (at shutdown); a parent that still
    holds running containers stays."""
    for d in detect(path).dirs():
        try:
            os.rmdir(d)
        except OSError:
            pass


def detect(path: str) -> CgroupManager:
    """The manager for this machine: v2 where /sys/fs/cgroup is cgroup2, else v1."""
    if is_v2():
        return V2(path)
    return V1(path, mounts=v1_mounts())


def dirs(path: str) -> list[str]:
    """The directories of the cgroup `path` (from each hierarchy's root) on this machine: one
    a v1 controller's hierarchy (and a hybrid layout's unified one), or the one of v2."""
    return detect(path).dirs()


__all__ = [
    "Resources",
    "Stats",
    "kernel_memory_enforced",
    "CgroupManager",
    "V1",
    "V2",
    "detect",
    "dirs",
    "is_v2",
    "THROTTLE_KINDS",
    "BLKIO_WEIGHT_UNSUPPORTED",
    "remove_parent",
    "for_spec",
    "own_cgroups",
    "v1_mounts",
]
