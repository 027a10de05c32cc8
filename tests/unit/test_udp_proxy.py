"""The UDP userland proxy of published ports: across address families, per-client flows, the
answers back to the right client, idle flows ended, and the caps that bound its state."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from berth.networks.udpproxy import FlowBudget, UdpProxy


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


needs_v6 = pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")


def _udp(fam: int, host: str) -> socket.socket:
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind((host, 0))
    s.setblocking(False)
    return s


@asynccontextmanager
async def _echo(fam: int, host: str) -> AsyncIterator[tuple[str, int]]:
    """A UDP server that answers each datagram with `<its source port>:<the datagram>`."""
    s = _udp(fam, host)
    loop = asyncio.get_running_loop()

    def answer() -> None:
        while True:
            try:
                data, addr = s.recvfrom(65535)
            except BlockingIOError:
                return
            s.sendto(f"{addr[1]}:".encode() + data, addr)

    loop.add_reader(s.fileno(), answer)
    try:
        yield s.getsockname()[:2]
    finally:
        loop.remove_reader(s.fileno())
        s.close()


async def _ask(
    fam: int, to: tuple[str, int], data: bytes, timeout: float = 3.0, s: socket.socket | None = None
) -> bytes | None:
    own = s is None
    if s is None:
        s = _udp(fam, "::1" if fam == socket.AF_INET6 else "127.0.0.1")
    loop = asyncio.get_running_loop()
    try:
        await loop.sock_sendto(s, data, to)
        return await asyncio.wait_for(loop.sock_recv(s, 65535), timeout)
    except TimeoutError:
        return None
    finally:
        if own:
            s.close()


def _proxy(fam: int, host: str, target: tuple[str, int], **kw: object) -> UdpProxy:
    front = _udp(fam, host)
    p = UdpProxy(front, target, **kw)  # type: ignore[arg-type]
    p.start()
    return p


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@needs_v6
@pytest.mark.parametrize(
    ("front", "back"),
    [
        ((socket.AF_INET6, "::1"), (socket.AF_INET, "127.0.0.1")),
        ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")),
    ],
    ids=["v6-to-v4", "v4-to-v6"],
)
def test_datagrams_cross_families_and_answers_reach_their_client(
    front: tuple[int, str], back: tuple[int, str]
) -> None:
    async def main() -> None:
        async with _echo(*back) as target:
            budget = FlowBudget()
            p = _proxy(*front, target, budget=budget)
            to = p.front.getsockname()[:2]
            try:
                one, two = _udp(front[0], front[1]), _udp(front[0], front[1])
                try:
                    a1 = await _ask(front[0], to, b"one", s=one)
                    a2 = await _ask(front[0], to, b"two", s=two)
                    again = await _ask(front[0], to, b"one again", s=one)
                finally:
                    one.close()
                    two.close()
                assert a1 is not None and a1.endswith(b":one")
                assert a2 is not None and a2.endswith(b":two")
                # a flow per client: the same upstream port for one client's datagrams
                assert again is not None and again.split(b":")[0] == a1.split(b":")[0]
                assert a1.split(b":")[0] != a2.split(b":")[0]
                assert len(p.flows) == 2 and budget.open == 2
            finally:
                p.close()
            assert budget.open == 0 and not p.flows

    asyncio.run(main())


def test_idle_flows_end_and_their_sockets_close() -> None:
    async def main() -> None:
        async with _echo(socket.AF_INET, "127.0.0.1") as target:
            budget = FlowBudget()
            before = _open_fds()
            p = _proxy(socket.AF_INET, "127.0.0.1", target, budget=budget, idle=0.2)
            to = p.front.getsockname()[:2]
            try:
                assert await _ask(socket.AF_INET, to, b"x") is not None
                assert len(p.flows) == 1 and _open_fds() == before + 2
                await asyncio.sleep(0.6)
                assert not p.flows and budget.open == 0 and _open_fds() == before + 1
                # a client coming back gets a new flow
                assert await _ask(socket.AF_INET, to, b"y") is not None
            finally:
                p.close()
            assert _open_fds() == before

    asyncio.run(main())


def test_a_flood_of_clients_is_bounded_and_the_open_flows_go_on() -> None:
    """Hostile input: many source addresses (ports) at once. Past the caps a new client's
    datagrams are dropped; the state never grows past them; clients already served still are."""

    async def flood(to: tuple[str, int], n: int, budget: FlowBudget, refused: int) -> None:
        socks = [_udp(socket.AF_INET, "127.0.0.1") for _ in range(n)]
        try:
            for s in socks:
                s.sendto(b"n", to)
            for _ in range(200):  # the proxy reads them: until it has dropped what it must
                if budget.refused >= refused:
                    return
                await asyncio.sleep(0.01)
        finally:
            for s in socks:
                s.close()

    async def main() -> None:
        async with _echo(socket.AF_INET, "127.0.0.1") as target:
            budget = FlowBudget(total=5)
            p = _proxy(socket.AF_INET, "127.0.0.1", target, budget=budget, per_port=3)
            q = _proxy(socket.AF_INET, "127.0.0.1", target, budget=budget, per_port=3)
            to, to_q = p.front.getsockname()[:2], q.front.getsockname()[:2]
            first = _udp(socket.AF_INET, "127.0.0.1")
            try:
                assert await _ask(socket.AF_INET, to, b"first", s=first, timeout=5) is not None
                await flood(to, 10, budget, 8)  # per_port 3, one taken: 2 in, 8 dropped
                assert len(p.flows) == 3 and budget.refused == 8
                # the total cap across ports: q gets only what is left of 5
                await flood(to_q, 5, budget, 11)
                assert len(q.flows) == 2 and budget.open == 5 and budget.refused == 11
                assert await _ask(socket.AF_INET, to, b"still", s=first, timeout=5) is not None
            finally:
                first.close()
                p.close()
                q.close()
            assert budget.open == 0

    asyncio.run(main())


def test_a_datagram_as_large_as_udp_allows_passes_whole() -> None:
    async def main() -> None:
        async with _echo(socket.AF_INET, "127.0.0.1") as target:
            p = _proxy(socket.AF_INET, "127.0.0.1", target, budget=FlowBudget())
            try:
                big = b"z" * 65000
                answer = await _ask(socket.AF_INET, p.front.getsockname()[:2], big)
                assert answer is not None and answer.endswith(big)
            finally:
                p.close()

    asyncio.run(main())


def test_a_silent_container_keeps_nothing_past_close() -> None:
    """No one listens on the container's port: datagrams are lost, errors do not escape."""

    async def main() -> None:
        dead = _udp(socket.AF_INET, "127.0.0.1")
        target = dead.getsockname()[:2]
        dead.close()
        before = _open_fds()
        p = _proxy(socket.AF_INET, "127.0.0.1", target, budget=FlowBudget())
        try:
            to = p.front.getsockname()[:2]
            assert await _ask(socket.AF_INET, to, b"a", timeout=0.2) is None
            assert await _ask(socket.AF_INET, to, b"b", timeout=0.2) is None
        finally:
            p.close()
        assert _open_fds() == before

    asyncio.run(main())


@needs_v6
def test_a_published_udp_port_on_the_other_family_is_proxied_and_closed_with_it() -> None:
    """PortMapper: `-p [::1]::PORT/udp` for a container with IPv4 alone goes through the proxy
    (no DNAT across families); unpublishing ends its flows and frees the port."""
    from berth.networks.ports import PortMapper

    async def main() -> None:
        async with _echo(socket.AF_INET, "127.0.0.1") as (ip, port):
            pm = PortMapper("BERTH-x", lambda net: "br-x", iptables=False)
            before = _open_fds()
            ports = await pm.publish(
                "c" * 64, {f"{port}/udp": [{"HostIp": "::1", "HostPort": ""}]}, ip, "n"
            )
            host_port = int(ports[f"{port}/udp"][0]["HostPort"])
            try:
                got = await _ask(socket.AF_INET6, ("::1", host_port), b"hi")
                assert got is not None and got.endswith(b":hi")
                assert pm.udp_flows.open == 1
            finally:
                pm.unpublish("c" * 64, "n")
            assert pm.udp_flows.open == 0 and _open_fds() == before
            with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
                s.bind(("::1", host_port))  # free again

    asyncio.run(main())
