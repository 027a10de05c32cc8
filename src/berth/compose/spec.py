"""A service's container, network and volume as Engine API request bodies: the one place where
the typed model becomes Docker's JSON (the edge of compose, beside `compose.engine`).

Imports the compose modules below it only.
"""

from __future__ import annotations

from collections.abc import Callable

from berth.compose import labels as L
from berth.compose.model import MountType, Network, Project, Service, Volume

TYPE_CHECKING = False  # not typing's: importing typing costs ~5 ms of every compose command
if TYPE_CHECKING:
    from typing import Any

NS = 1_000_000_000


def _ns(seconds: float) -> int:
    return int(seconds * NS)


def restart_policy(value: str) -> dict[str, Any]:
    name, _, count = value.partition(":")
    return {"Name": name or "no", "MaximumRetryCount": int(count or 0)}


def _no_service(name: str) -> str:
    raise KeyError(name)


def container_body(
    project: Project,
    svc: Service,
    number: int,
    image_id: str,
    name: str,
    *,
    anonymous: dict[str, str] | None = None,
    oneoff: bool = False,
    command: list[str] | None = None,
    extra_env: dict[str, str] | None = None,
    container_of: Callable[[str], str] = _no_service,
) -> dict[str, Any]:
    """POST /containers/create's body for replica `number` of `svc`. `anonymous`: target →
    volume name, the anonymous volumes a recreated container keeps; `container_of`: the
    name of a service's (first) container, for `service:NAME` modes, links and
    volumes_from."""

    def mode(value: str) -> str:
        if value.startswith("service:"):
            return f"container:{container_of(value[len('service:') :])}"
        return value

    network_mode = mode(svc.network_mode)
    env = {**svc.environment, **(extra_env or {})}
    body: dict[str, Any] = {
        "Image": svc.image_name(project.name),
        "Env": [f"{k}={v}" for k, v in env.items()],
        "Labels": L.container_labels(project, svc, number, image_id, oneoff),
        "Tty": svc.tty,
        "OpenStdin": svc.stdin_open,
        "AttachStdin": False,
        "AttachStdout": False,
        "AttachStderr": False,
    }
    if command is not None:
        body["Cmd"] = command
    elif svc.command is not None:
        body["Cmd"] = list(svc.command)
    if svc.entrypoint is not None:
        body["Entrypoint"] = list(svc.entrypoint)
    for key, val in (
        ("User", svc.user),
        ("WorkingDir", svc.working_dir),
        ("Hostname", svc.hostname),
        ("Domainname", svc.domainname),
        ("StopSignal", svc.stop_signal),
    ):
        if val:
            body[key] = val
    if svc.stop_grace_period_s is not None:
        body["StopTimeout"] = int(svc.stop_grace_period_s)
    hc = svc.healthcheck
    if hc is not None:
        if hc.disable:
            body["Healthcheck"] = {"Test": ["NONE"]}
        else:
            h: dict[str, Any] = {}
            if hc.test:
                h["Test"] = list(hc.test)
            for key, secs in (
                ("Interval", hc.interval_s),
                ("Timeout", hc.timeout_s),
                ("StartPeriod", hc.start_period_s),
                ("StartInterval", hc.start_interval_s),
            ):
                if secs:
                    h[key] = _ns(secs)
            if hc.retries:
                h["Retries"] = hc.retries
            body["Healthcheck"] = h
    host: dict[str, Any] = {}
    exposed: dict[str, Any] = {f"{p}" if "/" in p else f"{p}/tcp": {} for p in svc.expose}
    bindings: dict[str, list[dict[str, str]]] = {}
    for p in svc.ports:
        key = f"{p.target}/{p.protocol}"
        exposed[key] = {}
        bindings.setdefault(key, []).append({"HostIp": p.host_ip, "HostPort": p.published})
    if exposed:
        body["ExposedPorts"] = exposed
    if bindings:
        host["PortBindings"] = bindings
    binds: list[str] = []
    mounts: list[dict[str, Any]] = []
    anonymous = anonymous or {}
    for m in svc.mounts:
        if m.type is MountType.BIND:
            if m.create_host_path:
                binds.append(f"{m.source}:{m.target}" + (":ro" if m.read_only else ""))
            else:
                mounts.append(
                    {
                        "Type": "bind",
                        "Source": m.source,
                        "Target": m.target,
                        "ReadOnly": m.read_only,
                    }
                )
        elif m.type is MountType.TMPFS:
            t: dict[str, Any] = {"Type": "tmpfs", "Target": m.target}
            if m.tmpfs_size:
                t["TmpfsOptions"] = {"SizeBytes": m.tmpfs_size}
            mounts.append(t)
        else:
            source = project.volumes[m.source].name if m.source else anonymous.get(m.target, "")
            v: dict[str, Any] = {"Type": "volume", "Target": m.target, "ReadOnly": m.read_only}
            if source:
                v["Source"] = source
            if m.nocopy:
                v["VolumeOptions"] = {"NoCopy": True}
            mounts.append(v)
    for refs, objs, base in (
        (svc.secrets, project.secrets, "/run/secrets/"),
        (svc.configs, project.configs, "/"),
    ):
        for r in refs:
            obj = objs[r.source]
            if obj.file:
                target = r.target or r.source
                if not target.startswith("/"):
                    target = base + target
                binds.append(f"{obj.file}:{target}:ro")
    if binds:
        host["Binds"] = binds
    if mounts:
        host["Mounts"] = mounts
    if svc.tmpfs:
        host["Tmpfs"] = {
            t.split(":", 1)[0]: (t.split(":", 1)[1] if ":" in t else "") for t in svc.tmpfs
        }
    if svc.restart and not oneoff:
        host["RestartPolicy"] = restart_policy(svc.restart)
    for key, vals in (
        ("CapAdd", svc.cap_add),
        ("CapDrop", svc.cap_drop),
        ("Dns", svc.dns),
        ("DnsSearch", svc.dns_search),
        ("DnsOptions", svc.dns_opt),
        ("SecurityOpt", svc.security_opt),
        ("GroupAdd", svc.group_add),
    ):
        if vals:
            host[key] = list(vals)
    if svc.extra_hosts:
        host["ExtraHosts"] = [f"{k}:{v}" for k, v in svc.extra_hosts.items()]
    if svc.privileged:
        host["Privileged"] = True
    if svc.read_only:
        host["ReadonlyRootfs"] = True
    if svc.init is not None:
        host["Init"] = svc.init
    if svc.sysctls:
        host["Sysctls"] = dict(svc.sysctls)
    if svc.ulimits:
        host["Ulimits"] = [{"Name": k, "Soft": s, "Hard": h} for k, (s, h) in svc.ulimits.items()]
    if svc.logging_driver or svc.logging_options:
        host["LogConfig"] = {"Type": svc.logging_driver, "Config": dict(svc.logging_options)}
    for key, num in (
        ("Memory", svc.mem_limit),
        ("NanoCpus", svc.nano_cpus),
        ("PidsLimit", svc.pids_limit),
        ("ShmSize", svc.shm_size),
        ("CpuShares", svc.cpu_shares),
        ("MemoryReservation", svc.mem_reservation),
        ("MemorySwap", svc.memswap_limit),
        ("CpuQuota", svc.cpu_quota),
        ("CpuPeriod", svc.cpu_period),
    ):
        if num:
            host[key] = num
    ipc = mode(svc.ipc)
    if not ipc and any(o.ipc == f"service:{svc.name}" for o in project.services.values()):
        ipc = "shareable"  # as docker compose: a service whose IPC namespace others join
    for key, text in (
        ("IpcMode", ipc),
        ("PidMode", mode(svc.pid)),
        ("UTSMode", svc.uts),
        ("UsernsMode", svc.userns_mode),
        ("CgroupParent", svc.cgroup_parent),
        ("Runtime", svc.runtime),
        ("CpusetCpus", svc.cpuset),
    ):
        if text:
            host[key] = text
    if svc.oom_score_adj is not None:
        host["OomScoreAdj"] = svc.oom_score_adj
    if svc.mem_swappiness is not None:
        host["MemorySwappiness"] = svc.mem_swappiness
    if svc.oom_kill_disable:
        host["OomKillDisable"] = True
    if svc.device_cgroup_rules:
        host["DeviceCgroupRules"] = list(svc.device_cgroup_rules)
    if svc.annotations:
        host["Annotations"] = dict(svc.annotations)
    if svc.devices:
        devs = []
        for d in svc.devices:
            parts = d.split(":")
            devs.append(
                {
                    "PathOnHost": parts[0],
                    "PathInContainer": parts[1] if len(parts) > 1 else parts[0],
                    "CgroupPermissions": parts[2] if len(parts) > 2 else "rwm",
                }
            )
        host["Devices"] = devs
    if svc.volumes_from:
        vf = []
        for ref in svc.volumes_from:
            src, _, opt = ref.partition(":")
            if src == "container":
                cname, _, opt = opt.partition(":")
            else:
                cname = container_of(src)
            vf.append(cname + (f":{opt}" if opt else ""))
        host["VolumesFrom"] = vf
    if svc.mac_address:
        body["MacAddress"] = svc.mac_address
    if svc.device_requests:
        host["DeviceRequests"] = [
            {
                "Driver": d.driver,
                "Count": d.count,
                "DeviceIDs": list(d.device_ids) or None,
                "Capabilities": [list(d.capabilities)],
            }
            for d in svc.device_requests
        ]
    networking: dict[str, Any] = {}
    if network_mode:
        host["NetworkMode"] = network_mode
    elif svc.networks:
        first = svc.networks[0]
        net = project.networks[first.name].name
        host["NetworkMode"] = net
        ec = endpoint(svc, first.name, name)
        links = []
        for link in svc.links:
            target, _, alias = link.partition(":")
            links.append(f"{container_of(target)}:{alias or target}")
        links += [x if ":" in x else f"{x}:{x}" for x in svc.external_links]
        if links:
            ec["Links"] = links
        networking = {"EndpointsConfig": {net: ec}}
    body["HostConfig"] = host
    if networking:
        body["NetworkingConfig"] = networking
    return body


def endpoint(svc: Service, key: str, container: str) -> dict[str, Any]:
    """The endpoint of a container on the network `key`: the service's name as an alias
    (services find each other by name), and the container's."""
    sn = next(n for n in svc.networks if n.name == key)
    ec: dict[str, Any] = {"Aliases": [svc.name, container, *sn.aliases]}
    if sn.ipv4_address:
        ec["IPAMConfig"] = {"IPv4Address": sn.ipv4_address}
    return ec


def network_body(project: Project, net: Network) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Name": net.name,
        "CheckDuplicate": True,
        "Labels": {**net.labels, **L.project_labels(project), L.NETWORK: net.key},
    }
    if net.driver:
        body["Driver"] = net.driver
    if net.driver_opts:
        body["Options"] = dict(net.driver_opts)
    if net.internal:
        body["Internal"] = True
    if net.attachable:
        body["Attachable"] = True
    if net.enable_ipv6:
        body["EnableIPv6"] = True
    if net.ipam_driver or net.ipam_config:
        body["IPAM"] = {
            "Driver": net.ipam_driver or "default",
            "Config": [
                {
                    {"subnet": "Subnet", "gateway": "Gateway", "ip_range": "IPRange"}.get(k, k): v
                    for k, v in c.items()
                }
                for c in net.ipam_config
            ],
        }
    return body


def volume_body(project: Project, vol: Volume) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Name": vol.name,
        "Labels": {**vol.labels, **L.project_labels(project), L.VOLUME: vol.key},
    }
    if vol.driver:
        body["Driver"] = vol.driver
    if vol.driver_opts:
        body["DriverOpts"] = dict(vol.driver_opts)
    return body
