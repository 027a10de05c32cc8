"""bpf(2), raw: load a cgroup device program and attach it to a cgroup v2 directory.

Imports only `linux` (its libc). Through `_ffi` and `_ctypes`, not ctypes' package: berth-runtime
loads a program on every start on a cgroup v2 host. Buffers are `_ctypes` arrays.
"""

from __future__ import annotations

import _ctypes
import errno
import os
import sys

from berth.linux import _check, _ffi, _libc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# <linux/bpf.h>
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6  # attach type
BPF_F_ALLOW_MULTI = 1 << 1

_SYS_BPF = {"x86_64": 321, "aarch64": 280}
_LOG_SIZE = 1 << 16
_LICENSE = b"Apache\0"  # no GPL-only helper is called


class _Char(_ctypes._SimpleCData):  # type: ignore[type-arg]
    _type_ = "c"


def _buffer(n: int, data: bytes = b"") -> _ctypes.Array:  # type: ignore[type-arg]
    kind: Any = type("_Buf", (_ctypes.Array,), {"_type_": _Char, "_length_": max(n, 1)})
    return kind.from_buffer_copy(data.ljust(max(n, 1), b"\0"))  # type: ignore[no-any-return]


class _ProgLoad(_ffi.Structure):
    _fields_ = [
        ("prog_type", _ffi.c_uint32),
        ("insn_cnt", _ffi.c_uint32),
        ("insns", _ffi.c_uint64),
        ("license", _ffi.c_uint64),
        ("log_level", _ffi.c_uint32),
        ("log_size", _ffi.c_uint32),
        ("log_buf", _ffi.c_uint64),
        ("kern_version", _ffi.c_uint32),
        ("prog_flags", _ffi.c_uint32),
        ("name_lo", _ffi.c_uint64),
        ("name_hi", _ffi.c_uint64),
        ("prog_ifindex", _ffi.c_uint32),
        ("expected_attach_type", _ffi.c_uint32),
    ]


class _Attach(_ffi.Structure):  # BPF_PROG_ATTACH and BPF_PROG_DETACH
    _fields_ = [
        ("target_fd", _ffi.c_uint32),
        ("attach_bpf_fd", _ffi.c_uint32),
        ("attach_type", _ffi.c_uint32),
        ("attach_flags", _ffi.c_uint32),
        ("replace_bpf_fd", _ffi.c_uint32),
    ]


class _Query(_ffi.Structure):
    _fields_ = [
        ("target_fd", _ffi.c_uint32),
        ("attach_type", _ffi.c_uint32),
        ("query_flags", _ffi.c_uint32),
        ("attach_flags", _ffi.c_uint32),
        ("prog_ids", _ffi.c_uint64),
        ("prog_cnt", _ffi.c_uint32),
    ]


class _GetFd(_ffi.Structure):
    _fields_ = [
        ("prog_id", _ffi.c_uint32),
        ("next_id", _ffi.c_uint32),
        ("open_flags", _ffi.c_uint32),
    ]


def _bpf(cmd: int, attr: _ffi.Structure) -> int:
    nr = _SYS_BPF.get(os.uname().machine)
    if nr is None:
        raise OSError(errno.ENOSYS, f"bpf: no syscall number known for {os.uname().machine}")
    return int(_libc().syscall(nr, cmd, _ffi.byref(attr), _ffi.c_uint(_ffi.sizeof(attr))))


def _name(name: bytes) -> tuple[int, int]:
    raw = name[:15].ljust(16, b"\0")
    return (int.from_bytes(raw[:8], sys.byteorder), int.from_bytes(raw[8:], sys.byteorder))


def prog_load(prog_type: int, insns: bytes, name: bytes = b"") -> int:
    """Load a program (`struct bpf_insn` bytes); its fd, close-on-exec. On failure the
    OSError carries the verifier's log."""
    code = _buffer(len(insns), insns)
    lic = _buffer(len(_LICENSE), _LICENSE)
    lo, hi = _name(name)
    attr = _ProgLoad(
        prog_type=prog_type,
        insn_cnt=len(insns) // 8,
        insns=_ctypes.addressof(code),
        license=_ctypes.addressof(lic),
        name_lo=lo,
        name_hi=hi,
    )
    fd = _bpf(BPF_PROG_LOAD, attr)
    if fd >= 0:
        return fd
    err = _ffi.get_errno()
    # again with the verifier's log, which only a failure needs
    log = _buffer(_LOG_SIZE)
    attr.log_level, attr.log_size, attr.log_buf = 1, _LOG_SIZE, _ctypes.addressof(log)
    if _bpf(BPF_PROG_LOAD, attr) >= 0:  # pragma: no cover - it failed a moment ago
        raise OSError(err, f"bpf prog load: {os.strerror(err)}")
    text = log.raw.split(b"\0", 1)[0].decode(errors="replace").strip()
    raise OSError(err, f"bpf prog load: {os.strerror(err)}" + (f": {text[-2000:]}" if text else ""))


def prog_attach(target_fd: int, prog_fd: int, attach_type: int, flags: int = 0) -> None:
    _check(
        _bpf(
            BPF_PROG_ATTACH,
            _Attach(
                target_fd=target_fd,
                attach_bpf_fd=prog_fd,
                attach_type=attach_type,
                attach_flags=flags,
            ),
        ),
        "bpf prog attach",
    )


def prog_detach(target_fd: int, prog_fd: int, attach_type: int) -> None:
    _check(
        _bpf(
            BPF_PROG_DETACH,
            _Attach(target_fd=target_fd, attach_bpf_fd=prog_fd, attach_type=attach_type),
        ),
        "bpf prog detach",
    )


def prog_query(target_fd: int, attach_type: int) -> list[int]:
    """The ids of the programs attached to `target_fd` itself (not those it inherits)."""
    for cnt in (16, 1024):
        ids = _buffer(4 * cnt)
        attr = _Query(
            target_fd=target_fd,
            attach_type=attach_type,
            prog_ids=_ctypes.addressof(ids),
            prog_cnt=cnt,
        )
        if _bpf(BPF_PROG_QUERY, attr) >= 0:
            raw = ids.raw
            return [
                int.from_bytes(raw[4 * i : 4 * i + 4], sys.byteorder) for i in range(attr.prog_cnt)
            ]
        if _ffi.get_errno() != errno.ENOSPC:
            break
    _check(-1, "bpf prog query")
    return []  # pragma: no cover - _check raised


def prog_fd_by_id(prog_id: int) -> int:
    return _check(_bpf(BPF_PROG_GET_FD_BY_ID, _GetFd(prog_id=prog_id)), "bpf prog get fd")


def attach_cgroup_device(cgroup_dir: str, insns: bytes) -> None:
    """Load `insns` as a cgroup device program and attach it to the cgroup v2 directory, in
    place of the device programs attached there before (the new one first: never a moment
    without one). Raises OSError when the program cannot be loaded or attached."""
    dfd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        old = prog_query(dfd, BPF_CGROUP_DEVICE)
        prog = prog_load(BPF_PROG_TYPE_CGROUP_DEVICE, insns, b"berth_devices")
        try:
            prog_attach(dfd, prog, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI)
        finally:
            os.close(prog)  # the attachment holds it
        for pid in old:
            fd = prog_fd_by_id(pid)
            try:
                prog_detach(dfd, fd, BPF_CGROUP_DEVICE)
            finally:
                os.close(fd)
    finally:
        os.close(dfd)


def detach_cgroup_device(cgroup_dir: str) -> None:
    """Detach every device program attached to the cgroup v2 directory itself."""
    dfd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for pid in prog_query(dfd, BPF_CGROUP_DEVICE):
            fd = prog_fd_by_id(pid)
            try:
                prog_detach(dfd, fd, BPF_CGROUP_DEVICE)
            finally:
                os.close(fd)
    finally:
        os.close(dfd)


__all__ = [
    "prog_load",
    "prog_attach",
    "prog_detach",
    "prog_query",
    "prog_fd_by_id",
    "attach_cgroup_device",
    "detach_cgroup_device",
    "BPF_PROG_TYPE_CGROUP_DEVICE",
    "BPF_CGROUP_DEVICE",
    "BPF_F_ALLOW_MULTI",
]
