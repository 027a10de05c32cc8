"""`GET /info`: what berthd tells of itself, in dockerd's shape.

Imports `cgroups`, `fs`, `images` (its time format), `api` (the engine's version) and the modules beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import time
from typing import TYPE_CHECKING, Any

from berth import cgroups
from berth.api import ENGINE_VERSION
from berth.daemon import listeners
from berth.fs import atomic_write
from berth.images import rfc3339

if TYPE_CHECKING:
    from berth.daemon.main import Daemon


def system_info(d: Daemon) -> dict[str, Any]:
    """`GET /info` in dockerd's shape."""
    u = os.uname()
    counts = d.containers.counts()
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
        "ID": _daemon_id(d),
        **counts,
        "Images": len(d.meta.image_ids()),
        "Driver": d.driver.name,
        "DriverStatus": [["Backing Filesystem", "extfs"]],
        "Plugins": {
            "Volume": ["local"],
            "Network": ["bridge", "host", "null"],
            "Authorization": None,
            "Log": ["json-file"],
        },
        "MemoryLimit": True,
        "SwapLimit": os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes") or v2,
        "CpuCfsPeriod": True,
        "CpuCfsQuota": True,
        "CPUShares": True,
        "CPUSet": True,
        "PidsLimit": True,
        "IPv4Forwarding": True,
        "BridgeNfIptables": False,
        "BridgeNfIp6tables": False,
        "Debug": d.cfg.log_level == "debug",
        "NFd": len(os.listdir("/proc/self/fd")),
        "OomKillDisable": not v2,
        "NGoroutines": len(asyncio.all_tasks()),
        "SystemTime": _now(),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": "2" if v2 else "1",
        "NEventsListener": 0,
        "KernelVersion": u.release,
        "OperatingSystem": os_name,
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": platform.machine(),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {
            "AllowNondistributableArtifactsCIDRs": None,
            "AllowNondistributableArtifactsHostnames": None,
            "InsecureRegistryCIDRs": [str(n) for n in d.registry.options.insecure_cidrs()],
            "IndexConfigs": {
                "docker.io": {
                    "Name": "docker.io",
                    "Mirrors": d.cfg.registry_mirrors,
                    "Secure": True,
                    "Official": True,
                },
                **{
                    r: {"Name": r, "Mirrors": [], "Secure": False, "Official": False}
                    for r in d.cfg.insecure_registries
                    if "/" not in r
                },
            },
            "Mirrors": d.cfg.registry_mirrors or None,
        },
        "NCPU": os.cpu_count() or 1,
        "MemTotal": mem_total,
        "GenericResources": None,
        "DockerRootDir": d.cfg.data_root,
        "HttpProxy": "",
        "HttpsProxy": "",
        "NoProxy": "",
        "Name": u.nodename,
        "Labels": [],
        "ExperimentalBuild": False,
        "ServerVersion": ENGINE_VERSION,
        # under the names clients know: berth's own is "runc" where no real runc is
        "Runtimes": {
            d.containers.cfg.runtime_shown(name): {"path": path or "berth-runtime"}
            for name, path in d.cfg.runtimes.items()
        },
        "DefaultRuntime": d.containers.cfg.runtime_shown(d.containers.cfg.runtime),
        "Swarm": {
            "NodeID": "",
            "NodeAddr": "",
            "LocalNodeState": "inactive",
            "ControlAvailable": False,
            "Error": "",
            "RemoteManagers": None,
        },
        "LiveRestoreEnabled": True,
        "Isolation": "",
        "InitBinary": "",
        "ContainerdCommit": {"ID": ""},
        "RuncCommit": {"ID": ""},
        "InitCommit": {"ID": ""},
        "SecurityOptions": [
            "name=seccomp,profile=builtin",
            "name=no-new-privileges",
            *(["name=userns"] if d.cfg.idmap else []),
        ],
        "CDISpecDirs": [],
        "Containerd": None,
        "Warnings": listeners.api_warnings(d.cfg.hosts, d.cfg.tls) or None,
    }


def _daemon_id(d: Daemon) -> str:
    path = os.path.join(d.cfg.data_root, "engine-id")
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        import uuid

        ident = str(uuid.uuid4())
        atomic_write(path, ident.encode())
        return ident


def _now() -> str:
    return rfc3339(time.time())


__all__ = ["system_info"]
