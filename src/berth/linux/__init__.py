"""The only home of raw syscalls (through `_ffi`, a slice of ctypes): mount, pivot_root, unshare,
setns, prctl, caps.

Imports only `errors`. Each wrapper checks errno and raises OSError with the call named,
so callers can wrap it in a berth error with context.
"""

from __future__ import annotations

import _struct as struct  # struct's own module, without its Python wrapper
import errno
import fcntl
import os

from berth import fs
from berth.linux import _ffi

# Everything this module needs is imported here, at the top: some of these functions run in a
# container's init after pivot_root, where the host's Python library is out of reach.

# <linux/sched.h>
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# <sys/mount.h>
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2

# <asm-generic/ioctls.h>: what `termios` does not export
TIOCGPTN = 0x80045430  # the number of a pty master's slave
TIOCSPTLCK = 0x40045431  # lock or unlock the slave (unlockpt)
TIOCSCTTY = 0x540E  # make a terminal the controlling one
TIOCSWINSZ = 0x5414  # set a terminal's window size

# <linux/prctl.h>
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

NAMESPACE_FLAGS = {
    "pid": CLONE_NEWPID,
    "network": CLONE_NEWNET,
    "mount": CLONE_NEWNS,
    "ipc": CLONE_NEWIPC,
    "uts": CLONE_NEWUTS,
    "cgroup": CLONE_NEWCGROUP,
    "user": CLONE_NEWUSER,
}
# /proc/PID/ns/<name> for each runtime-spec namespace type
NAMESPACE_FILES = {
    "pid": "pid",
    "network": "net",
    "mount": "mnt",
    "ipc": "ipc",
    "uts": "uts",
    "cgroup": "cgroup",
    "user": "user",
}

# capability numbers, <linux/capability.h>
CAPABILITIES = {
    "CAP_CHOWN": 0,
    "CAP_DAC_OVERRIDE": 1,
    "CAP_DAC_READ_SEARCH": 2,
    "CAP_FOWNER": 3,
    "CAP_FSETID": 4,
    "CAP_KILL": 5,
    "CAP_SETGID": 6,
    "CAP_SETUID": 7,
    "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10,
    "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12,
    "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14,
    "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16,
    "CAP_SYS_RAWIO": 17,
    "CAP_SYS_CHROOT": 18,
    "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20,
    "CAP_SYS_ADMIN": 21,
    "CAP_SYS_BOOT": 22,
    "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24,
    "CAP_SYS_TIME": 25,
    "CAP_SYS_TTY_CONFIG": 26,
    "CAP_MKNOD": 27,
    "CAP_LEASE": 28,
    "CAP_AUDIT_WRITE": 29,
    "CAP_AUDIT_CONTROL": 30,
    "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32,
    "CAP_MAC_ADMIN": 33,
    "CAP_SYSLOG": 34,
    "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36,
    "CAP_AUDIT_READ": 37,
    "CAP_PERFMON": 38,
    "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}


def _libc() -> _ffi.CDLL:
    return _opened(_ffi.CDLL)


def _libc_gil() -> _ffi.CDLL:
    """libc called with the GIL held: no other thread runs Python across a raw clone."""
    return _opened(_ffi.PyDLL)


def _opened(kind: type[_ffi.CDLL]) -> _ffi.CDLL:
    lib = _LIBS.get(kind)
    if lib is None:
        lib = _LIBS[kind] = kind(_LIBC_NAME, use_errno=True)
    return lib


def _libc_name() -> str:
    # find_library runs ldconfig (milliseconds): only where libc.so.6 is not glibc's name
    try:
        _ffi.CDLL("libc.so.6")
        return "libc.so.6"
    except OSError:
        from ctypes.util import find_library  # subprocess, shutil...: only as a fallback

        return find_library("c") or "libc.so.6"


_LIBC_NAME = _libc_name()
_LIBS: dict[type[_ffi.CDLL], _ffi.CDLL] = {}  # libc, opened once per calling convention


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = _ffi.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def _b(s: str | None) -> bytes | None:
    return None if s is None else os.fsencode(s)


def read_text(path: str) -> str:
    """A small file's text (/proc, cgroupfs), without the ~15 us of a Python file object."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = b""
        while chunk := os.read(fd, 65536):
            data += chunk
        return data.decode()
    finally:
        os.close(fd)


def apparmor_enabled() -> bool:
    """Whether the host's kernel has AppArmor on (a profile can confine a process)."""
    try:
        return read_text("/sys/module/apparmor/parameters/enabled").strip() == "Y"
    except OSError:
        return False


def mount(
    source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None
) -> None:
    _check(
        _libc().mount(_b(source), _b(target), _b(fstype), _ffi.c_ulong(flags), _b(data)),
        f"mount {source or fstype} on {target}",
    )


def umount(target: str, flags: int = 0) -> None:
    _check(_libc().umount2(_b(target), flags), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    nr = _SYS_PIVOT_ROOT.get(os.uname().machine)
    if nr is None:
        raise OSError(errno.ENOSYS, f"pivot_root: no syscall number known for {os.uname().machine}")
    _check(_libc().syscall(nr, _b(new_root), _b(put_old)), "pivot_root")


def unshare(flags: int) -> None:
    _check(_libc().unshare(flags), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc().setns(fd, nstype), "setns")


class _CloneArgs(_ffi.Structure):
    _fields_ = [
        (n, _ffi.c_uint64)
        for n in (
            "flags",
            "pidfd",
            "child_tid",
            "parent_tid",
            "exit_signal",
            "stack",
            "stack_size",
            "tls",
            "set_tid",
            "set_tid_size",
            "cgroup",
        )
    ]


CLONE_INTO_CGROUP = 0x200000000
_clone3_works = True


def clone3(flags: int, cgroup_dir: str | None = None) -> int | None:
    """os.fork() through clone3(2): the child is born in the new namespaces that `flags` ask
    for (CLONE_NEWPID makes it PID 1 of its own), and, with `cgroup_dir`, in that cgroup v2
    directory. Returns 0 in the child, its pid in the parent; None, and no child, on a kernel
    without clone3 (before 5.7). The caller must be single-threaded.

    Python's own fork bookkeeping runs around the raw call, as os.fork() does it."""
    global _clone3_works
    if not _clone3_works:
        return None
    fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC) if cgroup_dir else -1
    try:
        args = _CloneArgs(
            flags=flags | (CLONE_INTO_CGROUP if cgroup_dir else 0),
            exit_signal=17,
            cgroup=max(fd, 0),
        )  # SIGCHLD
        api, libc = _ffi.pythonapi, _libc_gil()
        api.PyOS_BeforeFork()
        pid = libc.syscall(435, _ffi.byref(args), _ffi.c_size_t(_ffi.sizeof(args)))
        err = _ffi.get_errno()
        if pid == 0:
            api.PyOS_AfterFork_Child()
        else:
            api.PyOS_AfterFork_Parent()
    finally:
        if fd >= 0:
            os.close(fd)
    if pid >= 0:
        return int(pid)
    if err not in (errno.ENOSYS, errno.E2BIG, errno.EINVAL, errno.EOPNOTSUPP) or (
        err == errno.EINVAL and flags
    ):
        what = f"clone3 into {cgroup_dir}" if cgroup_dir else "clone3"
        raise OSError(err, f"{what}: {os.strerror(err)}")
    _clone3_works = False
    return None


def fork_into_cgroup(cgroup_dir: str) -> int:
    """os.fork(), with the child born in the cgroup v2 directory `cgroup_dir` (returns 0 in the
    child, its pid in the parent). The caller must be single-threaded.

    clone3(CLONE_INTO_CGROUP) places the child at birth, so nobody writes `cgroup.procs`, whose
    first write after a quiet spell waits out an RCU grace period (6 to 15 ms per start or
    exec). On a kernel without clone3 the child writes itself into `cgroup.procs`."""
    pid = clone3(0, cgroup_dir)
    if pid is not None:
        return pid
    pid = os.fork()
    if pid == 0:
        try:
            with open(os.path.join(cgroup_dir, "cgroup.procs"), "w") as f:
                f.write("0")
        except OSError:
            os._exit(1)  # never back into the caller's code as a second process
    return pid


def preload() -> None:
    """Resolve, in a process that forks many, what the children would each look up again."""
    _libc()
    getattr(_libc_gil(), "syscall")  # noqa: B009 - ctypes resolves the symbol on first access
    for name in ("PyOS_BeforeFork", "PyOS_AfterFork_Child", "PyOS_AfterFork_Parent"):
        getattr(_ffi.pythonapi, name)


def sethostname(name: str) -> None:
    b = name.encode()
    _check(_libc().sethostname(b, len(b)), "sethostname")


def setdomainname(name: str) -> None:
    """The UTS namespace's NIS domain name (what `hostname -d` and `domainname` print)."""
    b = name.encode()
    _check(_libc().setdomainname(b, len(b)), "setdomainname")


def personality(persona: int) -> None:
    """personality(2): the execution domain (PER_LINUX 0, PER_LINUX32 8) of this process and
    what it execs."""
    _check(_libc().personality(_ffi.c_ulong(persona)), "personality")


# ioprio_set(2) has no libc wrapper; the machine as at start-up (a personality changes uname's)
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
_SYS_IOPRIO_SET = {"x86_64": 251, "aarch64": 30}.get(os.uname().machine)


def ioprio_set(io_class: int, level: int) -> None:
    """ioprio_set(IOPRIO_WHO_PROCESS, 0, ...): this process's I/O scheduling class (1 RT,
    2 best effort, 3 idle) and level (0-7)."""
    if _SYS_IOPRIO_SET is None:
        raise OSError(38, "ioprio_set: no syscall number known for this machine")
    _check(_libc().syscall(_SYS_IOPRIO_SET, 1, 0, (io_class << 13) | level), "ioprio_set")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(
        _libc().prctl(
            option, _ffi.c_ulong(arg2), _ffi.c_ulong(arg3), _ffi.c_ulong(arg4), _ffi.c_ulong(arg5)
        ),
        "prctl",
    )


def set_child_subreaper() -> None:
    prctl(PR_SET_CHILD_SUBREAPER, 1)


def set_pdeathsig(sig: int) -> None:
    prctl(PR_SET_PDEATHSIG, sig)


def set_dumpable(on: bool) -> None:
    prctl(PR_SET_DUMPABLE, 1 if on else 0)


def set_no_new_privs() -> None:
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return max(CAPABILITIES.values())


def drop_bounding_caps(keep: set[int]) -> None:
    """Drop every capability not in `keep` from the bounding set (needs CAP_SETPCAP)."""
    for cap in range(last_cap() + 1):
        if cap not in keep:
            try:
                prctl(PR_CAPBSET_DROP, cap)
            except OSError as e:
                if e.errno != 22:  # EINVAL: this kernel does not know the capability
                    raise
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)


class _CapHeader(_ffi.Structure):
    _fields_ = [("version", _ffi.c_uint32), ("pid", _ffi.c_int)]


class _CapData(_ffi.Structure):
    _fields_ = [
        ("effective", _ffi.c_uint32),
        ("permitted", _ffi.c_uint32),
        ("inheritable", _ffi.c_uint32),
    ]


def set_caps(effective: set[int], permitted: set[int], inheritable: set[int]) -> None:
    """capset(2) with _LINUX_CAPABILITY_VERSION_3 (two 32-bit words)."""
    hdr = _CapHeader(0x20080522, 0)
    data = (_CapData * 2)()
    for i in range(2):

        def word(caps: set[int], i: int = i) -> int:
            return sum(1 << (c - 32 * i) for c in caps if 32 * i <= c < 32 * (i + 1))

        data[i].effective = word(effective)
        data[i].permitted = word(permitted)
        data[i].inheritable = word(inheritable)
    _check(_libc().capset(_ffi.byref(hdr), data), "capset")


def set_keepcaps(on: bool) -> None:
    prctl(8, 1 if on else 0)  # PR_SET_KEEPCAPS


def set_link_up(name: str = "lo") -> None:
    """Bring an interface up with SIOCGIFFLAGS/SIOCSIFFLAGS (no netlink needed for lo)."""
    # socket(2) through libc: the `_socket` module costs berth-runtime ~0.3 ms to import
    s = _check(_libc().socket(2, 2 | 0o2000000, 0), "socket")  # AF_INET, SOCK_DGRAM|CLOEXEC
    try:
        req = struct.pack("16sh", name.encode(), 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s, 0x8913, req))[1]
        fcntl.ioctl(s, 0x8914, struct.pack("16sh", name.encode(), flags | 1))  # IFF_UP
    finally:
        os.close(s)


def secure_join(root: str, path: str) -> str:
    """Resolve `path` as if `root` were `/`: symlinks are followed but never leave `root`.

    The result may not exist yet. Like filepath-securejoin: a mount destination inside a
    hostile image resolves inside the rootfs, never onto the host. The walk is berth.fs's, the
    one root-confined resolver, by directory fd."""
    return fs.resolve_path(root, path)
