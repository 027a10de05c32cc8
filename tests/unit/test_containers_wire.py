"""The containers' Docker JSON at the API edge: Docker JSON → typed → Docker JSON is the identity
for the shapes dockerd produces, and a client's bad values are a 400."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from berth.api.containers_wire import port_map_from_docker, port_map_to_docker, ps_ports
from berth.containers.ports import Port, PortBinding
from berth.containers.record import ContainerEndpoint, ContainerRecord
from berth.errors import InvalidArgument

# NetworkSettings.Ports of a dockerd container run with `-p 8080:80 -p 127.0.0.1::53/udp
# --expose 9000`: IPv4 and IPv6 bindings, and a port exposed but not published
DOCKERD_PORTS: dict[str, Any] = {
    "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}, {"HostIp": "::", "HostPort": "8080"}],
    "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "32768"}],
    "9000/tcp": None,
}


def test_a_port_map_round_trips() -> None:
    typed = port_map_from_docker(copy.deepcopy(DOCKERD_PORTS), "Ports")
    assert typed[Port(80)] == (PortBinding("0.0.0.0", "8080"), PortBinding("::", "8080"))
    assert typed[Port(53, "udp")] == (PortBinding("127.0.0.1", "32768"),)
    assert typed[Port(9000)] is None
    assert port_map_to_docker(typed) == DOCKERD_PORTS
    assert list(port_map_to_docker(typed)) == list(DOCKERD_PORTS)   # in dockerd's order


def test_ps_ports_lists_each_binding() -> None:
    typed = port_map_from_docker(DOCKERD_PORTS, "Ports")
    assert ps_ports(typed) == [
        {"PrivatePort": 80, "Type": "tcp", "IP": "0.0.0.0", "PublicPort": 8080},
        {"PrivatePort": 80, "Type": "tcp", "IP": "::", "PublicPort": 8080},
        {"PrivatePort": 53, "Type": "udp", "IP": "127.0.0.1", "PublicPort": 32768},
        {"PrivatePort": 9000, "Type": "tcp"}]


@pytest.mark.parametrize("bad", [{"http/tcp": None}, {"80/icmp": None}, {"70000": None},
                                 {"80/tcp": "8080"}, {"80/tcp": ["8080"]}, ["80/tcp"]])
def test_a_bad_port_map_is_refused(bad: Any) -> None:
    with pytest.raises(InvalidArgument):
        port_map_from_docker(bad, "HostConfig.PortBindings")


def test_a_bare_port_is_tcp() -> None:
    assert Port.parse("80") == Port(80, "tcp") and str(Port.parse("53/UDP")) == "53/udp"


ENDPOINT: dict[str, Any] = {
    "network": "12" * 32, "name": "web", "aliases": ["w"], "ip": "10.88.0.2", "prefix": 16,
    "gateway": "10.88.0.1", "mac": "02:42:0a:58:00:02", "endpoint": "ee" * 32,
    "bridge": "berth0", "host_if": "vb0123456789a", "ifname": "eth0", "kind": "veth",
    "parent": "", "mode": "", "ip6": "fd00::2", "prefix6": 64, "gateway6": "fd00::1",
    "link_local": [], "driver_opts": {}, "mtu": 0, "requested_ip": "", "requested_ip6": "",
    "address": "10.88.0.2/16", "address6": "fd00::2/64", "link_local_ips": "",
    "netname": "bridge"}


def test_an_endpoint_is_stored_as_the_networks_service_hands_it_out() -> None:
    ep = ContainerEndpoint.from_json(copy.deepcopy(ENDPOINT))
    assert (ep.netname, ep.ip, ep.prefix6, ep.ifname) == ("bridge", "10.88.0.2", 64, "eth0")
    assert ep.to_json() == ENDPOINT


def test_a_records_ports_and_endpoints_survive_its_stored_form() -> None:
    rec = ContainerRecord(id="ab" * 32, name="/web", created_ns=1, image="sha256:" + "cd" * 32,
                          path="sh", args=[], config={"Image": "busybox"}, host_config={})
    rec.ports = port_map_from_docker(DOCKERD_PORTS, "Ports")
    rec.endpoints = [ContainerEndpoint.from_json(ENDPOINT)]
    back = ContainerRecord.from_stored(rec.to_json())
    assert back.ports == rec.ports and back.endpoints == rec.endpoints
