"""Which seccomp filter a container gets: berth's default, a profile of the user's
(`--security-opt seccomp=PROFILE.json`, Docker's profile format), or none (`unconfined`,
`--privileged`).

Imports `containers.hostconfig`, `errors`, `linux`. The default profile is berth's own, written from Docker's documented
behaviour: what Docker lists as blocked by its default profile is refused with EPERM (keyrings,
kernel modules, reboot and kexec, clocks, mount and namespaces, BPF and perf, io_uring, ...),
each unless the container holds the capability Docker lets it through with. Creating
namespaces with clone is refused the same way, and clone3 answers ENOSYS so that C libraries
fall back to clone, as under Docker. Unlike Docker's allow-list, a syscall missing from the
list (one newer than it) is allowed, not refused; the difference is deliberate and written down
in the conformance notes.
"""

from __future__ import annotations

import errno
import json
import os
import platform
from typing import Any

from berth.containers.hostconfig import HostConfig
from berth.errors import InvalidArgument
from berth.linux import seccomp as lsec

CLONE_NS_FLAGS = (
    0x00020000,
    0x04000000,
    0x08000000,
    0x10000000,
    0x20000000,
    0x40000000,
    0x02000000,
)  # NEWNS, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWCGROUP

# syscall → the capabilities that let it through (empty: never)
_BLOCKED: dict[str, tuple[str, ...]] = {
    **{
        n: ("CAP_SYS_ADMIN",)
        for n in (
            "mount",
            "umount",
            "umount2",
            "unshare",
            "setns",
            "pivot_root",
            "quotactl",
            "quotactl_fd",
            "lookup_dcookie",
            "fanotify_init",
            "name_to_handle_at",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "move_mount",
            "open_tree",
            "mount_setattr",
            "swapon",
            "swapoff",
            "vm86",
            "vm86old",
        )
    },
    "bpf": ("CAP_SYS_ADMIN", "CAP_BPF"),
    "perf_event_open": ("CAP_SYS_ADMIN", "CAP_PERFMON"),
    **{n: ("CAP_SYS_BOOT",) for n in ("reboot", "kexec_load", "kexec_file_load")},
    **{
        n: ("CAP_SYS_MODULE",)
        for n in (
            "init_module",
            "finit_module",
            "delete_module",
            "create_module",
            "query_module",
            "get_kernel_syms",
        )
    },
    **{
        n: ("CAP_SYS_TIME",)
        for n in (
            "settimeofday",
            "stime",
            "clock_settime",
            "clock_settime64",
            "clock_adjtime",
            "clock_adjtime64",
        )
    },
    "acct": ("CAP_SYS_PACCT",),
    **{
        n: ("CAP_SYS_NICE",)
        for n in (
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
            "move_pages",
        )
    },
    **{n: ("CAP_SYS_RAWIO",) for n in ("iopl", "ioperm")},
    "vhangup": ("CAP_SYS_TTY_CONFIG",),
    "open_by_handle_at": ("CAP_DAC_READ_SEARCH",),
    "syslog": ("CAP_SYSLOG",),
    **{
        n: ()
        for n in (
            "add_key",
            "keyctl",
            "request_key",
            "nfsservctl",
            "sysfs",
            "_sysctl",
            "uselib",
            "userfaultfd",
            "ustat",
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
        )
    },
}


def _arches() -> list[str]:
    m = platform.machine()
    if m == "x86_64":
        return ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    if m == "aarch64":
        return ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    return []


def default_profile(caps: set[str]) -> dict[str, Any]:
    """berth's default filter for a container with these capabilities (runtime-spec form)."""
    denied = sorted(n for n, gates in _BLOCKED.items() if not set(gates) & caps)
    rules: list[dict[str, Any]] = [
        {"names": denied, "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM}
    ]
    if "CAP_SYS_ADMIN" not in caps:
        for flag in CLONE_NS_FLAGS:
            # on s390x the flags are the second argument; elsewhere the first
            index = 1 if platform.machine() == "s390x" else 0
            rules.append(
                {
                    "names": ["clone"],
                    "action": "SCMP_ACT_ERRNO",
                    "errnoRet": errno.EPERM,
                    "args": [
                        {
                            "index": index,
                            "value": flag,
                            "valueTwo": flag,
                            "op": "SCMP_CMP_MASKED_EQ",
                        }
                    ],
                }
            )
        rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS})
    return {"defaultAction": "SCMP_ACT_ALLOW", "architectures": _arches(), "syscalls": rules}


def _kernel() -> tuple[int, int]:
    rel = os.uname().release.split("-")[0].split(".")
    try:
        return int(rel[0]), int(rel[1])
    except (IndexError, ValueError):
        return 0, 0


def from_docker_profile(doc: dict[str, Any], caps: set[str]) -> dict[str, Any]:
    """Docker's profile format (archMap, includes/excludes by caps, arches and minKernel)
    made into the runtime-spec form for this machine and these capabilities."""
    if not isinstance(doc, dict) or "defaultAction" not in doc:
        raise InvalidArgument("seccomp profile: a JSON object with a defaultAction is required")
    native = _arches()[:1]
    arches: list[str] = list(doc.get("architectures") or [])
    for m in doc.get("archMap") or []:
        if m.get("architecture") in native or not native:
            arches = [m["architecture"], *m.get("subArchitectures", [])]
    kernel = _kernel()

    def applies(cond: dict[str, Any], include: bool) -> bool:
        if not cond:
            return True
        ok = []
        if cond.get("caps"):
            ok.append(bool(set(cond["caps"]) & caps) if not include else set(cond["caps"]) <= caps)
        if cond.get("arches"):
            mine = {a.replace("SCMP_ARCH_", "").lower() for a in native}
            ok.append(
                bool(
                    set(a.lower() for a in cond["arches"])
                    & (mine | {{"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), "")})
                )
            )
        if cond.get("minKernel"):
            want = tuple(int(x) for x in str(cond["minKernel"]).split(".")[:2])
            ok.append(kernel >= want)
        return all(ok) if include else any(ok)

    rules = []
    for r in doc.get("syscalls") or []:
        if not applies(r.get("includes") or {}, True):
            continue
        if r.get("excludes") and applies(r["excludes"], False):
            continue
        names = list(r.get("names") or ([r["name"]] if r.get("name") else []))
        rule = {"names": names, "action": r.get("action", "")}
        if r.get("errnoRet") is not None:
            rule["errnoRet"] = r["errnoRet"]
        if r.get("args"):
            rule["args"] = r["args"]
        rules.append(rule)
    out: dict[str, Any] = {
        "defaultAction": doc["defaultAction"],
        "architectures": arches,
        "syscalls": rules,
    }
    if doc.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = doc["defaultErrnoRet"]
    lsec.validate(out)
    return out


def for_container(hc: HostConfig, caps: set[str]) -> dict[str, Any] | None:
    """The filter for a container's HostConfig, or None for no filter."""
    choice = None
    for opt in hc.security_opt or ():
        key, sep, value = opt.partition("=") if "=" in opt else opt.partition(":")
        if key == "seccomp" and sep:
            choice = value
    if choice == "unconfined":
        return None
    if choice:
        try:
            doc = json.loads(choice)
        except ValueError:
            raise InvalidArgument(
                "Decoding seccomp profile failed: the profile must be JSON "
                "(the CLI sends the file's content)"
            ) from None
        return from_docker_profile(doc, caps)
    if hc.privileged:
        return None
    return default_profile(caps)


__all__ = ["default_profile", "from_docker_profile", "for_container"]
