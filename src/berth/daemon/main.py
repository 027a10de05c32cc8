"""berthd: configuration, wiring of the services, the fork server, start-up and shutdown.

Imports everything below it. Flags take dockerd's names.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import platform
import resource
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from berth import __version__, cgroups, storage
from berth.api import API_VERSION, ENGINE_VERSION, Api
from berth.builder import Builder, check_entitlements
from berth.containers import Config as ContainersConfig
from berth.containers import ContainerService
from berth.containers.buildrunner import BuildRunner
from berth.containers.execs import ExecService
from berth.containers.health import HealthChecker
from berth.content import ContentStore
from berth.daemon import listeners
from berth.daemon.listeners import TLSSettings
from berth.errors import BerthError, InvalidArgument
from berth.events import EventBus
from berth.fs import atomic_write
from berth.images import ImageService
from berth.images.distribution import Distribution
from berth.metadata import MetadataStore
from berth.networks import NetConfig, NetworkService
from berth.registry import RegistryClient, RegistryOptions
from berth.shim.launch import start_forkserver
from berth.volumes import VolumeService

log = logging.getLogger("berthd")


@dataclass(frozen=True, slots=True, kw_only=True)
class DaemonConfig:
    # unix:///PATH and tcp://HOST:PORT, normalised as dockerd does (listeners.normalize_host)
    hosts: list[str] = field(default_factory=lambda: ["unix:///run/berth/berth.sock"])
    tls: TLSSettings | None = None   # the tcp:// hosts' TLS
    tls_explicit: bool = False        # --tls or --tlsverify given (flag or daemon.json)
    data_root: str = "/var/lib/berth"
    exec_root: str = "/run/berth"
    pidfile: str = ""
    log_level: str = "info"
    cgroup_parent: str = "berth"
    default_runtime: str = "berth"
    runtimes: dict[str, str] = field(default_factory=dict)   # name -> path ("" for berth)
    storage_driver: str = ""
    init_path: str = ""
    cdi_spec_dirs: tuple[str, ...] = ("/etc/cdi", "/var/run/cdi")
    log_opts: dict[str, str] = field(default_factory=dict)
    bridge: str = "berth0"
    bip: str = "10.88.0.1/16"
    iptables: bool = True
    ip_forward: bool = True
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_opts: list[str] = field(default_factory=list)
    registry_mirrors: list[str] = field(default_factory=list)
    insecure_registries: list[str] = field(default_factory=list)
    certs_dir: str = "/etc/docker/certs.d"
    docker_hub: bool = True
    # entitlements a build may be granted when it asks (buildkitd's flag of the same name)
    insecure_entitlements: frozenset[str] = frozenset()
    idmap: tuple[int, int, int] | None = None   # --userns-remap: (uid, gid, size) outside

    @property
    def socket_paths(self) -> list[str]:
        return [h[len("unix://"):] for h in self.hosts if h.startswith("unix://")]


def parse_args(argv: list[str]) -> DaemonConfig:
    p = argparse.ArgumentParser(prog="berthd", description="berth's engine: the Docker Engine "
                                "API on a unix socket, and over TCP with TLS")
    p.add_argument("-H", "--host", action="append", default=[],
                   help="daemon socket(s) to listen on: unix:///PATH, tcp://ADDR:PORT")
    p.add_argument("--tls", nargs="?", const="true", default=None, metavar="BOOL",
                   help="use TLS; implied by --tlsverify")
    p.add_argument("--tlsverify", nargs="?", const="true", default=None, metavar="BOOL",
                   help="use TLS and verify the remote (client certificates signed by "
                   "--tlscacert)")
    p.add_argument("--tlscacert", default=None,
                   help="trust certs signed only by this CA (default ~/.docker/ca.pem)")
    p.add_argument("--tlscert", default=None,
                   help="path to TLS certificate file (default ~/.docker/cert.pem)")
    p.add_argument("--tlskey", default=None,
                   help="path to TLS key file (default ~/.docker/key.pem)")
    p.add_argument("--data-root", default="/var/lib/berth")
    p.add_argument("--exec-root", default="/run/berth")
    p.add_argument("-p", "--pidfile", default="")
    p.add_argument("-l", "--log-level", default="info",
                   choices=["debug", "info", "warn", "error", "fatal"])
    p.add_argument("--cgroup-parent", default="berth")
    p.add_argument("--default-runtime", default="berth",
                   help="berth (its own runtime), runc, crun, or a name from --add-runtime")
    p.add_argument("--add-runtime", action="append", default=[],
                   help="NAME=PATH: another OCI runtime with runc's command line")
    p.add_argument("-s", "--storage-driver", default="")
    p.add_argument("-b", "--bridge", default="berth0",
                   help="the default bridge network's bridge, created if absent")
    p.add_argument("--bip", default="10.88.0.1/16",
                   help="the default bridge's address and subnet (not Docker's 172.17/16)")
    p.add_argument("--iptables", default="true", choices=["true", "false"])
    p.add_argument("--ip-forward", default="true", choices=["true", "false"])
    p.add_argument("--log-opt", action="append", default=[],
                   help="max-size=20m, max-file=5: the default rotation of container logs")
    p.add_argument("--init-path", default="",
                   help="a static init for --init (default: tini-static from Debian's tini)")
    p.add_argument("--cdi-spec-dir", action="append", default=[],
                   help="a directory of CDI specs for --device vendor/class=name and --gpus "
                   "(default: /etc/cdi and /var/run/cdi)")
    p.add_argument("--dns", action="append", default=[])
    p.add_argument("--dns-search", action="append", default=[])
    p.add_argument("--dns-opt", action="append", default=[])
    p.add_argument("--userns-remap", default="",
                   help="default|USER[:GROUP]|UID[:GID]: containers' root is that user's "
                   "subordinate range (/etc/subuid, /etc/subgid) outside")
    p.add_argument("--registry-mirror", action="append", default=[],
                   help="a mirror of Docker Hub, tried before it (http(s)://HOST[:PORT])")
    p.add_argument("--insecure-registry", action="append", default=[],
                   help="a registry (HOST[:PORT] or CIDR) reached without verified TLS")
    p.add_argument("--docker-hub", default="true", choices=["true", "false"],
                   help="false: never contact Docker Hub itself; docker.io names go only to "
                   "the registry mirrors (an air-gapped host; berth's tests)")
    p.add_argument("--certs-dir", default="/etc/docker/certs.d",
                   help="per-registry certificates: DIR/HOST[:PORT]/ca.crt, client.cert/.key")
    p.add_argument("--allow-insecure-entitlement", action="append", default=[],
                   help="network.host: a build may run RUN --network=host steps when it asks "
                   "for it (berth build --allow network.host)")
    p.add_argument("--config-file", default="/etc/berth/daemon.json",
                   help="daemon.json: registry-mirrors, insecure-registries, dns, log-opts, ...")
    p.add_argument("-v", "--version", action="store_true")
    a = p.parse_args(argv)
    _apply_config_file(p, a)
    if a.version:
        print(f"berthd version {__version__} (Docker Engine API {API_VERSION})")
        sys.exit(0)
    runtimes = _runtimes(p, a.add_runtime)
    if a.default_runtime == "berth-runtime":
        a.default_runtime = "berth"
    if a.default_runtime not in runtimes:
        p.error(f"unknown runtime {a.default_runtime!r}: berth, "
                + ", ".join(sorted(set(runtimes) - {"berth"})) + " (--add-runtime adds one)")
    idmap = _userns_remap(p, a.userns_remap) if a.userns_remap else None
    try:
        entitlements = frozenset(check_entitlements(a.allow_insecure_entitlement))
    except InvalidArgument as e:
        p.error(f"--allow-insecure-entitlement: {e}")
    if idmap is not None:
        # as Docker: a remapped daemon keeps its images and containers apart
        a.data_root = os.path.join(a.data_root, f"{idmap[0]}.{idmap[1]}")
    tls, tls_explicit = _tls_settings(p, a)
    default_unix = os.path.join(a.exec_root, "berth.sock")
    hosts: list[str] = []
    try:
        for h in a.host or [""]:
            n = listeners.normalize_host(h, default_unix, tls is not None)
            if n not in hosts:
                hosts.append(n)
    except InvalidArgument as e:
        p.error(str(e))
    return DaemonConfig(hosts=hosts, tls=tls, tls_explicit=tls_explicit, data_root=os.path.abspath(a.data_root),
                        exec_root=os.path.abspath(a.exec_root), pidfile=a.pidfile,
                        log_level=a.log_level, cgroup_parent=a.cgroup_parent,
                        default_runtime=a.default_runtime, runtimes=runtimes,
                        storage_driver=a.storage_driver,
                        init_path=a.init_path or _find_init(),
                        cdi_spec_dirs=tuple(a.cdi_spec_dir) or ("/etc/cdi", "/var/run/cdi"),
                        log_opts=dict(o.split("=", 1) for o in a.log_opt if "=" in o),
                        bridge=a.bridge, bip=a.bip, iptables=a.iptables == "true",
                        ip_forward=a.ip_forward == "true",
                        dns=a.dns, dns_search=a.dns_search, dns_opts=a.dns_opt,
                        registry_mirrors=a.registry_mirror,
                        insecure_registries=a.insecure_registry, certs_dir=a.certs_dir,
                        docker_hub=a.docker_hub == "true", idmap=idmap,
                        insecure_entitlements=entitlements)


def _bool(p: argparse.ArgumentParser, name: str, v: str | bool) -> bool:
    if isinstance(v, bool):
        return v
    if v.lower() in ("true", "1", "t"):
        return True
    if v.lower() in ("false", "0", "f"):
        return False
    p.error(f'invalid argument "{v}" for "--{name}" flag: strconv.ParseBool: parsing "{v}": '
            "invalid syntax")
    raise AssertionError  # p.error exits


def _tls_settings(p: argparse.ArgumentParser, a: argparse.Namespace) -> \
        tuple[TLSSettings | None, bool]:
    """dockerd's TLS options: --tlsverify (any value) turns TLS on; --tls alone verifies
    clients too (TLSVerify takes TLS's value); --tlsverify=false is TLS that does not. Files
    default to ca.pem, cert.pem, key.pem in DOCKER_CERT_PATH, else DOCKER_CONFIG, else
    ~/.docker (dockerd's defaultCertPath). The second value: was TLS set either way."""
    tls_set, verify_set = a.tls is not None, a.tlsverify is not None
    on = _bool(p, "tls", a.tls) if tls_set else False
    if verify_set:
        on = True
    verify = _bool(p, "tlsverify", a.tlsverify) if verify_set else on
    if not on:
        return None, tls_set or verify_set
    base = os.environ.get("DOCKER_CERT_PATH") or os.environ.get("DOCKER_CONFIG") or \
        os.path.join(os.path.expanduser("~"), ".docker")
    return TLSSettings(verify=verify, ca=a.tlscacert or os.path.join(base, "ca.pem"),
                       cert=a.tlscert or os.path.join(base, "cert.pem"),
                       key=a.tlskey or os.path.join(base, "key.pem")), True


REMAP_USER = "berthremap"


def _subordinate(path: str, names: set[str]) -> tuple[int, int] | None:
    """The first range (start, count) for one of `names` in /etc/subuid or /etc/subgid."""
    try:
        with open(path) as f:
            for line in f:
                parts = line.strip().split(":")
                if len(parts) == 3 and parts[0] in names and parts[1].isdigit() \
                        and parts[2].isdigit():
                    return int(parts[1]), int(parts[2])
    except FileNotFoundError:
        pass
    return None


def _userns_remap(p: argparse.ArgumentParser, spec: str) -> tuple[int, int, int]:
    """`--userns-remap` as dockerd reads it. `default` is the user berthremap, made (with a
    range of 65536 ids in /etc/subuid and /etc/subgid) if it is missing, as dockerd makes
    dockremap. Only the first range of a user is used."""
    import grp
    import pwd
    import subprocess
    user, _, group = spec.partition(":")
    if spec == "default":
        user = group = REMAP_USER
        try:
            pwd.getpwnam(REMAP_USER)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/bin/false",
                            REMAP_USER], check=True, capture_output=True)
        for path in ("/etc/subuid", "/etc/subgid"):
            if _subordinate(path, {REMAP_USER}) is None:
                start = 100000
                with open(path, "a+") as f:
                    f.seek(0)
                    for line in f:
                        parts = line.strip().split(":")
                        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                            start = max(start, int(parts[1]) + int(parts[2]))
                    f.write(f"{REMAP_USER}:{start}:65536\n")
    group = group or user
    unames = {user}
    with contextlib.suppress(KeyError, ValueError):
        unames.add(pwd.getpwuid(int(user)).pw_name if user.isdigit() else
                   str(pwd.getpwnam(user).pw_uid))
    gnames = {group}
    with contextlib.suppress(KeyError, ValueError):
        gnames.add(grp.getgrgid(int(group)).gr_name if group.isdigit() else
                   str(grp.getgrnam(group).gr_gid))
    uids = _subordinate("/etc/subuid", unames)
    gids = _subordinate("/etc/subgid", gnames)
    if uids is None or gids is None:
        p.error(f"--userns-remap {spec}: no subordinate "
                f"{'uid' if uids is None else 'gid'} range for {user if uids is None else group} "
                f"in /etc/sub{'uid' if uids is None else 'gid'}")
    assert uids is not None and gids is not None
    return uids[0], gids[0], min(uids[1], gids[1])


def _runtimes(p: argparse.ArgumentParser, added: list[str]) -> dict[str, str]:
    """berth's own runtime, runc and crun where installed, and those of --add-runtime."""
    import shutil
    out = {"berth": ""}
    for name in ("runc", "crun"):
        path = shutil.which(name)
        if path:
            out[name] = path
    for spec in added:
        name, eq, path = spec.partition("=")
        if not eq or not name or not path:
            p.error(f"--add-runtime {spec!r}: NAME=PATH")
        found = shutil.which(path)
        if not found:
            p.error(f"--add-runtime {name}: {path}: executable file not found")
        out[name] = found
    return out


_CONFIG_KEYS = {  # daemon.json key → flag destination, as in dockerd
    "registry-mirrors": "registry_mirror", "insecure-registries": "insecure_registry",
    "dns": "dns", "dns-search": "dns_search", "dns-opts": "dns_opt", "bridge": "bridge",
    "bip": "bip", "data-root": "data_root", "exec-root": "exec_root", "pidfile": "pidfile",
    "log-level": "log_level", "cgroup-parent": "cgroup_parent", "storage-driver":
    "storage_driver", "default-runtime": "default_runtime", "init-path": "init_path",
    "allow-insecure-entitlement": "allow_insecure_entitlement",
    "hosts": "host", "tls": "tls", "tlsverify": "tlsverify", "tlscacert": "tlscacert",
    "tlscert": "tlscert", "tlskey": "tlskey",
    "cdi-spec-dirs": "cdi_spec_dir",
}
_BOOL_KEYS = ("tls", "tlsverify")


def _apply_config_file(p: argparse.ArgumentParser, a: argparse.Namespace) -> None:
    """Values from daemon.json, where no flag gave one; a key set in both is an error, as
    in dockerd."""
    import json
    path = a.config_file
    if not os.path.exists(path):
        if path != p.get_default("config_file"):
            p.error(f"config file {path} does not exist")
        return
    try:
        with open(path) as f:
            doc = json.load(f)
        assert isinstance(doc, dict)
    except (OSError, ValueError, AssertionError) as e:
        p.error(f"{path}: not a JSON object: {e}")
    for key, value in doc.items():
        if key == "log-opts" and isinstance(value, dict):
            a.log_opt = [f"{k}={v}" for k, v in value.items()] + a.log_opt
            continue
        dest = _CONFIG_KEYS.get(key)
        if dest is None:
            p.error(f"{path}: the following directives are not supported by berthd: {key}")
        current, default = getattr(a, dest), p.get_default(dest)
        if current != default and current:
            p.error(f"the following directives are specified both as a flag and in the "
                    f"configuration file: {key}")
        if key in _BOOL_KEYS:
            if not isinstance(value, bool):
                p.error(f"{path}: {key} must be a boolean")
            setattr(a, dest, "true" if value else "false")
            continue
        if isinstance(default, list) != isinstance(value, list):
            p.error(f"{path}: {key} must be {'a list' if isinstance(default, list) else 'a string'}")
        setattr(a, dest, value)


# The data root and exec root are berth's alone: no other local user may read a container's
# environment (berth.db, a bundle's config.json) or reach what a container planted in its
# writable layer or a volume (a setuid-root file, a 0666 node of the host's disk).
#   DATA_ROOT                 0700 root:root (0710 root:REMAP_GID with --userns-remap)
#     containers/ volumes/ build/   the same: with --userns-remap the container's root
#                               (REMAP_UID:REMAP_GID outside) walks to the files, volumes and
#                               build mounts bound into it; nobody else may
#     content/ storage/         0700 root:root always: only berthd reads blobs; layers and
#                               writable layers are mounted by the monitor (root), and
#                               overlayfs reaches them with the mounter's credentials
#     berth.db (-wal, -shm), engine-id   0600
#   DATA_ROOT/.. with --userns-remap (the --data-root given)   0710 root:REMAP_GID (as dockerd)
#   EXEC_ROOT                 0711 root:root: the default socket (0660) is in it, so it is
#                             walked but not listed
#     containers/ runtimes/     0700 root:root (0710 root:REMAP_GID: the container's root
#                               walks to its bundle's rootfs)
#     networks/ seccomp/        0700 root:root
# Inside, files with secrets are 0600 (berth.fs.atomic_write); the files bound into
# containers (hostname, hosts, resolv.conf) stay 0644 for the container's non-root users,
# the upper directory and a volume's _data keep the image's modes: the closed directories
# above them keep other local users out. A data root from before is closed here at start.
_DATA_SHARED = ("containers", "volumes", "build")
_DATA_PRIVATE = ("content", "storage")
_EXEC_SHARED = ("containers", "runtimes")
_EXEC_PRIVATE = ("networks", "seccomp")


def close_roots(cfg: DaemonConfig) -> None:
    gid = cfg.idmap[1] if cfg.idmap else 0
    shared = 0o710 if cfg.idmap else 0o700
    if cfg.idmap:
        _own_dir(os.path.dirname(cfg.data_root), 0o710, gid)
    _own_dir(cfg.data_root, shared, gid)
    for name in _DATA_SHARED:
        _own_dir(os.path.join(cfg.data_root, name), shared, gid)
    for name in _DATA_PRIVATE:
        _own_dir(os.path.join(cfg.data_root, name), 0o700, 0)
    with contextlib.suppress(FileNotFoundError):
        os.chmod(os.path.join(cfg.data_root, "engine-id"), 0o600)
    _own_dir(cfg.exec_root, 0o711, 0)
    for name in _EXEC_SHARED:
        _own_dir(os.path.join(cfg.exec_root, name), shared, gid)
    for name in _EXEC_PRIVATE:
        _own_dir(os.path.join(cfg.exec_root, name), 0o700, 0)


def _own_dir(path: str, mode: int, gid: int) -> None:
    """`path` a directory of root's, group `gid`, exactly `mode`, made if missing."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chown(path, 0, gid)
    os.chmod(path, mode)


class Daemon:
    def __init__(self, cfg: DaemonConfig) -> None:
        self.cfg = cfg
        self.started = time.time()
        close_roots(cfg)
        self.meta = MetadataStore(os.path.join(cfg.data_root, "berth.db"))
        self.content = ContentStore(os.path.join(cfg.data_root, "content"))
        self.content.clean_ingest()
        shift = (cfg.idmap[0], cfg.idmap[1]) if cfg.idmap else (0, 0)
        self.layers = storage.LayerStore(os.path.join(cfg.data_root, "storage"), self.content,
                                         shift)
        self.layers.clean()
        driver_name = cfg.storage_driver or (
            "overlay2" if storage.overlay_supported(cfg.data_root) else "vfs")
        self.driver = storage.make_driver(driver_name, os.path.join(cfg.data_root, "storage"))
        self.driver.shift = shift
        self.events = EventBus()
        self.images = ImageService(self.meta, self.content, self.layers, emit=self._emit)
        self.forkserver_sock = os.path.join(cfg.exec_root, "forkserver.sock")
        self.networks = NetworkService(self.meta, NetConfig(
            bridge=cfg.bridge, bip=cfg.bip, iptables=cfg.iptables, ip_forward=cfg.ip_forward,
            run_dir=os.path.join(cfg.exec_root, "networks")), emit=self._emit)
        self.volumes = VolumeService(self.meta, os.path.join(cfg.data_root, "volumes"),
                                     owner=shift, emit=self._emit)
        self.networks.load()
        self.containers = ContainerService(
            ContainersConfig(data_root=cfg.data_root, exec_root=cfg.exec_root,
                             forkserver=self.forkserver_sock, cgroup_parent=cfg.cgroup_parent,
                             dns=cfg.dns, dns_search=cfg.dns_search, dns_options=cfg.dns_opts,
                             runtime=cfg.default_runtime, runtimes=dict(cfg.runtimes),
                             idmap=cfg.idmap,
                             init_path=cfg.init_path, cdi_spec_dirs=cfg.cdi_spec_dirs,
                             **_log_defaults(cfg.log_opts)),
            self.meta, self.images, self.driver, emit=self._emit,
            volumes=self.volumes, networks=self.networks)
        self.images.containers_using = self.containers.containers_using
        self.images.layers_in_use = self.containers.layers_in_use
        self.execs = ExecService(self.containers)
        self.containers.on_remove.append(self.execs.forget_container)
        self.health = HealthChecker(self.containers, self.execs)
        self.registry = RegistryClient(RegistryOptions(
            mirrors=cfg.registry_mirrors, insecure=cfg.insecure_registries,
            certs_dir=cfg.certs_dir, docker_hub=cfg.docker_hub))
        self.distribution = Distribution(self.images, self.registry, emit=self._emit)
        self.builder = Builder(self.images, BuildRunner(self.containers), data_root=cfg.data_root,
                               pull=self.distribution.pull,
                               entitlements=cfg.insecure_entitlements)
        self.api = Api(containers=self.containers, images=self.images, info=self.info,
                       execs=self.execs, events=self.events, distribution=self.distribution,
                       builder=self.builder, networks=self.networks, volumes=self.volumes)
        self.forkserver: asyncio.subprocess.Process | None = None
        self.nofile_soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]   # main() sets it

    def _emit(self, typ: str, action: str, actor: str, attrs: dict[str, str]) -> None:
        log.debug("event %s %s %s %s", typ, action, actor[:12], attrs)
        self.events.publish(typ, action, actor, attrs)

    def info(self) -> dict[str, Any]:
        u = os.uname()
        counts = self.containers.counts()
        v2 = cgroups.is_v2()
        mem_total = 0
        with contextlib.suppress(OSError), open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_total = int(line.split()[1]) * 1024
        os_name = "Linux"
        with contextlib.suppress(OSError), open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    os_name = line.split("=", 1)[1].strip().strip('"')
        return {
            "ID": self._daemon_id(), **counts, "Images": len(self.meta.image_ids()),
            "Driver": self.driver.name, "DriverStatus": [["Backing Filesystem", "extfs"]],
            "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"],
                        "Authorization": None, "Log": ["json-file"]},
            "MemoryLimit": True, "SwapLimit": os.path.exists(
                "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes") or v2,
            "CpuCfsPeriod": True, "CpuCfsQuota": True, "CPUShares": True, "CPUSet": True,
            "PidsLimit": True, "IPv4Forwarding": True, "BridgeNfIptables": False,
            "BridgeNfIp6tables": False, "Debug": self.cfg.log_level == "debug",
            "NFd": len(os.listdir("/proc/self/fd")), "OomKillDisable": not v2,
            "NGoroutines": len(asyncio.all_tasks()), "SystemTime": _now(),
            "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs",
            "CgroupVersion": "2" if v2 else "1", "NEventsListener": 0,
            "KernelVersion": u.release, "OperatingSystem": os_name, "OSVersion": "",
            "OSType": "linux", "Architecture": platform.machine(),
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": {"AllowNondistributableArtifactsCIDRs": None,
                               "AllowNondistributableArtifactsHostnames": None,
                               "InsecureRegistryCIDRs": [
                                   str(n) for n in self.registry.options.insecure_cidrs()],
                               "IndexConfigs": {"docker.io": {
                                   "Name": "docker.io", "Mirrors": self.cfg.registry_mirrors,
                                   "Secure": True, "Official": True}, **{
                                   r: {"Name": r, "Mirrors": [], "Secure": False,
                                       "Official": False}
                                   for r in self.cfg.insecure_registries if "/" not in r}},
                               "Mirrors": self.cfg.registry_mirrors or None},
            "NCPU": os.cpu_count() or 1, "MemTotal": mem_total,
            "GenericResources": None, "DockerRootDir": self.cfg.data_root,
            "HttpProxy": "", "HttpsProxy": "", "NoProxy": "", "Name": u.nodename,
            "Labels": [], "ExperimentalBuild": False, "ServerVersion": ENGINE_VERSION,
            # under the names clients know: berth's own is "runc" where no real runc is
            "Runtimes": {self.containers.cfg.runtime_shown(name): {"path": path or "berth-runtime"}
                         for name, path in self.cfg.runtimes.items()},
            "DefaultRuntime": self.containers.cfg.runtime_shown(self.containers.cfg.runtime),
            "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                      "ControlAvailable": False, "Error": "", "RemoteManagers": None},
            "LiveRestoreEnabled": True, "Isolation": "", "InitBinary": "",
            "ContainerdCommit": {"ID": ""}, "RuncCommit": {"ID": ""},
            "InitCommit": {"ID": ""}, "SecurityOptions": [
                "name=seccomp,profile=builtin", "name=no-new-privileges",
                *(["name=userns"] if self.cfg.idmap else [])], "CDISpecDirs": [],
            "Containerd": None,
            "Warnings": listeners.api_warnings(self.cfg.hosts, self.cfg.tls) or None,
        }

    def _daemon_id(self) -> str:
        path = os.path.join(self.cfg.data_root, "engine-id")
        try:
            with open(path) as f:
                return f.read().strip()
        except FileNotFoundError:
            import uuid
            ident = str(uuid.uuid4())
            atomic_write(path, ident.encode())
            return ident

    async def start_forkserver(self) -> None:
        self.forkserver = await start_forkserver(self.forkserver_sock, self.nofile_soft)

    async def run(self) -> None:
        for path in self.cfg.socket_paths:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(path)
            except OSError:
                pass
            else:
                raise InvalidArgument(f"another daemon answers on {path}: stop it first")
            finally:
                probe.close()
        tcp = [h for h in self.cfg.hosts if h.startswith("tcp://")]
        ssl_ctx = listeners.server_context(self.cfg.tls) if tcp and self.cfg.tls else None
        for h in tcp:
            # as dockerd (loadListeners): the warnings, and the wait, before anything listens
            await listeners.warn_insecure(h, self.cfg.tls, self.cfg.tls_explicit)
        await self.start_forkserver()
        await asyncio.to_thread(self.networks.setup)
        await self.containers.restore()
        await self.containers.start_restartable()
        # streams that never end on their own (events, logs -f) must not hold up a shutdown
        runner = web.AppRunner(self.api.app(), access_log=None, handle_signals=False,
                               shutdown_timeout=1.0)
        await runner.setup()
        owned: list[tuple[str, tuple[int, int]]] = []
        for h in self.cfg.hosts:
            site: web.SockSite
            if h.startswith("tcp://"):
                sock = listeners.bind_tcp(h)
                site = listeners.TLSSite(runner, sock, ssl_context=ssl_ctx) if ssl_ctx \
                    else web.SockSite(runner, sock)
            else:
                path = h[len("unix://"):]
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.bind(path)
                os.chmod(path, 0o660)
                st = os.stat(path)
                # the inode number alone does not say the socket is still ours at shutdown:
                # a daemon started after us may have bound the path again and got the same
                # number back
                owned.append((path, (st.st_ino, st.st_ctime_ns)))
                site = web.SockSite(runner, sock)
            await site.start()
            log.info("API listen on %s%s", h[len("unix://"):] if h.startswith("unix://")
                     else h[len("tcp://"):], " (TLS)" if h.startswith("tcp://") and ssl_ctx
                     else "")
        if self.cfg.pidfile:
            with open(self.cfg.pidfile, "w") as f:
                f.write(str(os.getpid()))
        log.info("berthd %s listening on %s (storage %s, cgroup v%s)", __version__,
                 ", ".join(self.cfg.hosts), self.driver.name,
                 "2" if cgroups.is_v2() else "1")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for s in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(s, stop.set)
        try:
            await stop.wait()
        finally:
            log.info("shutting down; running containers are left running (live restore)")
            await self._shutdown(runner, owned)

    async def _shutdown(self, runner: web.AppRunner,
                        owned: list[tuple[str, tuple[int, int]]]) -> None:
        """Every step runs, whatever the one before it did."""
        async def step(what: str, coro: Any) -> None:
            t0 = time.monotonic()
            try:
                await coro
            except Exception:  # noqa: BLE001 - the daemon's edge: log, go on
                log.exception("shutdown: %s failed", what)
            log.debug("shutdown: %s took %.3f s", what, time.monotonic() - t0)

        async def unlink_own() -> None:
            # a daemon started after us may have bound the path again: leave its socket be
            for path, sock_id in owned:
                with contextlib.suppress(FileNotFoundError):
                    st = os.stat(path)
                    if (st.st_ino, st.st_ctime_ns) == sock_id:
                        os.unlink(path)
            if self.cfg.pidfile:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.cfg.pidfile)

        async def stop_forkserver() -> None:
            if self.forkserver and self.forkserver.returncode is None:
                self.forkserver.kill()
                await self.forkserver.wait()

        async def networks_down() -> None:
            if not self.containers.counts()["ContainersRunning"]:
                # nothing runs on them: bridges and rules go, to be made again at start
                await asyncio.to_thread(self.networks.teardown)

        await step("http server", runner.cleanup())
        await step("containers", self.containers.close())
        await step("registry client", self.registry.close())
        await step("fork server", stop_forkserver())
        await step("socket and pidfile", unlink_own())
        await step("cgroup parent", asyncio.to_thread(cgroups.remove_parent,
                                                      self.cfg.cgroup_parent))
        await step("networks", networks_down())
        self.meta.close()


def _log_defaults(opts: dict[str, str]) -> dict[str, int]:
    from berth.units import parse_size
    out = {}
    if opts.get("max-size"):
        out["log_max_size"] = 0 if opts["max-size"] == "-1" else parse_size(opts["max-size"])
    if opts.get("max-file"):
        out["log_max_file"] = int(opts["max-file"])
    return out


def _find_init() -> str:
    import shutil
    for name in ("tini-static", "docker-init"):
        path = shutil.which(name)
        if path:
            return path
    return ""


def _now() -> str:
    from berth.images import rfc3339
    return rfc3339(time.time())


def raise_nofile() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit, as dockerd and containerd do: the
    daemon holds sockets, pipes and proxied connections by the thousand. Returns the soft
    limit it had, which the fork server gives back to monitors and containers."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard
    if want == resource.RLIM_INFINITY:   # the kernel caps open files at nr_open anyway
        with open("/proc/sys/fs/nr_open") as f:
            want = int(f.read())
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError) as e:
            log.warning("cannot raise RLIMIT_NOFILE from %d to %d: %s", soft, want, e)
    return soft


def main(argv: list[str] | None = None) -> None:
    cfg = parse_args(sys.argv[1:] if argv is None else argv)
    level = {"warn": "WARNING", "fatal": "CRITICAL"}.get(cfg.log_level, cfg.log_level.upper())
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if os.geteuid() != 0:
        print("berthd: must run as root", file=sys.stderr)
        sys.exit(1)
    nofile = raise_nofile()
    try:
        daemon = Daemon(cfg)
        daemon.nofile_soft = nofile
        asyncio.run(daemon.run())
    except BerthError as e:
        print(f"berthd: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
