"""Seccomp filters from a runtime-spec `linux.seccomp` section, through libseccomp (ctypes).

Imports `errors`. libseccomp is opened when this module is imported (the fork server imports it
early), so that a container's init can build and load a filter after pivot_root, when the
host's libraries are out of reach.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os

from berth.errors import InvalidArgument, System
from berth.fs import atomic_write
from berth.linux import _LIBC_NAME

TYPE_CHECKING = False  # not typing's (~3 ms of berth-runtime's start-up)
if TYPE_CHECKING:
    from typing import Any

ACT_KILL_THREAD = 0x00000000
ACT_KILL_PROCESS = 0x80000000
ACT_TRAP = 0x00030000
ACT_ERRNO = 0x00050000
ACT_TRACE = 0x7FF00000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000
ACT_NOTIFY = 0x7FC00000
FLTATR_CTL_NNP = 3  # SCMP_FLTATR_CTL_NNP: set no_new_privs when loading
OPS = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}
ARCHES = {
    "SCMP_ARCH_X86": "x86",
    "SCMP_ARCH_X86_64": "x86_64",
    "SCMP_ARCH_X32": "x32",
    "SCMP_ARCH_ARM": "arm",
    "SCMP_ARCH_AARCH64": "aarch64",
    "SCMP_ARCH_MIPS": "mips",
    "SCMP_ARCH_MIPS64": "mips64",
    "SCMP_ARCH_PPC64LE": "ppc64le",
    "SCMP_ARCH_S390X": "s390x",
    "SCMP_ARCH_RISCV64": "riscv64",
}


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


def _open() -> Any:
    # find_library runs ldconfig (milliseconds of every berth-runtime command): the usual
    # name first
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError:
        from ctypes.util import find_library  # runs ldconfig: only as a fallback

        name = find_library("seccomp")
        if not name:
            return None
        try:
            lib = ctypes.CDLL(name, use_errno=True)
        except OSError:
            return None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgCmp),
    ]
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return lib


_LIB = _open()
_LIBC = ctypes.CDLL(_LIBC_NAME, use_errno=True)


def available() -> bool:
    return _LIB is not None


def action(name: str, errno_ret: int | None = None) -> int:
    if name == "SCMP_ACT_ALLOW":
        return ACT_ALLOW
    if name == "SCMP_ACT_ERRNO":
        return ACT_ERRNO | ((_errno.EPERM if errno_ret is None else errno_ret) & 0xFFFF)
    if name in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return ACT_KILL_THREAD
    if name == "SCMP_ACT_KILL_PROCESS":
        return ACT_KILL_PROCESS
    if name == "SCMP_ACT_TRAP":
        return ACT_TRAP
    if name == "SCMP_ACT_LOG":
        return ACT_LOG
    if name == "SCMP_ACT_TRACE":
        return ACT_TRACE | ((errno_ret or 0) & 0xFFFF)
    raise InvalidArgument(f"unknown seccomp action {name!r}")


def validate(profile: dict[str, Any]) -> None:
    """Refuse what a filter could not be built from, before any container runs."""
    action(profile.get("defaultAction", ""), profile.get("defaultErrnoRet"))
    for a in profile.get("architectures") or []:
        if a not in ARCHES:
            raise InvalidArgument(f"unknown seccomp architecture {a!r}")
    for rule in profile.get("syscalls") or []:
        action(rule.get("action", ""), rule.get("errnoRet"))
        for arg in rule.get("args") or []:
            if arg.get("op") not in OPS:
                raise InvalidArgument(f"unknown seccomp comparison {arg.get('op')!r}")


def _build(profile: dict[str, Any], set_nnp: bool) -> Any:
    """A libseccomp filter context for the profile; the caller releases it."""
    if _LIB is None:
        raise System("seccomp: libseccomp.so.2 is not installed (apt-get install libseccomp2)")
    default = action(profile.get("defaultAction", "SCMP_ACT_ALLOW"), profile.get("defaultErrnoRet"))
    ctx = _LIB.seccomp_init(default)
    if not ctx:
        raise System("seccomp: seccomp_init failed")
    try:
        _LIB.seccomp_attr_set(ctx, FLTATR_CTL_NNP, 1 if set_nnp else 0)
        for a in profile.get("architectures") or []:
            tok = _LIB.seccomp_arch_resolve_name(ARCHES.get(a, a).encode())
            if tok:
                rc = _LIB.seccomp_arch_add(ctx, tok)
                if rc not in (0, -_errno.EEXIST):
                    raise System(f"seccomp: adding architecture {a}: {_errno.errorcode.get(-rc)}")
        for rule in profile.get("syscalls") or []:
            act = action(rule.get("action", ""), rule.get("errnoRet"))
            if act == default:
                continue  # libseccomp refuses a rule that repeats the default
            args = rule.get("args") or []
            arr = (_ArgCmp * max(1, len(args)))()
            for i, a in enumerate(args):
                arr[i] = _ArgCmp(
                    int(a["index"]), OPS[a["op"]], int(a.get("value", 0)), int(a.get("valueTwo", 0))
                )
            for name in rule.get("names") or []:
                nr = _LIB.seccomp_syscall_resolve_name(name.encode())
                if nr < 0:
                    continue  # not a syscall of this architecture (as runc: skipped)
                rc = _LIB.seccomp_rule_add_array(ctx, act, nr, len(args), arr)
                if rc < 0 and rc != -_errno.EEXIST:
                    raise System(f"seccomp: rule for {name}: {_errno.errorcode.get(-rc, rc)}")
    except BaseException:
        _LIB.seccomp_release(ctx)
        raise
    return ctx


def load(profile: dict[str, Any], *, set_nnp: bool = False) -> None:
    """Build the filter and load it into this process (and so the program it will exec)."""
    ctx = _build(profile, set_nnp)
    try:
        rc = _LIB.seccomp_load(ctx)
        if rc < 0:
            raise System(f"seccomp: loading the filter: {_errno.errorcode.get(-rc, rc)}")
    finally:
        _LIB.seccomp_release(ctx)


def compile_bpf(profile: dict[str, Any]) -> bytes:
    """The profile as the classic BPF program the kernel runs (`struct sock_filter`s)."""
    ctx = _build(profile, False)
    fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
    try:
        rc = _LIB.seccomp_export_bpf(ctx, fd)
        if rc < 0:
            raise System(f"seccomp: exporting the filter: {_errno.errorcode.get(-rc, rc)}")
        return os.pread(fd, os.fstat(fd).st_size, 0)
    finally:
        os.close(fd)
        _LIB.seccomp_release(ctx)


def cached_bpf(profile: dict[str, Any], cache_dir: str) -> bytes:
    """compile_bpf, kept in `cache_dir` by the profile's digest: libseccomp takes about 2 ms
    to build the default profile, which every start and exec would pay."""
    import hashlib
    import json

    key = hashlib.sha256(json.dumps(profile, sort_keys=True).encode()).hexdigest()
    path = os.path.join(cache_dir, f"{key}.bpf")
    try:
        with open(path, "rb") as f:
            prog = f.read()
        if prog and len(prog) % 8 == 0:
            return prog
    except FileNotFoundError:
        pass
    prog = compile_bpf(profile)
    os.makedirs(cache_dir, mode=0o700, exist_ok=True)
    # synced, unlike before: written once per profile, and a filter read back must be whole
    atomic_write(path, prog)
    return prog


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def load_bpf(prog: bytes) -> None:
    """Load a program from compile_bpf into this process, as seccomp_load would (no flags).
    Needs no_new_privs or CAP_SYS_ADMIN, as any filter."""
    buf = ctypes.create_string_buffer(prog, len(prog))
    fprog = _SockFprog(len(prog) // 8, ctypes.cast(buf, ctypes.c_void_p))
    SYS_seccomp, SECCOMP_SET_MODE_FILTER = 317, 1  # x86_64
    if _LIBC.syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, ctypes.byref(fprog)) < 0:
        err = ctypes.get_errno()
        raise System(f"seccomp: loading the filter: {os.strerror(err)}")


__all__ = [
    "load",
    "validate",
    "available",
    "action",
    "compile_bpf",
    "cached_bpf",
    "load_bpf",
    "ARCHES",
]
