"""Volumes: the local driver (a directory per volume, or a tmpfs or a device mounted per use),
the parsing of `-v`/`--mount` specs, and the copy-up of an image's content into a new volume.

Imports `fs`, `metadata`, `storage`, `errors`. Layout: ROOT/<name>/_data.
"""

from __future__ import annotations

import builtins
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from berth import fs, storage
from berth.errors import Conflict, InvalidArgument, NotFound
from berth.metadata import MetadataStore

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
ANONYMOUS = "com.docker.volume.anonymous"
_OPTION_KEYS = {"type", "device", "o"}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass(frozen=True, slots=True, kw_only=True)
class MountSpec:
    """One mount of a container, as `-v`, `--mount`, `--tmpfs` or VOLUME asked for it."""
    type: str                 # volume | bind | tmpfs
    target: str
    source: str = ""          # volume name ("" for a new anonymous one) or host path
    read_only: bool = False
    nocopy: bool = False
    tmpfs_options: str = ""
    propagation: str = ""


def parse_bind(spec: str) -> MountSpec:
    """`-v SOURCE:TARGET[:OPTS]`, `-v NAME:TARGET`, or `-v TARGET` (anonymous)."""
    parts = spec.split(":")
    if len(parts) == 1:
        src, dst, mode = "", parts[0], ""
    elif len(parts) == 2:
        src, dst, mode = parts[0], parts[1], ""
    elif len(parts) == 3:
        src, dst, mode = parts
    else:
        raise InvalidArgument(f"invalid volume specification: '{spec}'")
    if not dst.startswith("/"):
        raise InvalidArgument(f"invalid volume specification: '{spec}': "
                              f"invalid mount config for type \"volume\": invalid mount path: "
                              f"'{dst}' mount path must be absolute")
    ro = nocopy = False
    propagation = ""
    for m in [x for x in mode.split(",") if x]:
        if m == "ro":
            ro = True
        elif m == "rw":
            ro = False
        elif m == "nocopy":
            nocopy = True
        elif m in ("shared", "rshared", "slave", "rslave", "private", "rprivate"):
            propagation = m
        elif m not in ("z", "Z", "consistent", "cached", "delegated"):
            raise InvalidArgument(f"invalid mode: {m}")
    if src.startswith("/"):
        return MountSpec(type="bind", target=dst, source=src, read_only=ro,
                         propagation=propagation)
    if src and not _NAME.match(src):
        raise InvalidArgument(
            f'"{src}" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
            "directory, use absolute path")
    return MountSpec(type="volume", target=dst, source=src, read_only=ro, nocopy=nocopy)


def parse_mount(m: dict[str, Any]) -> MountSpec:
    """The API's HostConfig.Mounts entry (what `--mount` sends)."""
    typ = m.get("Type", "volume")
    target = m.get("Target", "")
    if not target.startswith("/"):
        raise InvalidArgument(f"invalid mount config for type \"{typ}\": invalid mount path: "
                              f"'{target}' mount path must be absolute")
    ro = bool(m.get("ReadOnly"))
    if typ == "bind":
        src = m.get("Source", "")
        if not src.startswith("/"):
            raise InvalidArgument(f"invalid mount config for type \"bind\": invalid mount "
                                  f"path: '{src}' mount path must be absolute")
        if not os.path.exists(src):
            # unlike -v, --mount does not create a missing source (Docker's behaviour)
            raise InvalidArgument(f"invalid mount config for type \"bind\": bind source path "
                                  f"does not exist: {src}")
        prop = (m.get("BindOptions") or {}).get("Propagation", "")
        return MountSpec(type="bind", target=target, source=src, read_only=ro,
                         propagation=prop)
    if typ == "volume":
        src = m.get("Source", "")
        if src and not _NAME.match(src):
            raise InvalidArgument(f"invalid mount config for type \"volume\": invalid volume "
                                  f"name: {src}")
        nocopy = bool((m.get("VolumeOptions") or {}).get("NoCopy"))
        return MountSpec(type="volume", target=target, source=src, read_only=ro,
                         nocopy=nocopy)
    if typ == "tmpfs":
        if m.get("Source"):
            raise InvalidArgument("invalid mount config for type \"tmpfs\": "
                                  "source is not allowed")
        t = m.get("TmpfsOptions") or {}
        opts = []
        if t.get("SizeBytes"):
            opts.append(f"size={int(t['SizeBytes'])}")
        if t.get("Mode"):
            opts.append(f"mode={int(t['Mode']):o}")
        return MountSpec(type="tmpfs", target=target, read_only=ro, tmpfs_options=",".join(opts))
    raise InvalidArgument(f"invalid mount config: mount type unknown: \"{typ}\"")


class VolumeService:
    def __init__(self, meta: MetadataStore, root: str,
                 users: Callable[[str], list[str]] | None = None,
                 owner: tuple[int, int] = (0, 0),
                 emit: Callable[[str, str, str, dict[str, str]], None] | None = None) -> None:
        self.meta = meta
        # the daemon's event bus: a volume's create and destroy are published here
        self.emit = emit or (lambda typ, action, actor, attrs: None)
        self.root = root
        self.owner = owner   # --userns-remap: a new volume belongs to the container's root
        # closed (berthd gives it the group of --userns-remap): what a container plants in a
        # volume must not be reachable from the host; a volume's own _data keeps its mode
        os.makedirs(root, mode=0o700, exist_ok=True)
        self.users = users or (lambda name: [])  # container IDs that mount a volume

    def _path(self, name: str) -> str:
        return os.path.join(self.root, name, "_data")

    def create(self, name: str = "", *, driver: str = "local",
               options: dict[str, str] | None = None, labels: dict[str, str] | None = None,
               anonymous: bool = False) -> dict[str, Any]:
        """A volume, or the one of that name that exists; a `create` event either way (as
        dockerd's volume service)."""
        doc = self._create(name, driver=driver, options=options, labels=labels,
                           anonymous=anonymous)
        self.emit("volume", "create", doc["Name"], {"driver": doc["Driver"]})
        return doc

    def _create(self, name: str, *, driver: str, options: dict[str, str] | None,
                labels: dict[str, str] | None, anonymous: bool) -> dict[str, Any]:
        driver = driver or "local"
        if driver != "local":
            raise NotFound(f'error looking up volume plugin {driver}: plugin "{driver}" '
                           "not found")
        options = dict(options or {})
        for k in options:
            if k not in _OPTION_KEYS:
                raise InvalidArgument(f"invalid option key: {k!r}")
        if options and not options.get("type") and not options.get("device"):
            raise InvalidArgument("missing required option: \"type\"")
        if not name:
            name = secrets.token_hex(32)
            anonymous = True
        elif not _NAME.match(name):
            raise InvalidArgument(
                f'create {name}: "{name}" includes invalid characters for a local volume '
                'name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass '
                "a host directory, use absolute path")
        existing = self.meta.get_volume(name)
        if existing is not None:
            return existing
        labels = dict(labels or {})
        if anonymous:
            labels[ANONYMOUS] = ""
        os.makedirs(self._path(name), mode=0o755, exist_ok=True)
        if self.owner != (0, 0):
            os.chown(self._path(name), *self.owner)
        doc = {"CreatedAt": _now(), "Driver": driver, "Labels": labels,
               "Mountpoint": self._path(name), "Name": name, "Options": options or None,
               "Scope": "local"}
        if not self.meta.put_volume(name, int(time.time()), doc, exclusive=True):
            return self.get(name)
        return doc

    def get(self, name: str) -> dict[str, Any]:
        doc = self.meta.get_volume(name)
        if doc is None:
            raise NotFound(f"get {name}: no such volume")
        return doc

    def list(self, filters: dict[str, list[str]] | None = None) -> dict[str, Any]:
        filters = filters or {}
        for k in filters:
            if k not in ("dangling", "name", "label", "driver"):
                raise InvalidArgument(f"invalid filter '{k}'")
        out = []
        for v in self.meta.volumes():
            if "dangling" in filters:
                want = filters["dangling"][-1].lower() in ("true", "1")
                if want != (not self.users(v["Name"])):
                    continue
            if filters.get("name") and not any(n in v["Name"] for n in filters["name"]):
                continue
            if filters.get("driver") and v["Driver"] not in filters["driver"]:
                continue
            labels = v.get("Labels") or {}
            ok = True
            for lab in filters.get("label", []):
                k, eq, val = lab.partition("=")
                if k not in labels or (eq and labels[k] != val):
                    ok = False
            if ok:
                out.append(v)
        return {"Volumes": out, "Warnings": None}

    def usage(self) -> builtins.list[dict[str, Any]]:
        """`GET /system/df`'s volumes: each with its size on disk and how many containers use
        it (-1 where the size cannot be known: tmpfs and device volumes)."""
        out = []
        for v in self.meta.volumes():
            opts = v.get("Options") or {}
            size = -1 if opts.get("type") or opts.get("device") else _du(self._path(v["Name"]))
            out.append({**v, "UsageData": {"Size": size, "RefCount": len(self.users(v["Name"]))}})
        return out

    def remove(self, name: str, *, force: bool = False) -> None:
        """Remove an unused volume (a `destroy` event); with `force`, a missing one is no
        error."""
        doc = self.meta.get_volume(name)
        if doc is None:
            if force:
                self.emit("volume", "destroy", name, {})
                return
            raise NotFound(f"get {name}: no such volume")
        users = self.users(name)
        if users:
            raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
        self.meta.delete_volume(name)
        shutil.rmtree(os.path.join(self.root, name), ignore_errors=True)
        self.emit("volume", "destroy", name, {})

    def prune(self, filters: dict[str, builtins.list[str]] | None = None) -> dict[str, Any]:
        """Unused volumes; only anonymous ones unless the filter `all=true` (Docker 23+)."""
        filters = filters or {}
        all_ = any(v.lower() in ("true", "1") for v in filters.get("all", []))
        deleted = []
        reclaimed = 0
        for v in self.meta.volumes():
            labels = v.get("Labels") or {}
            if not all_ and ANONYMOUS not in labels:
                continue
            if self.users(v["Name"]):
                continue
            if filters.get("label") and not all(
                    lab.partition("=")[0] in labels and (
                        "=" not in lab or labels[lab.partition("=")[0]] == lab.partition("=")[2])
                    for lab in filters["label"]):
                continue
            reclaimed += _du(os.path.join(self.root, v["Name"]))
            self.remove(v["Name"])
            deleted.append(v["Name"])
        return {"VolumesDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    def runtime_mount(self, name: str, target: str, read_only: bool) -> dict[str, Any]:
        """The runtime-spec mount of a volume in a container."""
        doc = self.get(name)
        opts = doc.get("Options") or {}
        ro = ["ro"] if read_only else []
        if opts.get("type") and opts["type"] != "none":
            o = [x for x in (opts.get("o") or "").split(",") if x]
            return {"destination": target, "type": opts["type"],
                    "source": opts.get("device") or opts["type"], "options": o + ro}
        if opts.get("device"):
            return {"destination": target, "type": "bind", "source": opts["device"],
                    "options": ["rbind", "rprivate", *ro]}
        return {"destination": target, "type": "bind", "source": self._path(name),
                "options": ["rbind", "rprivate", *ro]}

    def copy_up(self, name: str, layer_dirs_top_first: builtins.list[str], path: str) -> None:
        """Fill a new, empty volume with what the image has at `path` (owners and modes kept)."""
        doc = self.get(name)
        if (doc.get("Options") or {}).get("type"):
            return  # tmpfs or device volumes are not filled
        # the volume's directory by fd (a symlink there is not followed), the image's files
        # as the kernel would show them (a path under a symlink or a whiteout of a higher layer
        # does not exist), and every write through a directory fd with O_NOFOLLOW|O_EXCL
        dest = fs.open_dir(self._path(name))
        try:
            if os.listdir(dest):
                return
            with storage.MergedView(layer_dirs_top_first) as view:
                # as Docker: the path is followed inside the image's root if it is a symlink
                node = view.resolve(path)
                if node is None:
                    return
                try:
                    if not node.is_dir:
                        return
                    storage.copy_into(view, node, dest)
                    os.fchown(dest, node.st.st_uid, node.st.st_gid)
                    os.fchmod(dest, stat.S_IMODE(node.st.st_mode))
                finally:
                    node.close()
        finally:
            os.close(dest)


def _du(path: str) -> int:
    total = 0
    for dirpath, _d, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


__all__ = ["VolumeService", "MountSpec", "parse_bind", "parse_mount", "ANONYMOUS"]
