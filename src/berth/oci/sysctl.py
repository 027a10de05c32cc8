"""The sysctls a container may set (setting them inside it is `runtime.sysctl`'s).

Imports nothing of berth's: berth-runtime imports it on every `create` and `run`, the daemon at
container create. A sysctl is allowed only where the kernel keeps it per namespace and the
container has that namespace of its own, as runc decides (libcontainer's config validation):

  kernel.msgmax, .msgmnb, .msgmni, .sem, .shmall, .shmmax, .shmmni, .shm_rmid_forced and
  fs.mqueue.*                     the container's own IPC namespace
  net.*                           a network namespace that is not the host's
  kernel.domainname               its own UTS namespace (kernel.hostname: the spec's hostname)

Anything else (kernel.core_pattern, vm.*, ...) is global: setting it from a container would
change the host. A name is dot-separated words of [A-Za-z0-9_-] (what `sysctl` names are,
interface names included but for the dotted ones), so `/proc/sys/` + the name with dots as
slashes stays under /proc/sys: no `/`, no `..`, no empty word.
"""

from __future__ import annotations

import os

IPC_SYSCTLS = frozenset(
    {
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    }
)
_WORD = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
MAX_VALUE = 4096


def valid_name(name: str) -> bool:
    return 0 < len(name) <= 256 and all(
        w and set(w) <= _WORD and w.strip("-") for w in name.split(".")
    )


def refusal(name: str, *, ipc: bool, net: bool, uts: bool) -> str | None:
    """Why the container may not set sysctl `name`, in runc's words; None if it may. `ipc`,
    `net`, `uts`: whether it has an IPC, network, UTS namespace of its own."""
    if not valid_name(name):
        return f"invalid sysctl name {name!r}"
    if name in IPC_SYSCTLS or name.startswith("fs.mqueue."):
        return None if ipc else f'sysctl "{name}" is not allowed in the hosts ipc namespace'
    if name.startswith("net."):
        return None if net else f'sysctl "{name}" not allowed in host network namespace'
    if uts and name == "kernel.domainname":
        return None
    if uts and name == "kernel.hostname":
        return f'sysctl "{name}" is not allowed as it conflicts with the OCI "hostname" field'
    return f'sysctl "{name}" is not in a separate kernel namespace'


def check(sysctls: object, *, ipc: bool, net: bool, uts: bool) -> str | None:
    """The first refusal among a spec's `linux.sysctl` (a map of strings), or None."""
    if not sysctls:
        return None
    if not isinstance(sysctls, dict):
        return "linux.sysctl must be a map of strings"
    for name, value in sysctls.items():
        if not isinstance(name, str):
            return "linux.sysctl must be a map of strings"
        why = refusal(name, ipc=ipc, net=net, uts=uts)
        if why:
            return why
        if not isinstance(value, str) or len(value) > MAX_VALUE or "\0" in value:
            return f'invalid value for sysctl "{name}"'
    return None


def _is_host_netns(path: str) -> bool:
    """runc's test: is the network namespace at `path` the one this process is in?"""
    try:
        a, b = os.stat(path), os.stat("/proc/self/ns/net")
    except OSError:
        return False  # joining it fails later, with its own error
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def check_spec(lx: dict) -> str | None:  # type: ignore[type-arg]
    """`check` for a runtime spec's `linux` section, from its namespaces; a network namespace
    joined by path must not be the caller's own (the host's, for berthd and its monitors)."""
    if not lx.get("sysctl"):
        return None
    nss = lx.get("namespaces") or []
    kinds = {ns.get("type") for ns in nss}
    net = "network" in kinds and not any(
        ns.get("type") == "network" and ns.get("path") and _is_host_netns(ns["path"]) for ns in nss
    )
    return check(lx["sysctl"], ipc="ipc" in kinds, net=net, uts="uts" in kinds)


__all__ = ["IPC_SYSCTLS", "MAX_VALUE", "valid_name", "refusal", "check", "check_spec"]
