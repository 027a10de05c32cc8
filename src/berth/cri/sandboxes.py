"""Pod sandboxes: their typed records (one JSON file each under DATA_ROOT/cri/sandboxes), their
holder process (`berth.cri.pause`) and their CNI network.

A sandbox is READY from RunPodSandbox until StopPodSandbox, which takes its network down (CNI
DEL, while the netns still exists) and ends its holder; both steps are idempotent, as kubelets
call StopPodSandbox more than once.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import os
import secrets
import signal
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from berth import linux
from berth.cri import pause
from berth.cri.cni import Attachment, Cni
from berth.errors import Conflict, InvalidArgument, NotFound, System
from berth.fs import atomic_write

log = logging.getLogger(__name__)

PAUSE_READY_TIMEOUT = 10.0
PAUSE_STOP_TIMEOUT = 5.0
SHM_SIZE = 64 << 20  # a pod's /dev/shm, as Docker's default


class SandboxState(enum.StrEnum):
    READY = "ready"
    NOTREADY = "notready"


@dataclass(slots=True, kw_only=True)
class PortMapping:
    protocol: str  # tcp, udp, sctp
    container_port: int
    host_port: int
    host_ip: str = ""


@dataclass(slots=True, kw_only=True)
class DnsConfig:
    servers: list[str] = field(default_factory=list)
    searches: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class Sandbox:
    id: str
    name: str
    uid: str
    namespace: str
    attempt: int = 0
    created_ns: int = 0
    state: SandboxState = SandboxState.NOTREADY
    hostname: str = ""
    log_directory: str = ""
    host_network: bool = False
    host_ipc: bool = False
    host_pid: bool = False
    share_pid: bool = False  # shareProcessNamespace: a PID namespace of the pod's own
    dns: DnsConfig = field(default_factory=DnsConfig)
    ports: list[PortMapping] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    runtime_handler: str = ""
    cgroup_parent: str = ""
    sysctls: dict[str, str] = field(default_factory=dict)
    shm_path: str = ""  # the pod's /dev/shm on the host (a tmpfs of its own)
    pid: int = 0  # the holder's, while READY
    pid_start: str = ""  # its start time (/proc/PID/stat), against a reused PID
    ip: str = ""
    additional_ips: list[str] = field(default_factory=list)
    network_up: bool = False  # a CNI ADD not yet undone by a DEL

    def to_json(self) -> dict[str, Any]:
        j = asdict(self)
        j["state"] = self.state.value
        return j

    @classmethod
    def from_json(cls, j: dict[str, Any]) -> Sandbox:
        j = dict(j)
        j["state"] = SandboxState(j["state"])
        j["dns"] = DnsConfig(**j.get("dns") or {})
        j["ports"] = [PortMapping(**p) for p in j.get("ports") or []]
        return cls(**j)

    def ns_path(self, kind: str) -> str:
        """/proc/PID/ns/KIND of its holder ("" once it has stopped)."""
        if not self.pid:
            return ""
        return f"/proc/{self.pid}/ns/{kind}"

    @property
    def full_name(self) -> str:
        return f"{self.name}_{self.namespace}_{self.uid}_{self.attempt}"


def _start_time(pid: int) -> str:
    """Field 22 of /proc/PID/stat ("" when the process is gone, or a zombie: a holder from
    before a restart is reparented to an init that may never reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return ""
    # the command name may hold spaces and parentheses: the fields follow the last ")"
    fields = stat.rsplit(")", 1)[1].split()
    return "" if fields[0] in ("Z", "X") else fields[19]


class Pods:
    """The sandboxes: records, holders, networks."""

    def __init__(self, data_dir: str, cni: Cni) -> None:
        self.root = data_dir
        self.dir = os.path.join(data_dir, "sandboxes")
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        self.cni = cni
        self.all: dict[str, Sandbox] = {}
        self.locks: dict[str, asyncio.Lock] = {}
        self.holders: dict[str, asyncio.subprocess.Process] = {}  # ours to reap
        # a holder started ahead of the next pod (an interpreter's start-up is ~25 ms)
        self.spare: asyncio.Task[asyncio.subprocess.Process] | None = None
        for n in sorted(os.listdir(self.dir)):
            if not n.endswith(".json"):
                continue
            try:
                with open(os.path.join(self.dir, n), "rb") as f:
                    sb = Sandbox.from_json(json.loads(f.read(1 << 20)))
            except (OSError, ValueError, TypeError, KeyError) as e:
                log.warning("skipping sandbox record %s: %s", n, e)
                continue
            if sb.state is SandboxState.READY and not self.holder_alive(sb):
                sb.state = SandboxState.NOTREADY  # its holder died while we were away
            self.all[sb.id] = sb

    def save(self, sb: Sandbox) -> None:
        atomic_write(os.path.join(self.dir, sb.id + ".json"), json.dumps(sb.to_json()).encode())

    def lock(self, sid: str) -> asyncio.Lock:
        return self.locks.setdefault(sid, asyncio.Lock())

    def resolve(self, ref: str) -> Sandbox:
        """By full ID or a unique prefix of it, as crictl passes them."""
        if ref in self.all:
            return self.all[ref]
        found = [s for s in self.all.values() if ref and s.id.startswith(ref)]
        if len(found) == 1:
            return found[0]
        if not found:
            raise NotFound(f"pod sandbox {ref!r} not found")
        raise InvalidArgument(f"pod sandbox ID {ref!r} is ambiguous")

    def ready(self, sb: Sandbox) -> bool:
        return sb.state is SandboxState.READY and self.holder_alive(sb)

    @staticmethod
    def holder_alive(sb: Sandbox) -> bool:
        return bool(sb.pid) and _start_time(sb.pid) == sb.pid_start

    # --- run --------------------------------------------------------------------------------
    async def run(self, sb: Sandbox) -> Sandbox:
        for other in self.all.values():
            if other.full_name == sb.full_name:
                raise Conflict(f"pod sandbox name {sb.full_name!r} is reserved for {other.id}")
        sb.id = secrets.token_hex(32)
        sb.created_ns = time.time_ns()
        async with self.lock(sb.id):
            self.all[sb.id] = sb
            try:
                await self._start_holder(sb)
                if not sb.host_ipc:
                    await asyncio.to_thread(self._mount_shm, sb)
                if not sb.host_network:
                    await self._network_up(sb)
                sb.state = SandboxState.READY
                self.save(sb)
            except BaseException:
                with contextlib.suppress(Exception):
                    await self._stop(sb)
                self.all.pop(sb.id, None)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.dir, sb.id + ".json"))
                raise
        log.info("pod sandbox %s (%s) ready, ip %s", sb.id[:12], sb.full_name, sb.ip or "-")
        return sb

    async def _spawn_holder(self) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *pause.argv(self.root),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )

    async def _take_spare(self) -> asyncio.subprocess.Process:
        """The spare holder (made now if there is none), and another spare made behind it."""
        task, self.spare = self.spare, None
        proc = None
        if task is not None:
            with contextlib.suppress(Exception):
                proc = await task
        if proc is None or proc.returncode is not None:
            proc = await self._spawn_holder()
        if self.spare is None:  # another pod's start, concurrent with ours, may have made it
            self.spare = asyncio.get_running_loop().create_task(self._spawn_holder())
        return proc

    def prepare(self) -> None:
        """Start the first spare holder (in the background)."""
        if self.spare is None:
            self.spare = asyncio.get_running_loop().create_task(self._spawn_holder())

    async def close(self) -> None:
        """No spare is left behind (a spare whose stdin closes exits by itself)."""
        task, self.spare = self.spare, None
        if task is None:
            return
        with contextlib.suppress(Exception):
            proc = await task
            assert proc.stdin is not None
            proc.stdin.close()
            await proc.wait()

    async def _start_holder(self, sb: Sandbox) -> None:
        proc = await self._take_spare()
        self.holders[sb.id] = proc
        sb.pid = proc.pid
        assert proc.stdin is not None and proc.stdout is not None
        ask = {
            "net": not sb.host_network,
            "ipc": not sb.host_ipc,
            "uts": True,
            "pid": sb.share_pid,
            "hostname": sb.hostname,
            "sysctls": sb.sysctls,
        }
        proc.stdin.write(json.dumps(ask).encode() + b"\n")
        proc.stdin.close()
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), PAUSE_READY_TIMEOUT)
        except TimeoutError:
            line = b"error: no answer"
        words = line.split()
        if (
            not words
            or words[0] != b"ready"
            or len(words) > 2
            or (len(words) == 2 and not words[1].isdigit())
        ):
            raise System(f"pod sandbox holder failed: {line.decode(errors='replace').strip()}")
        if len(words) == 2:  # the holder is its child, PID 1 of the pod's PID namespace
            sb.pid = int(words[1])
        sb.pid_start = _start_time(sb.pid)

    def _mount_shm(self, sb: Sandbox) -> None:
        """The pod's /dev/shm, which its containers share (as they share its IPC namespace):
        a tmpfs of Docker's default size."""
        path = os.path.join(self.root, "shm", sb.id)
        os.makedirs(path, mode=0o700, exist_ok=True)
        linux.mount(
            "shm",
            path,
            "tmpfs",
            linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC,
            f"mode=1777,size={SHM_SIZE}",
        )
        sb.shm_path = path

    @staticmethod
    def _unmount_shm(sb: Sandbox) -> None:
        if not sb.shm_path:
            return
        if os.path.ismount(sb.shm_path):
            linux.umount(sb.shm_path, linux.MNT_DETACH)
        with contextlib.suppress(OSError):
            os.rmdir(sb.shm_path)
        sb.shm_path = ""

    async def _network_up(self, sb: Sandbox) -> None:
        res = await asyncio.to_thread(self.cni.add, self._attachment(sb))
        sb.network_up = True
        ips = res.sandbox_ips()
        sb.ip = ips[0] if ips else ""
        sb.additional_ips = ips[1:]

    def _attachment(self, sb: Sandbox) -> Attachment:
        args = (
            ("IgnoreUnknown", "1"),
            ("K8S_POD_NAMESPACE", sb.namespace),
            ("K8S_POD_NAME", sb.name),
            ("K8S_POD_INFRA_CONTAINER_ID", sb.id),
            ("K8S_POD_UID", sb.uid),
        )
        rc: dict[str, Any] = {}
        if sb.ports:
            rc["portMappings"] = [
                {
                    "hostPort": p.host_port,
                    "containerPort": p.container_port,
                    "protocol": p.protocol,
                    "hostIP": p.host_ip,
                }
                for p in sb.ports
                if p.host_port
            ]
        netns = sb.ns_path("net") if self.holder_alive(sb) else ""
        return Attachment(container_id=sb.id, netns=netns, args=args, runtime_config=rc)

    # --- stop and remove --------------------------------------------------------------------
    async def stop(self, sb: Sandbox) -> None:
        async with self.lock(sb.id):
            await self._stop(sb)
            if sb.id in self.all:
                self.save(sb)

    async def _stop(self, sb: Sandbox) -> None:
        if sb.network_up:
            # DEL while the netns is still there, so the bridge plug-in removes the veth
            await asyncio.to_thread(self.cni.delete, self._attachment(sb))
            sb.network_up = False
        await self._end_holder(sb)
        await asyncio.to_thread(self._unmount_shm, sb)
        sb.state = SandboxState.NOTREADY

    async def _end_holder(self, sb: Sandbox) -> None:
        """SIGTERM to the holder, SIGKILL after PAUSE_STOP_TIMEOUT. The process we started
        (the holder, or the parent of a PID namespace's holder) is reaped; a holder from
        before a restart is not our child, and is polled."""
        proc = self.holders.pop(sb.id, None)
        if self.holder_alive(sb):
            with contextlib.suppress(ProcessLookupError):
                os.kill(sb.pid, signal.SIGTERM)
            deadline = time.monotonic() + PAUSE_STOP_TIMEOUT
            while self.holder_alive(sb) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            if self.holder_alive(sb):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(sb.pid, signal.SIGKILL)
        if proc is not None and proc.returncode is None:
            # a holder that never became ready (or the parent of one) goes too
            try:
                await asyncio.wait_for(proc.wait(), PAUSE_STOP_TIMEOUT)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        sb.pid = 0
        sb.pid_start = ""

    async def remove(self, sb: Sandbox) -> None:
        async with self.lock(sb.id):
            await self._stop(sb)
            self.all.pop(sb.id, None)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.dir, sb.id + ".json"))
        self.locks.pop(sb.id, None)


__all__ = ["DnsConfig", "Pods", "PortMapping", "Sandbox", "SandboxState"]
