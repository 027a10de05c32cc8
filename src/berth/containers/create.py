"""What `create` decides before anything is made: the checks of a create request's host config,
its command (the image's ENTRYPOINT and CMD as Docker merges them), its name and its config.

Pure functions over the request and the image's config, so that the service's `create` is the
order of its steps and their undo. Imports `containers.spec`, `containers.names`, `errors`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterable
from typing import Any

from berth.containers import names, seccomp
from berth.containers.config import Config, parse_signal
from berth.containers.record import ContainerRecord
from berth.containers.spec import (
    cgroupns_mode,
    container_caps,
    host_device,
    merge_env,
    no_new_privileges,
    refuse_unsupported,
    validate_healthcheck,
    validate_host_config,
    validate_sysctls,
)
from berth.errors import Conflict, InvalidArgument, NotFound
from berth.oci.defaults import MASKED_PATHS, READONLY_PATHS


def check_host_config(body: dict[str, Any], hc: dict[str, Any], cfg: Config, ncpu: int,
                      resolve: Callable[[str], ContainerRecord]) -> list[str]:
    """Refuse what dockerd refuses at create (fills in HostConfig.Runtime); its warnings.
    `resolve` finds another container (whose network a `container:` mode joins)."""
    warnings = validate_host_config(hc, ncpu)
    refuse_unsupported(hc, body)
    validate_healthcheck(body.get("Healthcheck"))
    if hc.get("UTSMode") == "host" and body.get("Hostname"):
        raise InvalidArgument("conflicting options: hostname and the UTS mode")
    if cfg.idmap is not None and hc.get("UsernsMode") != "host":
        if hc.get("Privileged"):
            raise InvalidArgument("privileged mode is incompatible with user namespaces.  "
                                  "You must run the container in the host namespace when "
                                  "running privileged mode")
        if (hc.get("NetworkMode") or "") == "host":
            raise InvalidArgument("cannot share the host's network namespace when user "
                                  "namespaces are enabled")
    elif hc.get("UsernsMode") not in (None, "", "host"):
        raise InvalidArgument(f"invalid USER mode: {hc['UsernsMode']}")
    given = hc.get("Runtime")
    hc["Runtime"] = cfg.runtime_key(given)
    if hc["Runtime"] not in cfg.runtimes:
        raise InvalidArgument(f"unknown or invalid runtime name: {given}")
    # a bad seccomp profile, no-new-privileges or cgroupns mode fails the create, not the start
    seccomp.for_container(hc, container_caps(hc))
    no_new_privileges(hc)
    cgroupns_mode(hc)
    joined = ""
    if (hc.get("NetworkMode") or "").startswith("container:") and hc.get("Sysctls"):
        with contextlib.suppress(NotFound):
            joined = resolve(hc["NetworkMode"].split(":", 1)[1]).host_config.get(
                "NetworkMode") or ""
    validate_sysctls(hc, joined)
    for dev in hc.get("Devices") or []:
        host_device(dev)  # a missing device fails the create, not only the start
    fill_defaults(hc)
    return warnings


DEFAULT_SHM_SIZE = 64 * 1024 * 1024


def fill_defaults(hc: dict[str, Any]) -> None:
    """What dockerd writes into a HostConfig at create, so that inspect shows the values the
    container runs with: the cgroup namespace mode, 64 MiB of /dev/shm, swap as much as
    memory, the masked and read-only paths of /proc and /sys; and no value for "unset"
    swappiness or pids limit (given as -1 or 0)."""
    hc["CgroupnsMode"] = cgroupns_mode(hc)
    if not hc.get("ShmSize"):
        hc["ShmSize"] = DEFAULT_SHM_SIZE
    mem = int(hc.get("Memory") or 0)
    if mem > 0 and not hc.get("MemorySwap"):
        hc["MemorySwap"] = 2 * mem
    if hc.get("MemorySwappiness") is not None and int(hc["MemorySwappiness"]) == -1:
        hc["MemorySwappiness"] = None
    if hc.get("PidsLimit") is not None and int(hc["PidsLimit"]) <= 0:
        hc["PidsLimit"] = None
    if not hc.get("Privileged"):
        if hc.get("MaskedPaths") is None:
            hc["MaskedPaths"] = list(MASKED_PATHS)
        if hc.get("ReadonlyPaths") is None:
            hc["ReadonlyPaths"] = list(READONLY_PATHS)


def command(cfg: dict[str, Any], icfg: dict[str, Any]
            ) -> tuple[list[str] | None, list[str] | None]:
    """The entrypoint and command, as Docker merges the request's with the image's: an
    entrypoint given (even empty) drops the image's CMD."""
    entrypoint = cfg.get("Entrypoint")
    if entrypoint is None:
        entrypoint = icfg.get("Entrypoint")
    elif entrypoint == [""] or entrypoint == "":
        entrypoint = None
    if isinstance(entrypoint, str):
        entrypoint = [entrypoint]
    cmd = cfg.get("Cmd")
    if not cmd and cfg.get("Entrypoint") is None:
        cmd = icfg.get("Cmd")
    if isinstance(cmd, str):
        cmd = [cmd]
    if not list(entrypoint or []) + list(cmd or []):
        raise InvalidArgument("no command specified")
    return entrypoint or None, cmd or None


def pick_name(name: str, records: Iterable[ContainerRecord]) -> str:
    """The given name, checked and free, or a random one not taken."""
    records = list(records)
    if name:
        name = names.validate(name)
        other = next((r for r in records if r.name == "/" + name), None)
        if other is not None:
            raise Conflict(f'Conflict. The container name "/{name}" is already in use by '
                           f'container "{other.id}". You have to remove (or rename) '
                           "that container to be able to reuse that name.")
        return name
    taken = {r.name for r in records}
    name = names.random_name()
    while "/" + name in taken:
        name = names.random_name() + str(secrets.randbelow(10))
    return name


def container_config(body: dict[str, Any], hc: dict[str, Any], icfg: dict[str, Any],
                     cid: str) -> dict[str, Any]:
    """The container's Config: the request's over the image's, as dockerd keeps it."""
    cfg: dict[str, Any] = {k: v for k, v in body.items()
                           if k not in ("HostConfig", "NetworkingConfig")}
    entrypoint, cmd = command(cfg, icfg)
    host_uts = hc.get("NetworkMode") == "host" or hc.get("UTSMode") == "host"
    hostname = cfg.get("Hostname") or ("" if host_uts else cid[:12])
    if host_uts:
        hostname = hostname or os.uname().nodename
    full_cfg = {
        "Hostname": hostname, "Domainname": cfg.get("Domainname", ""),
        "User": cfg.get("User") if cfg.get("User") is not None else icfg.get("User", ""),
        "AttachStdin": bool(cfg.get("AttachStdin")),
        "AttachStdout": bool(cfg.get("AttachStdout")),
        "AttachStderr": bool(cfg.get("AttachStderr")),
        "Tty": bool(cfg.get("Tty")), "OpenStdin": bool(cfg.get("OpenStdin")),
        "StdinOnce": bool(cfg.get("StdinOnce")),
        "Env": merge_env(icfg.get("Env"), cfg.get("Env")) or None,
        "Cmd": cmd,
        "Image": body["Image"],
        "Volumes": cfg.get("Volumes") or icfg.get("Volumes"),
        "WorkingDir": cfg.get("WorkingDir") or icfg.get("WorkingDir", ""),
        "Entrypoint": entrypoint,
        "OnBuild": None,
        "Labels": {**(icfg.get("Labels") or {}), **(cfg.get("Labels") or {})},
    }
    exposed = cfg.get("ExposedPorts") or icfg.get("ExposedPorts")
    if exposed:   # as dockerd: no key where there are none
        full_cfg["ExposedPorts"] = exposed
    if cfg.get("Healthcheck") or icfg.get("Healthcheck"):
        full_cfg["Healthcheck"] = cfg.get("Healthcheck") or icfg.get("Healthcheck")
    if cfg.get("StopSignal") or icfg.get("StopSignal"):
        full_cfg["StopSignal"] = cfg.get("StopSignal") or icfg.get("StopSignal")
        parse_signal(full_cfg["StopSignal"])
    if cfg.get("StopTimeout") is not None:
        full_cfg["StopTimeout"] = cfg["StopTimeout"]
    return full_cfg


__all__ = ["check_host_config", "command", "container_config", "fill_defaults", "pick_name"]
