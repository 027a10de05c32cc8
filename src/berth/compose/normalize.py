"""The merged tree of a project in its canonical form, as `docker compose config` prints it:
environment as a mapping (env_file read into it), ports and volumes in their long form,
command as a list, paths absolute, the default network and the names of networks, volumes,
secrets and configs filled in.

Imports the compose modules below it (`compose.values`: scalar values, ports and volumes).
Raw YAML values enter as `Any`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from berth.compose.interpolate import read_env_file
from berth.compose.merge import shape_service
from berth.compose.values import _as_str, _cmd
from berth.compose.values import duration_s as duration_s
from berth.compose.values import parse_ports as parse_ports
from berth.compose.values import parse_volume as parse_volume
from berth.compose.values import size_bytes as size_bytes
from berth.compose.values import to_bool as to_bool
from berth.compose.values import to_int as to_int
from berth.compose.yamlsrc import ComposeFileError

TYPE_CHECKING = False  # not typing's: importing typing costs ~5 ms of every compose command
if TYPE_CHECKING:
    from typing import Any

    from berth.compose.upcache import Inputs


def _env_from_files(
    entries: list[Any], env: Mapping[str, str], where: str, base: Path, inputs: Inputs | None = None
) -> dict[str, str]:
    out: dict[str, str] = {}
    for e in entries:
        path, required = (
            (e, True)
            if isinstance(e, str)
            else (str(e.get("path")), to_bool(e.get("required", True), where))
        )
        p = Path(path) if os.path.isabs(path) else base / path
        if not p.is_file():
            if required:
                raise ComposeFileError(f"{where}: env file {p} not found")
            if inputs is not None:
                inputs.file(p, None)
            continue

        def lookup(k: str, out: dict[str, str] = out) -> str | None:
            return out.get(k, env.get(k))

        for k, v in read_env_file(p, lookup, inputs).items():
            if v is not None:
                out[k] = v
            elif k in env:
                out[k] = env[k]
    return out


def _mapping(v: Any) -> dict[str, str]:
    return {str(k): _as_str(x) for k, x in (v or {}).items() if x is not None}


# the service keys berth compose acts on; the others (valid in the schema) are reported as
# ignored rather than silently dropped
SUPPORTED = frozenset(
    """
    annotations attach build cap_add cap_drop cgroup_parent command configs container_name
    cpu_period cpu_quota cpu_shares cpus cpuset depends_on deploy develop device_cgroup_rules
    devices dns dns_opt dns_search domainname
    entrypoint env_file environment expose extends external_links extra_hosts group_add
    healthcheck hostname image init ipc label_file labels links logging mac_address mem_limit
    mem_reservation mem_swappiness memswap_limit network_mode networks oom_kill_disable
    oom_score_adj pid pids_limit platform
    gpus post_start pre_start pre_stop privileged profiles ports pull_policy read_only restart runtime scale secrets
    security_opt shm_size stdin_open stop_grace_period stop_signal sysctls tmpfs tty ulimits
    user userns_mode uts volumes volumes_from working_dir
    """.split()
)
# deploy's keys: those docker compose acts on, and swarm's, which it (and so berth) ignores
DEPLOY_SUPPORTED = frozenset(
    {
        "replicas",
        "resources",
        "restart_policy",
        "mode",
        "labels",
        "placement",
        "update_config",
        "rollback_config",
        "endpoint_mode",
    }
)


# build's keys that reach the build (ssh and platforms: checked, see compose.imaging)
BUILD_SUPPORTED = frozenset(
    """
    context dockerfile args target cache_from labels secrets tags network extra_hosts shm_size
    no_cache pull ssh platforms dockerfile_inline
    """.split()
)


def unsupported(services: dict[str, Any]) -> list[str]:
    """Warnings for the keys of the model that berth compose does not act on."""
    out = []
    for name, s in services.items():
        for k in s:
            if k not in SUPPORTED and not k.startswith("x-"):
                out.append(f"services.{name}.{k} is not supported by berth compose and is ignored")
        for k in s.get("deploy") or {}:
            if k not in DEPLOY_SUPPORTED:
                out.append(
                    f"services.{name}.deploy.{k} is not supported by berth compose and is ignored"
                )
        build = s.get("build")
        for k in build if isinstance(build, dict) else {}:
            if k not in BUILD_SUPPORTED and not k.startswith("x-"):
                out.append(
                    f"services.{name}.build.{k} is not supported by berth compose and is ignored"
                )
    return out


def service(
    name: str,
    raw: dict[str, Any],
    base: Path,
    env: Mapping[str, str],
    project: str,
    inputs: Inputs | None = None,
) -> dict[str, Any]:
    """One service in canonical form."""
    s = shape_service(raw)
    w = f"services.{name}"
    out: dict[str, Any] = {}
    for k, v in s.items():
        if v is None and k not in ("networks",):
            continue
        out[k] = v
    if "build" in out:
        b = dict(out["build"])
        ctx = str(b.get("context") or ".")
        b["context"] = ctx if "://" in ctx else os.path.normpath(base / ctx)
        b.setdefault("dockerfile", "Dockerfile")
        if isinstance(b.get("args"), dict):
            b["args"] = {
                k: (_as_str(x) if x is not None else env.get(k, ""))
                for k, x in b["args"].items()
                if x is not None or k in env
            }
        out["build"] = b
    for k in ("command", "entrypoint"):
        if k in out:
            out[k] = _cmd(out[k])
    environment: dict[str, str] = {}
    if out.get("env_file"):
        environment.update(_env_from_files(out.pop("env_file"), env, f"{w}.env_file", base, inputs))
    else:
        out.pop("env_file", None)
    for k, x in (out.get("environment") or {}).items():
        if x is None:
            if k in env:
                environment[k] = env[k]
        else:
            environment[str(k)] = _as_str(x)
    if environment or "environment" in out:
        out["environment"] = environment
    if out.get("label_file"):
        files = out.pop("label_file")
        files = [files] if isinstance(files, str) else list(files)
        from_files = _env_from_files(files, {}, f"{w}.label_file", base, inputs)
        out["labels"] = {**from_files, **_mapping(out.get("labels"))}
    else:
        out.pop("label_file", None)
    for k in ("labels", "sysctls", "annotations"):
        if k in out:
            out[k] = _mapping(out[k])
    if "extra_hosts" in out:
        out["extra_hosts"] = _mapping(out["extra_hosts"])
    if "ports" in out:
        out["ports"] = parse_ports(list(out["ports"]), f"{w}.ports")
    if "expose" in out:
        out["expose"] = [_as_str(x) for x in out["expose"]]
    if "volumes" in out:
        out["volumes"] = [
            parse_volume(v, base, f"{w}.volumes[{i}]") for i, v in enumerate(out["volumes"])
        ]
    if "depends_on" in out:
        deps: dict[str, Any] = {}
        for d, spec in out["depends_on"].items():
            spec = spec or {}
            deps[str(d)] = {
                "condition": str(spec.get("condition") or "service_started"),
                "required": to_bool(spec.get("required", True), w),
                "restart": to_bool(spec.get("restart", False), w),
            }
        out["depends_on"] = deps
    if "network_mode" not in out:
        nets = out.get("networks")
        out["networks"] = {str(k): v for k, v in nets.items()} if nets else {"default": None}
    elif "networks" in out and out["networks"]:
        raise ComposeFileError(f"{w}: 'network_mode' and 'networks' cannot be combined")
    else:
        out.pop("networks", None)
    if "healthcheck" in out:
        hc = dict(out["healthcheck"])
        if isinstance(hc.get("test"), str):
            hc["test"] = ["CMD-SHELL", hc["test"]]
        if "retries" in hc:
            hc["retries"] = to_int(hc["retries"], f"{w}.healthcheck.retries")
        if "disable" in hc:
            hc["disable"] = to_bool(hc["disable"], f"{w}.healthcheck.disable")
        out["healthcheck"] = hc
    for k in ("privileged", "read_only", "init", "tty", "stdin_open", "attach", "oom_kill_disable"):
        if k in out:
            out[k] = to_bool(out[k], f"{w}.{k}")
    if "scale" in out:
        out["scale"] = to_int(out["scale"], f"{w}.scale")
    deploy = out.get("deploy")
    if isinstance(deploy, dict) and "replicas" in deploy:
        out["deploy"] = {**deploy, "replicas": to_int(deploy["replicas"], f"{w}.deploy")}
    if "ulimits" in out:
        ul: dict[str, Any] = {}
        for k, v in out["ulimits"].items():
            if isinstance(v, dict):
                ul[k] = {"soft": to_int(v.get("soft"), w), "hard": to_int(v.get("hard"), w)}
            else:
                ul[k] = {"soft": to_int(v, w), "hard": to_int(v, w)}
        out["ulimits"] = ul
    for k in ("secrets", "configs"):
        if k in out:
            out[k] = [{"source": str(x)} if not isinstance(x, dict) else dict(x) for x in out[k]]
    if isinstance(out.get("develop"), dict) and out["develop"].get("watch"):
        rules = []
        for r in out["develop"]["watch"]:
            r = dict(r)
            r["path"] = os.path.normpath(base / str(r["path"]))
            if r["action"] in ("sync", "sync+restart", "sync+exec") and not r.get("target"):
                raise ComposeFileError(f"{w}.develop.watch: {r['action']} needs a target")
            rules.append(r)
        out["develop"] = {**out["develop"], "watch": rules}
    if "container_name" in out and not re.fullmatch(
        r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", str(out["container_name"])
    ):
        raise ComposeFileError(
            f"{w}.container_name: invalid container name {out['container_name']!r}"
        )
    return dict(sorted(out.items()))


def project(
    name: str,
    data: dict[str, Any],
    base: Path,
    env: Mapping[str, str],
    inputs: Inputs | None = None,
) -> dict[str, Any]:
    """The whole project in canonical form, with the checks that span services; `inputs`
    notes the files read."""
    services = {
        n: service(n, s or {}, base, env, name, inputs)
        for n, s in sorted((data.get("services") or {}).items())
    }
    out: dict[str, Any] = {"name": name, "services": services}
    nets: dict[str, Any] = {k: dict(v or {}) for k, v in (data.get("networks") or {}).items()}
    used = {n for s in services.values() for n in (s.get("networks") or {})}
    if "default" in used and "default" not in nets:
        nets["default"] = {}
    for k, v in nets.items():
        ext = v.get("external")
        if isinstance(ext, dict):  # the legacy `external: {name: X}`
            v["name"] = v.get("name") or ext.get("name") or k
            v["external"] = True
        elif ext is not None:
            v["external"] = to_bool(ext, f"networks.{k}.external")
        v.setdefault("name", k if v.get("external") else f"{name}_{k}")
    vols: dict[str, Any] = {k: dict(v or {}) for k, v in (data.get("volumes") or {}).items()}
    for k, v in vols.items():
        ext = v.get("external")
        if isinstance(ext, dict):
            v["name"] = v.get("name") or ext.get("name") or k
            v["external"] = True
        elif ext is not None:
            v["external"] = to_bool(ext, f"volumes.{k}.external")
        v.setdefault("name", k if v.get("external") else f"{name}_{k}")
    for sname, s in services.items():
        for n in s.get("networks") or {}:
            if n not in nets:
                raise ComposeFileError(
                    f"service {sname!r} refers to undefined network {n}: invalid compose project"
                )
        for v in s.get("volumes") or []:
            if v["type"] == "volume" and v.get("source") and v["source"] not in vols:
                raise ComposeFileError(
                    f"service {sname!r} refers to undefined volume "
                    f"{v['source']}: invalid compose project"
                )
        for d, spec in (s.get("depends_on") or {}).items():
            if d not in services and spec["required"]:
                raise ComposeFileError(
                    f"service {sname!r} depends on undefined service {d!r}: invalid compose project"
                )
        for key in ("network_mode", "ipc", "pid"):
            mode = str(s.get(key) or "")
            if mode.startswith("service:") and mode[8:] not in services:
                raise ComposeFileError(
                    f"service {sname!r} refers to undefined service {mode[8:]!r} in {key}"
                )
        for ref in [*(s.get("links") or []), *(s.get("volumes_from") or [])]:
            target = str(ref).split(":", 1)[0]
            if target != "container" and target not in services:
                raise ComposeFileError(
                    f"service {sname!r} refers to undefined service "
                    f"{target!r}: invalid compose project"
                )
    out["networks"] = dict(sorted(nets.items()))
    if vols:
        out["volumes"] = dict(sorted(vols.items()))
    for sect in ("secrets", "configs"):
        items = {k: dict(v or {}) for k, v in (data.get(sect) or {}).items()}
        for k, v in items.items():
            if isinstance(v.get("file"), str):
                v["file"] = os.path.normpath(base / v["file"])
            v.setdefault("name", k if v.get("external") else f"{name}_{k}")
        for sname, s in services.items():
            for ref in s.get(sect) or []:
                if ref["source"] not in items:
                    raise ComposeFileError(
                        f"service {sname!r} refers to undefined "
                        f"{sect[:-1]} {ref['source']}: invalid compose "
                        "project"
                    )
        if items:
            out[sect] = dict(sorted(items.items()))
    for k, v in data.items():
        if k.startswith("x-"):
            out[k] = v
    _check_cycles(services)
    return out


def _check_cycles(services: dict[str, Any]) -> None:
    state: dict[str, int] = {}

    def visit(n: str, path: list[str]) -> None:
        if state.get(n) == 2:
            return
        if state.get(n) == 1:
            raise ComposeFileError("dependency cycle detected: " + " -> ".join([*path, n]))
        state[n] = 1
        for d in services.get(n, {}).get("depends_on") or {}:
            if d in services:
                visit(d, [*path, n])
        state[n] = 2

    for n in services:
        visit(n, [])


__all__ = [
    "project",
    "service",
    "parse_ports",
    "parse_volume",
    "to_bool",
    "to_int",
    "duration_s",
    "size_bytes",
]
