"""What the dashboard's pages show, as plain JSON made from the services' typed records: a
container's row and its readable inspect (environment with secret-looking values masked),
images and their history, networks with their containers, volumes, disk usage, a stats
sample reduced to the figures the graphs plot.

These are the dashboard's own shapes, not Docker's: the page reads them and nothing else.

Imports the services' record types.
"""

from __future__ import annotations

import re
import time
from typing import Any

from berth.containers.record import ContainerRecord
from berth.containers.resources import StatsSample
from berth.containers.views import ContainerView, status_text
from berth.images import ImageSummary
from berth.images.views import HistoryLine
from berth.networks import NetworkView
from berth.volumes.records import VolumeUsage

Json = dict[str, Any]
MASK = "••••••"
# a variable whose name says it holds a secret: its value never leaves berthd through here
SECRET_NAME = re.compile(
    r"pass|secret|token|key|credential|auth|private|cert|salt|session|"
    r"cookie|signature|dsn|api_?key",
    re.IGNORECASE,
)
# a value that carries a password in it (a URL with user:password@)
SECRET_VALUE = re.compile(r"://[^/\s:@]+:[^/\s@]+@")


def mask_env(env: list[str] | None) -> list[Json]:
    out: list[Json] = []
    for item in env or []:
        name, _eq, value = item.partition("=")
        secret = bool(SECRET_NAME.search(name) or SECRET_VALUE.search(value))
        out.append({"name": name, "value": MASK if secret else value, "masked": secret})
    return out


def ports(rec: ContainerRecord) -> list[Json]:
    """The published ports while it runs, one line each: host address, host port, container
    port and protocol."""
    out: list[Json] = []
    if not rec.state.running:
        return out
    for port, binds in sorted((rec.ports or {}).items()):
        for b in binds or ():
            out.append(
                {
                    "hostIp": b.host_ip,
                    "hostPort": b.host_port,
                    "port": str(port.number),
                    "proto": port.proto,
                }
            )
    return out


def container_row(view: ContainerView) -> Json:
    rec = view.record
    st = rec.state
    status = view.status_text or status_text(rec, time.time())
    return {
        "id": rec.id,
        "name": rec.name.lstrip("/"),
        "image": rec.config.image or rec.image,
        "imageId": rec.image,
        "state": st.status.value,
        "status": status,
        "health": st.health.status.value if st.health else "",
        "running": st.running,
        "paused": st.paused,
        "created": rec.created_ns // 10**9,
        "startedAt": st.started_at if st.running else "",
        "ports": ports(rec),
        "command": " ".join([rec.path, *rec.args]).strip(),
    }


def container_detail(view: ContainerView) -> Json:
    rec = view.record
    cfg, hc, st = rec.config, rec.host_config, rec.state
    networks = []
    eps = {e.network: e for e in rec.endpoints or []}
    for req in rec.nets:
        nid = view.network_ids.get(req.net, "")
        ep = eps.get(nid)
        networks.append(
            {
                "name": req.net,
                "id": nid,
                "aliases": list(req.aliases),
                "ip": ep.ip if ep else "",
                "prefix": ep.prefix if ep else 0,
                "gateway": ep.gateway if ep else "",
                "mac": ep.mac if ep else "",
            }
        )
    return {
        **container_row(view),
        "general": [
            ["ID", rec.id],
            ["Name", rec.name.lstrip("/")],
            ["Image", cfg.image],
            ["Image ID", rec.image],
            ["Created", time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(rec.created_ns / 1e9))],
            ["Status", status_text(rec, time.time())],
            ["Started", st.started_at],
            ["Finished", st.finished_at],
            ["Exit code", str(st.exit_code)],
            ["PID", str(st.pid)],
            ["Error", st.error],
            ["OOM killed", "yes" if st.oom_killed else "no"],
            ["Restart policy", hc.restart_policy.name or "no"],
            ["Restart count", str(rec.restart_count)],
            ["Command", " ".join([rec.path, *rec.args])],
            ["Working dir", cfg.working_dir or "/"],
            ["User", cfg.user or "root"],
            ["Hostname", cfg.hostname],
            ["TTY", "yes" if cfg.tty else "no"],
            ["Runtime", view.runtime],
            ["Storage driver", rec.driver],
            ["Network mode", hc.network_mode],
        ],
        "labels": sorted([k, str(v)] for k, v in (cfg.labels or {}).items()),
        "env": mask_env(list(cfg.env or ())),
        "mounts": [
            {"type": m.type, "source": m.name or m.source, "destination": m.destination, "rw": m.rw}
            for m in rec.mounts
        ],
        "networks": networks,
        "tty": cfg.tty,
        "healthLog": [
            {"start": p.start, "exitCode": p.exit_code, "output": p.output}
            for p in (st.health.log if st.health else [])
        ],
        "failingStreak": st.health.failing_streak if st.health else 0,
    }


def stats_point(cur: StatsSample, prev: StatsSample | None) -> Json:
    """One point of the graphs: CPU in % of one core (as `docker stats`), memory and the
    network's and block I/O's byte counters."""
    cpu = 0.0
    if prev is not None and cur.running:
        dc = cur.cpu_usage_ns - prev.cpu_usage_ns
        ds = cur.system_cpu_ns - prev.system_cpu_ns
        if dc > 0 and ds > 0:
            cpu = dc / ds * max(cur.online_cpus, 1) * 100.0
    return {
        "t": time.time(),
        "running": cur.running,
        "cpu": round(cpu, 2),
        "mem": cur.memory_usage,
        "memLimit": cur.memory_limit,
        "pids": cur.pids,
        "rx": sum(n.rx_bytes for n in cur.networks.values()),
        "tx": sum(n.tx_bytes for n in cur.networks.values()),
        "blkRead": cur.io_read,
        "blkWrite": cur.io_write,
    }


def image_row(s: ImageSummary, users: list[str]) -> Json:
    """An image, with the names of the containers made from it."""
    return {
        "id": s.id,
        "tags": list(s.repo_tags),
        "digests": list(s.repo_digests),
        "created": s.created,
        "size": s.size,
        "containers": s.containers,
        "usedBy": sorted(users),
    }


def history_row(h: HistoryLine) -> Json:
    return {
        "id": h.id,
        "created": h.created,
        "createdBy": h.created_by,
        "size": h.size,
        "comment": h.comment,
        "tags": list(h.tags or []),
    }


def network_row(view: NetworkView, names: dict[str, str]) -> Json:
    rec = view.record
    return {
        "id": rec.id,
        "name": rec.name,
        "driver": str(rec.driver),
        "created": rec.created,
        "internal": rec.internal,
        "builtin": rec.predefined,
        "subnets": [c.subnet for c in rec.ipam],
        "containers": sorted(
            (
                {
                    "id": cid,
                    "name": names.get(cid, ep.name.lstrip("/")),
                    "ip": ep.ip,
                    "prefix": ep.prefix,
                    "ip6": ep.ip6,
                    "mac": ep.mac,
                }
                for cid, ep in view.endpoints.items()
            ),
            key=lambda c: str(c["name"]),
        ),
    }


def volume_row(u: VolumeUsage, users: list[str]) -> Json:
    v = u.volume
    return {
        "name": v.name,
        "driver": v.driver,
        "mountpoint": v.mountpoint,
        "created": v.created,
        "size": u.size,
        "refCount": u.ref_count,
        "anonymous": v.anonymous,
        "usedBy": users,
    }


__all__ = [
    "mask_env",
    "container_row",
    "container_detail",
    "stats_point",
    "image_row",
    "history_row",
    "network_row",
    "volume_row",
    "MASK",
]
