"""A fake shim for unit tests: it speaks `berth.shim.protocol` over a socketpair, in the test's
own event loop, and runs a container's `process.args` as a plain child of the test (no
namespaces, no rootfs, no root), so `ContainerService` can be driven without a fork server.

What it does as a monitor does: reads the request line, answers `Ready` with the process's pid
(a real one: the service signals it by pid), passes output on as frames and writes the
json-file log, takes stdin, CLOSE_STDIN and `Signal` commands, and ends with an `Exit` record,
on the channel and in the state directory. A command that cannot be run fails the start as a
monitor does (`Exit` with `error` and code 127). It does not serve reconnects (live restore)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from berth.containers.channel import Channel
from berth.fs import atomic_write
from berth.shim import protocol
from berth.shim.stdio import LogWriter


class FakeShim:
    def __init__(self) -> None:
        self.requests: list[protocol.StartRequest] = []
        self.commands: list[protocol.Command] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.procs: set[asyncio.subprocess.Process] = set()
        # called with the request before the process starts: a test may fail it
        self.before_start: Callable[[protocol.StartRequest], protocol.Exit | None] = lambda req: (
            None
        )

    async def open(self, path: str, request: protocol.StartRequest | None) -> Channel:
        if request is None:
            raise ConnectionRefusedError(f"fake shim: nothing listens on {path}")
        ours, theirs = socket.socketpair()
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        writer.write(request.encode())  # as Channel.open does
        task = asyncio.ensure_future(self._serve(theirs))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return Channel(reader, writer)

    async def close(self) -> None:
        for p in list(self.procs):
            with contextlib.suppress(ProcessLookupError):
                p.kill()
        for t in list(self.tasks):
            t.cancel()
        for t in list(self.tasks):
            with contextlib.suppress(BaseException):
                await t

    async def _serve(self, sock: socket.socket) -> None:
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        try:
            req = protocol.decode_request(await reader.readline())
            assert isinstance(req, protocol.StartRequest)
            self.requests.append(req)
            await self._run(req, reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    @staticmethod
    def _send(writer: asyncio.StreamWriter, msg: protocol.ShimMessage) -> None:
        writer.write(protocol.encode_control(msg))

    def _end(
        self, req: protocol.StartRequest, writer: asyncio.StreamWriter, record: protocol.Exit
    ) -> None:
        os.makedirs(req.state_dir, exist_ok=True)
        atomic_write(os.path.join(req.state_dir, "exit.json"), record.to_json(), sync=False)
        self._send(writer, record)

    async def _run(
        self, req: protocol.StartRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        name = "process.json" if req.exec_pid else "config.json"
        with open(os.path.join(req.bundle, name)) as f:
            spec: dict[str, Any] = json.load(f)
        proc_spec = spec if req.exec_pid else spec["process"]
        failed = self.before_start(req)
        if failed is not None:
            self._end(req, writer, failed)
            return
        env = dict(e.split("=", 1) for e in proc_spec.get("env") or [] if "=" in e)
        try:
            proc = await asyncio.create_subprocess_exec(
                *proc_spec["args"],
                env=env,
                stdin=asyncio.subprocess.PIPE if req.stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as e:
            msg = f'exec: "{proc_spec["args"][0]}": {e.strerror}'
            self._end(
                req,
                writer,
                protocol.Exit(exit=127, finished_at=time.time_ns(), error=msg, code=127),
            )
            return
        self.procs.add(proc)
        self._send(writer, protocol.Ready(pid=proc.pid, monitor=os.getpid()))
        log = LogWriter(req.log_path, req.log_max_size, req.log_max_file)

        async def pump(stream: asyncio.StreamReader, typ: int, name: str) -> None:
            while data := await stream.read(65536):
                log.feed(name, data)
                writer.write(protocol.frame(typ, data))

        async def commands() -> None:
            while True:
                try:
                    head = await reader.readexactly(protocol.HEADER_SIZE)
                    typ, size = protocol.frame_header(head)
                    payload = await reader.readexactly(size)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                if typ == protocol.T_STDIN and proc.stdin is not None:
                    proc.stdin.write(payload)
                elif typ == protocol.T_CLOSE_STDIN and proc.stdin is not None:
                    proc.stdin.close()
                elif typ == protocol.T_CONTROL:
                    cmd = protocol.decode_command(payload)
                    self.commands.append(cmd)
                    if isinstance(cmd, protocol.Signal):
                        with contextlib.suppress(ProcessLookupError):
                            proc.send_signal(cmd.signo)
                    else:
                        self._send(writer, protocol.CommandFailed(why="fake shim: no network"))

        listener = asyncio.ensure_future(commands())
        try:
            assert proc.stdout is not None and proc.stderr is not None
            await asyncio.gather(
                pump(proc.stdout, protocol.T_STDOUT, "stdout"),
                pump(proc.stderr, protocol.T_STDERR, "stderr"),
            )
            code = await proc.wait()
        finally:
            self.procs.discard(proc)
            listener.cancel()
            with contextlib.suppress(BaseException):
                await listener
            log.flush()
            log.close()
        if code < 0:
            code = 128 - code  # killed by signal N: 128+N, as a monitor reports it
        self._end(req, writer, protocol.Exit(exit=code, finished_at=time.time_ns()))
