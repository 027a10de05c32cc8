"""IPv6 as dockerd has it (issue 15): ports published on `[::]` beside `0.0.0.0` (DNAT by
ip6tables, the proxy on loopback), IPv6 on the default bridge (`--ipv6 --fixed-cidr-v6`), and
IPv6-only networks (`EnableIPv4: false`, API 1.48). Only unique local prefixes and loopback;
traffic stays on bridges and namespaces the tests made."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import shutil
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .conftest import Daemon, running_daemon

pytestmark = pytest.mark.root

CGI = (
    "mkdir -p /www/cgi-bin && printf '#!/bin/sh\\necho Content-Type: text/plain\\n"
    "echo\\necho $REMOTE_ADDR\\n' > /www/cgi-bin/ip && chmod +x /www/cgi-bin/ip && "
    "exec httpd -f -p 80 -h /www"
)


def _sh(*args: str) -> str:
    return subprocess.run(args, capture_output=True, text=True).stdout


def _ip6tables_all() -> str:
    return _sh("ip6tables", "-w", "-S") + _sh("ip6tables", "-w", "-t", "nat", "-S")


def _fetch(url: str) -> str:
    return urllib.request.urlopen(url, timeout=5).read().decode().strip()


@contextlib.contextmanager
def _peer(tag: str) -> Iterator[Callable[[str], subprocess.CompletedProcess[str]]]:
    """Another host: a network namespace of this test's own behind a veth pair, on
    fd00:b3:63:ff::/64 (the host is ::1 there, the peer ::2); yields a fetch from it."""
    ns, host_if, peer_if = f"bt-6p-{tag}", f"v6h{tag}", f"v6g{tag}"
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    run("ip", "netns", "add", ns)
    try:
        run("ip", "link", "add", host_if, "type", "veth", "peer", "name", peer_if)
        run("ip", "link", "set", peer_if, "netns", ns)
        run("ip", "addr", "add", "fd00:b3:63:ff::1/64", "dev", host_if, "nodad")
        run("ip", "link", "set", host_if, "up")
        run(
            "ip",
            "netns",
            "exec",
            ns,
            "ip",
            "addr",
            "add",
            "fd00:b3:63:ff::2/64",
            "dev",
            peer_if,
            "nodad",
        )
        run("ip", "netns", "exec", ns, "ip", "link", "set", peer_if, "up")
        code = (
            "import urllib.request, sys; print(urllib.request.urlopen(sys.argv[1], "
            "timeout=5).read().decode().strip())"
        )

        def fetch(url: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["ip", "netns", "exec", ns, sys.executable, "-c", code, url],
                capture_output=True,
                text=True,
                timeout=20,
            )

        yield fetch
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def _docker(daemon: Daemon, *args: str) -> str:
    env = {**daemon.env, "DOCKER_CONFIG": str(daemon.base / "cfg")}
    r = subprocess.run(["docker", *args], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_ports_are_published_on_both_families(daemon: Daemon) -> None:
    """`-p 80` holds 0.0.0.0 and [::] on one port, `-p [::1]::80` only [::1], as dockerd 20.10
    shows them; [::] reaches the container's IPv6 address (DNAT from another host keeps its
    address), or its IPv4 one through the proxy on an IPv4-only network. The ip6tables rules
    go with the container."""
    if not shutil.which("ip6tables"):
        pytest.skip("no ip6tables here")
    daemon.ok(
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "fd00:b3:163::/64",
        "--subnet",
        "10.253.163.0/24",
        "v6ports",
    )
    cid = daemon.ok(
        "run",
        "-d",
        "--network",
        "v6ports",
        "-p",
        "80",
        "-p",
        "[::1]::80",
        "busybox",
        "sh",
        "-c",
        CGI,
    ).strip()
    v4only = daemon.ok("run", "-d", "-p", "80", "busybox", "sh", "-c", CGI).strip()
    try:
        ports = daemon.inspect(cid)["NetworkSettings"]["Ports"]["80/tcp"]
        assert [p["HostIp"] for p in ports] == ["0.0.0.0", "::", "::1"]
        anyp, loop = ports[0]["HostPort"], ports[2]["HostPort"]
        assert ports[1]["HostPort"] == anyp
        assert daemon.inspect(cid)["HostConfig"]["PortBindings"]["80/tcp"] == [
            {"HostIp": "", "HostPort": ""},
            {"HostIp": "::1", "HostPort": ""},
        ]
        # loopback goes through the proxy: the container sees its gateway
        assert _fetch(f"http://[::1]:{anyp}/cgi-bin/ip") == "[fd00:b3:163::1]"
        assert _fetch(f"http://[::1]:{loop}/cgi-bin/ip") == "[fd00:b3:163::1]"
        assert _fetch(f"http://127.0.0.1:{anyp}/cgi-bin/ip") == "[::ffff:10.253.163.1]"
        expected = [
            f"80/tcp -> 0.0.0.0:{anyp}",
            f"80/tcp -> [::1]:{loop}",
            f"80/tcp -> [::]:{anyp}",
        ]  # the docker CLI's (natural) order
        assert daemon.ok("port", cid).splitlines() == expected
        assert f"0.0.0.0:{anyp}->80/tcp, [::]:{anyp}->80/tcp, [::1]:{loop}->80/tcp" in daemon.ok(
            "ps", "--no-trunc", "--format", "{{.ID}} {{.Ports}}"
        )
        if shutil.which("docker"):
            assert _docker(daemon, "port", cid).splitlines() == expected
        ctr6 = daemon.inspect(cid)["NetworkSettings"]["Networks"]["v6ports"]["GlobalIPv6Address"]
        assert f"--to-destination [{ctr6}]:80" in _ip6tables_all()
        with _peer(daemon.bridge[2:]) as fetch:
            # from another host: DNAT by ip6tables, the client's own address kept
            out = fetch(f"http://[fd00:b3:63:ff::1]:{anyp}/cgi-bin/ip")
            assert out.stdout.strip() == "[fd00:b3:63:ff::2]", out.stderr
            # ip6tables' nat table flushed under the daemon (a firewall reload): put back
            # before the next network create, as the IPv4 rules are
            chain = f"BERTH-{daemon.bridge[:12]}-DNAT"
            subprocess.run(["ip6tables", "-w", "-t", "nat", "-F", chain], check=True)
            subprocess.run(
                [
                    "ip6tables",
                    "-w",
                    "-t",
                    "nat",
                    "-D",
                    "PREROUTING",
                    "-m",
                    "addrtype",
                    "--dst-type",
                    "LOCAL",
                    "-j",
                    chain,
                ],
                check=True,
            )
            daemon.ok("network", "create", "v6kick")
            daemon.ok("network", "rm", "v6kick")
            out = fetch(f"http://[fd00:b3:63:ff::1]:{anyp}/cgi-bin/ip")
            assert out.stdout.strip() == "[fd00:b3:63:ff::2]", out.stderr
        # an IPv4-only network: [::] is proxied to the container's IPv4 address
        ports = daemon.inspect(v4only)["NetworkSettings"]["Ports"]["80/tcp"]
        assert [p["HostIp"] for p in ports] == ["0.0.0.0", "::"]
        gw = daemon.inspect(v4only)["NetworkSettings"]["Gateway"]
        assert _fetch(f"http://[::1]:{ports[1]['HostPort']}/cgi-bin/ip") == f"[::ffff:{gw}]"
    finally:
        daemon.berth("rm", "-f", cid, v4only)
        daemon.berth("network", "rm", "v6ports")
    rules = _ip6tables_all()
    assert "fd00:b3:163:" not in rules and f"--dport {anyp} " not in rules
    assert f":{anyp} " not in _sh("ss", "-ltn")


def test_a_port_taken_on_ipv6_is_refused(daemon: Daemon) -> None:
    """[::]'s port is the one 0.0.0.0 got; one held by another program is Docker's error."""
    import socket

    s = socket.socket(socket.AF_INET6)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind(("::", 0))
    s.listen()
    port = s.getsockname()[1]
    try:
        r = daemon.berth("run", "--rm", "-p", f"{port}:80", "busybox", "true")
        assert r.returncode == 125 and f"Bind for [::]:{port} failed" in r.stderr
        # nothing held on the IPv4 side either
        assert f"0.0.0.0:{port} " not in _sh("ss", "-ltn")
    finally:
        s.close()


def _derived(subnet: str, mac: str) -> str:
    """dockerd's IPv6 address on its default bridge: the /64's prefix and the MAC."""
    net = ipaddress.IPv6Network(subnet)
    return str(ipaddress.IPv6Address(int(net.network_address) | int(mac.replace(":", ""), 16)))


def test_ipv6_on_the_default_bridge(tmp_path: Path, rootfs_tar: Path) -> None:
    """`berthd --ipv6 --fixed-cidr-v6` (or daemon.json's keys): the default bridge shows the
    subnet as dockerd 20.10 does, and a container on it has the MAC-derived IPv6 address, an
    /etc/hosts line, a default route, and reaches the bridge; without them at the next start
    the bridge has IPv4 alone again. Nothing of it is left once the daemon stops."""
    if not shutil.which("ip6tables"):
        pytest.skip("no ip6tables here")
    subnet = "fd00:b3:163:1::/64"
    with running_daemon(tmp_path / "d", rootfs_tar, "--ipv6", "--fixed-cidr-v6", subnet) as d:
        chain = f"BERTH-{d.bridge[:12]}"
        net = json.loads(d.ok("network", "inspect", "bridge"))[0]
        v4 = str(ipaddress.ip_interface(d.bip).network)
        assert net["EnableIPv6"] is True and net["IPAM"]["Config"] == [
            {"Subnet": v4, "Gateway": d.bip.split("/")[0]},
            {"Subnet": subnet},
        ]
        cid = d.ok("run", "-d", "busybox", "sh", "-c", CGI).strip()
        ns = d.inspect(cid)["NetworkSettings"]
        ip6 = _derived(subnet, ns["MacAddress"])
        assert (ns["GlobalIPv6Address"], ns["GlobalIPv6PrefixLen"], ns["IPv6Gateway"]) == (
            ip6,
            64,
            "fd00:b3:163:1::1",
        )
        assert ns["Networks"]["bridge"]["GlobalIPv6Address"] == ip6
        out = d.ok(
            "exec", cid, "sh", "-c", "cat /etc/hosts; ip -6 route; ping -6 -c1 -W2 fd00:b3:163:1::1"
        )
        assert f"{ip6}\t{cid[:12]}" in out and "default via fd00:b3:163:1::1" in out
        assert "1 packets received" in out
        assert f"-s {subnet} ! -o {d.bridge} -j MASQUERADE" in _ip6tables_all()
        # the host reaches it over IPv6 too
        assert _fetch(f"http://[{ip6}]/cgi-bin/ip") == "[fd00:b3:163:1::1]"
        d.ok("rm", "-f", cid)
        d.stop()
        assert chain not in _ip6tables_all()
        assert "fd00:b3:163:1::1" not in _sh("ip", "-6", "addr")
        # the same from daemon.json; the network keeps its id
        (d.base / "daemon.json").write_text(json.dumps({"ipv6": True, "fixed-cidr-v6": subnet}))
        d.start()
        again = json.loads(d.ok("network", "inspect", "bridge"))[0]
        assert again["Id"] == net["Id"] and again["IPAM"]["Config"] == net["IPAM"]["Config"]
        assert "inet6 fd00:b3:163:1::1/64" in _sh("ip", "-6", "addr", "show", "dev", d.bridge)
        # stopped with a container running, the daemon keeps its network (live restore); IPv6
        # off at the next start takes the bridge's IPv6 address and rules away
        kept = d.ok("run", "-d", "busybox", "sleep", "60").strip()
        d.stop()
        assert "fd00:b3:163:1::1/64" in _sh("ip", "-6", "addr", "show", "dev", d.bridge)
        (d.base / "daemon.json").write_text("{}")
        d.start()
        d.ok("rm", "-f", kept)
        assert "fd00:b3:163:1::1/64" not in _sh("ip", "-6", "addr", "show", "dev", d.bridge)
        assert subnet not in _ip6tables_all()
        plain = json.loads(d.ok("network", "inspect", "bridge"))[0]
        assert plain["EnableIPv6"] is False and len(plain["IPAM"]["Config"]) == 1
        out = d.ok("run", "--rm", "busybox", "sh", "-c", "ip -6 addr show eth0 scope global")
        assert "inet6" not in out
    assert chain not in _ip6tables_all()


def test_ipv6_only_networks(daemon: Daemon) -> None:
    """`network create --ipv4=false --ipv6` (API 1.48; the docker CLI 28 where installed):
    EnableIPv4 false and no IPv4 pool, containers with an IPv6 address alone that find each
    other by name and are reached through published ports from both families."""
    if not shutil.which("ip6tables"):
        pytest.skip("no ip6tables here")
    create = [
        "network",
        "create",
        "--ipv4=false",
        "--ipv6",
        "--subnet",
        "fd00:b3:163:2::/64",
        "v6only",
    ]
    if shutil.which("docker"):
        _docker(daemon, *create)
    else:
        daemon.ok(*create)
    srv = ""
    try:
        net = json.loads(daemon.ok("network", "inspect", "v6only"))[0]
        assert (net["EnableIPv4"], net["EnableIPv6"]) == (False, True)
        assert net["IPAM"]["Config"] == [{"Subnet": "fd00:b3:163:2::/64"}]
        srv = daemon.ok(
            "run",
            "-d",
            "--name",
            "v6srv",
            "--network",
            "v6only",
            "-p",
            "80",
            "busybox",
            "sh",
            "-c",
            CGI,
        ).strip()
        ep = daemon.inspect(srv)["NetworkSettings"]["Networks"]["v6only"]
        assert (ep["IPAddress"], ep["Gateway"], ep["IPPrefixLen"]) == ("", "", 0)
        assert ep["GlobalIPv6Address"] == "fd00:b3:163:2::2"
        assert ep["IPv6Gateway"] == "fd00:b3:163:2::1"
        shown = json.loads(daemon.ok("network", "inspect", "v6only"))[0]["Containers"][srv]
        assert (shown["IPv4Address"], shown["IPv6Address"]) == ("", "fd00:b3:163:2::2/64")
        out = daemon.ok(
            "run",
            "--rm",
            "--network",
            "v6only",
            "busybox",
            "sh",
            "-c",
            "ip -4 addr show eth0; ip -6 addr show eth0 scope global; "
            "wget -qO- http://v6srv/cgi-bin/ip",
        )
        assert "inet " not in out and "inet6 fd00:b3:163:2::3/64" in out
        assert out.strip().endswith("[fd00:b3:163:2::3]")
        ports = daemon.inspect(srv)["NetworkSettings"]["Ports"]["80/tcp"]
        assert [p["HostIp"] for p in ports] == ["0.0.0.0", "::"]
        port = ports[0]["HostPort"]
        # IPv4 clients too: the proxy carries them to the container's IPv6 address
        assert _fetch(f"http://127.0.0.1:{port}/cgi-bin/ip") == "[fd00:b3:163:2::1]"
        assert _fetch(f"http://[::1]:{port}/cgi-bin/ip") == "[fd00:b3:163:2::1]"
        for bad in (["--ip", "10.1.2.3"], []):
            r = daemon.berth("run", "--rm", "--network", "v6only", *bad, "busybox", "true")
            assert (r.returncode == 0) == (not bad), r.stderr
        for args in (["--ipv4=false"], ["--ipv4=false", "--ipv6", "--subnet", "10.253.165.0/24"]):
            r = daemon.berth("network", "create", *args, "v6bad")
            assert r.returncode != 0 and "Error response from daemon" in r.stderr
    finally:
        if srv:
            daemon.berth("rm", "-f", srv)
        daemon.berth("network", "rm", "v6only")
    assert "fd00:b3:163:2:" not in _ip6tables_all()


ECHO = """
import socket, sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 5353))
print("ready", flush=True)
while True:
    data, addr = s.recvfrom(65535)
    s.sendto(addr[0].encode() + b" " + data, addr)
"""


@contextlib.contextmanager
def _udp_echo(daemon: Daemon, cid: str, ip: str) -> Iterator[None]:
    """A UDP echo server on `ip`:5353 in the container's network namespace (busybox has no UDP
    server): each answer is the client's address as the container sees it, then the datagram."""
    pid = daemon.inspect(cid)["State"]["Pid"]
    proc = subprocess.Popen(
        ["nsenter", f"--net=/proc/{pid}/ns/net", sys.executable, "-c", ECHO, ip],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.parametrize("ipv4_only", [True, False], ids=["ipv4-network", "ipv6-network"])
def test_udp_ports_across_families(daemon: Daemon, ipv4_only: bool) -> None:
    """A UDP port published on 0.0.0.0 and [::]: datagrams of the family the container lacks
    (and loopback's) go through the daemon's UDP proxy, and the answers come back to the client
    that asked, as dockerd's userland proxy carries them."""
    if not ipv4_only and not shutil.which("ip6tables"):
        pytest.skip("no ip6tables here")
    net = "udpx4" if ipv4_only else "udpx6"
    create = [] if ipv4_only else ["--ipv4=false", "--ipv6", "--subnet", "fd00:b3:163:5::/64"]
    daemon.ok("network", "create", *create, net)
    cid = ""
    try:
        cid = daemon.ok(
            "run", "-d", "--network", net, "-p", "5353/udp", "busybox", "sleep", "120"
        ).strip()
        ep = daemon.inspect(cid)["NetworkSettings"]["Networks"][net]
        ctr_ip = ep["IPAddress"] or ep["GlobalIPv6Address"]
        ports = daemon.inspect(cid)["NetworkSettings"]["Ports"]["5353/udp"]
        assert [p["HostIp"] for p in ports] == ["0.0.0.0", "::"]
        port = int(ports[0]["HostPort"])
        gw = ep["Gateway"] or ep["IPv6Gateway"]
        with _udp_echo(daemon, cid, ctr_ip):
            for host in ("::1", "127.0.0.1"):
                fam = socket.AF_INET6 if ":" in host else socket.AF_INET
                with socket.socket(fam, socket.SOCK_DGRAM) as s:
                    s.settimeout(5)
                    for n in range(2):  # one client: one flow, used twice
                        s.sendto(b"hello %d" % n, (host, port))
                        # the proxy's own address on the bridge is the client the container sees
                        assert s.recv(65535) == b"%s hello %d" % (gw.encode(), n)
    finally:
        if cid:
            daemon.berth("rm", "-f", cid)
        daemon.berth("network", "rm", net)
    # the host port (both families) is free again
    assert f":{port} " not in _sh("ss", "-lun")
