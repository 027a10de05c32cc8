"""The fast path of an unchanged `up -d`: what the last plain `up -d` of a project converged
on, remembered with everything its model was made from, so that the next one can tell in a
few Engine API calls that there is nothing to do, without loading YAML, validating, or
building the model (most of an unchanged `up -d`'s time is Python importing those).

An entry is found by the command line's project options, the working directory, the
`COMPOSE_*` environment and the code of berth compose itself. It holds the digest of every
file the load read (compose files, included and extended ones, `.env` and env files, and the
absence of the optional ones), the value of every environment variable the load looked up,
the warnings the load printed, and per service the containers `up` made: how many, their
config hash and image reference, and whether something waits on their health. It is used
only when all of that still holds and the daemon shows exactly those containers, running,
with those hashes and those images' current IDs, and the project's networks and volumes;
anything else (a changed file or variable, an orphan, a stopped, paused or unhealthy
container, a newer image) falls back to the full `up`, which writes the entry anew.

Imports `client` and `jsonc` only: nothing of the model, so that a hit costs no more.
"""

from __future__ import annotations

import hashlib
import os

from berth import jsonc as json
from berth.client import Client, q

TYPE_CHECKING = False  # not typing's: importing typing costs ~5 ms of every compose command
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from berth.compose.model import Project

VERSION = 1
PROJECT = "com.docker.compose.project"
SERVICE = "com.docker.compose.service"
ONEOFF = "com.docker.compose.oneoff"
CONFIG_HASH = "com.docker.compose.config-hash"
IMAGE = "com.docker.compose.image"
# pull policies under which an unchanged `up` neither pulls nor builds
QUIET_POLICIES = ("", "missing", "if_not_present", "never")


class Inputs:
    """What a load read: file path -> sha256 of its bytes (None: looked for, absent), and
    environment variable -> its value in the process's environment (None: unset)."""

    __slots__ = ("environ", "files", "env")

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.files: dict[str, str | None] = {}
        self.env: dict[str, str | None] = {}

    def file(self, path: object, data: bytes | None) -> None:
        self.files[str(path)] = hashlib.sha256(data).hexdigest() if data is not None else None

    def var(self, name: str) -> None:
        if name not in self.env:
            self.env[name] = self.environ.get(name)


def _code_stamp() -> list[Any]:
    """berth compose's own code, by file size and time: a new berth makes new entries."""
    here = os.path.dirname(__file__)
    cli = os.path.join(os.path.dirname(here), "cli")
    stamp: list[Any] = []
    for d, prefix in ((here, ""), (cli, "compose")):
        with os.scandir(d) as it:
            for e in sorted(it, key=lambda e: e.name):
                if e.name.endswith(".py") and e.name.startswith(prefix):
                    st = e.stat()
                    stamp.append([e.name, st.st_size, st.st_mtime_ns])
    return stamp


def entry_path(cache_dir: str, cwd: str, options: list[Any], environ: Mapping[str, str]) -> str:
    """Where the entry of this command line lives."""
    compose_env = sorted((k, v) for k, v in environ.items() if k.startswith("COMPOSE_"))
    raw = json.dumps([VERSION, cwd, options, compose_env, _code_stamp()])
    return os.path.join(cache_dir, hashlib.sha256(raw.encode()).hexdigest() + ".json")


def _usable_dir(cache_dir: str) -> bool:
    try:
        st = os.stat(cache_dir)
    except OSError:
        return False
    return st.st_uid == os.geteuid() and not st.st_mode & 0o022


def save(
    path: str, inputs: Inputs, project: Project, warnings: list[str], config_hash: Any
) -> None:
    """Records the project `up -d` just converged on (a cache that cannot be written is no
    error). Projects whose unchanged `up` still does something (pulls, builds) are not
    recorded."""
    services = []
    healthy = {
        d.service
        for s in project.services.values()
        for d in s.depends_on
        if d.condition.value == "service_healthy"
    }
    for name in project.order():
        svc = project.services[name]
        if svc.pull_policy not in QUIET_POLICIES:
            return
        services.append(
            {
                "name": name,
                "replicas": svc.replicas,
                "hash": config_hash(svc),
                "image": svc.image_name(project.name),
                "healthy": name in healthy,
            }
        )
    used_nets = {n.name for s in project.services.values() for n in s.networks}
    used_vols = {
        m.source
        for s in project.services.values()
        for m in s.mounts
        if m.type.value == "volume" and m.source
    }
    data = {
        "files": inputs.files,
        "env": inputs.env,
        "project": project.name,
        "warnings": warnings,
        "services": services,
        "networks": sorted(
            project.networks[k].name for k in used_nets if not project.networks[k].external
        ),
        "external_networks": sorted(
            project.networks[k].name for k in used_nets if project.networks[k].external
        ),
        "volumes": sorted(
            project.volumes[k].name for k in used_vols if not project.volumes[k].external
        ),
        "external_volumes": sorted(
            project.volumes[k].name for k in used_vols if project.volumes[k].external
        ),
    }
    d = os.path.dirname(path)
    try:
        os.makedirs(d, mode=0o700, exist_ok=True)
        if not _usable_dir(d):
            return
        tmp = f"{path}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(data))
        os.replace(tmp, path)
    except OSError:
        pass


def _digest(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except FileNotFoundError:
        return None


def _read_entry(path: str) -> dict[str, Any] | None:
    if not _usable_dir(os.path.dirname(path)):
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if os.fstat(f.fileno()).st_uid != os.geteuid():
            return None
        raw = f.read(1 << 20)
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def converged(
    path: str,
    environ: Mapping[str, str],
    client: Client,
) -> tuple[list[str], list[str]] | None:
    """(the load's warnings, the containers by start order) when the entry at `path` still
    holds and the daemon shows the project as it left it; None otherwise."""
    e = _read_entry(path)
    if e is None:
        return None
    try:
        for f, digest in e["files"].items():
            if _digest(f) != digest:
                return None
        for k, v in e["env"].items():
            if environ.get(k) != v:
                return None
        return _daemon_matches(e, client)
    except (KeyError, TypeError, ValueError, OSError):
        return None


def _names(docs: Any, key: str) -> set[str]:
    return {str(d.get(key) or "") for d in docs or []}


def _daemon_matches(e: dict[str, Any], client: Client) -> tuple[list[str], list[str]] | None:
    from berth.errors import NotFound

    label = [f"{PROJECT}={e['project']}"]
    filters = json.dumps({"label": label})
    found = [
        c
        for c in client.get("/containers/json", {"all": True, "filters": filters}) or []
        if (c.get("Labels") or {}).get(ONEOFF) != "True"
    ]
    by_service: dict[str, list[dict[str, Any]]] = {}
    for c in found:
        by_service.setdefault(str((c.get("Labels") or {}).get(SERVICE)), []).append(c)
    if set(by_service) - {s["name"] for s in e["services"]}:
        return None  # orphans: the full `up` warns about them
    image_ids: dict[str, str] = {}
    names: list[str] = []
    for s in e["services"]:
        mine = by_service.get(s["name"], [])
        if len(mine) != s["replicas"]:
            return None
        if mine and s["image"] not in image_ids:
            try:
                image_ids[s["image"]] = str(client.get(f"/images/{q(s['image'])}/json")["Id"])
            except NotFound:
                return None
        for c in sorted(mine, key=lambda c: str((c.get("Names") or [""])[0])):
            labels = c.get("Labels") or {}
            if (
                c.get("State") != "running"
                or labels.get(CONFIG_HASH) != s["hash"]
                or labels.get(IMAGE) != image_ids[s["image"]]
            ):
                return None
            if s["healthy"] and "(healthy)" not in str(c.get("Status") or ""):
                return None
            names.append(str((c.get("Names") or [""])[0]).lstrip("/"))
    if e["networks"]:
        have = _names(client.get("/networks", {"filters": filters}), "Name")
        if not set(e["networks"]) <= have:
            return None
    if e["volumes"]:
        vols = client.get("/volumes", {"filters": filters}) or {}
        if not set(e["volumes"]) <= _names(vols.get("Volumes"), "Name"):
            return None
    try:
        for n in e["external_networks"]:
            client.get(f"/networks/{q(n)}")
        for n in e["external_volumes"]:
            client.get(f"/volumes/{q(n)}")
    except NotFound:
        return None
    return [str(w) for w in e["warnings"]], names
