"""The spec's mounts, made inside a new mount namespace before pivot_root: each onto its
destination resolved inside the rootfs by fd, /sys/fs/cgroup as runc sets it up, and the
masked and read-only paths after it.

Imports `fs` and `linux`.
"""

from __future__ import annotations

import errno
import os
import stat

from berth import fs, linux

_MOUNT_FLAGS = {
    "ro": (linux.MS_RDONLY, True),
    "rw": (linux.MS_RDONLY, False),
    "nosuid": (linux.MS_NOSUID, True),
    "suid": (linux.MS_NOSUID, False),
    "nodev": (linux.MS_NODEV, True),
    "dev": (linux.MS_NODEV, False),
    "noexec": (linux.MS_NOEXEC, True),
    "exec": (linux.MS_NOEXEC, False),
    "bind": (linux.MS_BIND, True),
    "rbind": (linux.MS_BIND | linux.MS_REC, True),
    "strictatime": (linux.MS_STRICTATIME, True),
}


_PROPAGATION = {
    "private": linux.MS_PRIVATE,
    "rprivate": linux.MS_PRIVATE | linux.MS_REC,
    "slave": linux.MS_SLAVE,
    "rslave": linux.MS_SLAVE | linux.MS_REC,
    "shared": linux.MS_SHARED,
    "rshared": linux.MS_SHARED | linux.MS_REC,
}


def parse_mount_options(options: list[str]) -> tuple[int, int, str]:
    """(flags, propagation flags, data) from runtime-spec mount options."""
    flags = 0
    prop = 0
    data: list[str] = []
    for opt in options:
        if opt in _MOUNT_FLAGS:
            bit, on = _MOUNT_FLAGS[opt]
            flags = (flags | bit) if on else (flags & ~bit)
        elif opt in _PROPAGATION:
            prop = _PROPAGATION[opt]
        else:
            data.append(opt)
    return flags, prop, ",".join(data)


def _mount_cgroups(
    parent: int, name: str, target: int, flags: int, cgroupns: bool = False, source: str = "cgroup"
) -> None:
    """/sys/fs/cgroup as runc sets it up, on the mount point `target` (`name` in `parent`).
    Without a cgroup namespace, on v1: a tmpfs with, for each hierarchy, the container's own
    cgroup directory bound read-only. In a cgroup namespace: fresh cgroup mounts, which show
    the namespace's root only (a bind of "/" there would show the host's whole tree). On v2, a
    fresh cgroup2 mount either way, read-only, as runc 1.1: without a cgroup namespace it shows
    the whole hierarchy (compared in tests/integration/test_runtime_v2_vm.py); where the kernel
    refuses it (a user namespace without a cgroup namespace), runc's fallback, the
    container's own directory bound read-only."""
    own: dict[str, str] = {}
    for line in linux.read_text("/proc/self/cgroup").splitlines():
        _, ctrls, path = line.split(":", 2)
        own[ctrls] = path
    dest = _fd_path(target)
    if "" in own and len(own) == 1:  # cgroup v2
        try:
            linux.mount(
                source,
                dest,
                "cgroup2",
                linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC | linux.MS_RDONLY,
            )
            return
        except OSError as e:
            if cgroupns or e.errno not in (errno.EPERM, errno.EBUSY):
                raise
        linux.mount("/sys/fs/cgroup" + own[""], dest, None, linux.MS_BIND | linux.MS_REC)
        new = _mounted(parent, name, target)
        try:
            linux.mount(
                None,
                _fd_path(new),
                None,
                linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY | flags,
            )
        finally:
            os.close(new)
        return
    linux.mount(
        "tmpfs", dest, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC, "mode=755"
    )
    # a fresh tmpfs of this process's own: paths below it are safe to use
    new = _mounted(parent, name, target)
    try:
        _cgroup_hierarchies(_fd_path(new), own, cgroupns)
    finally:
        os.close(new)


def _cgroup_hierarchies(dest: str, own: dict[str, str], cgroupns: bool) -> None:
    mounts = [line.split(" - ") for line in linux.read_text("/proc/self/mountinfo").splitlines()]
    for left, right in mounts:
        fields = right.split()
        if fields[0] != "cgroup":
            continue
        point = left.split()[4]
        opts = fields[2].split(",")
        key = next((k for k in own if k and set(k.split(",")) <= set(opts)), None)
        if key is None:
            continue
        name = os.path.basename(point)
        target = os.path.join(dest, name)
        os.makedirs(target, exist_ok=True)
        if cgroupns:
            linux.mount(
                "cgroup",
                target,
                "cgroup",
                linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC | linux.MS_RDONLY,
                key,
            )
        else:
            linux.mount(point + own[key], target, None, linux.MS_BIND | linux.MS_REC)
            linux.mount(
                None,
                target,
                None,
                linux.MS_REMOUNT
                | linux.MS_BIND
                | linux.MS_RDONLY
                | linux.MS_NOSUID
                | linux.MS_NODEV
                | linux.MS_NOEXEC,
            )
        if "," in name:  # cpu,cpuacct: the links runc makes for each controller
            for ctrl in name.split(","):
                link = os.path.join(dest, ctrl)
                if not os.path.lexists(link):
                    os.symlink(name, link)


def _fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def _mnt_id(fd: int) -> int:
    for line in linux.read_text(f"/proc/self/fdinfo/{fd}").splitlines():
        if line.startswith("mnt_id:"):
            return int(line.split()[1])
    return -1


def _mounted(parent: int, name: str, under: int) -> int:
    """The mount just made on `name` of `parent`, opened again so that its path leads into it
    (a path through the fd of the mount point leads to what the mount covers). It must be a
    new mount: a name swapped meanwhile is refused, not remounted."""
    fd = os.open(name, fs.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    if _mnt_id(fd) == _mnt_id(under):
        os.close(fd)
        raise OSError(16, f"the mount point {name!r} changed while it was mounted on")  # EBUSY
    return fd


def mount_one(rootfs_fd: int, m: dict, cgroupns: bool = False) -> None:  # type: ignore[type-arg]
    """One mount of the spec, onto its destination resolved inside the rootfs by fd (made where
    missing): never onto a path string, which a container sharing a volume with this one could
    turn into a symlink out of the rootfs between the check and the mount."""
    mtype = m.get("type", "none")
    source = m.get("source", "")
    flags, prop, data = parse_mount_options(m.get("options", []))
    is_bind = bool(flags & linux.MS_BIND)
    src_fd = -1
    if is_bind:
        src_fd = os.open(source, fs.O_PATH | os.O_CLOEXEC)  # the source as it is now
    try:
        directory = not is_bind or stat.S_ISDIR(os.fstat(src_fd).st_mode)
        parent, name, target = fs.make_beneath(rootfs_fd, m["destination"], directory=directory)
        try:
            _mount_at(parent, name, target, mtype, source, src_fd, flags, prop, data, cgroupns)
        finally:
            os.close(parent)
            os.close(target)
    finally:
        if src_fd >= 0:
            os.close(src_fd)


def _mount_at(
    parent: int,
    name: str,
    target: int,
    mtype: str,
    source: str,
    src_fd: int,
    flags: int,
    prop: int,
    data: str,
    cgroupns: bool,
) -> None:
    if mtype in ("cgroup", "cgroup2"):
        _mount_cgroups(parent, name, target, flags & linux.MS_NOSUID, cgroupns, source or "cgroup")
        return
    dest = _fd_path(target)
    if src_fd >= 0:
        linux.mount(_fd_path(src_fd), dest, None, flags & (linux.MS_BIND | linux.MS_REC))
    else:
        try:
            linux.mount(source or mtype, dest, mtype, flags, data or None)
        except OSError:
            if mtype == "sysfs":
                # no sysfs of our own without a network namespace: bind the host's read-only
                linux.mount("/sys", dest, None, linux.MS_BIND | linux.MS_REC)
                flags = linux.MS_BIND | linux.MS_RDONLY
                src_fd = -2  # remount it below
            elif mtype == "mqueue":
                return  # not fatal: an mqueue mount needs an ipc namespace of our own
            else:
                raise
    remount = src_fd != -1 and bool(flags & ~(linux.MS_BIND | linux.MS_REC))
    if not remount and not prop:
        return
    new = _mounted(parent, name, target)
    try:
        if src_fd >= 0:
            got, want = os.fstat(new), os.fstat(src_fd)
            if (got.st_dev, got.st_ino) != (want.st_dev, want.st_ino):
                raise OSError(16, f"the mount point {name!r} changed while it was mounted on")
        if remount:
            linux.mount(None, _fd_path(new), None, linux.MS_REMOUNT | linux.MS_BIND | flags)
        if prop:
            linux.mount(None, _fd_path(new), None, prop)
    finally:
        os.close(new)


def mask(path: str) -> None:
    try:
        st = os.lstat(path)
    except OSError:
        return
    if stat.S_ISDIR(st.st_mode):
        linux.mount("tmpfs", path, "tmpfs", linux.MS_RDONLY)
    else:
        linux.mount("/dev/null", path, None, linux.MS_BIND)


def readonly(path: str) -> None:
    if not os.path.exists(path):
        return
    linux.mount(path, path, None, linux.MS_BIND | linux.MS_REC)
    # keep nosuid/nodev/noexec of the mount it came from (statvfs's ST_* bits are MS_*'s)
    keep = os.statvfs(path).f_flag & (linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
    linux.mount(
        None, path, None, linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY | linux.MS_REC | keep
    )
