"""A monitor's last output and exit outlive the daemon's failed write after the monitor
closed: on a loaded machine an exec's whole output was lost that way (`echo hi | berth exec -i`
with the client's end of stdin sent after the process had ended)."""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile

from berth.containers.channel import Channel, Fanout
from berth.shim import protocol
from berth.shim.protocol import T_CLOSE_STDIN, T_STDOUT, Exit


def test_output_sent_before_the_monitor_closed_is_read_after_a_failed_write() -> None:
    async def go() -> None:
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "mon.sock")
            srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            srv.bind(path)
            srv.listen(1)
            ch = await Channel.open(path)
            mon, _ = srv.accept()
            # the monitor: the process's output, its exit, and the end of the connection,
            # with the daemon's input still unread in its socket
            mon.sendall(protocol.frame(T_STDOUT, b"got hello\n"))
            mon.sendall(protocol.encode_control(Exit(exit=3, oom=False, finished_at=1)))
            mon.close()
            srv.close()
            await asyncio.sleep(0.05)
            ch.send(T_CLOSE_STDIN)  # too late: EPIPE
            ch.send(T_CLOSE_STDIN)
            fan = Fanout()
            q = fan.subscribe()
            record = await asyncio.wait_for(ch.until_exit(fan), 5)
            assert isinstance(record, Exit) and record.exit == 3
            assert await q.get() == (T_STDOUT, b"got hello\n")
            ch.close()

    asyncio.run(go())
