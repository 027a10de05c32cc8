"""The resolved compose model, typed: a `Project` of services, networks, volumes, secrets and
configs. `compose.project` builds it from the canonical tree (`compose.normalize`) that
`config` prints. Imports nothing of berth's.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

TYPE_CHECKING = False  # not typing's: importing typing costs ~5 ms of every compose command
if TYPE_CHECKING:
    from typing import Any


class Condition(enum.StrEnum):
    STARTED = "service_started"
    HEALTHY = "service_healthy"
    COMPLETED = "service_completed_successfully"


@dataclass(frozen=True, slots=True, kw_only=True)
class Dependency:
    service: str
    condition: Condition = Condition.STARTED
    required: bool = True
    restart: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Port:
    target: int
    published: str = ""  # "" for an engine-chosen port; may be a range "8000-8010"
    host_ip: str = ""
    protocol: str = "tcp"


class MountType(enum.StrEnum):
    VOLUME = "volume"
    BIND = "bind"
    TMPFS = "tmpfs"


@dataclass(frozen=True, slots=True, kw_only=True)
class Mount:
    type: MountType
    target: str
    source: str = ""  # "" for an anonymous volume or a tmpfs
    read_only: bool = False
    nocopy: bool = False
    create_host_path: bool = True
    tmpfs_size: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceNetwork:
    name: str  # the key in the project's `networks`
    aliases: tuple[str, ...] = ()
    ipv4_address: str = ""
    priority: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Healthcheck:
    test: tuple[str, ...] = ()
    interval_s: float = 0.0
    timeout_s: float = 0.0
    start_period_s: float = 0.0
    start_interval_s: float = 0.0
    retries: int = 0
    disable: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Build:
    context: str
    dockerfile: str = "Dockerfile"
    args: dict[str, str] = field(default_factory=dict)
    target: str = ""
    cache_from: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()  # keys of the project's secrets
    network: str = ""
    extra_hosts: dict[str, str] = field(default_factory=dict)
    shm_size: int = 0
    no_cache: bool = False
    pull: bool = False
    tags: tuple[str, ...] = ()
    ssh: tuple[str, ...] = ()  # "default", "ID=PATH[,PATH]": asked of the builder
    dockerfile_inline: str = ""
    platforms: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class FileRef:
    """A service's use of a secret or config."""

    source: str
    target: str = ""
    uid: str = ""
    gid: str = ""
    mode: int | None = None


class WatchAction(enum.StrEnum):
    SYNC = "sync"
    REBUILD = "rebuild"
    RESTART = "restart"
    SYNC_RESTART = "sync+restart"
    SYNC_EXEC = "sync+exec"


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchRule:
    """One `develop.watch` entry: a host path (absolute), what a change there does, and for
    the sync actions where it goes in the container."""

    path: str
    action: WatchAction
    target: str = ""
    ignore: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    exec_command: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Hook:
    """A `post_start` or `pre_stop` command, run in the service's container."""

    command: tuple[str, ...]
    user: str = ""
    privileged: bool = False
    working_dir: str = ""
    environment: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class PreStart:
    """A `pre_start` step: run to its end in an ephemeral container of its own (the service's
    image unless `image`), on the service's networks and with its volumes, before the
    service's container starts."""

    command: tuple[str, ...] | None = None  # None: the image's own
    image: str = ""
    user: str = ""
    privileged: bool = False
    working_dir: str = ""
    environment: dict[str, str] = field(default_factory=dict)
    per_replica: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceRequest:
    driver: str = ""
    count: int = 0
    device_ids: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Service:
    name: str
    image: str = ""
    build: Build | None = None
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    environment: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    ports: tuple[Port, ...] = ()
    expose: tuple[str, ...] = ()
    mounts: tuple[Mount, ...] = ()
    tmpfs: tuple[str, ...] = ()
    networks: tuple[ServiceNetwork, ...] = ()
    network_mode: str = ""
    depends_on: tuple[Dependency, ...] = ()
    healthcheck: Healthcheck | None = None
    restart: str = ""
    replicas: int = 1
    container_name: str = ""
    hostname: str = ""
    domainname: str = ""
    user: str = ""
    working_dir: str = ""
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    privileged: bool = False
    read_only: bool = False
    init: bool | None = None
    tty: bool = False
    stdin_open: bool = False
    stop_signal: str = ""
    stop_grace_period_s: float | None = None
    extra_hosts: dict[str, str] = field(default_factory=dict)
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_opt: tuple[str, ...] = ()
    sysctls: dict[str, str] = field(default_factory=dict)
    ulimits: dict[str, tuple[int, int]] = field(default_factory=dict)
    logging_driver: str = ""
    logging_options: dict[str, str] = field(default_factory=dict)
    mem_limit: int = 0
    nano_cpus: int = 0
    pids_limit: int = 0
    shm_size: int = 0
    security_opt: tuple[str, ...] = ()
    group_add: tuple[str, ...] = ()
    pull_policy: str = ""
    profiles: tuple[str, ...] = ()
    secrets: tuple[FileRef, ...] = ()
    configs: tuple[FileRef, ...] = ()
    ipc: str = ""
    pid: str = ""
    uts: str = ""
    userns_mode: str = ""
    cgroup_parent: str = ""
    runtime: str = ""
    mac_address: str = ""
    devices: tuple[str, ...] = ()
    oom_score_adj: int | None = None
    cpu_shares: int = 0
    cpuset: str = ""
    mem_reservation: int = 0
    memswap_limit: int = 0
    links: tuple[str, ...] = ()
    external_links: tuple[str, ...] = ()
    volumes_from: tuple[str, ...] = ()
    annotations: dict[str, str] = field(default_factory=dict)
    watch: tuple[WatchRule, ...] = ()
    attach: bool = True
    post_start: tuple[Hook, ...] = ()
    pre_stop: tuple[Hook, ...] = ()
    pre_start: tuple[PreStart, ...] = ()
    # device requests (`gpus`, deploy.resources.reservations.devices): driver, count (-1 for
    # all), device IDs, capabilities
    device_requests: tuple[DeviceRequest, ...] = ()
    mem_swappiness: int | None = None
    oom_kill_disable: bool = False
    cpu_quota: int = 0
    cpu_period: int = 0
    device_cgroup_rules: tuple[str, ...] = ()
    platform: str = ""  # must be the daemon's (berth runs no other)
    # the canonical tree of this service: what the config hash is computed from
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def image_name(self, project: str) -> str:
        """The image this service runs: `image`, or for a build with none `PROJECT-SERVICE`."""
        return self.image or f"{project}-{self.name}"

    def dependencies(self) -> list[str]:
        deps = [d.service for d in self.depends_on]
        for mode in (self.network_mode, self.ipc, self.pid):
            if mode.startswith("service:"):
                deps.append(mode[8:])
        deps += [link.split(":", 1)[0] for link in self.links]
        deps += [v.split(":", 1)[0] for v in self.volumes_from if not v.startswith("container:")]
        return list(dict.fromkeys(deps))


@dataclass(frozen=True, slots=True, kw_only=True)
class Network:
    key: str
    name: str
    driver: str = ""
    driver_opts: dict[str, str] = field(default_factory=dict)
    external: bool = False
    internal: bool = False
    attachable: bool = False
    enable_ipv6: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    ipam_driver: str = ""
    ipam_config: tuple[dict[str, str], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Volume:
    key: str
    name: str
    driver: str = ""
    driver_opts: dict[str, str] = field(default_factory=dict)
    external: bool = False
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class FileObject:
    """A top-level secret or config: from a file, inline content or an environment variable."""

    key: str
    name: str
    file: str = ""
    content: str | None = None
    environment: str = ""
    external: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Project:
    name: str
    working_dir: Path
    config_files: tuple[Path, ...]
    services: dict[str, Service]
    networks: dict[str, Network]
    volumes: dict[str, Volume]
    secrets: dict[str, FileObject]
    configs: dict[str, FileObject]
    env: dict[str, str] = field(default_factory=dict, repr=False)
    canonical: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def order(self, names: list[str] | None = None) -> list[str]:
        """Service names in start order (dependencies first); with `names`, those and what
        they depend on."""
        seen: list[str] = []

        def visit(n: str) -> None:
            if n in seen or n not in self.services:
                return
            for d in self.services[n].dependencies():
                visit(d)
            seen.append(n)

        for n in names if names else sorted(self.services):
            visit(n)
        return seen
