"""The container service's views: inspect, the list of `ps` with its filters, counts.

A part of the container service (see `berth.containers.service`), holding the shared
`ContainerStore`. Views are typed; Docker's JSON of them is made at the API edge.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import time
from dataclasses import dataclass, field
from typing import Any

from berth import storage
from berth.containers.networking import Networking
from berth.containers.record import ContainerRecord, HealthStatus
from berth.containers.status import ContainerStatus
from berth.containers.store import ContainerStore
from berth.errors import BerthError, InvalidArgument
from berth.images import ImageService, parse_rfc3339
from berth.units import human_duration


@dataclass(frozen=True, slots=True)
class ContainerView:
    """A record as `inspect` and `ps` show it, with what is not in the record itself: the
    legacy links under their targets' current names, and sizes on disk where asked for.
    The API makes Docker's JSON of it (`berth.api.wire`)."""

    record: ContainerRecord
    links: list[str] | None = None  # HostConfig.Links: `/TARGET:/PARENT/ALIAS`
    size_rw: int | None = None
    size_root_fs: int | None = None
    status_text: str = ""  # `ps`'s STATUS column: "Up 2 minutes (healthy)"
    runtime: str = ""  # HostConfig.Runtime as clients know it ("runc")
    network_ids: dict[str, str] = field(default_factory=dict)  # of the networks asked for


class Views:
    """Read-only views of the records: inspect, the list of `ps` and its filters, counts."""

    def __init__(
        self, store: ContainerStore, images: ImageService, driver: storage.Driver, net: Networking
    ) -> None:
        self.store = store
        self.images = images
        self.driver = driver
        self.net = net

    def inspect(self, ref: str, size: bool = False) -> ContainerView:
        rec = self.store.resolve(ref)
        return self._view(
            rec,
            size,
            links=self.net.links_view(rec),
            runtime=self.store.cfg.runtime_shown(rec.host_config.runtime),
        )

    def _view(self, rec: ContainerRecord, size: bool, **extra: Any) -> ContainerView:
        """The record with what the API shows beside it; its sizes on disk with `size`."""
        rw = root_fs = None
        if size:
            rw = _du(self.driver.upper(rec.id))
            root_fs = rw + sum(
                self.images.layer_store.get(c).size
                for c in rec.layers
                if self.images.layer_store.exists(c)
            )
        return ContainerView(
            rec, size_rw=rw, size_root_fs=root_fs, network_ids=self.net.network_ids(rec), **extra
        )

    def list(
        self,
        *,
        all_: bool = False,
        limit: int = -1,
        size: bool = False,
        filters: dict[str, builtins.list[str]] | None = None,
    ) -> builtins.list[ContainerView]:
        filters = filters or {}
        for k in filters:
            if k not in (
                "status",
                "name",
                "label",
                "ancestor",
                "id",
                "exited",
                "before",
                "since",
                "network",
                "volume",
                "health",
                "is-task",
                "publish",
                "expose",
            ):
                raise InvalidArgument(f"invalid filter '{k}'")
        for s in filters.get("status", []):
            if s not in {c.value for c in ContainerStatus}:
                raise InvalidArgument(f"invalid filter 'status={s}'")
        recs = sorted(self.store.all(), reverse=True, key=lambda r: r.created_ns)
        if not all_ and limit <= 0 and "status" not in filters:
            recs = [r for r in recs if r.state.running]
        out = []
        for r in recs:
            if not self._filter(r, filters):
                continue
            out.append(self._view(r, size, status_text=status_text(r, time.time())))
            if 0 < limit <= len(out):
                break
        return out

    def _filter(self, d: ContainerRecord, f: dict[str, builtins.list[str]]) -> bool:
        import re

        if f.get("status") and d.state.status not in f["status"]:
            return False
        if f.get("id") and not any(d.id.startswith(i) for i in f["id"]):
            return False
        if f.get("name") and not any(re.search(n, d.name[1:]) for n in f["name"]):
            return False
        if f.get("exited") and not (
            d.state.status == "exited" and str(d.state.exit_code) in f["exited"]
        ):
            return False
        if not self.labels_match(d, f.get("label", [])):
            return False
        if f.get("ancestor"):
            ok = False
            for a in f["ancestor"]:
                try:
                    if self.images.resolve(a).id == d.image:
                        ok = True
                except BerthError:
                    pass
                if a == d.config.image:
                    ok = True
            if not ok:
                return False
        return True

    @staticmethod
    def labels_match(d: ContainerRecord, wanted: builtins.list[str]) -> bool:
        labels = d.config.labels
        for w in wanted:
            k, eq, v = w.partition("=")
            if k not in labels or (eq and labels[k] != v):
                return False
        return True

    def counts(self) -> dict[str, int]:
        statuses = [d.state.status for d in self.store.all()]
        running = sum(1 for s in statuses if s.is_running)
        paused = statuses.count(ContainerStatus.PAUSED)
        return {
            "Containers": len(self.store.records),
            "ContainersRunning": running,
            "ContainersPaused": paused,
            "ContainersStopped": len(self.store.records) - running - paused,
        }


def status_text(rec: ContainerRecord, now: float) -> str:
    """The STATUS column of `docker ps`, as dockerd words it."""
    st = rec.state
    if st.restarting:
        return (
            f"Restarting ({st.exit_code}) {human_duration(now - parse_rfc3339(st.finished_at))} ago"
        )
    if st.running:
        out = "Up " + human_duration(now - parse_rfc3339(st.started_at))
        if st.paused:
            out += " (Paused)"
        elif st.health:
            h = st.health.status
            out += " (health: starting)" if h is HealthStatus.STARTING else f" ({h.value})"
        return out
    if st.status is ContainerStatus.EXITED:
        return f"Exited ({st.exit_code}) {human_duration(now - parse_rfc3339(st.finished_at))} ago"
    if st.status is ContainerStatus.REMOVING:
        return "Removal In Progress"
    if st.status is ContainerStatus.DEAD:
        return "Dead"
    return "Created"


def _du(path: str) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total


__all__ = ["ContainerView", "Views", "status_text"]
