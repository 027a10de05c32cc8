"""The container service's views: inspect, the list of `ps` with its filters, counts.

A part of the container service (see `berth.containers.service`), holding the shared
`ContainerStore`. Docker's JSON shapes, until `api/wire.py` makes them from typed records.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import time
from typing import Any

from berth import storage
from berth.containers.networking import Networking
from berth.containers.status import ContainerStatus
from berth.containers.store import ContainerStore
from berth.errors import BerthError, InvalidArgument
from berth.images import ImageService, parse_rfc3339
from berth.networks import ps_ports
from berth.units import human_duration


class Views:
    """Read-only views of the records, in Docker's shapes."""

    def __init__(self, store: ContainerStore, images: ImageService, driver: storage.Driver,
                 net: Networking) -> None:
        self.store = store
        self.images = images
        self.driver = driver
        self.net = net

    def inspect(self, ref: str, size: bool = False) -> dict[str, Any]:
        doc = self.store.resolve(ref)
        out = {k: v for k, v in doc.items() if k != "_berth"}
        out["HostConfig"] = {**doc["HostConfig"], "Links": self.net.links_view(doc)}
        if size:
            rw = _du(self.driver.upper(doc["Id"]))
            out["SizeRw"] = rw
            out["SizeRootFs"] = rw + sum(
                self.images.layer_store.get(c).size for c in doc["_berth"]["layers"]
                if self.images.layer_store.exists(c))
        return out

    def list(self, *, all_: bool = False, limit: int = -1, size: bool = False,
             filters: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        filters = filters or {}
        for k in filters:
            if k not in ("status", "name", "label", "ancestor", "id", "exited", "before",
                         "since", "network", "volume", "health", "is-task", "publish", "expose"):
                raise InvalidArgument(f"invalid filter '{k}'")
        for s in filters.get("status", []):
            if s not in {c.value for c in ContainerStatus}:
                raise InvalidArgument(f"invalid filter 'status={s}'")
        docs = sorted(self.store.docs.values(), reverse=True, key=lambda d: d["_berth"].get(
            "created_ns", d["_berth"]["created"] * 10**9))
        if not all_ and limit <= 0 and "status" not in filters:
            docs = [d for d in docs if self.store.status(d).is_running]
        out = []
        for d in docs:
            if not self._filter(d, filters):
                continue
            out.append(self._summary(d, size))
            if 0 < limit <= len(out):
                break
        return out

    def _filter(self, d: dict[str, Any], f: dict[str, builtins.list[str]]) -> bool:
        import re
        if f.get("status") and d["State"]["Status"] not in f["status"]:
            return False
        if f.get("id") and not any(d["Id"].startswith(i) for i in f["id"]):
            return False
        if f.get("name") and not any(re.search(n, d["Name"][1:]) for n in f["name"]):
            return False
        if f.get("exited") and not (d["State"]["Status"] == "exited" and str(
                d["State"]["ExitCode"]) in f["exited"]):
            return False
        if not self._labels_match(d, f.get("label", [])):
            return False
        if f.get("ancestor"):
            ok = False
            for a in f["ancestor"]:
                try:
                    if self.images.resolve(a).id == d["Image"]:
                        ok = True
                except BerthError:
                    pass
                if a == d["Config"]["Image"]:
                    ok = True
            if not ok:
                return False
        return True

    @staticmethod
    def _labels_match(d: dict[str, Any], wanted: builtins.list[str]) -> bool:
        labels = d["Config"].get("Labels") or {}
        for w in wanted:
            k, eq, v = w.partition("=")
            if k not in labels or (eq and labels[k] != v):
                return False
        return True

    def _summary(self, d: dict[str, Any], size: bool) -> dict[str, Any]:
        st = d["State"]
        now = time.time()
        if st["Restarting"]:
            status = (f"Restarting ({st['ExitCode']}) "
                      f"{human_duration(now - parse_rfc3339(st['FinishedAt']))} ago")
        elif st["Running"]:
            status = "Up " + human_duration(now - parse_rfc3339(st["StartedAt"]))
            if st["Paused"]:
                status += " (Paused)"
            elif st.get("Health"):
                h = st["Health"]["Status"]
                status += " (health: starting)" if h == "starting" else f" ({h})"
        elif st["Status"] == "exited":
            status = (f"Exited ({st['ExitCode']}) "
                      f"{human_duration(now - parse_rfc3339(st['FinishedAt']))} ago")
        elif st["Status"] == "removing":
            status = "Removal In Progress"
        else:
            status = "Created"
        cmd = " ".join([d["Path"], *d["Args"]])
        mode = d["HostConfig"].get("NetworkMode", "bridge")
        s: dict[str, Any] = {
            "Id": d["Id"], "Names": [d["Name"]], "Image": d["Config"]["Image"],
            "ImageID": d["Image"], "Command": cmd, "Created": d["_berth"]["created"],
            "Ports": ps_ports(d["NetworkSettings"].get("Ports")) if st["Running"] else [],
            "Labels": d["Config"].get("Labels") or {}, "State": st["Status"],
            "Status": status, "HostConfig": {"NetworkMode": mode},
            "NetworkSettings": {"Networks": d["NetworkSettings"]["Networks"]},
            "Mounts": d.get("Mounts") or [],
        }
        if size:
            rw = _du(self.driver.upper(d["Id"]))
            s["SizeRw"] = rw
            s["SizeRootFs"] = rw + sum(
                self.images.layer_store.get(c).size for c in d["_berth"]["layers"]
                if self.images.layer_store.exists(c))
        return s

    def counts(self) -> dict[str, int]:
        statuses = [self.store.status(d) for d in self.store.all()]
        running = sum(1 for s in statuses if s.is_running)
        paused = statuses.count(ContainerStatus.PAUSED)
        return {"Containers": len(self.store.docs), "ContainersRunning": running,
                "ContainersPaused": paused,
                "ContainersStopped": len(self.store.docs) - running - paused}


def _du(path: str) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total


__all__ = ["Views"]
