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
from typing import TYPE_CHECKING, Any

from berth.containers import seccomp
from berth.containers.channel import Attachment, Channel, Fanout, parse_detach_keys
from berth.containers.spec import container_caps, host_caps, no_new_privileges, process_env
from berth.errors import Conflict, InvalidArgument, NotFound
from berth.fs import atomic_write
from berth.shim import protocol
from berth.shim.protocol import Exit, Ready, StartRequest

if TYPE_CHECKING:
    from berth.containers import ContainerService


class ExecStartError(Exception):
    """The process could not be started; the message goes to the client's stream."""


class _Exec:
    def __init__(self, eid: str, cid: str, body: dict[str, Any]) -> None:
        self.id = eid
        self.cid = cid
        self.body = body
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
        self.execs: dict[str, _Exec] = {}

    def get(self, eid: str) -> _Exec:
        ex = self.execs.get(eid)
        if ex is None:
            raise NotFound(f"No such exec instance: {eid}")
        return ex

    def create(self, ref: str, body: dict[str, Any]) -> str:
        rec = self.containers.resolve(ref)
        status = rec.state.status
        if not status.is_running:
            raise Conflict(f"Container {rec.id} is not running")
        if not status.can_exec():
            raise Conflict(f"Container {rec.id} is paused, unpause the container before exec")
        cmd = body.get("Cmd")
        if isinstance(cmd, str):
            cmd = [cmd]
        if not cmd:
            raise InvalidArgument("No exec command specified")
        if body.get("DetachKeys"):
            try:
                parse_detach_keys(body["DetachKeys"])
            except ValueError as e:
                raise InvalidArgument(str(e)) from None
        eid = secrets.token_hex(32)
        self.execs[eid] = _Exec(eid, rec.id, {**body, "Cmd": list(cmd)})
        rec.exec_ids = [*(rec.exec_ids or []), eid]
        self.containers.store.event(rec, f"exec_create: {' '.join(cmd)}", execID=eid)
        return eid

    def inspect(self, eid: str) -> dict[str, Any]:
        ex = self.get(eid)
        b = ex.body
        return {
            "ID": ex.id, "Running": ex.running, "ExitCode": ex.exit_code,
            "ProcessConfig": {"tty": bool(b.get("Tty")), "entrypoint": b["Cmd"][0],
                              "arguments": b["Cmd"][1:], "privileged": bool(b.get("Privileged")),
                              "user": b.get("User", "")},
            "OpenStdin": bool(b.get("AttachStdin")), "OpenStderr": bool(b.get("AttachStderr")),
            "OpenStdout": bool(b.get("AttachStdout")), "CanRemove": False,
            "ContainerID": ex.cid, "DetachKeys": b.get("DetachKeys", ""), "Pid": ex.pid,
        }

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
        return Attachment(q, stdout=True, stderr=True, channel=channel, stdin_once=True,
                          on_close=lambda: ex.fanout.unsubscribe(q))

    async def start(self, eid: str, *, console_size: list[int] | None = None) -> None:
        """Run the exec. Its pty comes from its create (`Tty`), as with dockerd: the start's own
        `Tty` only says how the API frames the stream."""
        ex = self.get(eid)
        if ex.started:
            raise Conflict(f"Error: Exec command {eid} has already run")
        rec = self.containers.resolve(ex.cid)
        if not rec.state.status.is_running:
            raise Conflict(f"Container {rec.id} is not running")
        ex.started = True
        b = ex.body
        cfg = rec.config
        hc = rec.host_config
        # the container's own capabilities (all three sets, as the init's: a root exec must not
        # count on execve to raise them, which no_new_privs forbids), no_new_privs and seccomp
        # filter, as runc gives an exec
        capset = host_caps() if b.get("Privileged") else container_caps(hc)
        caps = sorted(capset)
        tty = bool(b.get("Tty"))
        proc = {"args": b["Cmd"],
                "env": process_env(cfg.get("Env"), cfg.get("Hostname") or "", tty, b.get("Env"),
                                   links=rec.link_env),
                "cwd": b.get("WorkingDir") or cfg.get("WorkingDir") or "/",
                "user": b.get("User") or cfg.get("User") or "0",
                "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
                "noNewPrivileges": no_new_privileges(hc)}
        if hc.get("OomScoreAdj"):
            proc["oomScoreAdj"] = int(hc["OomScoreAdj"])
        filt = None if b.get("Privileged") else seccomp.for_container(hc, capset)
        if filt is not None:
            proc["_seccomp"] = filt
        d = os.path.join(self.containers.store.run_dir(ex.cid), "exec", eid[:16])
        os.makedirs(d, exist_ok=True)
        # the exec's environment is in it: 0600 (no fsync: the run directory, for this exec)
        atomic_write(os.path.join(d, "process.json"), json.dumps(proc).encode(), sync=False)
        runtime, runtime_root = self.containers.store.runtime_of(rec)
        size = console_size or b.get("ConsoleSize")
        req = StartRequest(id=eid, bundle=d, state_dir=d, exec_pid=rec.state.pid,
                           container_id=rec.id, runtime=runtime, runtime_root=runtime_root,
                           stdin=bool(b.get("AttachStdin")), tty=tty,
                           console_size=(int(size[0]), int(size[1])) if size else None)
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
        self.containers.store.event(rec, f"exec_start: {' '.join(b['Cmd'])}", execID=eid)
        self.containers.store.spawn(self._watch(ex, ch, d))

    async def _watch(self, ex: _Exec, ch: Channel, d: str) -> None:
        try:
            record = await ch.until_exit(ex.fanout)
            if record is None:
                with contextlib.suppress(OSError, ValueError), \
                        open(os.path.join(d, "exit.json"), "rb") as f:
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


__all__ = ["ExecService", "ExecStartError"]
