"""Bounded buffers of the daemon without a daemon: the attach fan-out (lossless for a slow
client, a stalled one cut off) and the port proxy's splice loop and its connection cap."""

from __future__ import annotations

import asyncio
import os
import socket
import threading

from berth.containers.channel import Fanout
from berth.networks.ports import Published, _proxy, _Slots


def test_fanout_waits_for_a_slow_client_and_cuts_off_a_stalled_one() -> None:
    async def main() -> None:
        fan = Fanout(limit=1000, stall=0.3)
        slow, stalled = fan.subscribe("slow"), fan.subscribe("stalled")
        got: list[bytes] = []

        async def read_slowly() -> None:
            while (item := await slow.get()) is not None:
                got.append(item[1])
                await asyncio.sleep(0.01)

        reader = asyncio.ensure_future(read_slowly())
        sent = [bytes([i % 256]) * 100 for i in range(100)]
        for chunk in sent:
            await fan.publish(1, chunk)
            assert slow.size <= 1000 + 100  # never more than the bound and one frame
        fan.end()
        await asyncio.wait_for(reader, 10)
        assert got == sent  # the slow client lost nothing
        assert stalled.cut_off.is_set() and stalled.size == 0
        assert await stalled.get() is None  # its stream ended

    asyncio.run(main())


def test_fanout_without_clients_never_waits() -> None:
    async def main() -> None:
        fan = Fanout(limit=10, stall=60)
        for _ in range(1000):
            await asyncio.wait_for(fan.publish(1, b"x" * 100), 1)

    asyncio.run(main())


def test_proxy_copies_both_ways_in_one_thread() -> None:
    up = socket.create_server(("127.0.0.1", 0))
    front = socket.create_server(("127.0.0.1", 0))

    def echo() -> None:
        c, _ = up.accept()
        with c:
            while data := c.recv(65536):
                c.sendall(data)

    threading.Thread(target=echo, daemon=True).start()
    p = Published("tcp", "127.0.0.1", 0, "127.0.0.1", up.getsockname()[1])
    slots = _Slots(1, 1)
    client = socket.create_connection(front.getsockname())
    served, _ = front.accept()
    assert slots.take(p, served)
    other = socket.socket()
    assert not slots.take(p, other)  # over the cap
    other.close()
    t = threading.Thread(target=_proxy, args=(served, p, slots))
    t.start()
    data = os.urandom(8 << 20)
    back = bytearray()

    def read() -> None:
        while chunk := client.recv(1 << 20):
            back.extend(chunk)

    r = threading.Thread(target=read)
    r.start()
    client.sendall(data)
    client.shutdown(socket.SHUT_WR)
    r.join(30)
    t.join(10)
    assert bytes(back) == data
    assert not t.is_alive() and slots.open == 0 and not p.conns
    for s in (client, up, front):
        s.close()


def test_an_events_subscriber_that_does_not_read_is_bounded() -> None:
    from berth.events import SUBSCRIBER_BUFFER, EventBus

    async def main() -> None:
        bus = EventBus()
        q = bus.subscribe()
        for i in range(SUBSCRIBER_BUFFER * 3):
            bus.publish("container", "start", f"c{i}", {})
        assert q.qsize() == SUBSCRIBER_BUFFER
        assert (await q.get())["Actor"]["ID"] == "c0"

    asyncio.run(main())
