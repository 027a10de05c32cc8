"""From a container's typed config (`ContainerConfig` + `HostConfig`) to an OCI runtime spec.
The validation Docker does at create time is in `containers.validate` (its names re-exported
here).

Imports `containers.settings`, `containers.hostconfig`, `containers.validate`, `oci.defaults`
(spec data: the runtime itself runs in other processes), `errors`.
"""

from __future__ import annotations

import os
import stat
from typing import Any

from berth import linux
from berth.containers import seccomp
from berth.containers.hostconfig import DeviceMapping, HostConfig
from berth.containers.settings import ContainerConfig
from berth.containers.validate import THROTTLE as THROTTLE
from berth.containers.validate import UNSUPPORTED_CONFIG as UNSUPPORTED_CONFIG
from berth.containers.validate import UNSUPPORTED_HOST_CONFIG as UNSUPPORTED_HOST_CONFIG
from berth.containers.validate import block_device as block_device
from berth.containers.validate import device_cgroup_rule as device_cgroup_rule
from berth.containers.validate import refuse_unsupported as refuse_unsupported
from berth.containers.validate import throttled as throttled
from berth.containers.validate import validate_healthcheck as validate_healthcheck
from berth.containers.validate import validate_host_config as validate_host_config
from berth.containers.validate import validate_sysctls as validate_sysctls
from berth.errors import InvalidArgument
from berth.linux import CAPABILITIES
from berth.oci.defaults import DEFAULT_CAPS, default_spec

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Docker's default device rules (after "deny all"): mknod of anything, and use of the
# standard devices only
DEFAULT_DEVICE_RULES: list[dict[str, Any]] = [
    {"allow": True, "type": "c", "major": -1, "minor": -1, "access": "m"},
    {"allow": True, "type": "b", "major": -1, "minor": -1, "access": "m"},
    *(
        {"allow": True, "type": "c", "major": ma, "minor": mi, "access": "rwm"}
        for ma, mi in (
            (1, 3),
            (1, 5),
            (1, 7),
            (1, 8),
            (1, 9),
            (5, 0),
            (5, 1),
            (5, 2),
            (136, -1),
            (10, 200),
        )
    ),
]
_ULIMITS = {
    "nofile": "RLIMIT_NOFILE",
    "nproc": "RLIMIT_NPROC",
    "core": "RLIMIT_CORE",
    "stack": "RLIMIT_STACK",
    "memlock": "RLIMIT_MEMLOCK",
    "as": "RLIMIT_AS",
    "cpu": "RLIMIT_CPU",
    "fsize": "RLIMIT_FSIZE",
    "data": "RLIMIT_DATA",
    "nice": "RLIMIT_NICE",
    "rtprio": "RLIMIT_RTPRIO",
    "msgqueue": "RLIMIT_MSGQUEUE",
    "sigpending": "RLIMIT_SIGPENDING",
}


def _env_name(entry: str) -> str:
    name = entry.partition("=")[0]
    if not name:
        raise InvalidArgument(f"invalid environment variable: {entry}")
    return name


def merge_env(image_env: list[str] | None, env: list[str] | None) -> list[str]:
    """A container's Config.Env as dockerd records it: the given entries as they are (`NAME`
    without `=` too), then the image's entries whose names were not given."""
    given = list(env or [])
    names = {_env_name(e) for e in given}
    return given + [e for e in image_env or [] if e.partition("=")[0] not in names]


def replace_or_append(defaults: list[str], overrides: list[str] | None) -> list[str]:
    """dockerd's rule for an environment: an override replaces the entry of the same name or is
    appended; an override without `=` unsets the name."""
    out = {_env_name(e): e for e in defaults}
    for e in overrides or []:
        name = _env_name(e)
        if "=" in e:
            out[name] = e
        else:
            out.pop(name, None)
    return [e for e in out.values() if "=" in e]


def process_env(
    config_env: list[str] | None,
    hostname: str,
    tty: bool,
    extra: list[str] | None = None,
    links: list[str] | None = None,
) -> list[str]:
    """The environment a container's process (or an exec's, with `extra`) gets, as dockerd
    makes it: PATH, HOSTNAME and, with a tty, TERM, then the legacy links' variables,
    overridden by Config.Env, then `extra`."""
    base = [DEFAULT_PATH, f"HOSTNAME={hostname}", *(["TERM=xterm"] if tty else [])]
    return replace_or_append(replace_or_append(base + list(links or []), config_env), extra)


def host_caps() -> set[str]:
    """The capabilities this process may hand on (its bounding set): a host, or a container
    berth runs in, may lack some, and asking for one of those fails."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapBnd:"):
                    bits = int(line.split()[1], 16)
                    return {n for n, v in CAPABILITIES.items() if bits >> v & 1}
    except OSError:
        pass
    return set(CAPABILITIES)


def container_caps(hc: HostConfig) -> set[str]:
    """The capabilities of a container's processes (its init and its execs). "All" (for
    --privileged and --cap-add ALL) is all that the host has, as Docker takes it."""
    caps = set(DEFAULT_CAPS)
    for c in hc.cap_add or ():
        c = _cap_name(c)
        caps = host_caps() if c == "CAP_ALL" else caps | {c}
    for c in hc.cap_drop or ():
        c = _cap_name(c)
        caps = set() if c == "CAP_ALL" else caps - {c}
    if hc.privileged:
        caps = host_caps()
    return caps


_TRUE = ("1", "t", "T", "TRUE", "true", "True")  # Go's strconv.ParseBool, as Docker
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def no_new_privileges(hc: HostConfig) -> bool:
    """`--security-opt no-new-privileges`, `no-new-privileges:VALUE` or `=VALUE` (a boolean,
    `:false` turns it off; the last one given wins), for the init and for every exec alike.
    A bad value is Docker's error."""
    on = False
    for opt in hc.security_opt or ():
        if opt == "no-new-privileges":
            on = True
            continue
        key, sep, value = opt.partition("=") if "=" in opt else opt.partition(":")
        if key != "no-new-privileges" or not sep:
            continue
        if value not in _TRUE + _FALSE:
            raise InvalidArgument(f'invalid --security-opt 2: "{opt}"')
        on = value in _TRUE
    return on


def apparmor_profile(hc: HostConfig) -> str:
    """`--security-opt apparmor=PROFILE` (or `apparmor:PROFILE`; the last wins): the profile
    the process is confined by, "" for none. As dockerd, only where the host has AppArmor
    (elsewhere the option has no effect), never for `unconfined` or a privileged container.
    berth loads no default profile of its own: a profile named is one loaded on the host."""
    profile = ""
    for opt in hc.security_opt or ():
        key, sep, value = opt.partition("=") if "=" in opt else opt.partition(":")
        if key == "apparmor" and sep:
            profile = value
    if profile in ("", "unconfined") or hc.privileged or not linux.apparmor_enabled():
        return ""
    return profile


def cgroupns_mode(hc: HostConfig) -> str:
    """`--cgroupns`: Docker's default is `host` on cgroup v1 and `private` on v2."""
    mode = hc.cgroupns_mode
    if mode not in ("", "host", "private"):
        raise InvalidArgument(f"invalid cgroup namespace mode: {mode}")
    if not mode:
        mode = "private" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "host"
    return mode


def build_spec(
    *,
    cid: str,
    config: ContainerConfig,
    host_config: HostConfig,
    hostname_path: str,
    hosts_path: str,
    resolv_path: str,
    cgroup_parent: str,
    netns_path: str | None = None,
    init_path: str = "",
    mounts: list[dict[str, Any]] | None = None,
    idmap: tuple[int, int, int] | None = None,
    pidns_path: str | None = None,
    ipcns_path: str | None = None,
    shm_path: str | None = None,
    link_env: list[str] | None = None,
) -> dict[str, Any]:
    """`netns_path`, `pidns_path`, `ipcns_path`: the namespaces a `container:` mode joins;
    `shm_path`: the host directory bound on /dev/shm (a shareable IPC's own or the one it
    joins); `link_env`: the variables of its legacy links."""
    args = [*(config.entrypoint or ()), *(config.cmd or ())]
    if host_config.init and init_path:
        # Docker's --init: tini as PID 1, reaping zombies and passing signals on
        args = ["/sbin/docker-init", "--", *args]
    hostname = config.hostname or cid[:12]
    env = process_env(list(config.env or ()), hostname, config.tty, links=link_env)
    spec = default_spec(
        args, env=env, cwd=config.working_dir or "/", hostname=hostname, terminal=config.tty
    )
    # the user is resolved inside the rootfs at start, through the image's passwd and group
    # files, as Docker does; "" is root (uid 0, with its groups and home)
    hc = host_config
    spec["annotations"] = {**(hc.annotations or {}), "berth.user": config.user or "0"}
    if config.domainname:
        spec["domainname"] = config.domainname
    proc = spec["process"]
    if hc.oom_score_adj:
        proc["oomScoreAdj"] = hc.oom_score_adj
    if hc.group_add:
        proc["user"]["additionalGids"] = [int(g) for g in hc.group_add if g.isdigit()]

    caps = container_caps(hc)
    if hc.privileged:
        spec["linux"]["maskedPaths"] = []
        spec["linux"]["readonlyPaths"] = []
        for m in spec["mounts"]:
            if m["destination"] == "/sys":
                m["options"] = [o for o in m["options"] if o != "ro"] + ["rw"]
    else:
        if hc.masked_paths is not None:
            spec["linux"]["maskedPaths"] = list(hc.masked_paths)
        if hc.readonly_paths is not None:
            spec["linux"]["readonlyPaths"] = list(hc.readonly_paths)
    caps_list = sorted(caps)
    proc["capabilities"] = {"bounding": caps_list, "effective": caps_list, "permitted": caps_list}
    if no_new_privileges(hc):
        proc["noNewPrivileges"] = True
    if profile := apparmor_profile(hc):
        proc["apparmorProfile"] = profile
    filt = seccomp.for_container(hc, caps)
    if filt is not None:
        spec["linux"]["seccomp"] = filt
    rlimits = []
    for u in hc.ulimits or ():
        name = _ULIMITS.get(u.name)
        if not name:
            raise InvalidArgument(f"invalid ulimit type: {u.name}")
        rlimits.append({"type": name, "soft": u.soft, "hard": u.hard})
    proc["rlimits"] = rlimits

    if hc.readonly_rootfs:
        spec["root"]["readonly"] = True
    shm = hc.shm_size
    if shm:
        for m in spec["mounts"]:
            if m["destination"] == "/dev/shm":
                m["options"] = [o for o in m["options"] if not o.startswith("size=")] + [
                    f"size={shm}"
                ]
    ipc = hc.ipc_mode or "private"
    if ipc == "none":
        spec["mounts"] = [m for m in spec["mounts"] if m["destination"] != "/dev/shm"]
    elif ipc == "host" or shm_path:
        # as dockerd: the host's /dev/shm, or the shareable one's directory on the host
        spec["mounts"] = [
            m
            if m["destination"] != "/dev/shm"
            else {
                "destination": "/dev/shm",
                "type": "bind",
                "source": "/dev/shm" if ipc == "host" else shm_path,
                "options": ["rbind", "nosuid", "noexec", "nodev", "rprivate"],
            }
            for m in spec["mounts"]
        ]
    mode = hc.network_mode or "bridge"
    extra: list[dict[str, Any]] = []
    for dest, src in (
        ("/etc/resolv.conf", resolv_path),
        ("/etc/hostname", hostname_path),
        ("/etc/hosts", hosts_path),
    ):
        if src:
            extra.append(
                {
                    "destination": dest,
                    "type": "bind",
                    "source": src,
                    "options": ["rbind", "rprivate"],
                }
            )
    for target, opts in (hc.tmpfs or {}).items():
        extra.append(
            {
                "destination": target,
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "nodev", "noexec"]
                + ([o for o in opts.split(",") if o] if opts else []),
            }
        )
    # volumes, binds and tmpfs mounts, made into runtime-spec mounts by the service
    extra.extend(mounts or [])
    # as Docker: parents before children, so a volume on /etc does not hide /etc/hosts
    spec["mounts"].extend(sorted(extra, key=lambda m: m["destination"].rstrip("/").count("/")))
    # as dockerd: a slave or shared bind needs the root's propagation to match, or the
    # mounts the host makes later never reach it
    props = {
        o.lstrip("r")
        for m in mounts or []
        for o in m.get("options", [])
        if o in ("shared", "rshared", "slave", "rslave")
    }
    if props:
        spec["linux"]["rootfsPropagation"] = "rshared" if "shared" in props else "rslave"
    if hc.init and init_path:
        spec["mounts"].append(
            {
                "destination": "/sbin/docker-init",
                "type": "bind",
                "source": init_path,
                "options": ["rbind", "ro", "rprivate"],
            }
        )

    namespaces: list[dict[str, Any]] = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    # --pid, --ipc, --uts: none of its own (host), or another container's joined by path
    for typ, host, path in (
        ("pid", hc.pid_mode == "host", pidns_path),
        ("ipc", ipc == "host", ipcns_path),
        ("uts", hc.uts_mode == "host" or mode == "host", None),
    ):
        if host:
            namespaces = [ns for ns in namespaces if ns["type"] != typ]
        elif path:
            namespaces = [
                {"type": typ, "path": path} if ns["type"] == typ else ns for ns in namespaces
            ]
    if not any(ns["type"] == "uts" for ns in namespaces):
        spec["hostname"] = ""
        spec.pop("domainname", None)
    if mode != "host":  # host: the host's network namespace
        namespaces.append(
            {"type": "network", "path": netns_path} if netns_path else {"type": "network"}
        )
    if cgroupns_mode(hc) == "private":
        namespaces.append({"type": "cgroup"})
    if idmap is not None and hc.userns_mode != "host":
        # berthd --userns-remap: root in the container is idmap's unprivileged range outside
        uid, gid, size = idmap
        namespaces.insert(0, {"type": "user"})
        spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": uid, "size": size}]
        spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": gid, "size": size}]
    spec["linux"]["namespaces"] = namespaces

    res: dict[str, Any] = {}
    mem = hc.memory
    swap = hc.memory_swap
    memory: dict[str, Any] = {}
    if mem:
        memory = {"limit": mem}
        # Docker: swap unset means as much swap as memory (memory+swap = 2x memory)
        memory["swap"] = swap if swap else 2 * mem
    if hc.memory_reservation:
        memory["reservation"] = hc.memory_reservation
    if hc.memory_swappiness is not None and hc.memory_swappiness >= 0:
        memory["swappiness"] = hc.memory_swappiness
    if hc.oom_kill_disable:
        memory["disableOOMKiller"] = True
    if memory:
        res["memory"] = memory
    blkio: dict[str, Any] = {}
    if hc.blkio_weight:
        blkio["weight"] = hc.blkio_weight
    for w in hc.blkio_weight_device or ():
        major, minor = block_device(w.path)
        blkio.setdefault("weightDevice", []).append(
            {"major": major, "minor": minor, "weight": w.weight}
        )
    for key, (spec_key, _) in THROTTLE.items():
        for d in throttled(hc, key):
            major, minor = block_device(d.path)
            blkio.setdefault(spec_key, []).append({"major": major, "minor": minor, "rate": d.rate})
    if blkio:
        res["blockIO"] = blkio
    cpu: dict[str, Any] = {}
    if hc.nano_cpus:
        cpu["period"] = 100000
        cpu["quota"] = hc.nano_cpus * 100000 // 1_000_000_000
    if hc.cpu_quota:
        cpu["quota"] = hc.cpu_quota
    if hc.cpu_period:
        cpu["period"] = hc.cpu_period
    if hc.cpu_shares:
        cpu["shares"] = hc.cpu_shares
    if hc.cpuset_cpus:
        cpu["cpus"] = hc.cpuset_cpus
    if hc.cpuset_mems:
        cpu["mems"] = hc.cpuset_mems
    if cpu:
        res["cpu"] = cpu
    if hc.pids_limit:
        res["pids"] = {"limit": hc.pids_limit}
    # the device cgroup: all denied, then Docker's defaults (a privileged one gets all), then
    # the --device ones
    extra_devices = [host_device(d) for d in hc.devices or ()]
    res["devices"] = (
        [{"allow": True, "access": "rwm"}]
        if hc.privileged
        else [
            {"allow": False, "access": "rwm"},
            *DEFAULT_DEVICE_RULES,
            *(
                {
                    "allow": True,
                    "type": d["type"],
                    "major": d["major"],
                    "minor": d["minor"],
                    "access": perms,
                }
                for d, perms in extra_devices
            ),
            *(device_cgroup_rule(r) for r in hc.device_cgroup_rules or ()),
        ]
    )
    spec["linux"]["devices"] = [d for d, _ in extra_devices]
    spec["linux"]["resources"] = res
    # absolute: under the hierarchy's root, wherever the daemon itself runs (as Docker's
    # cgroupfs driver passes /docker/<id>)
    spec["linux"]["cgroupsPath"] = f"/{(hc.cgroup_parent or cgroup_parent).strip('/')}/{cid}"
    spec["linux"]["sysctl"] = dict(hc.sysctls or {})
    return spec


def host_device(d: DeviceMapping) -> tuple[dict[str, Any], str]:
    """`--device HOST[:CONTAINER[:PERMS]]` as a runtime-spec device, and its cgroup access."""
    host = d.path_on_host
    perms = d.cgroup_permissions or "rwm"
    if not perms or any(c not in "rwm" for c in perms):
        raise InvalidArgument(f"invalid device mode: {perms}")
    try:
        st = os.stat(host)
    except OSError as e:
        raise InvalidArgument(
            f"error gathering device information while adding custom device "
            f'"{host}": {(e.strerror or str(e)).lower()}'
        ) from None
    if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        raise InvalidArgument(
            f"error gathering device information while adding custom device "
            f'"{host}": not a device node'
        )
    return (
        {
            "path": d.path_in_container or host,
            "type": "c" if stat.S_ISCHR(st.st_mode) else "b",
            "major": os.major(st.st_rdev),
            "minor": os.minor(st.st_rdev),
            "fileMode": stat.S_IMODE(st.st_mode),
            "uid": st.st_uid,
            "gid": st.st_gid,
        },
        perms,
    )


def _cap_name(c: str) -> str:
    c = c.upper()
    c = c if c.startswith("CAP_") else "CAP_" + c
    if c != "CAP_ALL" and c not in CAPABILITIES:
        raise InvalidArgument(f"invalid capability: {c}")
    return c


__all__ = [
    "build_spec",
    "merge_env",
    "process_env",
    "replace_or_append",
    "validate_host_config",
    "validate_sysctls",
    "validate_healthcheck",
    "refuse_unsupported",
    "block_device",
    "device_cgroup_rule",
    "throttled",
    "DEFAULT_PATH",
    "THROTTLE",
    "UNSUPPORTED_CONFIG",
    "UNSUPPORTED_HOST_CONFIG",
]
