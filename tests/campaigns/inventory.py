"""What a daemon holds on the host, counted from the outside: the campaigns' measuring tape.

Crash (campaign 1) and faults (2) check that the store is consistent and nothing is orphaned
after each event; soak (3) compares these counts at its end with their level after its first
containers. Everything is read from /proc, /sys, `ip`, `iptables` and the metadata database
(read-only), never from the daemon's own word."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.integration.conftest import Daemon

BRIDGE_NAME_OPT = "com.docker.network.bridge.name"
# found once: a test may run the daemon with a PATH that lacks it
IPTABLES = shutil.which("iptables") or "iptables"


# --- the metadata database and the stores -------------------------------------------------------
def db_path(d: Daemon) -> Path:
    return d.data_root / "berth.db"


def db_rows(d: Daemon, sql: str) -> list[tuple[Any, ...]]:
    """A read-only query on the daemon's database (the daemon may be running: WAL readers do not
    block it)."""
    con = sqlite3.connect(f"file:{db_path(d)}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def integrity(d: Daemon) -> str:
    """`PRAGMA integrity_check` of the metadata database: "ok" when sound."""
    return "; ".join(str(r[0]) for r in db_rows(d, "PRAGMA integrity_check"))


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The OCI chain IDs of a layer stack, from its diff IDs."""
    out: list[str] = []
    for diff in diff_ids:
        out.append(
            diff
            if not out
            else "sha256:" + hashlib.sha256(f"{out[-1]} {diff}".encode()).hexdigest()
        )
    return out


def store_problems(d: Daemon) -> list[str]:
    """What is wrong in the daemon's image store, as sentences (none when it is consistent):
    a blob whose content does not hash to its name, a half-made layer (no meta.json), a leftover
    ingest, an image whose layers are not all there or whose chain does not follow from its
    config's diff IDs, a tag naming no image."""
    problems: list[str] = []
    blobs = d.data_root / "content" / "blobs" / "sha256"
    for blob in blobs.iterdir() if blobs.exists() else []:
        h = hashlib.sha256()
        with open(blob, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        if h.hexdigest() != blob.name:
            problems.append(f"blob {blob.name[:12]} holds content of digest {h.hexdigest()[:12]}")
    ingest = d.data_root / "content" / "ingest"
    if ingest.exists() and (left := os.listdir(ingest)):
        problems.append(f"{len(left)} ingests left in content/ingest")
    layers_dir = d.data_root / "storage" / "layers"
    metas: dict[str, dict[str, Any]] = {}
    for layer in layers_dir.iterdir() if layers_dir.exists() else []:
        meta = layer / "meta.json"
        if not meta.exists():
            problems.append(f"layer {layer.name[:12]} is half-made (no meta.json)")
            continue
        metas["sha256:" + layer.name] = json.loads(meta.read_text())
    for image_id, doc in db_rows(d, "SELECT id, doc FROM images"):
        layers = json.loads(doc).get("layers", [])
        missing = [c for c in layers if c not in metas]
        if missing:
            problems.append(f"image {image_id[7:19]} lacks layers {[c[7:19] for c in missing]}")
            continue
        diffs = [metas[c]["diff_id"] for c in layers]
        if chain_ids(diffs) != layers:
            problems.append(f"image {image_id[7:19]}: its layers' diff IDs do not make its chain")
        config = blobs / image_id[len("sha256:") :]
        if config.exists():
            rootfs = json.loads(config.read_text()).get("rootfs", {}).get("diff_ids", [])
            if rootfs != diffs:
                problems.append(
                    f"image {image_id[7:19]}: its config's diff IDs are not its layers'"
                )
    for ref, image_id in db_rows(
        d, "SELECT ref, image_id FROM tags WHERE image_id NOT IN (SELECT id FROM images)"
    ):
        problems.append(f"tag {ref} names no image ({image_id[7:19]})")
    return problems


# --- what runs and what is held on the host -----------------------------------------------------
def bridges(d: Daemon) -> set[str]:
    """The daemon's bridges: its default one and its user networks' (from its database)."""
    out = {d.bridge}
    with contextlib.suppress(sqlite3.Error):
        for (doc,) in db_rows(d, "SELECT doc FROM networks"):
            net = json.loads(doc)
            name = net.get("bridge") or (net.get("options") or {}).get(BRIDGE_NAME_OPT)
            if name:
                out.add(name)
    return out


def veths(d: Daemon) -> set[str]:
    """Host ends of veth pairs attached to one of the daemon's bridges."""
    mine = bridges(d)
    out = set()
    text = subprocess.run(
        ["ip", "-o", "link", "show", "type", "veth"], capture_output=True, text=True
    ).stdout
    for line in text.splitlines():
        words = line.split()
        if "master" in words and words[words.index("master") + 1] in mine:
            out.add(words[1].split("@")[0].rstrip(":"))
    return out


def hierarchies() -> list[Path]:
    """The cgroup hierarchies' roots: /sys/fs/cgroup itself on cgroup v2, each controller's
    (and a hybrid layout's unified one) on v1."""
    root = Path("/sys/fs/cgroup")
    if (root / "cgroup.controllers").exists():
        return [root]
    return [
        h
        for h in sorted(root.iterdir())
        if h.is_dir() and not h.is_symlink() and (h / "cgroup.procs").exists()
    ]


def cgroup_parents(d: Daemon) -> list[Path]:
    """The daemon's cgroup parent in every hierarchy where it exists."""
    return [h / d.cgroup_parent for h in hierarchies() if (h / d.cgroup_parent).is_dir()]


def cgroups(d: Daemon) -> set[str]:
    """The cgroups under the daemon's cgroup parent (hierarchy/name), in every hierarchy."""
    out = set()
    for parent in cgroup_parents(d):
        for sub in parent.iterdir():
            if sub.is_dir():
                out.add(f"{parent.parent.name}/{sub.name}")
    return out


def cgroup_pids(d: Daemon, cid: str) -> set[int]:
    pids: set[int] = set()
    for parent in cgroup_parents(d):
        with contextlib.suppress(OSError):
            pids |= {int(p) for p in (parent / cid / "cgroup.procs").read_text().split()}
    return pids


def stray_pids(d: Daemon, running: set[str]) -> set[int]:
    """Processes in the daemon's cgroups that belong to no running container."""
    pids: set[int] = set()
    for parent in cgroup_parents(d):
        for sub in parent.iterdir():
            if sub.is_dir() and sub.name not in running:
                for root, _, files in os.walk(sub):
                    if "cgroup.procs" in files:
                        with contextlib.suppress(OSError):
                            pids |= {int(p) for p in Path(root, "cgroup.procs").read_text().split()}
    return pids


def rules(d: Daemon) -> list[str]:
    """The daemon's iptables rules (filter and nat, `iptables -S` form, its chains' and jumps)."""
    chain = f"BERTH-{d.bridge[:12]}"
    out = []
    for table in ("filter", "nat"):
        text = subprocess.run(
            [IPTABLES, "-w", "-t", table, "-S"], capture_output=True, text=True
        ).stdout
        out += [f"{table} {line}" for line in text.splitlines() if chain in line]
    return out


def port_rules(d: Daemon) -> list[str]:
    """The published ports' DNAT rules."""
    return [r for r in rules(d) if "--to-destination" in r]


def mounts(d: Daemon) -> list[str]:
    """Mount points on the host under the daemon's directories."""
    base = str(d.base)
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4]
            if point.startswith(base):
                out.append(point)
    return out


def exec_root_files(d: Daemon) -> int:
    return sum(len(files) + len(dirs) for _, dirs, files in os.walk(d.exec_root))


def shim_pids(d: Daemon) -> list[int]:
    return d._shims()  # noqa: SLF001 - the fixture's own finder of the daemon's shims


def daemon_stats(d: Daemon) -> dict[str, int]:
    """berthd's resident memory (KiB), open descriptors and threads."""
    assert d.proc is not None
    pid = d.proc.pid
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {
        "rss_kib": int(fields["VmRSS"].split()[0]),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": int(fields["Threads"]),
    }


@dataclass
class Containers:
    """The daemon's containers as its API lists them: name -> (id, status, pid)."""

    by_name: dict[str, tuple[str, str, int]]
    names_listed: list[str]  # with repeats, if a name were listed twice

    @property
    def running(self) -> set[str]:
        return {cid for cid, status, _ in self.by_name.values() if status == "running"}


def containers(d: Daemon) -> Containers:
    ids = d.ok("ps", "-aq", "--no-trunc").split()
    by_name: dict[str, tuple[str, str, int]] = {}
    names: list[str] = []
    if ids:
        for c in json.loads(d.ok("inspect", *ids)):
            name = c["Name"].lstrip("/")
            names.append(name)
            by_name[name] = (c["Id"], c["State"]["Status"], int(c["State"]["Pid"] or 0))
    return Containers(by_name, names)


def orphans(d: Daemon) -> dict[str, int]:
    """What the daemon holds that no running container accounts for: cgroups, processes in its
    cgroups, veths beyond the running containers' endpoints, DNAT rules to no running
    container's address, mounts on the host. Every count is 0 for a daemon that reclaimed its
    leftovers at start."""
    cs = containers(d)
    running = cs.running
    endpoints = 0
    addrs: set[str] = set()
    if running:
        for c in json.loads(d.ok("inspect", *running)):
            for net in (c["NetworkSettings"].get("Networks") or {}).values():
                if net.get("IPAddress"):
                    endpoints += 1
                    addrs.add(net["IPAddress"])
    return {
        "cgroups": len({c for c in cgroups(d) if c.split("/", 1)[1] not in running}),
        "processes": len(stray_pids(d, running)),
        "veths": max(0, len(veths(d)) - endpoints),
        "iptables": len(
            [r for r in port_rules(d) if r.split("--to-destination ")[1].split(":")[0] not in addrs]
        ),
        "mounts": len(mounts(d)),
    }


def report(campaign: str, figures: dict[str, object]) -> None:
    """The campaign's figures, for bench/campaign.py (and in the test's output)."""
    line = json.dumps({"campaign": campaign, **figures})
    print(line)
    if path := os.environ.get("BERTH_CAMPAIGN_REPORT"):
        with open(path, "a") as f:
            f.write(line + "\n")
