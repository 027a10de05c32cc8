"""`run`'s and `create`'s flags and the container-create body they build (docker's flag to Engine API field mapping).
"""

from __future__ import annotations

import sys

from berth.cli.attach import (
    _attach_and_start,
    _check_detach_keys,
    _proxy_signals,
    _resize,
    _session,
    _start_error_code,
)
from berth.cli.common import (
    _env_list,
    _term_size,
    err,
    out,
)
from berth.cli.flags import Spec, UsageError, flag
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
from berth.errors import BerthError, NotFound
from berth.units import parse_size

TYPE_CHECKING = False  # not typing's: importing typing costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any


_RUN_FLAGS = [
    flag("detach", "d", help="Run container in background and print container ID"),
    flag("rm", help="Automatically remove the container when it exits"),
    flag("name", kind="str", default="", help="Assign a name to the container"),
    flag("env", "e", "list", help="Set environment variables"),
    flag("env-file", kind="list", help="Read in a file of environment variables"),
    flag("workdir", "w", "str", "", help="Working directory inside the container"),
    flag("user", "u", "str", None, help="Username or UID (format: <name|uid>[:<group|gid>])"),
    flag("hostname", "h", "str", "", help="Container host name"),
    flag("entrypoint", kind="str", default=None,
         help="Overwrite the default ENTRYPOINT of the image"),
    flag("label", "l", "list", help="Set meta data on a container"),
    flag("network", kind="str", default="", help="Connect a container to a network"),
    flag("net", kind="str", default="", help="Connect a container to a network"),
    flag("memory", "m", "str", "", help="Memory limit"),
    flag("memory-swap", kind="str", default="",
         help="Swap limit equal to memory plus swap: '-1' to enable unlimited swap"),
    flag("cpus", kind="str", default="", help="Number of CPUs"),
    flag("cpu-shares", "c", "int", 0, help="CPU shares (relative weight)"),
    flag("cpuset-cpus", kind="str", default="", help="CPUs in which to allow execution (0-3, 0,1)"),
    flag("cpuset-mems", kind="str", default="", help="MEMs in which to allow execution (0-3, 0,1)"),
    flag("cpu-quota", kind="int", default=0,
         help="Limit CPU CFS (Completely Fair Scheduler) quota"),
    flag("cpu-period", kind="int", default=0,
         help="Limit CPU CFS (Completely Fair Scheduler) period"),
    flag("pids-limit", kind="int", default=0,
         help="Tune container pids limit (set -1 for unlimited)"),
    flag("interactive", "i", help="Keep STDIN open even if not attached"),
    flag("tty", "t", help="Allocate a pseudo-TTY"),
    flag("pull", kind="str", default="missing",
         help="Pull image before running (\"always\", \"missing\", \"never\")"),
    flag("stop-signal", kind="str", default="", help="Signal to stop the container"),
    flag("stop-timeout", kind="int", default=None, help="Timeout (in seconds) to stop a container"),
    flag("privileged", help="Give extended privileges to this container"),
    flag("cap-add", kind="list", help="Add Linux capabilities"),
    flag("cap-drop", kind="list", help="Drop Linux capabilities"),
    flag("read-only", help="Mount the container's root filesystem as read only"),
    flag("tmpfs", kind="list", help="Mount a tmpfs directory"),
    flag("volume", "v", "list", help="Bind mount a volume"),
    flag("ulimit", kind="list", help="Ulimit options"),
    flag("shm-size", kind="str", default="", help="Size of /dev/shm"),
    flag("add-host", kind="list", help="Add a custom host-to-IP mapping (host:ip)"),
    flag("dns", kind="list", help="Set custom DNS servers"),
    flag("dns-search", kind="list", help="Set custom DNS search domains"),
    flag("dns-option", kind="list", help="Set DNS options"),
    flag("restart", kind="str", default="", help="Restart policy to apply when a container exits"),
    flag("security-opt", kind="list", help="Security Options"),
    flag("sysctl", kind="list", help="Sysctl options"),
    flag("init", help="Run an init inside the container that forwards signals and reaps processes"),
    flag("platform", kind="str", default="",
         help="Set platform if server is multi-platform capable"),
    flag("sig-proxy", default=True, help="Proxy received signals to the process"),
    flag("attach", "a", "list", help="Attach to STDIN, STDOUT or STDERR"),
    flag("group-add", kind="list", help="Add additional groups to join"),
    flag("cidfile", kind="str", default="", help="Write the container ID to the file"),
    flag("runtime", kind="str", default="", help="Runtime to use for this container"),
    flag("cgroup-parent", kind="str", default="", help="Optional parent cgroup for the container"),
    flag("cgroupns", kind="str", default="",
         help="Cgroup namespace to use (host|private): 'host' runs the container in the host's "
              "cgroup namespace, 'private' in its own private cgroup namespace"),
    flag("userns", kind="str", default="", help="User namespace to use"),
    flag("log-driver", kind="str", default="", help="Logging driver for the container"),
    flag("log-opt", kind="list", help="Log driver options"),
    flag("publish", "p", "list", help="Publish a container's port(s) to the host"),
    flag("expose", kind="list",
         help="Expose a port or a range of ports container ('all' to pass all GPUs)"),
    flag("publish-all", "P", help="Publish all exposed ports to random ports"),
    flag("detach-keys", kind="str", default="",
         help="Override the key sequence for detaching a container"),
    flag("mount", kind="list", help="Attach a filesystem mount to the container"),
    flag("volumes-from", kind="list", help="Mount volumes from the specified container(s)"),
    flag("network-alias", kind="list", help="Add network-scoped alias for the container"),
    flag("ip", kind="str", default="", help="IPv4 address (e.g., 172.30.100.104)"),
    flag("mac-address", kind="str", default="",
         help="Container MAC address (e.g., 92:d0:c6:0a:29:33)"),
    flag("device", kind="list", help="Add a host device to the container"),
    flag("health-cmd", kind="str", default="", help="Command to run to check health"),
    flag("health-interval", kind="str", default="",
         help="Time between running the check (ms|s|m|h)"),
    flag("health-timeout", kind="str", default="",
         help="Maximum time to allow one check to run (ms|s|m|h)"),
    flag("health-retries", kind="int", default=0,
         help="Consecutive failures needed to report unhealthy"),
    flag("health-start-period", kind="str", default="",
         help="Start period for the container to initialize before starting health-retries "
              "countdown (ms|s|m|h)"),
    flag("no-healthcheck", help="Disable any container-specified HEALTHCHECK"),
    flag("health-start-interval", kind="str", default="",
         help="Time between running the check during the start period (ms|s|m|h)"),
    flag("pid", kind="str", default="", help="PID namespace to use"),
    flag("ipc", kind="str", default="", help="IPC mode to use"),
    flag("uts", kind="str", default="", help="UTS namespace to use"),
    flag("oom-score-adj", kind="int", default=0,
         help="Tune host's OOM preferences (-1000 to 1000)"),
    flag("memory-reservation", kind="str", default="", help="Memory soft limit"),
    flag("memory-swappiness", kind="int", default=-1,
         help="Tune container memory swappiness (0 to 100)"),
    flag("oom-kill-disable", help="Disable OOM Killer"),
    flag("blkio-weight", kind="int", default=0,
         help="Block IO (relative weight), between 10 and 1000, or 0 to disable"),
    flag("blkio-weight-device", kind="list", help="Block IO weight (relative device weight)"),
    flag("device-read-bps", kind="list", help="Limit read rate (bytes per second) from a device"),
    flag("device-write-bps", kind="list", help="Limit write rate (bytes per second) to a device"),
    flag("device-read-iops", kind="list", help="Limit read rate (IO per second) from a device"),
    flag("device-write-iops", kind="list", help="Limit write rate (IO per second) to a device"),
    flag("label-file", kind="list", help="Read in a line delimited file of labels"),
    flag("domainname", kind="str", default="", help="Container NIS domain name"),
    flag("device-cgroup-rule", kind="list", help="Add a rule to the cgroup allowed devices list"),
    flag("storage-opt", kind="list", help="Storage driver options for the container"),
    flag("gpus", kind="str", default="",
         help="GPU devices to add to the container ('all' to pass all GPUs)"),
    flag("annotation", kind="list",
         help="Add an annotation to the container (passed through to the OCI runtime)"),
    flag("link", kind="list", help="Add link to another container"),
]
RUN = Spec(_RUN_FLAGS, interspersed=False)
CREATE = Spec([f for f in _RUN_FLAGS if f.long not in ("detach", "sig-proxy")], interspersed=False)


def build_create_body(opts: dict[str, Any], image: str,
                      cmd: list[str]) -> tuple[dict[str, Any], str]:
    """`run`'s and `create`'s flags as the Engine API's create body, and the name to create."""
    labels: dict[str, str] = {}
    for lab in _label_file_lines(opts["label-file"]) + list(opts["label"]):
        k, _, v = lab.partition("=")
        labels[k] = v
    hc: dict[str, Any] = {"AutoRemove": bool(opts["rm"]),
                          "NetworkMode": opts["network"] or opts["net"] or "default"}
    _limits(opts, hc)
    _block_io_and_devices(opts, hc)
    _security_mounts_and_policies(opts, hc)
    exposed = _ports(opts, hc)
    attach = opts.get("attach") or []
    detached = opts.get("detach", True)
    if opts["link"]:
        hc["Links"] = list(opts["link"])
    netcfg = _endpoint_config(opts, hc["NetworkMode"])
    body: dict[str, Any] = {
        "Image": image, "Cmd": cmd or None, "Env": _env_list(opts["env-file"], opts["env"]), "Labels": labels,
        "Tty": bool(opts["tty"]), "OpenStdin": bool(opts["interactive"]),
        "StdinOnce": bool(opts["interactive"]) and not detached,
        "AttachStdin": bool(opts["interactive"]) and not detached,
        "AttachStdout": not detached and (not attach or "stdout" in attach),
        "AttachStderr": not detached and (not attach or "stderr" in attach),
        "HostConfig": hc,
    }
    if netcfg:
        body["NetworkingConfig"] = netcfg
    if exposed:
        body["ExposedPorts"] = exposed
    if opts["workdir"]:
        body["WorkingDir"] = opts["workdir"]
    if opts["user"] is not None:
        body["User"] = opts["user"]
    if opts["hostname"]:
        body["Hostname"] = opts["hostname"]
    if opts["domainname"]:
        body["Domainname"] = opts["domainname"]
    if opts["entrypoint"] is not None:
        body["Entrypoint"] = [opts["entrypoint"]] if opts["entrypoint"] else [""]
    if opts["stop-signal"]:
        body["StopSignal"] = opts["stop-signal"]
    if opts["stop-timeout"] is not None:
        body["StopTimeout"] = opts["stop-timeout"]
    if opts["tty"]:
        size = _term_size()
        if size:
            hc["ConsoleSize"] = list(size)
    health = _healthcheck(opts)
    if health is not None:
        body["Healthcheck"] = health
    return body, opts["name"]


def _limits(opts: dict[str, Any], hc: dict[str, Any]) -> None:
    """The cgroup limits and the namespace modes of a HostConfig."""
    try:
        if opts["memory"]:
            hc["Memory"] = parse_size(opts["memory"])
        if opts["memory-swap"]:
            hc["MemorySwap"] = -1 if opts["memory-swap"] == "-1" else parse_size(opts["memory-swap"])
        if opts["shm-size"]:
            hc["ShmSize"] = parse_size(opts["shm-size"])
        if opts["memory-reservation"]:
            hc["MemoryReservation"] = parse_size(opts["memory-reservation"])
    except ValueError as e:
        raise UsageError(f"invalid argument: {e}") from None
    if opts["cpus"]:
        try:
            hc["NanoCpus"] = int(round(float(opts["cpus"]) * 1e9))
        except ValueError:
            raise UsageError(f'invalid argument "{opts["cpus"]}" for "--cpus" flag: '
                             "failed to parse " + opts["cpus"] + " as a rational number") from None
    for key, name in (("CpuShares", "cpu-shares"), ("CpuQuota", "cpu-quota"),
                      ("CpuPeriod", "cpu-period"), ("PidsLimit", "pids-limit")):
        if opts[name]:
            hc[key] = opts[name]
    for key, name in (("CpusetCpus", "cpuset-cpus"), ("CpusetMems", "cpuset-mems"),
                      ("CgroupParent", "cgroup-parent"), ("Runtime", "runtime"),
                      ("CgroupnsMode", "cgroupns"), ("UsernsMode", "userns")):
        if opts[name]:
            hc[key] = opts[name]
    for key, name, what in (("PidMode", "pid", "PID"), ("IpcMode", "ipc", "IPC"),
                            ("UTSMode", "uts", "UTS")):
        mode = opts[name]
        if mode:
            if mode not in (("host",) if name == "uts" else (
                    "host", "private", "shareable", "none") if name == "ipc" else ("host",)) \
                    and not (name != "uts" and mode.startswith("container:") and mode[10:]):
                raise UsageError(f"--{name}: invalid {what} mode")
            hc[key] = mode
    if opts["oom-score-adj"]:
        hc["OomScoreAdj"] = opts["oom-score-adj"]
    if opts["memory-swappiness"] != -1:
        hc["MemorySwappiness"] = opts["memory-swappiness"]
    if opts["oom-kill-disable"]:
        hc["OomKillDisable"] = True

def _block_io_and_devices(opts: dict[str, Any], hc: dict[str, Any]) -> None:
    """Block I/O weights and rates, device cgroup rules, storage options, GPUs, annotations."""
    if opts["blkio-weight"]:
        hc["BlkioWeight"] = opts["blkio-weight"]
    weights = []
    for w in opts["blkio-weight-device"]:
        path, sep, weight = w.rpartition(":")
        if not sep or not path.startswith("/dev/") or not weight.isdigit() or not (
                10 <= int(weight) <= 1000):
            raise UsageError(f'invalid argument "{w}" for "--blkio-weight-device" flag: '
                             f"invalid weight for device: {w}")
        weights.append({"Path": path, "Weight": int(weight)})
    if weights:
        hc["BlkioWeightDevice"] = weights
    for key, name, sized in (("BlkioDeviceReadBps", "device-read-bps", True),
                             ("BlkioDeviceWriteBps", "device-write-bps", True),
                             ("BlkioDeviceReadIOps", "device-read-iops", False),
                             ("BlkioDeviceWriteIOps", "device-write-iops", False)):
        if opts[name]:
            hc[key] = [_device_rate(d, name, sized) for d in opts[name]]
    for rule in opts["device-cgroup-rule"]:
        parts = rule.split(" ")
        ok = len(parts) == 3 and parts[0] in ("a", "b", "c") and all(
            x == "*" or x.isdigit() for x in parts[1].split(":")) and parts[1].count(":") == 1 \
            and 1 <= len(parts[2]) <= 3 and all(c in "rwm" for c in parts[2])
        if not ok:
            raise UsageError(f'invalid argument "{rule}" for "--device-cgroup-rule" flag: '
                             f"invalid device cgroup format '{rule}'")
    if opts["device-cgroup-rule"]:
        hc["DeviceCgroupRules"] = list(opts["device-cgroup-rule"])
    if opts["storage-opt"]:
        so: dict[str, str] = {}
        for o in opts["storage-opt"]:
            k, sep, v = o.partition("=")
            if not sep:
                raise UsageError(f"invalid storage option {o}")
            so[k] = v
        hc["StorageOpt"] = so
    if opts["gpus"]:
        hc.setdefault("DeviceRequests", []).append(_gpus(opts["gpus"]))
    if opts["annotation"]:
        ann: dict[str, str] = {}
        for a in opts["annotation"]:
            k, sep, v = a.partition("=")
            if not sep or not k:
                raise UsageError(f'invalid argument "{a}" for "--annotation" flag: bad '
                                 "format for annotation: must be in the form key=value")
            ann[k] = v
        hc["Annotations"] = ann

def _security_mounts_and_policies(opts: dict[str, Any], hc: dict[str, Any]) -> None:
    """Privileges, capabilities, mounts, devices, sysctls, ulimits, restart and log policies."""
    if opts["privileged"]:
        hc["Privileged"] = True
    if opts["read-only"]:
        hc["ReadonlyRootfs"] = True
    if opts["init"]:
        hc["Init"] = True
    for key, name in (("CapAdd", "cap-add"), ("CapDrop", "cap-drop"), ("Binds", "volume"),
                      ("ExtraHosts", "add-host"), ("Dns", "dns"), ("DnsSearch", "dns-search"),
                      ("DnsOptions", "dns-option"), ("SecurityOpt", "security-opt"),
                      ("GroupAdd", "group-add")):
        if opts[name]:
            hc[key] = list(opts[name])
    if hc.get("SecurityOpt"):
        hc["SecurityOpt"] = [_security_opt(o) for o in hc["SecurityOpt"]]
    if opts["mount"]:
        hc["Mounts"] = [_parse_mount_flag(m) for m in opts["mount"]]
    if opts["device"]:
        devs = []
        for d in opts["device"]:
            kind, eq, _ = d.partition("=")
            if eq and "/" in kind and not d.startswith("/"):
                # a CDI name (vendor.com/class=name): a DeviceRequest, as the docker CLI
                hc.setdefault("DeviceRequests", []).append(
                    {"Driver": "cdi", "DeviceIDs": [d], "Count": 0, "Capabilities": None,
                     "Options": {}})
                continue
            parts = d.split(":")
            host = parts[0]
            ctr = parts[1] if len(parts) > 1 and parts[1].startswith("/") else host
            perms = parts[-1] if len(parts) > 1 and not parts[-1].startswith("/") else "rwm"
            devs.append({"PathOnHost": host, "PathInContainer": ctr, "CgroupPermissions": perms})
        if devs:
            hc["Devices"] = devs
    if opts["volumes-from"]:
        hc["VolumesFrom"] = list(opts["volumes-from"])
    if opts["tmpfs"]:
        hc["Tmpfs"] = {t.split(":", 1)[0]: (t.split(":", 1)[1] if ":" in t else "")
                       for t in opts["tmpfs"]}
    if opts["sysctl"]:
        hc["Sysctls"] = dict(_sysctl_flag(s).split("=", 1) for s in opts["sysctl"])
    if opts["ulimit"]:
        ul = []
        for u in opts["ulimit"]:
            name, _, val = u.partition("=")
            soft, _, hard = val.partition(":")
            try:
                ul.append({"Name": name, "Soft": int(soft), "Hard": int(hard or soft)})
            except ValueError:
                raise UsageError(f"invalid ulimit argument: {u}") from None
        hc["Ulimits"] = ul
    if opts["restart"]:
        name, _, count = opts["restart"].partition(":")
        hc["RestartPolicy"] = {"Name": name, "MaximumRetryCount": int(count or 0)}
    if opts["log-driver"] or opts["log-opt"]:
        # the daemon says which drivers it has, as dockerd does
        hc["LogConfig"] = {"Type": opts["log-driver"], "Config": dict(
            o.split("=", 1) for o in opts["log-opt"] if "=" in o)}

def _ports(opts: dict[str, Any], hc: dict[str, Any]) -> dict[str, Any]:
    """`-p`, `--expose`, `-P`: the port bindings into hc, the exposed ports returned."""
    exposed: dict[str, Any] = {}
    if opts["publish"]:
        binds: dict[str, list[dict[str, str]]] = {}
        for p in opts["publish"]:
            for key, b in _parse_publish(p).items():
                binds.setdefault(key, []).extend(b)
                exposed[key] = {}
        hc["PortBindings"] = binds
    for port in opts["expose"]:
        exposed[port if "/" in port else port + "/tcp"] = {}
    if opts["publish-all"]:
        hc["PublishAllPorts"] = True
    return exposed


def _endpoint_config(opts: dict[str, Any], mode: str) -> dict[str, Any]:
    """`--network-alias`, `--ip`, `--mac-address`, `--link`: the NetworkingConfig of the
    first network (links there too, as the docker CLI sends them)."""
    netcfg: dict[str, Any] = {}
    if opts["network-alias"] or opts["ip"] or opts["mac-address"] or opts["link"]:
        ec: dict[str, Any] = {}
        if opts["network-alias"]:
            ec["Aliases"] = list(opts["network-alias"])
        if opts["link"]:
            ec["Links"] = list(opts["link"])
        if opts["ip"]:
            ec["IPAMConfig"] = {"IPv4Address": opts["ip"]}
        if opts["mac-address"]:
            ec["MacAddress"] = opts["mac-address"]
        netcfg = {"EndpointsConfig": {mode if mode != "default" else "bridge": ec}}
    return netcfg


def _create(c: Client, opts: dict[str, Any], args: list[str]) -> str:
    if not args:
        raise UsageError('"create" requires at least 1 argument.')
    image, cmd = args[0], args[1:]
    body, name = build_create_body(opts, image, cmd)
    if opts["pull"] not in ("missing", "always", "never"):
        raise UsageError(f'invalid pull option: \'{opts["pull"]}\': must be one of '
                         '"always", "missing" or "never"')
    if opts["pull"] == "always":
        _pull(c, image, opts.get("platform") or "")
    try:
        res = c.post("/containers/create", {"name": name or None}, body)
    except NotFound as e:
        if "No such image" not in str(e) or opts["pull"] == "never":
            raise
        ref = image if ":" in image.rsplit("/", 1)[-1] or "@" in image else image + ":latest"
        err(f"Unable to find image '{ref}' locally")
        _pull(c, image, opts.get("platform") or "")
        res = c.post("/containers/create", {"name": name or None}, body)
    for w in res.get("Warnings") or []:
        err(f"WARNING: {w}")
    if opts.get("cidfile"):
        with open(opts["cidfile"], "w") as f:
            f.write(res["Id"])
    return str(res["Id"])


def _pull(c: Client, image: str, platform: str = "") -> None:
    """As the docker CLI: the progress of a pull that `run`/`create` needs goes to stderr."""
    from berth.cli import registry
    name, tag = registry.split_name(image)
    registry.pull(c, f"{name}{'@' if tag.startswith('sha256:') else ':'}{tag or 'latest'}",
                  platform=platform, quiet=False, out=sys.stderr)


def cmd_create(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    opts["detach"] = True
    out(_create(c, opts, args))
    return 0


def cmd_run(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    if opts["tty"] and opts["interactive"] and not sys.stdin.isatty():
        err("the input device is not a TTY")
        return 1
    if opts["detach-keys"]:
        _check_detach_keys(opts["detach-keys"])
    cid = _create(c, opts, args)
    if opts["detach"]:
        try:
            c.send("POST", f"/containers/{cid}/start").close()
        except BerthError as e:
            err(f"berth: Error response from daemon: {e}")
            return _start_error_code(str(e))
        out(cid)
        return 0
    started = _attach_and_start(c, cid, stdin=bool(opts["interactive"]),
                                keys=opts["detach-keys"], condition="removed" if opts["rm"]
                                else "next-exit", prefix="berth: ")
    if isinstance(started, int):
        return started
    attach, wait = started
    if opts["sig-proxy"] and not opts["tty"]:
        _proxy_signals(c, cid)
    detached = _session(attach, tty=bool(opts["tty"]), stdin=bool(opts["interactive"]),
                        keys=opts["detach-keys"],
                        resize=lambda h, w: _resize(c, f"/containers/{cid}/resize", h, w))
    if detached:
        wait.close()
        return 0
    res = wait.json()
    wait.close()
    if res and res.get("Error") and res["Error"].get("Message"):
        err(f"berth: Error response from daemon: {res['Error']['Message']}")
    return int(res.get("StatusCode", 0)) if res else 0
