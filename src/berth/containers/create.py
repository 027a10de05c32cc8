"""What `create` decides before anything is made: the checks of a create request's host config,
its command (the image's ENTRYPOINT and CMD as Docker merges them), its name and its config.

Pure functions over the request (a `CreateRequest`, typed at the API edge) and the image's
config, so that the service's `create` is the order of its steps and their undo. Imports
`containers.settings`, `containers.hostconfig`, `containers.spec`, `containers.names`,
`images` (its typed RunConfig), `errors`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from berth.containers import names, seccomp
from berth.containers.config import Config, parse_signal
from berth.containers.hostconfig import HostConfig
from berth.containers.ports import port_set
from berth.containers.record import ContainerRecord, NetworkRequest
from berth.containers.settings import ContainerConfig, HealthConfig
from berth.containers.spec import (
    cgroupns_mode,
    container_caps,
    host_device,
    merge_env,
    no_new_privileges,
    validate_host_config,
    validate_sysctls,
)
from berth.errors import Conflict, InvalidArgument, NotFound
from berth.images import RunConfig
from berth.oci.defaults import MASKED_PATHS, READONLY_PATHS

# the CRI's own keys, on a container's labels (its pod, name, ...) and HostConfig.Annotations
# (the pod's namespaces to join): only the CRI sets them, never an image or an API client
CRI_PREFIX = "io.berth.cri."


def image_labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    """An image's labels as a container takes them: all but the CRI's own (an image labelled
    `io.berth.cri.sandbox-id` would make its container look like a pod's to the CRI)."""
    return {k: v for k, v in (labels or {}).items() if not k.startswith(CRI_PREFIX)}


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateRequest:
    """What `POST /containers/create` asks for, read from Docker's JSON at the API edge: the
    Config, the HostConfig and NetworkingConfig's EndpointsConfig (what is asked of each network,
    by the name the client gave it)."""

    config: ContainerConfig
    host_config: HostConfig = field(default_factory=HostConfig)
    endpoints: dict[str, NetworkRequest] = field(default_factory=dict)


def check_host_config(
    config: ContainerConfig,
    hc: HostConfig,
    cfg: Config,
    ncpu: int,
    resolve: Callable[[str], ContainerRecord],
) -> list[str]:
    """Refuse what dockerd refuses at create (fills in HostConfig.Runtime); its warnings.
    `resolve` finds another container (whose network a `container:` mode joins). The
    request's Config was checked where it was read (`berth.api.containers_wire`)."""
    warnings = validate_host_config(hc, ncpu)
    if hc.uts_mode == "host" and config.hostname:
        raise InvalidArgument("conflicting options: hostname and the UTS mode")
    if cfg.idmap is not None and hc.userns_mode != "host":
        if hc.privileged:
            raise InvalidArgument(
                "privileged mode is incompatible with user namespaces.  "
                "You must run the container in the host namespace when "
                "running privileged mode"
            )
        if hc.network_mode == "host":
            raise InvalidArgument(
                "cannot share the host's network namespace when user namespaces are enabled"
            )
    elif hc.userns_mode not in ("", "host"):
        raise InvalidArgument(f"invalid USER mode: {hc.userns_mode}")
    given = hc.runtime
    hc.runtime = cfg.runtime_key(given)
    if hc.runtime not in cfg.runtimes:
        raise InvalidArgument(f"unknown or invalid runtime name: {given}")
    # a bad seccomp profile, no-new-privileges or cgroupns mode fails the create, not the start
    seccomp.for_container(hc, container_caps(hc))
    no_new_privileges(hc)
    cgroupns_mode(hc)
    joined = ""
    if hc.network_mode.startswith("container:") and hc.sysctls:
        with contextlib.suppress(NotFound):
            joined = resolve(hc.network_mode.split(":", 1)[1]).host_config.network_mode
    validate_sysctls(hc, joined)
    for dev in hc.devices or ():
        host_device(dev)  # a missing device fails the create, not only the start
    fill_defaults(hc)
    return warnings


DEFAULT_SHM_SIZE = 64 * 1024 * 1024


def fill_defaults(hc: HostConfig) -> None:
    """What dockerd writes into a HostConfig at create, so that inspect shows the values the
    container runs with: the cgroup namespace mode, 64 MiB of /dev/shm, swap as much as
    memory, the masked and read-only paths of /proc and /sys; and no value for "unset"
    swappiness or pids limit (given as -1 or 0)."""
    hc.cgroupns_mode = cgroupns_mode(hc)
    if not hc.shm_size:
        hc.shm_size = DEFAULT_SHM_SIZE
    if hc.memory > 0 and not hc.memory_swap:
        hc.memory_swap = 2 * hc.memory
    if hc.memory_swappiness == -1:
        hc.memory_swappiness = None
    if hc.pids_limit is not None and hc.pids_limit <= 0:
        hc.pids_limit = None
    if not hc.privileged:
        if hc.masked_paths is None:
            hc.masked_paths = tuple(MASKED_PATHS)
        if hc.readonly_paths is None:
            hc.readonly_paths = tuple(READONLY_PATHS)


def command(
    cfg: ContainerConfig, image: RunConfig
) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    """The entrypoint and command, as Docker merges the request's with the image's: an
    entrypoint given (even empty) drops the image's CMD."""
    entrypoint = cfg.entrypoint
    if entrypoint is None:
        entrypoint = image.entrypoint
    elif entrypoint == ("",):
        entrypoint = None
    cmd = cfg.cmd
    if not cmd and cfg.entrypoint is None:
        cmd = image.cmd
    if not (*(entrypoint or ()), *(cmd or ())):
        raise InvalidArgument("no command specified")
    return entrypoint or None, cmd or None


def pick_name(
    name: str, records: Iterable[ContainerRecord], reserved: Mapping[str, str] | None = None
) -> str:
    """The given name, checked and free, or a random one not taken; `reserved` names those of
    creates under way (name: ID), taken as well."""
    records = list(records)
    reserved = reserved or {}
    if name:
        name = names.validate(name)
        other = next((r.id for r in records if r.name == "/" + name), reserved.get(name))
        if other is not None:
            raise Conflict(
                f'Conflict. The container name "/{name}" is already in use by '
                f'container "{other}". You have to remove (or rename) '
                "that container to be able to reuse that name."
            )
        return name
    taken = {r.name for r in records} | {"/" + n for n in reserved}
    name = names.random_name()
    while "/" + name in taken:
        name = names.random_name() + str(secrets.randbelow(10))
    return name


def container_config(req: CreateRequest, image: RunConfig, cid: str) -> ContainerConfig:
    """The container's Config: the request's over the image's, as dockerd keeps it."""
    cfg, hc = req.config, req.host_config
    entrypoint, cmd = command(cfg, image)
    host_uts = hc.network_mode == "host" or hc.uts_mode == "host"
    hostname = cfg.hostname or ("" if host_uts else cid[:12])
    if host_uts:
        hostname = hostname or os.uname().nodename
    image_hc = image.other.get("Healthcheck")
    healthcheck = (
        cfg.healthcheck
        if cfg.healthcheck is not None and (cfg.healthcheck != HealthConfig())
        else (HealthConfig.from_doc(image_hc) if isinstance(image_hc, dict) and image_hc else None)
    )
    stop_signal = cfg.stop_signal or image.stop_signal or ""
    if stop_signal:
        parse_signal(stop_signal)
    return ContainerConfig(
        image=cfg.image,
        hostname=hostname,
        domainname=cfg.domainname,
        user=cfg.user if cfg.user is not None else image.user,
        attach_stdin=cfg.attach_stdin,
        attach_stdout=cfg.attach_stdout,
        attach_stderr=cfg.attach_stderr,
        tty=cfg.tty,
        open_stdin=cfg.open_stdin,
        stdin_once=cfg.stdin_once,
        env=tuple(merge_env(list(image.env or ()), list(cfg.env or ()))) or None,
        cmd=cmd,
        entrypoint=entrypoint,
        working_dir=cfg.working_dir or image.working_dir,
        labels={**image_labels(image.labels), **cfg.labels},
        volumes=cfg.volumes or image.volumes or None,
        # as dockerd: no key where there are none
        exposed_ports=cfg.exposed_ports or port_set(image.exposed_ports or ()),
        healthcheck=healthcheck,
        stop_signal=stop_signal,
        stop_timeout=cfg.stop_timeout,
        mac_address=cfg.mac_address,
    )


__all__ = [
    "CRI_PREFIX",
    "CreateRequest",
    "check_host_config",
    "command",
    "container_config",
    "fill_defaults",
    "image_labels",
    "pick_name",
]
