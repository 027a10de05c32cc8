"""berthd's configuration: its flags (dockerd's names), daemon.json, TLS, --userns-remap and the
runtimes it knows.

Imports `builder` (the build entitlements a flag may grant), `api` (its version), `ui` (the
dashboard's address), `errors` and `listeners` beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from berth import __version__
from berth.api import API_VERSION
from berth.builder import check_entitlements
from berth.daemon import listeners
from berth.daemon.listeners import TLSSettings
from berth.errors import InvalidArgument
from berth.ui import parse_address as parse_ui_address


@dataclass(frozen=True, slots=True, kw_only=True)
class DaemonConfig:
    # unix:///PATH and tcp://HOST:PORT, normalised as dockerd does (listeners.normalize_host)
    hosts: list[str] = field(default_factory=lambda: ["unix:///run/berth/berth.sock"])
    tls: TLSSettings | None = None  # the tcp:// hosts' TLS
    tls_explicit: bool = False  # --tls or --tlsverify given (flag or daemon.json)
    data_root: str = "/var/lib/berth"
    exec_root: str = "/run/berth"
    pidfile: str = ""
    log_level: str = "info"
    cgroup_parent: str = "berth"
    default_runtime: str = "berth"
    runtimes: dict[str, str] = field(default_factory=dict)  # name -> path ("" for berth)
    storage_driver: str = ""
    init_path: str = ""
    cdi_spec_dirs: tuple[str, ...] = ("/etc/cdi", "/var/run/cdi")
    log_opts: dict[str, str] = field(default_factory=dict)
    bridge: str = "berth0"
    bip: str = "10.88.0.1/16"
    iptables: bool = True
    ip_forward: bool = True
    ipv6: bool = False  # IPv6 on the default bridge, in fixed_cidr_v6
    fixed_cidr_v6: str = ""  # "": a unique local /64 picked once and kept
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_opts: list[str] = field(default_factory=list)
    registry_mirrors: list[str] = field(default_factory=list)
    insecure_registries: list[str] = field(default_factory=list)
    certs_dir: str = "/etc/docker/certs.d"
    docker_hub: bool = True
    # entitlements a build may be granted when it asks (buildkitd's flag of the same name)
    insecure_entitlements: frozenset[str] = frozenset()
    idmap: tuple[int, int, int] | None = None  # --userns-remap: (uid, gid, size) outside
    # the Kubernetes CRI (berth.cri): its socket ("": not served), CNI config and plug-ins
    cri_socket: str = ""
    cni_conf_dir: str = "/etc/cni/net.d"
    cni_bin_dirs: tuple[str, ...] = ("/opt/cni/bin", "/usr/lib/cni")
    ui: tuple[str, int] | None = None  # --ui: the dashboard's address (berth.ui), off if None

    @property
    def socket_paths(self) -> list[str]:
        return [h[len("unix://") :] for h in self.hosts if h.startswith("unix://")]


def parse_args(argv: list[str]) -> DaemonConfig:
    p = argparse.ArgumentParser(
        prog="berthd",
        description="berth's engine: the Docker Engine API on a unix socket, and over TCP with TLS",
    )
    p.add_argument(
        "-H",
        "--host",
        action="append",
        default=[],
        help="daemon socket(s) to listen on: unix:///PATH, tcp://ADDR:PORT",
    )
    p.add_argument(
        "--tls",
        nargs="?",
        const="true",
        default=None,
        metavar="BOOL",
        help="use TLS; implied by --tlsverify",
    )
    p.add_argument(
        "--tlsverify",
        nargs="?",
        const="true",
        default=None,
        metavar="BOOL",
        help="use TLS and verify the remote (client certificates signed by --tlscacert)",
    )
    p.add_argument(
        "--tlscacert",
        default=None,
        help="trust certs signed only by this CA (default ~/.docker/ca.pem)",
    )
    p.add_argument(
        "--tlscert", default=None, help="path to TLS certificate file (default ~/.docker/cert.pem)"
    )
    p.add_argument(
        "--tlskey", default=None, help="path to TLS key file (default ~/.docker/key.pem)"
    )
    p.add_argument("--data-root", default="/var/lib/berth")
    p.add_argument("--exec-root", default="/run/berth")
    p.add_argument("-p", "--pidfile", default="")
    p.add_argument(
        "-l", "--log-level", default="info", choices=["debug", "info", "warn", "error", "fatal"]
    )
    p.add_argument("--cgroup-parent", default="berth")
    p.add_argument(
        "--default-runtime",
        default="berth",
        help="berth (its own runtime), runc, crun, or a name from --add-runtime",
    )
    p.add_argument(
        "--add-runtime",
        action="append",
        default=[],
        help="NAME=PATH: another OCI runtime with runc's command line",
    )
    p.set_defaults(runtimes={})  # daemon.json's "runtimes"
    p.add_argument("-s", "--storage-driver", default="")
    p.add_argument(
        "-b",
        "--bridge",
        default="berth0",
        help="the default bridge network's bridge, created if absent",
    )
    p.add_argument(
        "--bip",
        default="10.88.0.1/16",
        help="the default bridge's address and subnet (not Docker's 172.17/16)",
    )
    p.add_argument(
        "--ipv6",
        nargs="?",
        const="true",
        default=None,
        metavar="BOOL",
        help="IPv6 on the default bridge (its subnet: --fixed-cidr-v6)",
    )
    p.add_argument(
        "--fixed-cidr-v6",
        default="",
        help="the default bridge's IPv6 subnet (default: a unique local /64)",
    )
    p.add_argument("--iptables", default="true", choices=["true", "false"])
    p.add_argument("--ip-forward", default="true", choices=["true", "false"])
    p.add_argument(
        "--log-opt",
        action="append",
        default=[],
        help="max-size=20m, max-file=5: the default rotation of container logs",
    )
    p.add_argument(
        "--init-path",
        default="",
        help="a static init for --init (default: tini-static from Debian's tini)",
    )
    p.add_argument(
        "--cdi-spec-dir",
        action="append",
        default=[],
        help="a directory of CDI specs for --device vendor/class=name and --gpus "
        "(default: /etc/cdi and /var/run/cdi)",
    )
    p.add_argument("--dns", action="append", default=[])
    p.add_argument("--dns-search", action="append", default=[])
    p.add_argument("--dns-opt", action="append", default=[])
    p.add_argument(
        "--userns-remap",
        default="",
        help="default|USER[:GROUP]|UID[:GID]: containers' root is that user's "
        "subordinate range (/etc/subuid, /etc/subgid) outside",
    )
    p.add_argument(
        "--registry-mirror",
        action="append",
        default=[],
        help="a mirror of Docker Hub, tried before it (http(s)://HOST[:PORT])",
    )
    p.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        help="a registry (HOST[:PORT] or CIDR) reached without verified TLS",
    )
    p.add_argument(
        "--docker-hub",
        default="true",
        choices=["true", "false"],
        help="false: never contact Docker Hub itself; docker.io names go only to "
        "the registry mirrors (an air-gapped host; berth's tests)",
    )
    p.add_argument(
        "--certs-dir",
        default="/etc/docker/certs.d",
        help="per-registry certificates: DIR/HOST[:PORT]/ca.crt, client.cert/.key",
    )
    p.add_argument(
        "--allow-insecure-entitlement",
        action="append",
        default=[],
        help="network.host: a build may run RUN --network=host steps when it asks "
        "for it (berth build --allow network.host)",
    )
    p.add_argument(
        "--cri-socket",
        default="",
        help="serve the Kubernetes CRI (runtime/v1) on unix:///PATH (off by default)",
    )
    p.add_argument(
        "--cni-conf-dir",
        default="/etc/cni/net.d",
        help="the CRI's CNI network configs (the first in name order is used)",
    )
    p.add_argument(
        "--cni-bin-dir",
        action="append",
        default=[],
        help="where the CRI finds CNI plug-ins (default: /opt/cni/bin, /usr/lib/cni)",
    )
    p.add_argument(
        "--config-file",
        default="/etc/berth/daemon.json",
        help="daemon.json: registry-mirrors, insecure-registries, dns, log-opts, ...",
    )
    p.add_argument(
        "--ui",
        default="",
        metavar="ADDR",
        help="serve the web dashboard on ADDR (127.0.0.1:PORT; another address "
        "only with TLS); off by default. The URL to open, with its token, is "
        "logged at start and written to EXEC_ROOT/ui-url",
    )
    p.add_argument("-v", "--version", action="store_true")
    a = p.parse_args(argv)
    _apply_config_file(p, a)
    if a.version:
        print(f"berthd version {__version__} (Docker Engine API {API_VERSION})")
        sys.exit(0)
    runtimes = _runtimes(p, a.add_runtime, a.runtimes)
    if a.default_runtime == "berth-runtime" or (
        a.default_runtime == "runc" and "runc" not in runtimes
    ):
        a.default_runtime = "berth"  # dockerd's name of the default runtime (issue 15)
    if a.default_runtime not in runtimes:
        p.error(
            f"unknown runtime {a.default_runtime!r}: berth, "
            + ", ".join(sorted(set(runtimes) - {"berth"}))
            + " (--add-runtime adds one)"
        )
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
    try:
        ui = parse_ui_address(a.ui, tls=tls is not None) if a.ui else None
    except InvalidArgument as e:
        p.error(str(e))
    return DaemonConfig(
        hosts=hosts,
        tls=tls,
        tls_explicit=tls_explicit,
        data_root=os.path.abspath(a.data_root),
        exec_root=os.path.abspath(a.exec_root),
        pidfile=a.pidfile,
        log_level=a.log_level,
        cgroup_parent=a.cgroup_parent,
        default_runtime=a.default_runtime,
        runtimes=runtimes,
        storage_driver=a.storage_driver,
        init_path=a.init_path or _find_init(),
        cdi_spec_dirs=tuple(a.cdi_spec_dir) or ("/etc/cdi", "/var/run/cdi"),
        log_opts=dict(o.split("=", 1) for o in a.log_opt if "=" in o),
        bridge=a.bridge,
        bip=a.bip,
        iptables=a.iptables == "true",
        ip_forward=a.ip_forward == "true",
        ipv6=_bool(p, "ipv6", a.ipv6 or "false"),
        fixed_cidr_v6=_cidr_v6(p, a.fixed_cidr_v6),
        dns=a.dns,
        dns_search=a.dns_search,
        dns_opts=a.dns_opt,
        registry_mirrors=a.registry_mirror,
        insecure_registries=a.insecure_registry,
        certs_dir=a.certs_dir,
        docker_hub=a.docker_hub == "true",
        idmap=idmap,
        insecure_entitlements=entitlements,
        cri_socket=a.cri_socket,
        cni_conf_dir=os.path.abspath(a.cni_conf_dir),
        cni_bin_dirs=tuple(a.cni_bin_dir) or ("/opt/cni/bin", "/usr/lib/cni"),
        ui=ui,
    )


def _cidr_v6(p: argparse.ArgumentParser, text: str) -> str:
    import ipaddress

    if not text:
        return ""
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError as e:
        p.error(f"--fixed-cidr-v6 {text}: {e}")
    if net.version != 6:
        p.error(f"--fixed-cidr-v6 {text}: not an IPv6 subnet")
    return str(net)


def _bool(p: argparse.ArgumentParser, name: str, v: str | bool) -> bool:
    if isinstance(v, bool):
        return v
    if v.lower() in ("true", "1", "t"):
        return True
    if v.lower() in ("false", "0", "f"):
        return False
    p.error(
        f'invalid argument "{v}" for "--{name}" flag: strconv.ParseBool: parsing "{v}": '
        "invalid syntax"
    )
    raise AssertionError  # p.error exits


def _tls_settings(
    p: argparse.ArgumentParser, a: argparse.Namespace
) -> tuple[TLSSettings | None, bool]:
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
    base = (
        os.environ.get("DOCKER_CERT_PATH")
        or os.environ.get("DOCKER_CONFIG")
        or os.path.join(os.path.expanduser("~"), ".docker")
    )
    return TLSSettings(
        verify=verify,
        ca=a.tlscacert or os.path.join(base, "ca.pem"),
        cert=a.tlscert or os.path.join(base, "cert.pem"),
        key=a.tlskey or os.path.join(base, "key.pem"),
    ), True


REMAP_USER = "berthremap"


def _subordinate(path: str, names: set[str]) -> tuple[int, int] | None:
    """The first range (start, count) for one of `names` in /etc/subuid or /etc/subgid."""
    try:
        with open(path) as f:
            for line in f:
                parts = line.strip().split(":")
                if (
                    len(parts) == 3
                    and parts[0] in names
                    and parts[1].isdigit()
                    and parts[2].isdigit()
                ):
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
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/bin/false", REMAP_USER],
                check=True,
                capture_output=True,
            )
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
        unames.add(
            pwd.getpwuid(int(user)).pw_name if user.isdigit() else str(pwd.getpwnam(user).pw_uid)
        )
    gnames = {group}
    with contextlib.suppress(KeyError, ValueError):
        gnames.add(
            grp.getgrgid(int(group)).gr_name if group.isdigit() else str(grp.getgrnam(group).gr_gid)
        )
    uids = _subordinate("/etc/subuid", unames)
    gids = _subordinate("/etc/subgid", gnames)
    if uids is None or gids is None:
        p.error(
            f"--userns-remap {spec}: no subordinate "
            f"{'uid' if uids is None else 'gid'} range for {user if uids is None else group} "
            f"in /etc/sub{'uid' if uids is None else 'gid'}"
        )
    assert uids is not None and gids is not None
    return uids[0], gids[0], min(uids[1], gids[1])


def _runtimes(
    p: argparse.ArgumentParser, added: list[str], configured: dict[str, Any]
) -> dict[str, str]:
    """berth's own runtime, crun where installed, and those of --add-runtime and daemon.json's
    `runtimes`. A real runc is one of them only where configured so: otherwise "runc" is
    dockerd's name of the default runtime, and names berth's own, as clients expect
    (`containers.config`)."""
    import shutil

    out = {"berth": ""}
    path = shutil.which("crun")
    if path:
        out["crun"] = path
    specs = list(added)
    for name, conf in configured.items():
        if (
            not isinstance(conf, dict)
            or not isinstance(conf.get("path"), str)
            or set(conf) - {"path"}
        ):
            p.error(f'runtimes: {name}: only {{"path": PATH}} is supported by berthd')
        specs.append(f"{name}={conf['path']}")
    for spec in specs:
        name, eq, path = spec.partition("=")
        if not eq or not name or not path:
            p.error(f"--add-runtime {spec!r}: NAME=PATH")
        if name in ("berth", "berth-runtime"):
            p.error(f"runtime name {name!r} is reserved")
        found = shutil.which(path)
        if not found:
            p.error(f"--add-runtime {name}: {path}: executable file not found")
        out[name] = found
    return out


_CONFIG_KEYS = {  # daemon.json key → flag destination, as in dockerd
    "registry-mirrors": "registry_mirror",
    "insecure-registries": "insecure_registry",
    "dns": "dns",
    "dns-search": "dns_search",
    "dns-opts": "dns_opt",
    "bridge": "bridge",
    "bip": "bip",
    "data-root": "data_root",
    "exec-root": "exec_root",
    "pidfile": "pidfile",
    "log-level": "log_level",
    "cgroup-parent": "cgroup_parent",
    "storage-driver": "storage_driver",
    "default-runtime": "default_runtime",
    "init-path": "init_path",
    "allow-insecure-entitlement": "allow_insecure_entitlement",
    "hosts": "host",
    "tls": "tls",
    "tlsverify": "tlsverify",
    "tlscacert": "tlscacert",
    "tlscert": "tlscert",
    "tlskey": "tlskey",
    "cdi-spec-dirs": "cdi_spec_dir",
    "ipv6": "ipv6",
    "fixed-cidr-v6": "fixed_cidr_v6",
}
_BOOL_KEYS = ("tls", "tlsverify", "ipv6")


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
        if key == "runtimes" and isinstance(value, dict):
            a.runtimes = value
            continue
        if key == "log-opts" and isinstance(value, dict):
            a.log_opt = [f"{k}={v}" for k, v in value.items()] + a.log_opt
            continue
        dest = _CONFIG_KEYS.get(key)
        if dest is None:
            p.error(f"{path}: the following directives are not supported by berthd: {key}")
        current, default = getattr(a, dest), p.get_default(dest)
        if current != default and current:
            p.error(
                f"the following directives are specified both as a flag and in the "
                f"configuration file: {key}"
            )
        if key in _BOOL_KEYS:
            if not isinstance(value, bool):
                p.error(f"{path}: {key} must be a boolean")
            setattr(a, dest, "true" if value else "false")
            continue
        if isinstance(default, list) != isinstance(value, list):
            p.error(
                f"{path}: {key} must be {'a list' if isinstance(default, list) else 'a string'}"
            )
        setattr(a, dest, value)


def log_defaults(opts: dict[str, str]) -> dict[str, int]:
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


__all__ = ["DaemonConfig", "REMAP_USER", "log_defaults", "parse_args"]
