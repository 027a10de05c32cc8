"""Networks side by side with a real dockerd (Debian's docker.io, where installed): the same
`network create` request made to both inspects the same, key by key, and a container on such a
network shows the same endpoint and has the same addresses. Ids, times and pools picked for the
user differ by nature and are left out; dockerd runs privately (see test_dockerd_compat)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from .conftest import Daemon
from .test_dockerd_compat import Dockerd, dockerd  # noqa: F401 - the fixture

pytestmark = pytest.mark.root

CASES = [
    [],
    ["--subnet", "10.253.9.0/24"],
    [
        "--subnet",
        "10.253.9.0/24",
        "--gateway",
        "10.253.9.254",
        "--ip-range",
        "10.253.9.128/25",
        "--aux-address",
        "a=10.253.9.5",
        "--aux-address",
        "b=10.253.9.6",
        "--ipam-opt",
        "foo=bar",
        "-o",
        "com.docker.network.driver.mtu=1400",
        "-o",
        "x=y",
        "--label",
        "l=v",
    ],
    ["--ipv6", "--subnet", "10.253.9.0/24", "--subnet", "fd00:b3:9::/64"],
    ["--ipv6", "--subnet", "fd00:b3:9::/64", "--gateway", "fd00:b3:9::99"],
    ["--subnet", "fd00:b3:9::/64"],  # an IPv6 pool with IPv6 off
    ["--internal", "--attachable"],
    ["-o", "com.docker.network.bridge.name=brcmp0"],
]


def _berth(daemon: Daemon) -> Dockerd:
    """The same docker CLI, at berthd's socket."""
    engine = Dockerd(daemon.base)
    engine.env = {**daemon.env, "DOCKER_CONFIG": str(daemon.base / "cfg")}
    return engine


def _normal(doc: dict[str, Any], args: list[str]) -> dict[str, Any]:
    """`doc` without what differs by nature: ids, times, and the values of pools that were
    picked for the user (their keys stay)."""
    doc = {k: v for k, v in doc.items() if k not in ("Id", "Created")}
    pools = []
    for c in doc["IPAM"]["Config"]:
        given = c["Subnet"] in args
        pools.append({k: (v if given else "<picked>") for k, v in c.items()})
    doc["IPAM"] = {**doc["IPAM"], "Config": pools}
    return doc


@pytest.mark.parametrize("args", CASES, ids=lambda a: " ".join(a) or "defaults")
def test_a_network_inspects_key_by_key_as_dockerd_s(
    dockerd: Dockerd,  # noqa: F811
    daemon: Daemon,
    args: list[str],
) -> None:
    got = []
    for engine in (dockerd, _berth(daemon)):
        # both at dockerd 20.10's API version (the CLI asks berth for 1.50 otherwise)
        engine.env = {**engine.env, "DOCKER_API_VERSION": "1.41"}
        engine.docker("network", "create", *args, "cmpnet")
        try:
            got.append(json.loads(engine.docker("network", "inspect", "cmpnet"))[0])
        finally:
            engine.docker("network", "rm", "cmpnet")
    want, have = (_normal(d, args) for d in got)
    assert list(have) == list(want)
    for key in want:
        assert have[key] == want[key], key


def test_api_1_47_on_shows_enable_ipv4(daemon: Daemon) -> None:
    berth = _berth(daemon)
    berth.docker("network", "create", "cmpnet")
    try:
        doc = json.loads(berth.docker("network", "inspect", "cmpnet"))[0]
        assert list(doc)[4:7] == ["Driver", "EnableIPv4", "EnableIPv6"]
        assert doc["EnableIPv4"] is True
        assert berth.docker(
            "network", "ls", "--filter", "name=cmpnet", "--format", "{{.IPv4}} {{.IPv6}}"
        ).split() == ["true", "false"]
        none = json.loads(berth.docker("network", "inspect", "none"))[0]
        assert none["EnableIPv4"] is False
    finally:
        berth.docker("network", "rm", "cmpnet")


@pytest.mark.parametrize(
    "args",
    [
        ["--subnet", "10.253.9.0/24", "--subnet", "10.253.10.0/24"],
        ["--subnet", "10.253.9.0/24", "--gateway", "10.253.10.1"],
        ["--subnet", "10.253.9.0/24", "--aux-address", "a=10.253.10.1"],
    ],
    ids=["two-v4-subnets", "gateway-outside", "aux-outside"],
)
def test_a_bad_request_fails_on_both(
    dockerd: Dockerd,  # noqa: F811
    daemon: Daemon,  # noqa: F811
    args: list[str],
) -> None:
    codes = []
    for engine in (dockerd, _berth(daemon)):
        r = subprocess.run(
            ["docker", "network", "create", *args, "badnet"],
            env=engine.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if r.returncode == 0:
            engine.docker("network", "rm", "badnet")
        codes.append(r.returncode)
    assert codes[0] != 0 and codes[1] == codes[0]


ENDPOINT_KEYS = (
    "IPAMConfig",
    "MacAddress",
    "Gateway",
    "IPAddress",
    "IPPrefixLen",
    "IPv6Gateway",
    "GlobalIPv6Address",
    "GlobalIPv6PrefixLen",
    "DriverOpts",
    "Links",
)


def test_a_container_on_it_is_the_same(dockerd: Dockerd, daemon: Daemon) -> None:  # noqa: F811
    net = [
        "--ipv6",
        "--subnet",
        "10.253.9.0/24",
        "--subnet",
        "fd00:b3:9::/64",
        "-o",
        "com.docker.network.driver.mtu=1400",
    ]
    run = [
        "--network",
        "cmpnet",
        "--ip",
        "10.253.9.20",
        "--ip6",
        "fd00:b3:9::20",
        "--link-local-ip",
        "169.254.9.9",
        "busybox",
    ]
    seen = []
    for engine in (dockerd, _berth(daemon)):
        engine.docker("network", "create", *net, "cmpnet")
        try:
            engine.docker("run", "-d", "--name", "cmpc", *run, "sleep", "60")
            inside = engine.docker(
                "exec",
                "cmpc",
                "sh",
                "-c",
                "cat /sys/class/net/eth0/mtu; ip -o addr show eth0 | "
                "grep -v 'scope link' | awk '{print $4}'; "
                "ip -o addr show eth0 | grep 169.254 | awk '{print $4}'; "
                "ip route; ip -6 route | grep default; "
                'tail -2 /etc/hosts | sed "s/$(hostname)$/HOST/"',
            )
            ctr = json.loads(engine.docker("inspect", "cmpc"))[0]
            ep = ctr["NetworkSettings"]["Networks"]["cmpnet"]
            listed = json.loads(engine.docker("network", "inspect", "cmpnet"))[0]
            entry = listed["Containers"][ctr["Id"]]
            seen.append(
                (
                    {k: ep.get(k) for k in ENDPOINT_KEYS},
                    {k: v for k, v in entry.items() if k != "EndpointID"},
                    sorted(inside.split("\n")),
                    sorted(ep),
                )
            )
        finally:
            engine.docker("rm", "-f", "cmpc")
            engine.docker("network", "rm", "cmpnet")
    (want_ep, want_entry, want_in, want_keys), (have_ep, have_entry, have_in, have_keys) = seen
    assert have_ep == want_ep
    assert have_entry == want_entry
    assert have_in == want_in
    # every key dockerd 20.10 shows (API 1.41), and those of later versions berth serves
    assert set(want_keys) <= set(have_keys)


def _create_1_41(engine: Dockerd, sock: str, body: dict[str, Any]) -> str:
    """A container created as a client of API 1.41 does it (docker-py, compose 1.29)."""
    out = subprocess.run(
        [
            "curl",
            "-sf",
            "--unix-socket",
            sock,
            "-H",
            "Content-Type: application/json",
            "-d",
            json.dumps(body),
            "http://localhost/v1.41/containers/create?name=cmpm",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return str(json.loads(out.stdout)["Id"])


def test_a_mac_address_shows_as_on_dockerd(dockerd: Dockerd, daemon: Daemon) -> None:  # noqa: F811
    """A MAC address in Config.MacAddress, the container-wide field of API 1.41 (the docker
    CLI 28 sends it per network, which dockerd 20.10 refuses), shows where dockerd shows it;
    the top-level NetworkSettings fields are dockerd's (filled for the default bridge only)."""
    mac = "02:42:0a:fd:09:99"
    seen = []
    for engine, sock in ((dockerd, str(dockerd.sock)), (_berth(daemon), str(daemon.sock))):
        engine.docker("network", "create", "--subnet", "10.253.9.0/24", "cmpnet")
        try:
            _create_1_41(
                engine,
                sock,
                {
                    "Image": "busybox",
                    "Cmd": ["sleep", "60"],
                    "MacAddress": mac,
                    "HostConfig": {"NetworkMode": "cmpnet"},
                },
            )
            engine.docker("start", "cmpm")
            inside = engine.docker("exec", "cmpm", "cat", "/sys/class/net/eth0/address")
            ctr = json.loads(engine.docker("inspect", "cmpm"))[0]
            ns = ctr["NetworkSettings"]
            seen.append(
                (
                    inside.strip(),
                    ctr["Config"].get("MacAddress"),
                    ns["Networks"]["cmpnet"]["MacAddress"],
                    {
                        k: v
                        for k, v in ns.items()
                        if k not in ("Networks", "SandboxID", "SandboxKey")
                    },
                )
            )
        finally:
            engine.docker("rm", "-f", "cmpm")
            engine.docker("network", "rm", "cmpnet")
    assert seen[0][:3] == (mac, mac, mac)
    assert seen[1] == seen[0]


@pytest.mark.parametrize(
    "net",
    [
        ["--subnet", "10.253.9.0/24"],
        ["--ipv6", "--subnet", "10.253.9.0/24", "--subnet", "fd00:b3:9::/64"],
    ],
    ids=["ipv4", "ipv6"],
)
def test_published_ports_show_as_on_dockerd(
    dockerd: Dockerd,  # noqa: F811
    daemon: Daemon,  # noqa: F811
    net: list[str],
) -> None:
    """A port published with no host address is on 0.0.0.0 and [::], one with an address of
    either family on that alone: in inspect, `docker port` and `docker ps`, as dockerd 20.10
    shows them (its host ports are its own: compared without the numbers; dockerd 20.10 may
    pick two ports for 0.0.0.0 and [::] where berth picks one for both)."""
    import re

    seen = []
    for engine in (dockerd, _berth(daemon)):
        engine.docker("network", "create", *net, "cmpnet")
        try:
            engine.docker(
                "run",
                "-d",
                "--name",
                "cmpp",
                "--network",
                "cmpnet",
                "-p",
                "80",
                "-p",
                "[::1]::81",
                "-p",
                "127.0.0.1::82/udp",
                "busybox",
                "sleep",
                "60",
            )
            ctr = json.loads(engine.docker("inspect", "cmpp"))[0]
            ports = ctr["NetworkSettings"]["Ports"]
            hide = lambda s: re.sub(r":\d+", ":P", s)  # noqa: E731
            seen.append(
                (
                    {k: [b["HostIp"] for b in v] for k, v in ports.items()},
                    ctr["HostConfig"]["PortBindings"],
                    hide(engine.docker("port", "cmpp")),
                    hide(engine.docker("ps", "--format", "{{.Ports}}", "-f", "name=cmpp")),
                )
            )
        finally:
            engine.docker("rm", "-f", "cmpp")
            engine.docker("network", "rm", "cmpnet")
    assert seen[1] == seen[0]
    assert seen[0][0]["80/tcp"] == ["0.0.0.0", "::"]
