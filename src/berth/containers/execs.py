"""`exec`: processes started in a running container. Each runs under a monitor of its own
(forked by the fork server), which joins the container's cgroups and namespaces.

Imports `containers` (the service), `containers.channel`, `containers.spec`, `errors`. Exec
records live in memory, as Docker's do, and go with their container.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING

from berth.containers import seccomp
from berth.containers.channel import Attachment, Channel, Fanout
from berth.containers.spec import container_caps, host_caps, no_new_privileges, process_env
from berth.errors import Conflict, NotFound
from berth.fs import atomic_write
from berth.shim import protocol
from berth.shim.protocol import Exit, Ready, StartRequest

if TYPE_CHECKING:
    from berth.containers import ContainerService


class ExecStartError(Exception):
    """The process could not be started; the message goes to the client's stream."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecConfig:
    """What `POST /containers/{id}/exec` asked for, read and checked at the API edge
    (`berth.api.containers_wire.exec_config`)."""

    cmd: tuple[str, ...]
    tty: bool = False
    attach_stdin: bool = False
    attach_stdout: bool = False
    attach_stderr: bool = False
    privileged: bool = False
    user: str = ""
    working_dir: str = ""
    env: tuple[str, ...] = ()
    detach_keys: str = ""
    console_size: tuple[int, int] | None = None


class Exec:
    """An exec instance: its config, and its process while it runs."""

    def __init__(self, eid: str, cid: str, config: ExecConfig) -> None:
        self.id = eid
        self.cid = cid
        self.config = config
        self.running = False
        self.exit_code: int | None = None
        self.pid = 0
        self.started = False
        self.channel: Channel | None = None
        self.fanout = Fanout()
        self.done = asyncio.Event()


class ExecService:
    def __init__(self, containers: ContainerService) -> None:
        self.containers = containers
        self.execs: dict[str, Exec] = {}

    def get(self, eid: str) -> Exec:
        ex = self.execs.get(eid)
        if ex is None:
            raise NotFound(f"No such exec instance: {eid}")
        return ex

    def create(self, ref: str, config: ExecConfig) -> str:
        rec = self.containers.resolve(ref)
        status = rec.state.status
        if not status.is_running:
            raise Conflict(f"Container {rec.id} is not running")
        if not status.can_exec():
            raise Conflict(f"Container {rec.id} is paused, unpause the container before exec")
        eid = secrets.token_hex(32)
        self.execs[eid] = Exec(eid, rec.id, config)
        rec.exec_ids = [*(rec.exec_ids or []), eid]
        self.containers.store.event(rec, f"exec_create: {' '.join(config.cmd)}", execID=eid)
        return eid

    def inspect(self, eid: str) -> Exec:
        """The exec instance (the API makes Docker's JSON of it)."""
        return self.get(eid)

    def resize(self, eid: str, h: int, w: int) -> None:
        ex = self.get(eid)
        if ex.channel is None:
            raise Conflict(f"exec {eid} is not running")
        ex.channel.resize(h, w)

    def attach(self, eid: str) -> Attachment:
        """Subscribe before `start`: no output is lost."""
        ex = self.get(eid)
        q = ex.fanout.subscribe(f"exec {eid[:12]}")

        async def channel() -> Channel | None:
            return ex.channel

        return Attachment(
            q,
            stdout=True,
            stderr=True,
            channel=channel,
            stdin_once=True,
            on_close=lambda: ex.fanout.unsubscribe(q),
        )

    async def start(self, eid: str, *, console_size: tuple[int, int] | None = None) -> None:
        """Run the exec. Its pty comes from its create (`Tty`), as with dockerd: the start's own
        `Tty` only says how the API frames the stream."""
        ex = self.get(eid)
        if ex.started:
            raise Conflict(f"Error: Exec command {eid} has already run")
        rec = self.containers.resolve(ex.cid)
        if not rec.state.status.is_running:
            raise Conflict(f"Container {rec.id} is not running")
        ex.started = True
        b = ex.config
        cfg = rec.config
        hc = rec.host_config
        # the container's own capabilities (all three sets, as the init's: a root exec must not
        # count on execve to raise them, which no_new_privs forbids), no_new_privs and seccomp
        # filter, as runc gives an exec
        capset = host_caps() if b.privileged else container_caps(hc)
        caps = sorted(capset)
        tty = b.tty
        proc = {
            "args": list(b.cmd),
            "env": process_env(
                list(cfg.env or ()), cfg.hostname, tty, list(b.env), links=rec.link_env
            ),
            "cwd": b.working_dir or cfg.working_dir or "/",
            "user": b.user or cfg.user or "0",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": no_new_privileges(hc),
        }
        if hc.oom_score_adj:
            proc["oomScoreAdj"] = hc.oom_score_adj
        filt = None if b.privileged else seccomp.for_container(hc, capset)
        if filt is not None:
            proc["_seccomp"] = filt
        d = os.path.join(self.containers.store.run_dir(ex.cid), "exec", eid[:16])
        os.makedirs(d, exist_ok=True)
        # the exec's environment is in it: 0600 (no fsync: the run directory, for this exec)
        atomic_write(os.path.join(d, "process.json"), json.dumps(proc).encode(), sync=False)
        runtime, runtime_root = self.containers.store.runtime_of(rec)
        req = StartRequest(
            id=eid,
            bundle=d,
            state_dir=d,
            exec_pid=rec.state.pid,
            container_id=rec.id,
            runtime=runtime,
            runtime_root=runtime_root,
            stdin=b.attach_stdin,
            tty=tty,
            console_size=console_size or b.console_size,
        )
        ch = await self.containers.open_channel(self.containers.cfg.lean_forkserver, req)
        try:
            msg = await ch.read_control(ex.fanout)
        except ValueError as e:
            msg = protocol.StartFailed(error=f"monitor: {e}", code=126)
        if not isinstance(msg, Ready):
            ch.close()
            if isinstance(msg, protocol.StartFailed | Exit) and msg.error:
                ex.exit_code = msg.code if msg.code is not None else 126
                error = msg.error
            else:
                ex.exit_code, error = 126, "exec monitor died"
            ex.fanout.end()
            ex.done.set()
            shutil.rmtree(d, ignore_errors=True)
            raise ExecStartError(error)
        ex.pid = msg.pid
        ex.running = True
        ex.channel = ch
        self.containers.store.event(rec, f"exec_start: {' '.join(b.cmd)}", execID=eid)
        self.containers.store.spawn(self._watch(ex, ch, d))

    async def _watch(self, ex: Exec, ch: Channel, d: str) -> None:
        try:
            record = await ch.until_exit(ex.fanout)
            if record is None:
                with (
                    contextlib.suppress(OSError, ValueError),
                    open(os.path.join(d, "exit.json"), "rb") as f,
                ):
                    record = Exit.from_json(f.read())
            # the exit code is known before the stream ends: the client reads it next
            ex.exit_code = record.exit if record is not None else 126
        finally:
            ch.close()
            ex.channel = None
            ex.running = False
            ex.fanout.end()
            ex.done.set()
        shutil.rmtree(d, ignore_errors=True)
        rec = self.containers.store.records.get(ex.cid)
        if rec is not None:
            self.containers.store.event(rec, "exec_die", execID=ex.id, exitCode=str(ex.exit_code))

    async def wait(self, eid: str, timeout: float | None = None) -> int | None:
        ex = self.get(eid)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ex.done.wait(), timeout)
        return ex.exit_code

    def forget_container(self, cid: str) -> None:
        for eid in [e for e, ex in self.execs.items() if ex.cid == cid]:
            del self.execs[eid]


__all__ = ["Exec", "ExecConfig", "ExecService", "ExecStartError"]
