"""From a container's Docker config (Config + HostConfig) to an OCI runtime spec, and the
validation Docker does at create time.

Imports `oci.defaults` and `oci.sysctl` (spec data: the runtime itself runs in other
processes), `errors`.
"""

from __future__ import annotations

import os
import stat
from typing import Any

from berth.containers import seccomp
from berth.errors import InvalidArgument
from berth.linux import CAPABILITIES
from berth.oci import sysctl
from berth.oci.defaults import DEFAULT_CAPS, default_spec

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Docker's default device rules (after "deny all"): mknod of anything, and use of the
# standard devices only
DEFAULT_DEVICE_RULES: list[dict[str, Any]] = [
    {"allow": True, "type": "c", "major": -1, "minor": -1, "access": "m"},
    {"allow": True, "type": "b", "major": -1, "minor": -1, "access": "m"},
    *({"allow": True, "type": "c", "major": ma, "minor": mi, "access": "rwm"}
      for ma, mi in ((1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2),
                     (136, -1), (10, 200))),
]
_ULIMITS = {"nofile": "RLIMIT_NOFILE", "nproc": "RLIMIT_NPROC", "core": "RLIMIT_CORE",
            "stack": "RLIMIT_STACK", "memlock": "RLIMIT_MEMLOCK", "as": "RLIMIT_AS",
            "cpu": "RLIMIT_CPU", "fsize": "RLIMIT_FSIZE", "data": "RLIMIT_DATA",
            "nice": "RLIMIT_NICE", "rtprio": "RLIMIT_RTPRIO", "msgqueue": "RLIMIT_MSGQUEUE",
            "sigpending": "RLIMIT_SIGPENDING"}


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


def process_env(config_env: list[str] | None, hostname: str, tty: bool,
                extra: list[str] | None = None) -> list[str]:
    """The environment a container's process (or an exec's, with `extra`) gets, as dockerd
    makes it: PATH, HOSTNAME and, with a tty, TERM, overridden by Config.Env, then `extra`."""
    base = [DEFAULT_PATH, f"HOSTNAME={hostname}", *(["TERM=xterm"] if tty else [])]
    return replace_or_append(replace_or_append(base, config_env), extra)


def validate_host_config(hc: dict[str, Any], ncpu: int) -> list[str]:
    """Docker's checks and defaults, in place. Returns warnings."""
    warnings: list[str] = []
    mem = int(hc.get("Memory") or 0)
    swap = int(hc.get("MemorySwap") or 0)
    if mem and mem < 6 * 1024 * 1024:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if swap > 0 and mem and swap < mem:
        raise InvalidArgument("Minimum memoryswap limit should be larger than memory limit, "
                              "see usage")
    if swap and not mem:
        raise InvalidArgument("You should always set the Memory limit when using Memoryswap limit, "
                              "see usage")
    nano = int(hc.get("NanoCpus") or 0)
    if nano and (hc.get("CpuQuota") or hc.get("CpuPeriod")):
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano < 0 or nano > ncpu * 1_000_000_000:
        raise InvalidArgument(f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only "
                              f"{ncpu} CPUs available")
    shares = int(hc.get("CpuShares") or 0)
    if shares < 0:
        raise InvalidArgument("invalid CPU shares")
    cpus = hc.get("CpusetCpus") or ""
    if cpus:
        for part in cpus.split(","):
            lo, _, hi = part.partition("-")
            if not lo.isdigit() or (hi and not hi.isdigit()) or max(
                    int(lo), int(hi or lo)) >= ncpu:
                raise InvalidArgument(f"Requested CPUs are not available - requested {cpus}, "
                                      f"available: 0-{ncpu - 1}")
    restart = (hc.get("RestartPolicy") or {}).get("Name") or "no"
    if restart not in ("no", "", "always", "unless-stopped", "on-failure"):
        raise InvalidArgument(f"invalid restart policy '{restart}'")
    if hc.get("AutoRemove") and restart not in ("no", ""):
        raise InvalidArgument("can't create 'AutoRemove' container with restart policy")
    mode = hc.get("NetworkMode") or "default"
    if mode == "default":
        hc["NetworkMode"] = mode = "bridge"
    return warnings


def validate_sysctls(hc: dict[str, Any], joined_mode: str = "") -> None:
    """`--sysctl`: only the namespaced ones, where the container has the namespace of its own
    (runc's rules and words, at create as a 400). `joined_mode`: the NetworkMode of the container
    whose network a `container:` one joins."""
    mode = hc.get("NetworkMode") or "bridge"
    host_net = mode == "host" or joined_mode == "host"
    # --network host shares the host's UTS namespace too; berth has no --ipc host
    why = sysctl.check(hc.get("Sysctls"), ipc=True, net=not host_net, uts=not host_net)
    if why:
        raise InvalidArgument(why)


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


def container_caps(hc: dict[str, Any]) -> set[str]:
    """The capabilities of a container's processes (its init and its execs). "All" (for
    --privileged and --cap-add ALL) is all that the host has, as Docker takes it."""
    caps = set(DEFAULT_CAPS)
    for c in hc.get("CapAdd") or []:
        c = _cap_name(c)
        caps = host_caps() if c == "CAP_ALL" else caps | {c}
    for c in hc.get("CapDrop") or []:
        c = _cap_name(c)
        caps = set() if c == "CAP_ALL" else caps - {c}
    if hc.get("Privileged"):
        caps = host_caps()
    return caps


_TRUE = ("1", "t", "T", "TRUE", "true", "True")      # Go's strconv.ParseBool, as Docker
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def no_new_privileges(hc: dict[str, Any]) -> bool:
    """`--security-opt no-new-privileges`, `no-new-privileges:VALUE` or `=VALUE` (a boolean,
    `:false` turns it off; the last one given wins), for the init and for every exec alike.
    A bad value is Docker's error."""
    on = False
    for opt in hc.get("SecurityOpt") or []:
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


def cgroupns_mode(hc: dict[str, Any]) -> str:
    """`--cgroupns`: Docker's default is `host` on cgroup v1 and `private` on v2."""
    mode = hc.get("CgroupnsMode") or ""
    if mode not in ("", "host", "private"):
        raise InvalidArgument(f"invalid cgroup namespace mode: {mode}")
    if not mode:
        mode = "private" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "host"
    return mode


def build_spec(*, cid: str, config: dict[str, Any], host_config: dict[str, Any],
               hostname_path: str, hosts_path: str, resolv_path: str,
               cgroup_parent: str, netns_path: str | None = None,
               init_path: str = "", mounts: list[dict[str, Any]] | None = None,
               idmap: tuple[int, int, int] | None = None) -> dict[str, Any]:
    args = list(config.get("Entrypoint") or []) + list(config.get("Cmd") or [])
    if host_config.get("Init") and init_path:
        # Docker's --init: tini as PID 1, reaping zombies and passing signals on
        args = ["/sbin/docker-init", "--", *args]
    hostname = config.get("Hostname") or cid[:12]
    env = process_env(config.get("Env"), hostname, bool(config.get("Tty")))
    spec = default_spec(args, env=env, cwd=config.get("WorkingDir") or "/",
                        hostname=hostname,
                        terminal=bool(config.get("Tty")))
    # the user is resolved inside the rootfs at start, through the image's passwd and group
    # files, as Docker does; "" is root (uid 0, with its groups and home)
    spec["annotations"] = {"berth.user": config.get("User") or "0"}
    proc = spec["process"]
    hc = host_config
    if hc.get("GroupAdd"):
        proc["user"]["additionalGids"] = [int(g) for g in hc["GroupAdd"] if str(g).isdigit()]

    caps = container_caps(hc)
    if hc.get("Privileged"):
        spec["linux"]["maskedPaths"] = []
        spec["linux"]["readonlyPaths"] = []
        for m in spec["mounts"]:
            if m["destination"] == "/sys":
                m["options"] = [o for o in m["options"] if o != "ro"] + ["rw"]
    caps_list = sorted(caps)
    proc["capabilities"] = {"bounding": caps_list, "effective": caps_list,
                            "permitted": caps_list}
    if no_new_privileges(hc):
        proc["noNewPrivileges"] = True
    filt = seccomp.for_container(hc, caps)
    if filt is not None:
        spec["linux"]["seccomp"] = filt
    rlimits = []
    for u in hc.get("Ulimits") or []:
        name = _ULIMITS.get(u.get("Name", ""))
        if not name:
            raise InvalidArgument(f"invalid ulimit type: {u.get('Name')}")
        rlimits.append({"type": name, "soft": int(u["Soft"]), "hard": int(u["Hard"])})
    proc["rlimits"] = rlimits

    if hc.get("ReadonlyRootfs"):
        spec["root"]["readonly"] = True
    shm = int(hc.get("ShmSize") or 0)
    if shm:
        for m in spec["mounts"]:
            if m["destination"] == "/dev/shm":
                m["options"] = [o for o in m["options"] if not o.startswith("size=")] + [f"size={shm}"]
    mode = hc.get("NetworkMode") or "bridge"
    extra: list[dict[str, Any]] = []
    for dest, src in (("/etc/resolv.conf", resolv_path), ("/etc/hostname", hostname_path),
                      ("/etc/hosts", hosts_path)):
        if src:
            extra.append({"destination": dest, "type": "bind", "source": src,
                          "options": ["rbind", "rprivate"]})
    for path, opts in (hc.get("Tmpfs") or {}).items():
        extra.append({"destination": path, "type": "tmpfs", "source": "tmpfs",
                      "options": ["nosuid", "nodev", "noexec"] + (
                          [o for o in opts.split(",") if o] if opts else [])})
    # volumes, binds and tmpfs mounts, made into runtime-spec mounts by the service
    extra.extend(mounts or [])
    # as Docker: parents before children, so a volume on /etc does not hide /etc/hosts
    spec["mounts"].extend(sorted(extra, key=lambda m: m["destination"].rstrip("/").count("/")))
    if hc.get("Init") and init_path:
        spec["mounts"].append({"destination": "/sbin/docker-init", "type": "bind",
                               "source": init_path, "options": ["rbind", "ro", "rprivate"]})

    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    if mode == "host":
        spec["hostname"] = ""
        namespaces = [ns for ns in namespaces if ns["type"] != "uts"]
    elif netns_path:
        namespaces.append({"type": "network", "path": netns_path})
    else:
        namespaces.append({"type": "network"})
    if cgroupns_mode(hc) == "private":
        namespaces.append({"type": "cgroup"})
    if idmap is not None and hc.get("UsernsMode") != "host":
        # berthd --userns-remap: root in the container is idmap's unprivileged range outside
        uid, gid, size = idmap
        namespaces.insert(0, {"type": "user"})
        spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": uid, "size": size}]
        spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": gid, "size": size}]
    spec["linux"]["namespaces"] = namespaces

    res: dict[str, Any] = {}
    mem = int(hc.get("Memory") or 0)
    swap = int(hc.get("MemorySwap") or 0)
    if mem:
        res["memory"] = {"limit": mem}
        # Docker: swap unset means as much swap as memory (memory+swap = 2x memory)
        res["memory"]["swap"] = swap if swap else 2 * mem
    cpu: dict[str, Any] = {}
    if hc.get("NanoCpus"):
        cpu["period"] = 100000
        cpu["quota"] = int(hc["NanoCpus"]) * 100000 // 1_000_000_000
    if hc.get("CpuQuota"):
        cpu["quota"] = int(hc["CpuQuota"])
    if hc.get("CpuPeriod"):
        cpu["period"] = int(hc["CpuPeriod"])
    if hc.get("CpuShares"):
        cpu["shares"] = int(hc["CpuShares"])
    if hc.get("CpusetCpus"):
        cpu["cpus"] = hc["CpusetCpus"]
    if hc.get("CpusetMems"):
        cpu["mems"] = hc["CpusetMems"]
    if cpu:
        res["cpu"] = cpu
    if hc.get("PidsLimit"):
        res["pids"] = {"limit": int(hc["PidsLimit"])}
    # the device cgroup: all denied, then Docker's defaults (a privileged one gets all), then
    # the --device ones
    extra_devices = [host_device(d) for d in hc.get("Devices") or []]
    res["devices"] = [{"allow": True, "access": "rwm"}] if hc.get("Privileged") else [
        {"allow": False, "access": "rwm"}, *DEFAULT_DEVICE_RULES,
        *({"allow": True, "type": d["type"], "major": d["major"], "minor": d["minor"],
           "access": perms} for d, perms in extra_devices)]
    spec["linux"]["devices"] = [d for d, _ in extra_devices]
    spec["linux"]["resources"] = res
    # absolute: under the hierarchy's root, wherever the daemon itself runs (as Docker's
    # cgroupfs driver passes /docker/<id>)
    spec["linux"]["cgroupsPath"] = f"/{(hc.get('CgroupParent') or cgroup_parent).strip('/')}/{cid}"
    spec["linux"]["sysctl"] = dict(hc.get("Sysctls") or {})
    return spec


def host_device(d: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """`--device HOST[:CONTAINER[:PERMS]]` as a runtime-spec device, and its cgroup access."""
    host = d.get("PathOnHost") or ""
    perms = d.get("CgroupPermissions") or "rwm"
    if not perms or any(c not in "rwm" for c in perms):
        raise InvalidArgument(f"invalid device mode: {perms}")
    try:
        st = os.stat(host)
    except OSError as e:
        raise InvalidArgument(f'error gathering device information while adding custom device '
                              f'"{host}": {(e.strerror or str(e)).lower()}') from None
    if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        raise InvalidArgument(f'error gathering device information while adding custom device '
                              f'"{host}": not a device node')
    return ({"path": d.get("PathInContainer") or host,
             "type": "c" if stat.S_ISCHR(st.st_mode) else "b",
             "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
             "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid}, perms)


def _cap_name(c: str) -> str:
    c = c.upper()
    c = c if c.startswith("CAP_") else "CAP_" + c
    if c != "CAP_ALL" and c not in CAPABILITIES:
        raise InvalidArgument(f"invalid capability: {c}")
    return c


__all__ = ["build_spec", "merge_env", "process_env", "replace_or_append", "validate_host_config",
           "validate_sysctls", "DEFAULT_PATH"]
