"""The typed model (`compose.model`) of a canonical project tree (`compose.normalize`): what
`build_project` makes of each service, network, volume, secret and config.

Imports the compose modules below it.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from berth.compose.model import (
    Build,
    Condition,
    Dependency,
    DeviceRequest,
    FileObject,
    FileRef,
    Healthcheck,
    Hook,
    Mount,
    MountType,
    Network,
    Port,
    PreStart,
    Project,
    Service,
    ServiceNetwork,
    Volume,
    WatchAction,
    WatchRule,
)
from berth.compose.values import duration_s, size_bytes, to_bool, to_int

TYPE_CHECKING = False  # not typing's: importing typing costs ~5 ms of every compose command
if TYPE_CHECKING:
    from typing import Any


def _strs(v: Any) -> tuple[str, ...]:
    if v is None:
        return ()
    if isinstance(v, str):
        return (v,)
    return tuple(str(x) for x in v)


def _ssh(v: Any) -> tuple[str, ...]:
    """build.ssh as the CLI's `--ssh` takes it: `ID` or `ID=PATH[,PATH]`."""
    if isinstance(v, dict):
        return tuple(str(k) if x is None or x == "" else f"{k}={x}" for k, x in v.items())
    return _strs(v)


def _hooks(v: Any) -> tuple[Hook, ...]:
    out = []
    for h in v or []:
        cmd = h.get("command")
        out.append(
            Hook(
                command=tuple(shlex.split(cmd)) if isinstance(cmd, str) else _strs(cmd),
                user=str(h.get("user") or ""),
                privileged=to_bool(h.get("privileged", False), "hooks.privileged"),
                working_dir=str(h.get("working_dir") or ""),
                environment=_env_map(h.get("environment")),
            )
        )
    return tuple(out)


def _pre_start(v: Any) -> tuple[PreStart, ...]:
    out = []
    for h in v or []:
        cmd = h.get("command")
        out.append(
            PreStart(
                command=None
                if cmd is None
                else tuple(shlex.split(cmd))
                if isinstance(cmd, str)
                else _strs(cmd),
                image=str(h.get("image") or ""),
                user=str(h.get("user") or ""),
                privileged=to_bool(h.get("privileged", False), "pre_start.privileged"),
                working_dir=str(h.get("working_dir") or ""),
                environment=_env_map(h.get("environment")),
                per_replica=to_bool(h.get("per_replica", False), "pre_start.per_replica"),
            )
        )
    return tuple(out)


def _env_map(env: Any) -> dict[str, str]:
    if isinstance(env, list):
        env = dict(x.split("=", 1) if "=" in x else (x, "") for x in env)
    return {str(k): str(x) for k, x in (env or {}).items()}


def _device_requests(gpus: Any, devices: Any, where: str) -> tuple[DeviceRequest, ...]:
    out = []
    if gpus == "all":
        out.append(DeviceRequest(count=-1, capabilities=("gpu",)))
    elif isinstance(gpus, list):
        for g in gpus:
            out.append(
                DeviceRequest(
                    driver=str(g.get("driver") or ""),
                    count=-1 if g.get("count") == "all" else to_int(g.get("count") or 0, where),
                    device_ids=_strs(g.get("device_ids")),
                    capabilities=_strs(g.get("capabilities")) or ("gpu",),
                )
            )
    for d in devices or []:
        out.append(
            DeviceRequest(
                driver=str(d.get("driver") or ""),
                count=-1 if d.get("count") == "all" else to_int(d.get("count") or 0, where),
                device_ids=_strs(d.get("device_ids")),
                capabilities=_strs(d.get("capabilities")),
            )
        )
    return tuple(out)


def _dur(v: Any, where: str) -> float:
    return duration_s(v, where) if v is not None else 0.0


def _service(name: str, s: dict[str, Any]) -> Service:
    w = f"services.{name}"
    b = s.get("build")
    build = (
        Build(
            context=str(b["context"]),
            dockerfile=str(b.get("dockerfile") or "Dockerfile"),
            args={str(k): str(v) for k, v in (b.get("args") or {}).items()},
            target=str(b.get("target") or ""),
            cache_from=_strs(b.get("cache_from")),
            labels={str(k): str(v) for k, v in (b.get("labels") or {}).items()},
            secrets=tuple(
                str(x["source"]) if isinstance(x, dict) else str(x) for x in b.get("secrets") or []
            ),
            network=str(b.get("network") or ""),
            extra_hosts={str(k): str(v) for k, v in (b.get("extra_hosts") or {}).items()},
            shm_size=size_bytes(b["shm_size"], w) if b.get("shm_size") else 0,
            no_cache=bool(b.get("no_cache", False)),
            pull=bool(b.get("pull", False)),
            tags=_strs(b.get("tags")),
            ssh=_ssh(b.get("ssh")),
            dockerfile_inline=str(b.get("dockerfile_inline") or ""),
            platforms=_strs(b.get("platforms")),
        )
        if b
        else None
    )
    mounts = []
    for v in s.get("volumes") or []:
        mounts.append(
            Mount(
                type=MountType(v["type"])
                if v["type"] in ("volume", "bind", "tmpfs")
                else MountType.VOLUME,
                target=str(v["target"]),
                source=str(v.get("source") or ""),
                read_only=bool(v.get("read_only", False)),
                nocopy=bool((v.get("volume") or {}).get("nocopy", False)),
                create_host_path=bool((v.get("bind") or {}).get("create_host_path", True)),
                tmpfs_size=size_bytes((v.get("tmpfs") or {}).get("size") or 0, w),
            )
        )
    nets = []
    for key, nv in (s.get("networks") or {}).items():
        nv = nv or {}
        nets.append(
            ServiceNetwork(
                name=str(key),
                aliases=_strs(nv.get("aliases")),
                ipv4_address=str(nv.get("ipv4_address") or ""),
                priority=to_int(nv.get("priority") or 0, w),
            )
        )
    nets.sort(key=lambda n: (-n.priority, n.name))
    hc = s.get("healthcheck")
    health = (
        Healthcheck(
            test=_strs(hc.get("test")),
            interval_s=_dur(hc.get("interval"), w),
            timeout_s=_dur(hc.get("timeout"), w),
            start_period_s=_dur(hc.get("start_period"), w),
            start_interval_s=_dur(hc.get("start_interval"), w),
            retries=int(hc.get("retries") or 0),
            disable=bool(hc.get("disable", False)),
        )
        if hc
        else None
    )
    # deploy, as docker compose (not swarm) reads it: replicas (one container for `global`),
    # resources' limits (over mem_limit, cpus, pids_limit) and reservations' memory and
    # devices, restart_policy (over restart; its condition and max_attempts). The rest is
    # swarm's (labels on the service, placement, update_config, rollback_config,
    # endpoint_mode, restart_policy's delay and window, reservations' cpus): ignored, as
    # docker compose ignores it.
    deploy = s.get("deploy") or {}
    replicas = s.get(
        "scale",
        1 if str(deploy.get("mode") or "").startswith("global") else deploy.get("replicas", 1),
    )
    limits = (deploy.get("resources") or {}).get("limits") or {}
    reservations = (deploy.get("resources") or {}).get("reservations") or {}
    rp = deploy.get("restart_policy") or {}
    restart = str(s.get("restart") or "")
    if rp:
        cond = {
            "none": "no",
            "no": "no",
            "on-failure": "on-failure",
            "unless-stopped": "unless-stopped",
        }.get(str(rp.get("condition") or "any"), "always")
        attempts = rp.get("max_attempts")
        restart = cond + (f":{to_int(attempts, w)}" if cond == "on-failure" and attempts else "")
    mem = limits.get("memory") or s.get("mem_limit")
    cpus = limits.get("cpus") or s.get("cpus")
    pids = limits.get("pids") or s.get("pids_limit")
    logging = s.get("logging") or {}
    sgp = s.get("stop_grace_period")

    def refs(key: str) -> tuple[FileRef, ...]:
        return tuple(
            FileRef(
                source=str(r["source"]),
                target=str(r.get("target") or ""),
                uid=str(r.get("uid") or ""),
                gid=str(r.get("gid") or ""),
                mode=int(str(r["mode"]), 8) if isinstance(r.get("mode"), str) else r.get("mode"),
            )
            for r in s.get(key) or []
        )

    return Service(
        name=name,
        image=str(s.get("image") or ""),
        build=build,
        command=tuple(s["command"]) if s.get("command") is not None else None,
        entrypoint=tuple(s["entrypoint"]) if s.get("entrypoint") is not None else None,
        environment=dict(s.get("environment") or {}),
        labels=dict(s.get("labels") or {}),
        ports=tuple(
            Port(
                target=int(p["target"]),
                published=str(p.get("published") or ""),
                host_ip=str(p.get("host_ip") or ""),
                protocol=str(p.get("protocol") or "tcp"),
            )
            for p in s.get("ports") or []
        ),
        expose=_strs(s.get("expose")),
        mounts=tuple(mounts),
        tmpfs=_strs(s.get("tmpfs")),
        networks=tuple(nets),
        network_mode=str(s.get("network_mode") or ""),
        depends_on=tuple(
            Dependency(
                service=d,
                condition=Condition(v["condition"]),
                required=v["required"],
                restart=v["restart"],
            )
            for d, v in (s.get("depends_on") or {}).items()
        ),
        healthcheck=health,
        restart=restart,
        replicas=int(replicas),
        container_name=str(s.get("container_name") or ""),
        hostname=str(s.get("hostname") or ""),
        domainname=str(s.get("domainname") or ""),
        user=str(s.get("user") or ""),
        working_dir=str(s.get("working_dir") or ""),
        cap_add=_strs(s.get("cap_add")),
        cap_drop=_strs(s.get("cap_drop")),
        privileged=bool(s.get("privileged", False)),
        read_only=bool(s.get("read_only", False)),
        init=s.get("init"),
        tty=bool(s.get("tty", False)),
        stdin_open=bool(s.get("stdin_open", False)),
        stop_signal=str(s.get("stop_signal") or ""),
        stop_grace_period_s=duration_s(sgp, w) if sgp is not None else None,
        extra_hosts=dict(s.get("extra_hosts") or {}),
        dns=_strs(s.get("dns")),
        dns_search=_strs(s.get("dns_search")),
        dns_opt=_strs(s.get("dns_opt")),
        sysctls=dict(s.get("sysctls") or {}),
        ulimits={k: (v["soft"], v["hard"]) for k, v in (s.get("ulimits") or {}).items()},
        logging_driver=str(logging.get("driver") or ""),
        logging_options={str(k): str(v) for k, v in (logging.get("options") or {}).items()},
        mem_limit=size_bytes(mem, w) if mem else 0,
        nano_cpus=int(float(cpus) * 1e9) if cpus else 0,
        pids_limit=to_int(pids, w) if pids else 0,
        shm_size=size_bytes(s["shm_size"], w) if s.get("shm_size") else 0,
        security_opt=_strs(s.get("security_opt")),
        group_add=_strs(s.get("group_add")),
        pull_policy=str(s.get("pull_policy") or ""),
        profiles=_strs(s.get("profiles")),
        secrets=refs("secrets"),
        configs=refs("configs"),
        ipc=str(s.get("ipc") or ""),
        pid=str(s.get("pid") or ""),
        uts=str(s.get("uts") or ""),
        userns_mode=str(s.get("userns_mode") or ""),
        cgroup_parent=str(s.get("cgroup_parent") or ""),
        runtime=str(s.get("runtime") or ""),
        mac_address=str(s.get("mac_address") or ""),
        devices=tuple(
            d
            if isinstance(d, str)
            else f"{d.get('source')}:{d.get('target')}:{d.get('permissions', 'rwm')}"
            for d in s.get("devices") or []
        ),
        oom_score_adj=to_int(s["oom_score_adj"], w) if s.get("oom_score_adj") is not None else None,
        cpu_shares=to_int(s["cpu_shares"], w) if s.get("cpu_shares") else 0,
        cpuset=str(s.get("cpuset") or ""),
        mem_reservation=size_bytes(s.get("mem_reservation") or reservations.get("memory"), w)
        if s.get("mem_reservation") or reservations.get("memory")
        else 0,
        memswap_limit=size_bytes(s["memswap_limit"], w) if s.get("memswap_limit") else 0,
        links=_strs(s.get("links")),
        external_links=_strs(s.get("external_links")),
        volumes_from=_strs(s.get("volumes_from")),
        annotations=dict(s.get("annotations") or {}),
        attach=bool(s.get("attach", True)),
        post_start=_hooks(s.get("post_start")),
        pre_stop=_hooks(s.get("pre_stop")),
        pre_start=_pre_start(s.get("pre_start")),
        device_requests=_device_requests(s.get("gpus"), reservations.get("devices"), w),
        mem_swappiness=to_int(s["mem_swappiness"], w)
        if s.get("mem_swappiness") is not None
        else None,
        oom_kill_disable=bool(s.get("oom_kill_disable", False)),
        cpu_quota=to_int(s["cpu_quota"], w) if s.get("cpu_quota") else 0,
        cpu_period=to_int(s["cpu_period"], w) if s.get("cpu_period") else 0,
        device_cgroup_rules=_strs(s.get("device_cgroup_rules")),
        platform=str(s.get("platform") or ""),
        watch=tuple(
            WatchRule(
                path=str(r["path"]),
                action=WatchAction(r["action"]),
                target=str(r.get("target") or ""),
                ignore=_strs(r.get("ignore")),
                include=_strs(r.get("include")),
                exec_command=_strs((r.get("exec") or {}).get("command")),
            )
            for r in (s.get("develop") or {}).get("watch") or []
        ),
        raw=s,
    )


def build_project(
    canonical: dict[str, Any], working_dir: Path, config_files: list[Path], env: dict[str, str]
) -> Project:
    """The typed model of a canonical project tree."""
    services = {n: _service(n, s) for n, s in canonical["services"].items()}
    for s in services.values():
        if not s.image and not s.build:
            raise _err(
                f"service {s.name!r} has neither an image nor a build context "
                "specified: invalid compose project"
            )
        for key in s.build.secrets if s.build else ():
            if key not in (canonical.get("secrets") or {}):
                raise _err(
                    f"service {s.name!r} refers to undefined build secret {key}: "
                    "invalid compose project"
                )
    networks = {}
    for k, v in (canonical.get("networks") or {}).items():
        ipam = v.get("ipam") or {}
        networks[k] = Network(
            key=k,
            name=str(v["name"]),
            driver=str(v.get("driver") or ""),
            driver_opts={str(a): str(b) for a, b in (v.get("driver_opts") or {}).items()},
            external=bool(v.get("external", False)),
            internal=bool(v.get("internal", False)),
            attachable=bool(v.get("attachable", False)),
            enable_ipv6=bool(v.get("enable_ipv6", False)),
            labels={str(a): str(b) for a, b in _labels(v.get("labels")).items()},
            ipam_driver=str(ipam.get("driver") or ""),
            ipam_config=tuple(
                {str(a): str(b) for a, b in c.items() if not isinstance(b, dict)}
                for c in ipam.get("config") or []
            ),
        )
    volumes = {
        k: Volume(
            key=k,
            name=str(v["name"]),
            driver=str(v.get("driver") or ""),
            driver_opts={str(a): str(b) for a, b in (v.get("driver_opts") or {}).items()},
            external=bool(v.get("external", False)),
            labels={str(a): str(b) for a, b in _labels(v.get("labels")).items()},
        )
        for k, v in (canonical.get("volumes") or {}).items()
    }

    def objects(sect: str) -> dict[str, FileObject]:
        return {
            k: FileObject(
                key=k,
                name=str(v["name"]),
                file=str(v.get("file") or ""),
                content=v.get("content"),
                environment=str(v.get("environment") or ""),
                external=bool(v.get("external", False)),
            )
            for k, v in (canonical.get(sect) or {}).items()
        }

    return Project(
        name=str(canonical["name"]),
        working_dir=working_dir,
        config_files=tuple(config_files),
        services=services,
        networks=networks,
        volumes=volumes,
        secrets=objects("secrets"),
        configs=objects("configs"),
        env=env,
        canonical=canonical,
    )


def _labels(v: Any) -> dict[str, Any]:
    if isinstance(v, list):
        return {str(x).partition("=")[0]: str(x).partition("=")[2] for x in v}
    return dict(v or {})


def _err(msg: str) -> Exception:
    from berth.compose.yamlsrc import ComposeFileError

    return ComposeFileError(msg)
