"""Devices: the nodes a container's /dev gets (runtime-spec "Default Devices" and
`linux.devices`), and the device cgroup rules runc adds for them.

Imports `linux`.
"""

from __future__ import annotations

import os
import stat

from berth import linux

# the devices every container gets (runtime-spec "Default Devices")
_DEFAULT_DEVICES = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
]


def cgroup_resources(lx: dict, *, runc_allowed: bool = False) -> dict:  # type: ignore[type-arg]
    """The spec's resources, with the device rules runc adds: the default devices and those
    the spec's `linux.devices` creates stay usable whatever the rules before them deny.
    `runc_allowed` (berth-runtime, runc's stand-in) adds the rest of runc's allowed list:
    mknod of any device, and /dev/net/tun."""
    res = dict(lx.get("resources") or {})
    if res.get("devices"):
        extra = [
            {"allow": True, "type": "c", "major": ma, "minor": mi, "access": "rwm"}
            for _, ma, mi in _DEFAULT_DEVICES
        ]
        if runc_allowed:
            extra += [
                {"allow": True, "type": t, "major": -1, "minor": -1, "access": "m"}
                for t in ("c", "b")
            ]
            extra.append({"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"})
        extra += [
            {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
            {"allow": True, "type": "c", "major": 136, "minor": -1, "access": "rwm"},
        ]
        # a device the spec creates is usable, unless a rule of its own says how
        ruled = {(r.get("type"), r.get("major"), r.get("minor")) for r in res["devices"]}
        # (a FIFO, "p", needs no rule; "u", unbuffered, is a character device to the cgroup)
        extra += [
            {
                "allow": True,
                "type": _rule_type(d),
                "major": d["major"],
                "minor": d["minor"],
                "access": "rwm",
            }
            for d in lx.get("devices") or []
            if d.get("type", "c") != "p" and (_rule_type(d), d["major"], d["minor"]) not in ruled
        ]
        res["devices"] = [*res["devices"], *extra]
    return res


def _rule_type(device: dict) -> str:  # type: ignore[type-arg]
    return "c" if device.get("type", "c") == "u" else str(device.get("type", "c"))


def setup_dev(rootfs: str, lx: dict) -> None:  # type: ignore[type-arg]
    dev = os.path.join(rootfs, "dev")
    if not os.path.ismount(dev):
        return  # the spec gave no /dev of its own: leave the image's
    devices = [
        (
            d["path"].removeprefix("/dev/"),
            d["major"],
            d["minor"],
            d.get("type", "c"),
            d.get("fileMode", 0o666),
            d.get("uid", 0),
            d.get("gid", 0),
        )
        for d in lx.get("devices", [])
    ]
    names = {d[0] for d in devices}
    devices += [(n, ma, mi, "c", 0o666, 0, 0) for n, ma, mi in _DEFAULT_DEVICES if n not in names]
    old = os.umask(0)
    try:
        for name, major, minor, typ, mode, uid, gid in devices:
            path = linux.secure_join(rootfs, "/dev/" + name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            # runtime-spec device types: c and u character, b block, p FIFO
            kind = {"b": stat.S_IFBLK, "p": stat.S_IFIFO}.get(typ, stat.S_IFCHR)
            try:
                os.mknod(
                    path, (mode & 0o7777) | kind, 0 if typ == "p" else os.makedev(major, minor)
                )
            except FileExistsError:
                continue
            except PermissionError:
                # in a user namespace no device node can be made: bind the host's, as runc
                host = "/dev/" + name
                if not os.path.exists(host):
                    continue
                with open(path, "a"):
                    pass
                linux.mount(host, path, None, linux.MS_BIND)
                continue
            os.chown(path, uid, gid)
    finally:
        os.umask(old)
    links = [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ]
    if os.path.exists("/proc/kcore"):  # runc links it only where the kernel has one
        links.append(("core", "/proc/kcore"))
    for name, target in links:
        try:
            os.symlink(target, os.path.join(dev, name))
        except FileExistsError:
            pass
    if os.path.isdir(os.path.join(dev, "pts")):
        try:
            os.symlink("pts/ptmx", os.path.join(dev, "ptmx"))
        except FileExistsError:
            pass
