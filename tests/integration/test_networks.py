"""Networks: the default bridge, user-defined networks where containers find each other by
name, isolation between networks, and the network commands with Docker's errors. All traffic
stays on bridges this test's daemon made (and nothing leaves the machine: see conftest)."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from .conftest import Daemon

pytestmark = pytest.mark.root


def test_default_bridge(daemon: Daemon) -> None:
    out = daemon.ok(
        "run",
        "--rm",
        "-h",
        "bridged",
        "busybox",
        "sh",
        "-c",
        "ip -o -4 addr show eth0; ip route; tail -1 /etc/hosts",
    )
    gw = daemon.bip.split("/")[0]
    prefix = gw.rsplit(".", 1)[0]
    assert f"inet {prefix}." in out and f"default via {gw} dev eth0" in out
    assert out.strip().endswith("bridged")
    # the container reaches the host on its bridge address, and the host reaches it
    r = daemon.berth("run", "--rm", "busybox", "ping", "-c", "1", "-W", "2", gw)
    assert r.returncode == 0
    cid = daemon.ok("run", "-d", "busybox", "httpd", "-f", "-p", "8080", "-h", "/etc").strip()
    try:
        ip = daemon.inspect(cid)["NetworkSettings"]["IPAddress"]
        assert ip.startswith(prefix + ".")
        net = daemon.inspect(cid)["NetworkSettings"]["Networks"]["bridge"]
        assert net["Gateway"] == gw and net["MacAddress"].startswith("02:42:")
        body = urllib.request.urlopen(f"http://{ip}:8080/hostname", timeout=5).read()
        assert body.decode().strip() == cid[:12]
    finally:
        daemon.ok("rm", "-f", cid)
    # on the default bridge names do not resolve, as in Docker
    assert "nameserver 127.0.0.11" not in daemon.ok(
        "run", "--rm", "busybox", "cat", "/etc/resolv.conf"
    )


def test_user_networks_resolve_names_and_are_isolated(daemon: Daemon) -> None:
    daemon.ok("network", "create", "--label", "t=1", "front")
    daemon.ok("network", "create", "back")
    try:
        daemon.ok(
            "run",
            "-d",
            "--name",
            "srv",
            "--network",
            "front",
            "--network-alias",
            "api",
            "busybox",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/etc",
        )
        cid = daemon.inspect("srv")["Id"]
        out = daemon.ok(
            "run",
            "--rm",
            "--network",
            "front",
            "busybox",
            "sh",
            "-c",
            "cat /etc/resolv.conf; wget -qO- http://srv/hostname; "
            f"wget -qO- http://api/hostname; wget -qO- http://{cid[:12]}/hostname",
        )
        assert "nameserver 127.0.0.11" in out
        assert out.count(cid[:12]) >= 3
        ip = daemon.inspect("srv")["NetworkSettings"]["Networks"]["front"]["IPAddress"]
        r = daemon.berth(
            "run",
            "--rm",
            "--network",
            "back",
            "busybox",
            "wget",
            "-T",
            "2",
            "-qO-",
            f"http://{ip}/hostname",
        )
        assert r.returncode != 0  # another network cannot reach it
        r = daemon.berth(
            "run",
            "--rm",
            "--network",
            "back",
            "busybox",
            "wget",
            "-T",
            "2",
            "-qO-",
            "http://srv/hostname",
        )
        assert r.returncode != 0  # nor resolve its name
        info = json.loads(daemon.ok("network", "inspect", "front"))[0]
        assert cid in info["Containers"] and info["Labels"] == {"t": "1"}
        assert info["IPAM"]["Config"][0]["Subnet"]
        r = daemon.berth("network", "rm", "front")
        assert r.returncode == 1 and "has active endpoints" in r.stderr
    finally:
        daemon.berth("rm", "-f", "srv")
        daemon.berth("network", "rm", "front", "back")
    assert "front" not in daemon.ok("network", "ls", "--format", "{{.Name}}").split()


def test_static_ip_internal_and_connect(daemon: Daemon) -> None:
    daemon.ok("network", "create", "--subnet", "10.250.7.0/24", "--internal", "inner")
    try:
        out = daemon.ok(
            "run",
            "--rm",
            "--network",
            "inner",
            "--ip",
            "10.250.7.50",
            "busybox",
            "sh",
            "-c",
            "ip -o -4 addr show eth0; ip route",
        )
        assert "10.250.7.50/24" in out and "default" not in out  # internal: no way out
        daemon.ok("create", "--name", "late", "busybox", "sh", "-c", "ip -o -4 addr | wc -l")
        daemon.ok("network", "connect", "--alias", "later", "inner", "late")
        daemon.ok("start", "late")
        assert daemon.ok("wait", "late").strip() == "0"
        assert daemon.ok("logs", "late").strip() == "3"  # lo, eth0 (bridge), eth1 (inner)
        daemon.ok("rm", "late")
    finally:
        daemon.berth("network", "rm", "inner")


def test_network_errors(daemon: Daemon) -> None:
    r = daemon.berth("run", "--rm", "--network", "no-such-net", "busybox", "true")
    assert r.returncode == 125 and "network no-such-net not found" in r.stderr
    daemon.ok("network", "create", "--subnet", "10.251.0.0/24", "n1")
    try:
        r = daemon.berth("network", "create", "--subnet", "10.251.0.128/25", "n2")
        assert r.returncode == 1 and "Pool overlaps" in r.stderr
        r = daemon.berth("network", "create", "n1")
        assert r.returncode == 1 and "already exists" in r.stderr
        r = daemon.berth("network", "rm", "bridge")
        assert r.returncode == 1 and "pre-defined network" in r.stderr
        r = daemon.berth(
            "run", "--rm", "--network", "bridge", "--network-alias", "x", "busybox", "true"
        )
        assert r.returncode == 125 and "user defined networks" in r.stderr
    finally:
        daemon.berth("network", "rm", "n1")
    assert not any(
        line
        for line in subprocess.run(
            ["ip", "-o", "link"], capture_output=True, text=True
        ).stdout.splitlines()
        if "br-" in line and "10.251" in line
    )


def _cgi_server(daemon: Daemon, *args: str) -> str:
    """busybox httpd with a CGI that answers the client's address."""
    script = (
        "mkdir -p /www/cgi-bin && printf '#!/bin/sh\\necho Content-Type: text/plain\\n"
        "echo\\necho $REMOTE_ADDR\\n' > /www/cgi-bin/ip && chmod +x /www/cgi-bin/ip && "
        "exec httpd -f -p 80 -h /www"
    )
    return daemon.ok("run", "-d", *args, "busybox", "sh", "-c", script).strip()


def test_published_ports(daemon: Daemon) -> None:
    cid = _cgi_server(daemon, "-p", "127.0.0.1:0:80", "-p", "80")
    other = daemon.ok("run", "-d", "busybox", "httpd", "-f", "-p", "81", "-h", "/etc").strip()
    try:
        ports = daemon.inspect(cid)["NetworkSettings"]["Ports"]["80/tcp"]
        loop = next(int(p["HostPort"]) for p in ports if p["HostIp"] == "127.0.0.1")
        anyp = next(int(p["HostPort"]) for p in ports if p["HostIp"] == "0.0.0.0")
        body = urllib.request.urlopen(f"http://127.0.0.1:{loop}/cgi-bin/ip", timeout=5).read()
        assert body.decode().strip()  # through the loopback proxy
        assert f"127.0.0.1:{loop}->80/tcp" in daemon.ok("ps", "--format", "{{.Ports}}")
        # in the docker CLI's order: 0.0.0.0, 127.0.0.1, [::]
        assert daemon.ok("port", cid, "80").splitlines()[1].startswith("127.0.0.1:")
        r = daemon.berth("run", "-d", "-p", f"127.0.0.1:{loop}:80", "busybox", "true")
        assert r.returncode == 125 and "port is already allocated" in r.stderr
        # another host: a network namespace of this test's own, behind a veth pair
        ip = daemon.inspect(other)["NetworkSettings"]["IPAddress"]
        _from_another_host(daemon, anyp, unpublished=f"http://{ip}:81/hostname")
    finally:
        daemon.berth("rm", "-f", cid, other)
        daemon.berth("container", "prune", "-f")


def _from_another_host(daemon: Daemon, port: int, unpublished: str) -> None:
    ns = f"bt-peer-{daemon.bridge[2:]}"
    host_if, peer_if = f"vp{daemon.bridge[2:]}", f"vq{daemon.bridge[2:]}"
    sub = "10.252.9"
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    run("ip", "netns", "add", ns)
    try:
        run("ip", "link", "add", host_if, "type", "veth", "peer", "name", peer_if)
        run("ip", "link", "set", peer_if, "netns", ns)
        run("ip", "addr", "add", f"{sub}.1/30", "dev", host_if)
        run("ip", "link", "set", host_if, "up")
        run("ip", "netns", "exec", ns, "ip", "addr", "add", f"{sub}.2/30", "dev", peer_if)
        run("ip", "netns", "exec", ns, "ip", "link", "set", peer_if, "up")
        run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        # the host's busybox-static crashes in glibc's NSS here: use Python as the client
        fetch = (
            "import urllib.request, sys; print(urllib.request.urlopen(sys.argv[1], "
            "timeout=5).read().decode().strip())"
        )
        out = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                ns,
                sys.executable,
                "-c",
                fetch,
                f"http://{sub}.1:{port}/cgi-bin/ip",
            ],
            capture_output=True,
            text=True,
            timeout=20,
        )
        # kernel forwarding keeps the client's own address
        # (busybox httpd writes it IPv4-mapped: [::ffff:a.b.c.d])
        assert out.stdout.strip().removeprefix("[::ffff:").rstrip("]") == f"{sub}.2", out.stderr
        # and nothing beyond what was published: a route to the containers does not help
        run(
            "ip",
            "netns",
            "exec",
            ns,
            "ip",
            "route",
            "add",
            daemon.bip.rsplit(".", 1)[0] + ".0/24",
            "via",
            f"{sub}.1",
        )
        out = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-c", fetch, unpublished],
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert out.returncode != 0 and not out.stdout.strip()
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_network_survives_a_daemon_restart(private_daemon: Daemon) -> None:
    d = private_daemon
    d.ok("network", "create", "keepnet")
    cid = _cgi_server(d, "--name", "kept", "--network", "keepnet", "-p", "127.0.0.1:0:80")
    ip = d.inspect(cid)["NetworkSettings"]["Networks"]["keepnet"]["IPAddress"]
    d.stop(signal.SIGKILL)
    d.start()
    st = d.inspect(cid)
    assert st["State"]["Running"]
    assert st["NetworkSettings"]["Networks"]["keepnet"]["IPAddress"] == ip
    port = int(st["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"])
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/cgi-bin/ip", timeout=5).read()
    assert body.strip()
    out = d.ok(
        "run", "--rm", "--network", "keepnet", "busybox", "wget", "-qO-", "http://kept/cgi-bin/ip"
    )
    assert out.strip()
    d.ok("rm", "-f", cid)
    d.ok("network", "rm", "keepnet")


def test_container_network_mode_and_extra_hosts(daemon: Daemon) -> None:
    cid = daemon.ok("run", "-d", "busybox", "httpd", "-f", "-p", "81", "-h", "/etc").strip()
    try:
        out = daemon.ok(
            "run",
            "--rm",
            "--network",
            f"container:{cid}",
            "busybox",
            "wget",
            "-qO-",
            "http://127.0.0.1:81/hostname",
        )
        assert out.strip() == cid[:12]  # the other container's own loopback
        out = daemon.ok(
            "run",
            "--rm",
            "--mac-address",
            "02:00:00:aa:bb:cc",
            "busybox",
            "cat",
            "/sys/class/net/eth0/address",
        )
        assert out.strip() == "02:00:00:aa:bb:cc"
        out = daemon.ok(
            "run",
            "--rm",
            "--add-host",
            "db.local:10.1.2.3",
            "--dns-search",
            "example.internal",
            "busybox",
            "sh",
            "-c",
            "grep db.local /etc/hosts; grep search /etc/resolv.conf",
        )
        assert "10.1.2.3\tdb.local" in out and "search example.internal" in out
    finally:
        daemon.ok("rm", "-f", cid)


def test_connect_and_disconnect_a_running_container(daemon: Daemon) -> None:
    daemon.ok("network", "create", "live-a")
    daemon.ok("network", "create", "live-b")
    try:
        daemon.ok("run", "-d", "--name", "hop", "--network", "live-a", "busybox", "sleep", "60")
        daemon.ok(
            "run",
            "-d",
            "--name",
            "dst",
            "--network",
            "live-b",
            "busybox",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/etc",
        )
        r = daemon.berth("exec", "hop", "wget", "-T", "2", "-qO-", "http://dst/hostname")
        assert r.returncode != 0  # not on live-b yet
        daemon.ok("network", "connect", "--alias", "hopper", "live-b", "hop")
        assert "eth1" in daemon.ok("exec", "hop", "ls", "/sys/class/net").split()
        out = daemon.ok("exec", "hop", "wget", "-qO-", "http://dst/hostname")
        assert out.strip() == daemon.inspect("dst")["Id"][:12]
        nets = daemon.inspect("hop")["NetworkSettings"]["Networks"]
        assert set(nets) == {"live-a", "live-b"} and nets["live-b"]["IPAddress"]
        # and the others find it by its new alias
        assert "1 packets received" in daemon.ok("exec", "dst", "ping", "-c1", "-W2", "hopper")
        daemon.ok("network", "disconnect", "live-b", "hop")
        assert "eth1" not in daemon.ok("exec", "hop", "ls", "/sys/class/net").split()
        assert set(daemon.inspect("hop")["NetworkSettings"]["Networks"]) == {"live-a"}
    finally:
        daemon.berth("rm", "-f", "hop", "dst")
        daemon.berth("network", "rm", "live-a", "live-b")


def test_connect_and_disconnect_edit_the_running_container_s_hosts_file(daemon: Daemon) -> None:
    """As dockerd 28: `network connect` appends the new addresses with the container's names to
    its /etc/hosts, `disconnect` removes those lines only; the docker CLI sees the same file."""
    daemon.ok("network", "create", "hosts-a")
    daemon.ok("network", "create", "--ipv6", "--subnet", "fd00:b5:7::/64", "hosts-b")
    docker = shutil.which("docker")
    try:
        daemon.ok(
            "run", "-d", "--name", "hostsc", "-h", "web", "--domainname", "example.test",
            "--network", "hosts-a", "busybox", "sleep", "60",
        )  # fmt: skip
        before = daemon.ok("exec", "hostsc", "cat", "/etc/hosts")
        ip_a = daemon.inspect("hostsc")["NetworkSettings"]["Networks"]["hosts-a"]["IPAddress"]
        assert f"{ip_a}\tweb.example.test web\n" in before
        daemon.ok("network", "connect", "hosts-b", "hostsc")
        b = daemon.inspect("hostsc")["NetworkSettings"]["Networks"]["hosts-b"]
        joined = daemon.ok("exec", "hostsc", "cat", "/etc/hosts")
        assert joined == before + (
            f"{b['IPAddress']}\tweb.example.test web\n"
            f"{b['GlobalIPv6Address']}\tweb.example.test web\n"
        )
        if docker is not None:
            seen = subprocess.run(
                [docker, "exec", "hostsc", "cat", "/etc/hosts"],
                env={**daemon.env, "DOCKER_CONFIG": str(daemon.base / "docker-config")},
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert seen.returncode == 0 and seen.stdout == joined, seen.stderr
        # the name resolves to an address on the new network too
        assert b["IPAddress"] in daemon.ok(
            "exec", "hostsc", "grep", "-F", b["IPAddress"], "/etc/hosts"
        )
        daemon.ok("network", "disconnect", "hosts-a", "hostsc")
        left = daemon.ok("exec", "hostsc", "cat", "/etc/hosts")
        assert ip_a not in left and f"{b['IPAddress']}\tweb.example.test web\n" in left
        # the last network's lines go with it
        daemon.ok("network", "disconnect", "hosts-b", "hostsc")
        assert b["IPAddress"] not in daemon.ok("exec", "hostsc", "cat", "/etc/hosts")
    finally:
        daemon.berth("rm", "-f", "hostsc")
        daemon.berth("network", "rm", "hosts-a", "hosts-b")


def _kernel_has(kind: str, parent: str) -> bool:
    probe = f"pk{parent[2:]}"
    ok = (
        subprocess.run(
            ["ip", "link", "add", probe, "link", parent, "type", kind], capture_output=True
        ).returncode
        == 0
    )
    subprocess.run(["ip", "link", "del", probe], capture_output=True)
    return ok


@pytest.mark.parametrize("driver", ["macvlan", "ipvlan"])
def test_macvlan_and_ipvlan_on_a_veth_parent(daemon: Daemon, driver: str) -> None:
    # the parent: one end of a veth pair this test makes (this kernel has no dummy links)
    parent = f"dm{daemon.bridge[2:]}"
    subprocess.run(
        ["ip", "link", "add", parent, "type", "veth", "peer", "name", parent + "x"], check=True
    )
    for link in (parent, parent + "x"):  # both ends up: the parent needs a carrier
        subprocess.run(["ip", "link", "set", link, "up"], check=True)
    net = f"{driver}-net"
    try:
        if not _kernel_has(driver, parent):
            pytest.skip(f"this kernel has no {driver} links")
        r = daemon.berth(
            "network",
            "create",
            "-d",
            driver,
            "-o",
            "parent=nosuchlink0",
            "--subnet",
            "10.254.1.0/24",
            net,
        )
        assert r.returncode == 1 and "parent interface was not found" in r.stderr
        daemon.ok(
            "network",
            "create",
            "-d",
            driver,
            "-o",
            f"parent={parent}",
            "--subnet",
            "10.254.1.0/24",
            net,
        )
        daemon.ok(
            "run",
            "-d",
            "--name",
            f"{driver}-a",
            "--network",
            net,
            "busybox",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/etc",
        )
        out = daemon.ok(
            "run",
            "--rm",
            "--network",
            net,
            "busybox",
            "sh",
            "-c",
            f"ip -o link show eth0; wget -qO- http://{driver}-a/hostname",
        )
        assert driver in out or "@if" in out
        assert out.strip().endswith(daemon.inspect(f"{driver}-a")["Id"][:12])
    finally:
        daemon.berth("rm", "-f", f"{driver}-a")
        daemon.berth("network", "rm", net)
        subprocess.run(["ip", "link", "del", parent], capture_output=True)


def test_other_names_go_to_the_upstream_resolver(tmp_path, rootfs_tar) -> None:  # type: ignore[no-untyped-def]
    """The embedded DNS forwards names it does not know to the daemon's resolvers: here a
    stand-in on 127.0.0.2:53 (dnslib) that answers one made-up name; nothing leaves the host."""
    import socket
    import threading

    from dnslib import QTYPE, RR, A, DNSRecord

    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        srv.bind(("127.0.0.2", 53))
    except OSError as e:
        pytest.skip(f"cannot play the upstream resolver on 127.0.0.2:53: {e}")
    srv.settimeout(0.2)
    stop = threading.Event()
    asked: list[str] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                data, addr = srv.recvfrom(4096)
            except OSError:
                continue
            q = DNSRecord.parse(data)
            asked.append(str(q.q.qname))
            reply = q.reply()
            if str(q.q.qname) == "upstream.berth-test." and q.q.qtype == QTYPE.A:
                reply.add_answer(RR(q.q.qname, QTYPE.A, rdata=A("127.0.0.1"), ttl=5))
            srv.sendto(reply.pack(), addr)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    d = Daemon(tmp_path / "updns")
    try:
        d.start(dns="127.0.0.2")
        d.ok("import", str(rootfs_tar), "busybox")
        d.ok("network", "create", "upnet")
        # resolves to 127.0.0.1: the ping goes to the container's own loopback
        out = d.ok(
            "run",
            "--rm",
            "--network",
            "upnet",
            "busybox",
            "ping",
            "-c1",
            "-W2",
            "upstream.berth-test",
        )
        assert "PING upstream.berth-test (127.0.0.1)" in out
        assert "upstream.berth-test." in asked
        d.ok("network", "rm", "upnet")
    finally:
        d.cleanup()
        stop.set()
        t.join()
        srv.close()


def _sh(*args: str) -> str:
    return subprocess.run(args, capture_output=True, text=True).stdout


def _link_with(cidr: str) -> str:
    """The host's link that has the address `cidr` (a network's bridge)."""
    return next(
        line.split()[1] for line in _sh("ip", "-o", "addr").splitlines() if f" {cidr} " in line
    )


def test_ipam_pools_aux_addresses_mtu_and_endpoint_options(daemon: Daemon) -> None:
    """Auxiliary addresses are never given out, IPAM and driver options are echoed as given,
    the MTU option is the bridge's and the containers' links', and an endpoint's MAC address,
    link-local addresses and driver options are its own."""
    r = daemon.berth(
        "network",
        "create",
        "--subnet",
        "10.253.1.0/29",
        "--aux-address",
        "far=10.253.2.1",
        "badaux",
    )
    assert r.returncode != 0 and "no matching subnet for aux-address 10.253.2.1" in r.stderr
    r = daemon.berth(
        "network", "create", "--subnet", "10.253.1.0/29", "--subnet", "10.253.3.0/29", "twosub"
    )
    assert r.returncode == 1 and "bridge driver doesn't support multiple subnets" in r.stderr
    r = daemon.berth("network", "create", "-o", "com.docker.network.driver.mtu=40", "badmtu")
    assert r.returncode == 1 and "invalid MTU number" in r.stderr
    daemon.ok(
        "network",
        "create",
        "--subnet",
        "10.253.1.0/29",
        "--aux-address",
        "r1=10.253.1.2",
        "--aux-address",
        "r2=10.253.1.3",
        "--ipam-opt",
        "foo=bar",
        "-o",
        "x=y",
        "-o",
        "com.docker.network.driver.mtu=1400",
        "auxnet",
    )
    try:
        info = json.loads(daemon.ok("network", "inspect", "auxnet"))[0]
        assert info["IPAM"]["Options"] == {"foo": "bar"}
        assert info["IPAM"]["Config"] == [
            {
                "Subnet": "10.253.1.0/29",
                "AuxiliaryAddresses": {"r1": "10.253.1.2", "r2": "10.253.1.3"},
            }
        ]
        assert info["Options"] == {"x": "y", "com.docker.network.driver.mtu": "1400"}
        bridge = _link_with("10.253.1.1/29")
        daemon.ok(
            "run",
            "-d",
            "--name",
            "auxa",
            "--network",
            "auxnet",
            "--mac-address",
            "02:00:00:00:00:07",
            "--link-local-ip",
            "169.254.7.7",
            "busybox",
            "sleep",
            "60",
        )
        out = daemon.ok(
            "exec",
            "auxa",
            "sh",
            "-c",
            "cat /sys/class/net/eth0/mtu; cat /sys/class/net/eth0/address; ip -o -4 addr show eth0",
        )
        assert out.split()[:2] == ["1400", "02:00:00:00:00:07"]
        assert "inet 10.253.1.4/29" in out and "inet 169.254.7.7/16" in out  # .2, .3 kept
        assert _sh("cat", f"/sys/class/net/{bridge}/mtu").strip() == "1400"
        veths = [p.name for p in Path(f"/sys/class/net/{bridge}/brif").iterdir()]
        assert veths and all(_sh("cat", f"/sys/class/net/{v}/mtu").strip() == "1400" for v in veths)
        ep = daemon.inspect("auxa")["NetworkSettings"]["Networks"]["auxnet"]
        assert ep["MacAddress"] == "02:00:00:00:00:07"
        assert ep["IPAMConfig"] == {"LinkLocalIPs": ["169.254.7.7"]}
        info = json.loads(daemon.ok("network", "inspect", "auxnet"))[0]
        assert next(iter(info["Containers"].values()))["MacAddress"] == "02:00:00:00:00:07"
        daemon.ok(
            "network",
            "connect",
            "--driver-opt",
            "k=v",
            "--ip",
            "10.253.1.6",
            "auxnet",
            daemon.ok("create", "--name", "auxb", "busybox", "true").strip(),
        )
        ep = daemon.inspect("auxb")["NetworkSettings"]["Networks"]["auxnet"]
        assert ep["DriverOpts"] == {"k": "v"} and ep["IPAMConfig"] == {"IPv4Address": "10.253.1.6"}
        r = daemon.berth(
            "run", "--rm", "--network", "auxnet", "--ip", "10.253.1.3", "busybox", "true"
        )
        assert r.returncode == 125 and "Address already in use" in r.stderr
    finally:
        daemon.berth("rm", "-f", "auxa", "auxb")
        daemon.berth("network", "rm", "auxnet")


def _ip6tables(*args: str) -> str:
    return _sh("ip6tables", "-w", *args)


def test_ipv6_networks(daemon: Daemon) -> None:
    """--ipv6 with a subnet of the user's (or a unique local /64 picked for them): the bridge
    has the gateway, containers get addresses (--ip6 too) and a default route, reach each
    other over IPv6, and ip6tables holds the same rules as iptables until the network goes."""
    if not shutil.which("ip6tables"):
        pytest.skip("no ip6tables here")
    chain = f"BERTH-{daemon.bridge[:12]}"
    daemon.ok(
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "fd00:b3:1::/64",
        "--subnet",
        "10.253.5.0/24",
        "v6net",
    )
    try:
        info = json.loads(daemon.ok("network", "inspect", "v6net"))[0]
        assert info["EnableIPv6"] is True
        assert info["IPAM"]["Config"] == [{"Subnet": "10.253.5.0/24"}, {"Subnet": "fd00:b3:1::/64"}]
        bridge = _link_with("10.253.5.1/24")
        assert "inet6 fd00:b3:1::1/64" in _sh("ip", "-6", "addr", "show", "dev", bridge)
        rules = _ip6tables("-S", f"{chain}-FWD") + _ip6tables("-t", "nat", "-S", f"{chain}-POST")
        assert f"-i {bridge} -o {bridge} -j ACCEPT" in rules
        assert "-s fd00:b3:1::/64 ! -o " + bridge + " -j MASQUERADE" in rules
        daemon.ok(
            "run",
            "-d",
            "--name",
            "v6a",
            "--network",
            "v6net",
            "--ip6",
            "fd00:b3:1::50",
            "busybox",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/etc",
        )
        out = daemon.ok(
            "run",
            "--rm",
            "--network",
            "v6net",
            "busybox",
            "sh",
            "-c",
            "ip -o -6 addr show eth0 scope global; ip -6 route; "
            "ping -6 -c1 -W2 fd00:b3:1::50 && ping -6 -c1 -W2 v6a && "
            "wget -qO- http://[fd00:b3:1::50]/hostname",
        )
        assert "inet6 fd00:b3:1::2/64" in out and "default via fd00:b3:1::1" in out
        assert "PING v6a (fd00:b3:1::50)" in out  # the embedded DNS's AAAA answer
        assert out.strip().endswith(daemon.inspect("v6a")["Id"][:12])
        ep = daemon.inspect("v6a")["NetworkSettings"]["Networks"]["v6net"]
        assert (ep["GlobalIPv6Address"], ep["GlobalIPv6PrefixLen"], ep["IPv6Gateway"]) == (
            "fd00:b3:1::50",
            64,
            "fd00:b3:1::1",
        )
        assert ep["IPAMConfig"] == {"IPv6Address": "fd00:b3:1::50"}
        info = json.loads(daemon.ok("network", "inspect", "v6net"))[0]
        assert [c["IPv6Address"] for c in info["Containers"].values()] == ["fd00:b3:1::50/64"]
        # out through the host, masqueraded: the other end has no route back to the subnet
        assert Path("/proc/sys/net/ipv6/conf/all/forwarding").read_text().strip() == "1"
        _ping6_another_host(daemon, "v6net")
        # a running container connected to it gets its IPv6 address at once
        daemon.ok("run", "-d", "--name", "v6late", "busybox", "sleep", "60")
        daemon.ok("network", "connect", "--ip6", "fd00:b3:1::77", "v6net", "v6late")
        out = daemon.ok(
            "exec",
            "v6late",
            "sh",
            "-c",
            "ip -o -6 addr show eth1 scope global; ping -6 -c1 -W2 fd00:b3:1::50",
        )
        assert "inet6 fd00:b3:1::77/64" in out and "1 packets received" in out
        r = daemon.berth(
            "run", "--rm", "--network", "v6net", "--ip6", "fd00:b3:2::5", "busybox", "true"
        )
        assert r.returncode == 125 and "does not belong to any of this network" in r.stderr
        r = daemon.berth(
            "run", "--rm", "--network", "bridge", "--ip6", "fd00:b3:1::6", "busybox", "true"
        )
        assert r.returncode == 125
        # no subnet given: a unique local /64 is picked
        daemon.ok("network", "create", "--ipv6", "v6auto")
        pools = json.loads(daemon.ok("network", "inspect", "v6auto"))[0]["IPAM"]["Config"]
        assert len(pools) == 2 and pools[1]["Subnet"].startswith("fd")
        assert pools[1]["Subnet"].endswith("::/64") and pools[1]["Gateway"].endswith("::1")
    finally:
        daemon.berth("rm", "-f", "v6a", "v6late")
        daemon.berth("network", "rm", "v6net", "v6auto")
    rules = _ip6tables("-S", f"{chain}-FWD") + _ip6tables("-t", "nat", "-S", f"{chain}-POST")
    assert "fd00:b3:1" not in rules and bridge not in rules
    assert bridge not in _sh("ip", "-o", "link")


def _ping6_another_host(daemon: Daemon, network: str) -> None:
    """A container on `network` pings an address of a network namespace of this test's own
    behind a veth pair (not an uplink), which sees the host's address only."""
    ns = f"bt-p6-{daemon.bridge[2:]}"
    host_if, peer_if = f"v6p{daemon.bridge[2:]}", f"v6q{daemon.bridge[2:]}"
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    run("ip", "netns", "add", ns)
    try:
        run("ip", "link", "add", host_if, "type", "veth", "peer", "name", peer_if)
        run("ip", "link", "set", peer_if, "netns", ns)
        run("ip", "addr", "add", "fd00:b3:99::1/64", "dev", host_if, "nodad")
        run("ip", "link", "set", host_if, "up")
        run(
            "ip",
            "netns",
            "exec",
            ns,
            "ip",
            "addr",
            "add",
            "fd00:b3:99::2/64",
            "dev",
            peer_if,
            "nodad",
        )
        run("ip", "netns", "exec", ns, "ip", "link", "set", peer_if, "up")
        out = daemon.ok(
            "run",
            "--rm",
            "--network",
            network,
            "busybox",
            "ping",
            "-6",
            "-c1",
            "-W3",
            "fd00:b3:99::2",
        )
        assert "1 packets received" in out
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_ip6tables_chains_go_with_the_daemon(private_daemon: Daemon) -> None:
    if not shutil.which("ip6tables"):
        pytest.skip("no ip6tables here")
    d = private_daemon
    chain = f"BERTH-{d.bridge[:12]}"
    try:
        d.ok("network", "create", "--ipv6", "--subnet", "fd00:b3:7::/64", "v6gone")
        assert f"-j {chain}-FWD" in _ip6tables("-S", "FORWARD")
        d.stop()
        assert chain not in _ip6tables("-S") + _ip6tables("-t", "nat", "-S")
        assert "fd00:b3:7::1" not in _sh("ip", "-6", "addr")
        d.start()  # the bridge and rules come back with the network
        assert f"-j {chain}-FWD" in _ip6tables("-S", "FORWARD")
        d.ok("network", "rm", "v6gone")
    finally:
        d.cleanup()  # what a failure left, ip6tables chains too (conftest)
    assert chain not in _ip6tables("-S") + _ip6tables("-t", "nat", "-S")


def test_a_data_root_from_before_the_typed_records_loads(private_daemon: Daemon) -> None:
    """Networks stored as Docker-shaped documents (berth before its typed records) come back
    as they were, with their bridges, and a container on one runs."""
    d = private_daemon
    d.ok("network", "create", "--subnet", "10.253.11.0/24", "--label", "k=v", "oldnet")
    want = json.loads(d.ok("network", "inspect", "oldnet"))[0]
    d.stop()
    db = sqlite3.connect(d.data_root / "berth.db")
    try:
        for nid, raw in db.execute("SELECT id, doc FROM networks").fetchall():
            new = json.loads(raw)
            pools = [{"Subnet": c["subnet"], "Gateway": c["gateway"]} for c in new["ipam"]]
            old = {
                "Name": new["name"],
                "Id": new["id"],
                "Created": new["created"],
                "Scope": "local",
                "Driver": new["driver"],
                "EnableIPv6": False,
                "IPAM": {"Driver": "default", "Options": {}, "Config": pools},
                "Internal": False,
                "Attachable": False,
                "Ingress": False,
                "ConfigFrom": {"Network": ""},
                "ConfigOnly": False,
                "Containers": {},
                "Options": new["options"],
                "Labels": new["labels"],
            }
            if new["bridge"]:
                old["_bridge"] = new["bridge"]
            db.execute("UPDATE networks SET doc=? WHERE id=?", (json.dumps(old), nid))
        db.commit()
    finally:
        db.close()
    d.start()
    have = json.loads(d.ok("network", "inspect", "oldnet"))[0]
    # as berth showed it then: with the gateway it used
    want["IPAM"]["Config"][0]["Gateway"] = "10.253.11.1"
    assert have == want
    out = d.ok(
        "run", "--rm", "--network", "oldnet", "busybox", "ip", "-o", "-4", "addr", "show", "eth0"
    )
    assert "10.253.11.2/24" in out
    d.ok("network", "rm", "oldnet")


@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_docker_py_networks(daemon: Daemon) -> None:
    """What docker-py's models send: IPAM pools with auxiliary addresses and options,
    EnableIPv6, driver options; a container connected with an IPv6 address, link-local
    addresses and driver options."""
    docker = pytest.importorskip("docker")
    from docker.types import IPAMConfig, IPAMPool

    client = docker.DockerClient(base_url=daemon.host)
    net = None
    try:
        net = client.networks.create(
            "pynet",
            driver="bridge",
            enable_ipv6=True,
            options={"o": "1"},
            ipam=IPAMConfig(
                pool_configs=[
                    IPAMPool(subnet="10.253.12.0/24", aux_addresses={"r": "10.253.12.2"}),
                    IPAMPool(subnet="fd00:b3:12::/64"),
                ],
                options={"i": "2"},
            ),
        )
        attrs = client.networks.get("pynet").attrs
        assert attrs["EnableIPv6"] and attrs["Options"] == {"o": "1"}
        assert attrs["IPAM"]["Options"] == {"i": "2"}
        assert attrs["IPAM"]["Config"] == [
            {"Subnet": "10.253.12.0/24", "AuxiliaryAddresses": {"r": "10.253.12.2"}},
            {"Subnet": "fd00:b3:12::/64"},
        ]
        c = client.containers.create("busybox", ["sleep", "60"], name="pyc")
        net.connect(
            c, ipv6_address="fd00:b3:12::9", link_local_ips=["169.254.12.12"], driver_opt={"d": "3"}
        )
        c.start()
        out = c.exec_run(["ip", "-o", "addr", "show", "eth1"]).output.decode()
        assert "10.253.12.3/24" in out and "fd00:b3:12::9/64" in out
        assert "169.254.12.12/16" in out
        c.reload()
        ep = c.attrs["NetworkSettings"]["Networks"]["pynet"]
        assert ep["IPAMConfig"] == {
            "IPv6Address": "fd00:b3:12::9",
            "LinkLocalIPs": ["169.254.12.12"],
        }
        assert ep["DriverOpts"] == {"d": "3"} and ep["GlobalIPv6Address"] == "fd00:b3:12::9"
    finally:
        daemon.berth("rm", "-f", "pyc")
        if net is not None:
            net.remove()
        client.close()
