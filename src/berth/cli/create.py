"""`run` and `create`: the container-create body their flags (`cli.createflags`) build (docker's
flag to Engine API field mapping), and the commands.
"""

from __future__ import annotations

import sys

from berth.cli.attach import (
    _attach_and_start,
    _check_detach_keys,
    _env_list,
    _proxy_signals,
    _resize,
    _session,
    _start_error_code,
    _term_size,
)
from berth.cli.createflags import CreateOptions as CreateOptions
from berth.cli.createflags import RunOptions as RunOptions
from berth.cli.main import err, out
from berth.cli.runflags import (
    _device_rate,
    _gpus,
    _healthcheck,
    _label_file_lines,
    _parse_mount_flag,
    _parse_publish,
    _security_opt,
    _sysctl_flag,
)
from berth.client import Client
from berth.cmdline import UsageError
from berth.errors import BerthError, NotFound
from berth.units import parse_size

TYPE_CHECKING = False  # not typing's: importing typing costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any


def build_create_body(
    opts: CreateOptions, image: str, cmd: list[str], detached: bool | None = None
) -> tuple[dict[str, Any], str]:
    """`run`'s and `create`'s flags as the Engine API's create body, and the name to create.
    `detached`: whether no stream is attached (`create`, `run -d`); by default `run`'s -d."""
    labels: dict[str, str] = {}
    for lab in _label_file_lines(opts.label_file) + list(opts.label):
        k, _, v = lab.partition("=")
        labels[k] = v
    hc: dict[str, Any] = {
        "AutoRemove": opts.rm,
        "NetworkMode": opts.network or opts.net or "default",
    }
    _limits(opts, hc)
    _block_io_and_devices(opts, hc)
    _security_mounts_and_policies(opts, hc)
    exposed = _ports(opts, hc)
    attach = opts.attach
    if detached is None:
        detached = opts.detach if isinstance(opts, RunOptions) else True
    if opts.link:
        hc["Links"] = list(opts.link)
    netcfg = _endpoint_config(opts, hc["NetworkMode"])
    body: dict[str, Any] = {
        "Image": image,
        "Cmd": cmd or None,
        "Env": _env_list(opts.env_file, opts.env),
        "Labels": labels,
        "Tty": opts.tty,
        "OpenStdin": opts.interactive,
        "StdinOnce": opts.interactive and not detached,
        "AttachStdin": opts.interactive and not detached,
        "AttachStdout": not detached and (not attach or "stdout" in attach),
        "AttachStderr": not detached and (not attach or "stderr" in attach),
        "HostConfig": hc,
    }
    if netcfg:
        body["NetworkingConfig"] = netcfg
    if exposed:
        body["ExposedPorts"] = exposed
    if opts.workdir:
        body["WorkingDir"] = opts.workdir
    if opts.user is not None:
        body["User"] = opts.user
    if opts.hostname:
        body["Hostname"] = opts.hostname
    if opts.domainname:
        body["Domainname"] = opts.domainname
    if opts.entrypoint is not None:
        body["Entrypoint"] = [opts.entrypoint] if opts.entrypoint else [""]
    if opts.stop_signal:
        body["StopSignal"] = opts.stop_signal
    if opts.stop_timeout is not None:
        body["StopTimeout"] = opts.stop_timeout
    if opts.tty:
        size = _term_size()
        if size:
            hc["ConsoleSize"] = list(size)
    health = _healthcheck(
        opts.no_healthcheck,
        opts.health_cmd,
        opts.health_retries,
        (
            ("Interval", "health-interval", opts.health_interval),
            ("Timeout", "health-timeout", opts.health_timeout),
            ("StartPeriod", "health-start-period", opts.health_start_period),
            ("StartInterval", "health-start-interval", opts.health_start_interval),
        ),
    )
    if health is not None:
        body["Healthcheck"] = health
    return body, opts.name


def _limits(opts: CreateOptions, hc: dict[str, Any]) -> None:
    """The cgroup limits and the namespace modes of a HostConfig."""
    try:
        if opts.memory:
            hc["Memory"] = parse_size(opts.memory)
        if opts.memory_swap:
            hc["MemorySwap"] = -1 if opts.memory_swap == "-1" else parse_size(opts.memory_swap)
        if opts.shm_size:
            hc["ShmSize"] = parse_size(opts.shm_size)
        if opts.memory_reservation:
            hc["MemoryReservation"] = parse_size(opts.memory_reservation)
    except ValueError as e:
        raise UsageError(f"invalid argument: {e}") from None
    if opts.cpus:
        try:
            hc["NanoCpus"] = int(round(float(opts.cpus) * 1e9))
        except ValueError:
            raise UsageError(
                f'invalid argument "{opts.cpus}" for "--cpus" flag: '
                "failed to parse " + opts.cpus + " as a rational number"
            ) from None
    for key, number in (
        ("CpuShares", opts.cpu_shares),
        ("CpuQuota", opts.cpu_quota),
        ("CpuPeriod", opts.cpu_period),
        ("PidsLimit", opts.pids_limit),
    ):
        if number:
            hc[key] = number
    for key, value in (
        ("CpusetCpus", opts.cpuset_cpus),
        ("CpusetMems", opts.cpuset_mems),
        ("CgroupParent", opts.cgroup_parent),
        ("Runtime", opts.runtime),
        ("CgroupnsMode", opts.cgroupns),
        ("UsernsMode", opts.userns),
    ):
        if value:
            hc[key] = value
    for key, name, what, mode in (
        ("PidMode", "pid", "PID", opts.pid),
        ("IpcMode", "ipc", "IPC", opts.ipc),
        ("UTSMode", "uts", "UTS", opts.uts),
    ):
        if mode:
            if mode not in (
                ("host",)
                if name == "uts"
                else ("host", "private", "shareable", "none")
                if name == "ipc"
                else ("host",)
            ) and not (name != "uts" and mode.startswith("container:") and mode[10:]):
                raise UsageError(f"--{name}: invalid {what} mode")
            hc[key] = mode
    if opts.oom_score_adj:
        hc["OomScoreAdj"] = opts.oom_score_adj
    if opts.memory_swappiness != -1:
        hc["MemorySwappiness"] = opts.memory_swappiness
    if opts.oom_kill_disable:
        hc["OomKillDisable"] = True


def _block_io_and_devices(opts: CreateOptions, hc: dict[str, Any]) -> None:
    """Block I/O weights and rates, device cgroup rules, storage options, GPUs, annotations."""
    if opts.blkio_weight:
        hc["BlkioWeight"] = opts.blkio_weight
    weights = []
    for w in opts.blkio_weight_device:
        path, sep, weight = w.rpartition(":")
        if (
            not sep
            or not path.startswith("/dev/")
            or not weight.isdigit()
            or not (10 <= int(weight) <= 1000)
        ):
            raise UsageError(
                f'invalid argument "{w}" for "--blkio-weight-device" flag: '
                f"invalid weight for device: {w}"
            )
        weights.append({"Path": path, "Weight": int(weight)})
    if weights:
        hc["BlkioWeightDevice"] = weights
    for key, name, sized, rates in (
        ("BlkioDeviceReadBps", "device-read-bps", True, opts.device_read_bps),
        ("BlkioDeviceWriteBps", "device-write-bps", True, opts.device_write_bps),
        ("BlkioDeviceReadIOps", "device-read-iops", False, opts.device_read_iops),
        ("BlkioDeviceWriteIOps", "device-write-iops", False, opts.device_write_iops),
    ):
        if rates:
            hc[key] = [_device_rate(d, name, sized) for d in rates]
    for rule in opts.device_cgroup_rule:
        parts = rule.split(" ")
        ok = (
            len(parts) == 3
            and parts[0] in ("a", "b", "c")
            and all(x == "*" or x.isdigit() for x in parts[1].split(":"))
            and parts[1].count(":") == 1
            and 1 <= len(parts[2]) <= 3
            and all(c in "rwm" for c in parts[2])
        )
        if not ok:
            raise UsageError(
                f'invalid argument "{rule}" for "--device-cgroup-rule" flag: '
                f"invalid device cgroup format '{rule}'"
            )
    if opts.device_cgroup_rule:
        hc["DeviceCgroupRules"] = list(opts.device_cgroup_rule)
    if opts.storage_opt:
        so: dict[str, str] = {}
        for o in opts.storage_opt:
            k, sep, v = o.partition("=")
            if not sep:
                raise UsageError(f"invalid storage option {o}")
            so[k] = v
        hc["StorageOpt"] = so
    if opts.gpus:
        hc.setdefault("DeviceRequests", []).append(_gpus(opts.gpus))
    if opts.annotation:
        ann: dict[str, str] = {}
        for a in opts.annotation:
            k, sep, v = a.partition("=")
            if not sep or not k:
                raise UsageError(
                    f'invalid argument "{a}" for "--annotation" flag: bad '
                    "format for annotation: must be in the form key=value"
                )
            ann[k] = v
        hc["Annotations"] = ann


def _security_mounts_and_policies(opts: CreateOptions, hc: dict[str, Any]) -> None:
    """Privileges, capabilities, mounts, devices, sysctls, ulimits, restart and log policies."""
    if opts.privileged:
        hc["Privileged"] = True
    if opts.read_only:
        hc["ReadonlyRootfs"] = True
    if opts.init:
        hc["Init"] = True
    for key, values in (
        ("CapAdd", opts.cap_add),
        ("CapDrop", opts.cap_drop),
        ("Binds", opts.volume),
        ("ExtraHosts", opts.add_host),
        ("Dns", opts.dns),
        ("DnsSearch", opts.dns_search),
        ("DnsOptions", opts.dns_option),
        ("SecurityOpt", opts.security_opt),
        ("GroupAdd", opts.group_add),
    ):
        if values:
            hc[key] = list(values)
    if hc.get("SecurityOpt"):
        hc["SecurityOpt"] = [_security_opt(o) for o in hc["SecurityOpt"]]
    if opts.mount:
        hc["Mounts"] = [_parse_mount_flag(m) for m in opts.mount]
    if opts.device:
        devs = []
        for d in opts.device:
            kind, eq, _ = d.partition("=")
            if eq and "/" in kind and not d.startswith("/"):
                # a CDI name (vendor.com/class=name): a DeviceRequest, as the docker CLI
                hc.setdefault("DeviceRequests", []).append(
                    {
                        "Driver": "cdi",
                        "DeviceIDs": [d],
                        "Count": 0,
                        "Capabilities": None,
                        "Options": {},
                    }
                )
                continue
            parts = d.split(":")
            host = parts[0]
            ctr = parts[1] if len(parts) > 1 and parts[1].startswith("/") else host
            perms = parts[-1] if len(parts) > 1 and not parts[-1].startswith("/") else "rwm"
            devs.append({"PathOnHost": host, "PathInContainer": ctr, "CgroupPermissions": perms})
        if devs:
            hc["Devices"] = devs
    if opts.volumes_from:
        hc["VolumesFrom"] = list(opts.volumes_from)
    if opts.tmpfs:
        hc["Tmpfs"] = {
            t.split(":", 1)[0]: (t.split(":", 1)[1] if ":" in t else "") for t in opts.tmpfs
        }
    if opts.sysctl:
        hc["Sysctls"] = dict(_sysctl_flag(s).split("=", 1) for s in opts.sysctl)
    if opts.ulimit:
        ul = []
        for u in opts.ulimit:
            name, _, val = u.partition("=")
            soft, _, hard = val.partition(":")
            try:
                ul.append({"Name": name, "Soft": int(soft), "Hard": int(hard or soft)})
            except ValueError:
                raise UsageError(f"invalid ulimit argument: {u}") from None
        hc["Ulimits"] = ul
    if opts.restart:
        name, _, count = opts.restart.partition(":")
        hc["RestartPolicy"] = {"Name": name, "MaximumRetryCount": int(count or 0)}
    if opts.log_driver or opts.log_opt:
        # the daemon says which drivers it has, as dockerd does
        hc["LogConfig"] = {
            "Type": opts.log_driver,
            "Config": dict(o.split("=", 1) for o in opts.log_opt if "=" in o),
        }


def _ports(opts: CreateOptions, hc: dict[str, Any]) -> dict[str, Any]:
    """`-p`, `--expose`, `-P`: the port bindings into hc, the exposed ports returned."""
    exposed: dict[str, Any] = {}
    if opts.publish:
        binds: dict[str, list[dict[str, str]]] = {}
        for p in opts.publish:
            for key, b in _parse_publish(p).items():
                binds.setdefault(key, []).extend(b)
                exposed[key] = {}
        hc["PortBindings"] = binds
    for port in opts.expose:
        exposed[port if "/" in port else port + "/tcp"] = {}
    if opts.publish_all:
        hc["PublishAllPorts"] = True
    return exposed


def _endpoint_config(opts: CreateOptions, mode: str) -> dict[str, Any]:
    """`--network-alias`, `--ip`, `--ip6`, `--link-local-ip`, `--mac-address`, `--link`: the
    NetworkingConfig of the first network (links there too, as the docker CLI sends them)."""
    netcfg: dict[str, Any] = {}
    if (
        opts.network_alias
        or opts.ip
        or opts.mac_address
        or opts.link
        or opts.ip6
        or opts.link_local_ip
    ):
        ec: dict[str, Any] = {}
        if opts.network_alias:
            ec["Aliases"] = list(opts.network_alias)
        if opts.link:
            ec["Links"] = list(opts.link)
        from berth.cli.networks import endpoint_ipam  # rare flags: not for every run

        ipam = endpoint_ipam(opts.ip, opts.ip6, opts.link_local_ip)
        if ipam:
            ec["IPAMConfig"] = ipam
        if opts.mac_address:
            ec["MacAddress"] = opts.mac_address
        netcfg = {"EndpointsConfig": {mode if mode != "default" else "bridge": ec}}
    return netcfg


def _create(c: Client, opts: CreateOptions, args: list[str], detached: bool) -> str:
    if not args:
        raise UsageError('"create" requires at least 1 argument.')
    image, cmd = args[0], args[1:]
    body, name = build_create_body(opts, image, cmd, detached)
    if opts.pull not in ("missing", "always", "never"):
        raise UsageError(
            f'invalid pull option: \'{opts.pull}\': must be one of "always", "missing" or "never"'
        )
    if opts.pull == "always":
        _pull(c, image, opts.platform)
    try:
        res = c.create_container(body, name)
    except NotFound as e:
        if "No such image" not in str(e) or opts.pull == "never":
            raise
        ref = image if ":" in image.rsplit("/", 1)[-1] or "@" in image else image + ":latest"
        err(f"Unable to find image '{ref}' locally")
        _pull(c, image, opts.platform)
        res = c.create_container(body, name)
    for w in res.get("Warnings") or []:
        err(f"WARNING: {w}")
    if opts.cidfile:
        with open(opts.cidfile, "w") as f:
            f.write(res["Id"])
    return res["Id"]


def _pull(c: Client, image: str, platform: str = "") -> None:
    """As the docker CLI: the progress of a pull that `run`/`create` needs goes to stderr."""
    from berth.cli import registry

    name, tag = registry.split_name(image)
    registry.pull(
        c,
        f"{name}{'@' if tag.startswith('sha256:') else ':'}{tag or 'latest'}",
        platform=platform,
        quiet=False,
        out=sys.stderr,
    )


def cmd_create(c: Client, opts: CreateOptions, args: list[str]) -> int:
    out(_create(c, opts, args, detached=True))
    return 0


def cmd_run(c: Client, opts: RunOptions, args: list[str]) -> int:
    # as the docker CLI: only a command that attaches its input needs a terminal
    if opts.tty and opts.interactive and not opts.detach and not sys.stdin.isatty():
        err("the input device is not a TTY")
        return 1
    if opts.detach_keys:
        _check_detach_keys(opts.detach_keys)
    cid = _create(c, opts, args, opts.detach)
    if opts.detach:
        try:
            c.start_container(cid)
        except BerthError as e:
            err(f"berth: Error response from daemon: {e}")
            return _start_error_code(str(e))
        out(cid)
        return 0
    started = _attach_and_start(
        c,
        cid,
        stdin=opts.interactive,
        keys=opts.detach_keys,
        condition="removed" if opts.rm else "next-exit",
        prefix="berth: ",
    )
    if isinstance(started, int):
        return started
    attach, wait = started
    if opts.sig_proxy and not opts.tty:
        _proxy_signals(c, cid)
    detached = _session(
        attach,
        tty=opts.tty,
        stdin=opts.interactive,
        keys=opts.detach_keys,
        resize=lambda h, w: _resize(c.resize_container, cid, h, w),
    )
    if detached:
        wait.close()
        return 0
    res = wait.result()
    error = (res.get("Error") or {}).get("Message")
    if error:
        err(f"berth: Error response from daemon: {error}")
    return res.get("StatusCode", 0)
