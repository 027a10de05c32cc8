"""The containers' Docker JSON at the API edge: Docker JSON → typed → Docker JSON is the identity
for the shapes dockerd produces, and a client's bad values are a 400."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from berth.api.containers_wire import (
    config_from_docker,
    config_to_docker,
    create_request,
    port_map_from_docker,
    port_map_to_docker,
    ps_ports,
)
from berth.containers.ports import Port, PortBinding
from berth.containers.record import VERSION, ContainerEndpoint, ContainerRecord
from berth.containers.settings import ContainerConfig, HealthConfig
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
                          path="sh", args=[], config=ContainerConfig(image="busybox"),
                          host_config={})
    rec.ports = port_map_from_docker(DOCKERD_PORTS, "Ports")
    rec.endpoints = [ContainerEndpoint.from_json(ENDPOINT)]
    back = ContainerRecord.from_stored(rec.to_json())
    assert back.ports == rec.ports and back.endpoints == rec.endpoints


# Config of `docker run -d --name web -e A=1 -l k=v -p 8080:80 --health-cmd true
# --health-interval 2s --stop-signal SIGINT --stop-timeout 5 -v /data -w /srv -u 1000
# nginx:alpine`, as dockerd 28's inspect shows it (with keys berth does not act on)
DOCKERD_CONFIG: dict[str, Any] = {
    "Hostname": "0123456789ab", "Domainname": "", "User": "1000", "AttachStdin": False,
    "AttachStdout": False, "AttachStderr": False,
    "ExposedPorts": {"80/tcp": {}}, "Tty": False, "OpenStdin": False, "StdinOnce": False,
    "Env": ["A=1", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    "Cmd": ["nginx", "-g", "daemon off;"],
    "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 2_000_000_000},
    "Image": "nginx:alpine", "Volumes": {"/data": {}}, "WorkingDir": "/srv",
    "Entrypoint": ["/docker-entrypoint.sh"], "OnBuild": None,
    "Labels": {"k": "v", "maintainer": "NGINX Docker Maintainers"},
    "StopSignal": "SIGINT", "StopTimeout": 5, "ArgsEscaped": True,
}


def test_dockerds_config_round_trips() -> None:
    typed = config_from_docker(copy.deepcopy(DOCKERD_CONFIG))
    assert typed.healthcheck == HealthConfig(test=("CMD-SHELL", "true"),
                                             interval=2_000_000_000)
    assert (typed.user, typed.volumes, typed.exposed_ports) == ("1000", ("/data",), (Port(80),))
    assert (typed.stop_signal, typed.stop_timeout) == ("SIGINT", 5)
    assert typed.extra == {"ArgsEscaped": True}
    assert config_to_docker(typed) == DOCKERD_CONFIG


def test_a_minimal_config_shows_dockerds_nulls() -> None:
    out = config_to_docker(ContainerConfig(image="busybox", hostname="h"))
    assert (out["Env"], out["Cmd"], out["Entrypoint"], out["Volumes"], out["OnBuild"]) == \
        (None, None, None, None, None)
    assert not {"ExposedPorts", "Healthcheck", "StopSignal", "StopTimeout", "MacAddress"} & \
        set(out)


def test_the_stored_config_round_trips() -> None:
    typed = config_from_docker(DOCKERD_CONFIG)
    assert ContainerConfig.from_json(typed.to_json()) == typed
    # a record of version 2 kept Docker's Config
    assert ContainerConfig.from_legacy(copy.deepcopy(DOCKERD_CONFIG)) == typed


def test_a_create_body_is_read_at_the_edge() -> None:
    req = create_request({"Image": "busybox", "Cmd": "true", "Entrypoint": "",
                          "HostConfig": {"NetworkMode": "none"},
                          "NetworkingConfig": {"EndpointsConfig": {}}})
    assert (req.config.cmd, req.config.entrypoint) == (("true",), ("",))
    assert req.host_config == {"NetworkMode": "none"} and "HostConfig" not in req.config.extra
    assert req.networking == {"EndpointsConfig": {}}


@pytest.mark.parametrize(("body", "message"), [
    ([], "invalid container config"),
    ({"Image": "busybox", "Env": "A=1,B=2"}, "Config.Env"),
    ({"Image": "busybox", "Env": [1]}, "Config.Env"),
    ({"Image": "busybox", "Tty": "yes"}, "Config.Tty"),
    ({"Image": "busybox", "Labels": {"a": 1}}, "Config.Labels"),
    ({"Image": "busybox", "StopTimeout": "5"}, "Config.StopTimeout"),
    ({"Image": "busybox", "ExposedPorts": {"http": {}}}, "invalid port"),
    ({"Image": "busybox", "NetworkDisabled": True}, "Config.NetworkDisabled"),
    ({"Image": "busybox", "Healthcheck": {"Test": ["CMD", "true"], "Interval": 5}},
     "Interval in Healthcheck cannot be less than 1ms"),
    ({"Image": "busybox", "HostConfig": "none"}, "HostConfig"),
])
def test_a_bad_create_body_is_a_400(body: Any, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        create_request(body)


def test_a_record_of_version_2_loads_and_saves_as_version_3() -> None:
    rec = ContainerRecord(id="ab" * 32, name="/web", created_ns=1, image="sha256:" + "cd" * 32,
                          path="nginx", args=[], config=config_from_docker(DOCKERD_CONFIG),
                          host_config={"NetworkMode": "bridge"})
    v3 = rec.to_json()
    v2 = {**copy.deepcopy(v3), "v": 2, "config": copy.deepcopy(DOCKERD_CONFIG)}
    back = ContainerRecord.from_stored(v2)
    assert back.config == rec.config
    assert back.to_json() == v3 and v3["v"] == VERSION == 3
