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
    endpoint_request,
    exec_config,
    port_map_from_docker,
    port_map_to_docker,
    ps_ports,
    update_request,
)
from berth.containers.execs import ExecConfig
from berth.containers.hostconfig import (
    DeviceMapping,
    DeviceRequest,
    HostConfig,
    LogConfig,
    ResourcesUpdate,
    RestartPolicy,
    Ulimit,
)
from berth.containers.ports import Port, PortBinding
from berth.containers.record import VERSION, ContainerEndpoint, ContainerRecord, NetworkRequest
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
    assert list(port_map_to_docker(typed)) == list(DOCKERD_PORTS)  # in dockerd's order


def test_ps_ports_lists_each_binding() -> None:
    typed = port_map_from_docker(DOCKERD_PORTS, "Ports")
    assert ps_ports(typed) == [
        {"PrivatePort": 80, "Type": "tcp", "IP": "0.0.0.0", "PublicPort": 8080},
        {"PrivatePort": 80, "Type": "tcp", "IP": "::", "PublicPort": 8080},
        {"PrivatePort": 53, "Type": "udp", "IP": "127.0.0.1", "PublicPort": 32768},
        {"PrivatePort": 9000, "Type": "tcp"},
    ]


@pytest.mark.parametrize(
    "bad",
    [
        {"http/tcp": None},
        {"80/icmp": None},
        {"70000": None},
        {"80/tcp": "8080"},
        {"80/tcp": ["8080"]},
        ["80/tcp"],
    ],
)
def test_a_bad_port_map_is_refused(bad: Any) -> None:
    with pytest.raises(InvalidArgument):
        port_map_from_docker(bad, "HostConfig.PortBindings")


def test_a_bare_port_is_tcp() -> None:
    assert Port.parse("80") == Port(80, "tcp") and str(Port.parse("53/UDP")) == "53/udp"


ENDPOINT: dict[str, Any] = {
    "network": "12" * 32,
    "name": "web",
    "aliases": ["w"],
    "ip": "10.88.0.2",
    "prefix": 16,
    "gateway": "10.88.0.1",
    "mac": "02:42:0a:58:00:02",
    "endpoint": "ee" * 32,
    "bridge": "berth0",
    "host_if": "vb0123456789a",
    "ifname": "eth0",
    "kind": "veth",
    "parent": "",
    "mode": "",
    "ip6": "fd00::2",
    "prefix6": 64,
    "gateway6": "fd00::1",
    "link_local": [],
    "driver_opts": {},
    "mtu": 0,
    "requested_ip": "",
    "requested_ip6": "",
    "address": "10.88.0.2/16",
    "address6": "fd00::2/64",
    "link_local_ips": "",
    "netname": "bridge",
}


def test_an_endpoint_is_stored_as_the_networks_service_hands_it_out() -> None:
    ep = ContainerEndpoint.from_json(copy.deepcopy(ENDPOINT))
    assert (ep.netname, ep.ip, ep.prefix6, ep.ifname) == ("bridge", "10.88.0.2", 64, "eth0")
    assert ep.to_json() == ENDPOINT


def test_a_records_ports_and_endpoints_survive_its_stored_form() -> None:
    rec = ContainerRecord(
        id="ab" * 32,
        name="/web",
        created_ns=1,
        image="sha256:" + "cd" * 32,
        path="sh",
        args=[],
        config=ContainerConfig(image="busybox"),
        host_config=HostConfig(),
    )
    rec.ports = port_map_from_docker(DOCKERD_PORTS, "Ports")
    rec.endpoints = [ContainerEndpoint.from_json(ENDPOINT)]
    back = ContainerRecord.from_stored(rec.to_json())
    assert back.ports == rec.ports and back.endpoints == rec.endpoints


# Config of `docker run -d --name web -e A=1 -l k=v -p 8080:80 --health-cmd true
# --health-interval 2s --stop-signal SIGINT --stop-timeout 5 -v /data -w /srv -u 1000
# nginx:alpine`, as dockerd 28's inspect shows it (with keys berth does not act on)
DOCKERD_CONFIG: dict[str, Any] = {
    "Hostname": "0123456789ab",
    "Domainname": "",
    "User": "1000",
    "AttachStdin": False,
    "AttachStdout": False,
    "AttachStderr": False,
    "ExposedPorts": {"80/tcp": {}},
    "Tty": False,
    "OpenStdin": False,
    "StdinOnce": False,
    "Env": ["A=1", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    "Cmd": ["nginx", "-g", "daemon off;"],
    "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 2_000_000_000},
    "Image": "nginx:alpine",
    "Volumes": {"/data": {}},
    "WorkingDir": "/srv",
    "Entrypoint": ["/docker-entrypoint.sh"],
    "OnBuild": None,
    "Labels": {"k": "v", "maintainer": "NGINX Docker Maintainers"},
    "StopSignal": "SIGINT",
    "StopTimeout": 5,
    "ArgsEscaped": True,
}


def test_dockerds_config_round_trips() -> None:
    typed = config_from_docker(copy.deepcopy(DOCKERD_CONFIG))
    assert typed.healthcheck == HealthConfig(test=("CMD-SHELL", "true"), interval=2_000_000_000)
    assert (typed.user, typed.volumes, typed.exposed_ports) == ("1000", ("/data",), (Port(80),))
    assert (typed.stop_signal, typed.stop_timeout) == ("SIGINT", 5)
    assert typed.extra == {"ArgsEscaped": True}
    assert config_to_docker(typed) == DOCKERD_CONFIG


def test_a_minimal_config_shows_dockerds_nulls() -> None:
    out = config_to_docker(ContainerConfig(image="busybox", hostname="h"))
    assert (out["Env"], out["Cmd"], out["Entrypoint"], out["Volumes"], out["OnBuild"]) == (
        None,
        None,
        None,
        None,
        None,
    )
    assert not {"ExposedPorts", "Healthcheck", "StopSignal", "StopTimeout", "MacAddress"} & set(out)


def test_the_stored_config_round_trips() -> None:
    typed = config_from_docker(DOCKERD_CONFIG)
    assert ContainerConfig.from_json(typed.to_json()) == typed
    # a record of version 2 kept Docker's Config
    assert ContainerConfig.from_legacy(copy.deepcopy(DOCKERD_CONFIG)) == typed


def test_a_create_body_is_read_at_the_edge() -> None:
    req = create_request(
        {
            "Image": "busybox",
            "Cmd": "true",
            "Entrypoint": "",
            "HostConfig": {"NetworkMode": "web"},
            "NetworkingConfig": {
                "EndpointsConfig": {
                    "web": {
                        "Aliases": ["w"],
                        "Links": ["db:d"],
                        "MacAddress": "",
                        "IPAMConfig": {"IPv4Address": "10.5.0.9", "IPv6Address": "fd00::9"},
                        "DriverOpts": {"o": "1"},
                    }
                }
            },
        }
    )
    assert (req.config.cmd, req.config.entrypoint) == (("true",), ("",))
    assert req.host_config == HostConfig(network_mode="web")
    assert "HostConfig" not in req.config.extra and "NetworkingConfig" not in req.config.extra
    assert req.endpoints == {
        "web": NetworkRequest(
            net="",
            aliases=["w"],
            links=["db:d"],
            ip="10.5.0.9",
            ip6="fd00::9",
            driver_opts={"o": "1"},
        )
    }
    # `network connect`'s EndpointConfig, null
    assert endpoint_request(None, "EndpointConfig") == NetworkRequest(net="")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "invalid container config"),
        ({"Image": "busybox", "Env": "A=1,B=2"}, "Config.Env"),
        ({"Image": "busybox", "Env": [1]}, "Config.Env"),
        ({"Image": "busybox", "Tty": "yes"}, "Config.Tty"),
        ({"Image": "busybox", "Labels": {"a": 1}}, "Config.Labels"),
        ({"Image": "busybox", "StopTimeout": "5"}, "Config.StopTimeout"),
        ({"Image": "busybox", "ExposedPorts": {"http": {}}}, "invalid port"),
        ({"Image": "busybox", "NetworkDisabled": True}, "Config.NetworkDisabled"),
        (
            {"Image": "busybox", "Healthcheck": {"Test": ["CMD", "true"], "Interval": 5}},
            "Interval in Healthcheck cannot be less than 1ms",
        ),
        ({"Image": "busybox", "HostConfig": "none"}, "HostConfig"),
        (
            {"Image": "busybox", "NetworkingConfig": {"EndpointsConfig": {"n": {"Aliases": "a"}}}},
            "NetworkingConfig.EndpointsConfig.n.Aliases",
        ),
        (
            {
                "Image": "busybox",
                "NetworkingConfig": {"EndpointsConfig": {"n": {"IPAMConfig": {"IPv4Address": 10}}}},
            },
            "IPAMConfig.IPv4Address",
        ),
    ],
)
def test_a_bad_create_body_is_a_400(body: Any, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        create_request(body)


def test_a_record_of_version_2_loads_and_saves_as_version_3() -> None:
    rec = ContainerRecord(
        id="ab" * 32,
        name="/web",
        created_ns=1,
        image="sha256:" + "cd" * 32,
        path="nginx",
        args=[],
        config=config_from_docker(DOCKERD_CONFIG),
        host_config=HostConfig(network_mode="bridge"),
    )
    v3 = rec.to_json()
    v2 = {**copy.deepcopy(v3), "v": 2, "config": copy.deepcopy(DOCKERD_CONFIG)}
    back = ContainerRecord.from_stored(v2)
    assert back.config == rec.config
    assert back.to_json() == v3 and v3["v"] == VERSION == 3


# HostConfig of `docker run --restart on-failure:2 -m 64m --cpu-shares 512 --cap-add NET_ADMIN
# --device /dev/null:/dev/n:r --ulimit nofile=1024:2048 --dns 10.0.0.1 --add-host h:10.1.2.3
# --tmpfs /run:size=1m --sysctl net.ipv4.ip_forward=1 -p 8080:80 --log-opt max-size=1m
# --device-write-bps /dev/sda:1mb --gpus all busybox`, as dockerd 28's inspect shows it (with
# the Windows and real-time fields berth keeps only to show them)
DOCKERD_HOST_CONFIG: dict[str, Any] = {
    "Binds": None,
    "ContainerIDFile": "",
    "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m"}},
    "NetworkMode": "bridge",
    "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]},
    "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2},
    "AutoRemove": False,
    "VolumeDriver": "",
    "VolumesFrom": None,
    "ConsoleSize": [24, 80],
    "CapAdd": ["NET_ADMIN"],
    "CapDrop": None,
    "CgroupnsMode": "host",
    "Dns": ["10.0.0.1"],
    "DnsOptions": [],
    "DnsSearch": [],
    "ExtraHosts": ["h:10.1.2.3"],
    "GroupAdd": None,
    "IpcMode": "private",
    "Cgroup": "",
    "Links": None,
    "OomScoreAdj": 0,
    "PidMode": "",
    "Privileged": False,
    "PublishAllPorts": False,
    "ReadonlyRootfs": False,
    "SecurityOpt": None,
    "Tmpfs": {"/run": "size=1m"},
    "UTSMode": "",
    "UsernsMode": "",
    "ShmSize": 67108864,
    "Sysctls": {"net.ipv4.ip_forward": "1"},
    "Runtime": "runc",
    "Isolation": "",
    "CpuShares": 512,
    "Memory": 67108864,
    "NanoCpus": 0,
    "CgroupParent": "",
    "BlkioWeight": 0,
    "BlkioWeightDevice": [],
    "BlkioDeviceReadBps": [],
    "BlkioDeviceWriteBps": [{"Path": "/dev/sda", "Rate": 1048576}],
    "BlkioDeviceReadIOps": [],
    "BlkioDeviceWriteIOps": [],
    "CpuPeriod": 0,
    "CpuQuota": 0,
    "CpuRealtimePeriod": 0,
    "CpuRealtimeRuntime": 0,
    "CpusetCpus": "",
    "CpusetMems": "",
    "Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/n", "CgroupPermissions": "r"}],
    "DeviceCgroupRules": None,
    "DeviceRequests": [
        {"Driver": "", "Count": -1, "DeviceIDs": None, "Capabilities": [["gpu"]], "Options": {}}
    ],
    "MemoryReservation": 0,
    "MemorySwap": 134217728,
    "MemorySwappiness": None,
    "OomKillDisable": None,
    "PidsLimit": None,
    "Ulimits": [{"Name": "nofile", "Hard": 2048, "Soft": 1024}],
    "CpuCount": 0,
    "CpuPercent": 0,
    "IOMaximumIOps": 0,
    "IOMaximumBandwidth": 0,
    "MaskedPaths": ["/proc/asound", "/proc/acpi"],
    "ReadonlyPaths": ["/proc/bus"],
}


def test_dockerds_host_config_round_trips() -> None:
    hc = HostConfig.from_json(copy.deepcopy(DOCKERD_HOST_CONFIG), strict=True)
    assert hc.restart_policy == RestartPolicy(name="on-failure", maximum_retry_count=2)
    assert hc.log_config == LogConfig(type="json-file", config={"max-size": "1m"})
    assert hc.port_bindings == {Port(80): (PortBinding("", "8080"),)}
    assert hc.devices == (
        DeviceMapping(path_on_host="/dev/null", path_in_container="/dev/n", cgroup_permissions="r"),
    )
    assert hc.ulimits == (Ulimit(name="nofile", soft=1024, hard=2048),)
    assert hc.device_requests == (DeviceRequest(count=-1, capabilities=(("gpu",),), options={}),)
    assert (hc.memory, hc.memory_swap, hc.pids_limit, hc.oom_kill_disable) == (
        64 << 20,
        128 << 20,
        None,
        None,
    )
    assert (hc.dns, hc.dns_search, hc.cap_drop) == (("10.0.0.1",), (), None)
    # the fields berth refuses unless unset are kept only to be shown
    assert set(hc.extra) == {
        "VolumeDriver",
        "Cgroup",
        "Isolation",
        "CpuRealtimePeriod",
        "CpuRealtimeRuntime",
        "CpuCount",
        "CpuPercent",
        "IOMaximumIOps",
        "IOMaximumBandwidth",
    }
    assert hc.to_json() == DOCKERD_HOST_CONFIG
    # the stored form is the same
    assert HostConfig.from_json(hc.to_json()) == hc


def test_a_host_config_of_a_few_keys_shows_all_of_dockerds() -> None:
    out = HostConfig.from_json({"NetworkMode": "none"}, strict=True).to_json()
    assert out["NetworkMode"] == "none" and out["Binds"] is None and out["Memory"] == 0
    # Docker's omitempty fields only where set
    assert not {"Annotations", "StorageOpt", "Tmpfs", "Sysctls", "Runtime", "Mounts", "Init"} & set(
        out
    )
    assert HostConfig.from_json({"Init": True}).to_json()["Init"] is True


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"Memory": "64m"}, "HostConfig.Memory: an integer"),
        ({"Privileged": "yes"}, "HostConfig.Privileged: a boolean"),
        ({"Dns": [1]}, r"HostConfig.Dns\[0\]: a string"),
        ({"Sysctls": {"a": 1}}, "HostConfig.Sysctls: a map of strings"),
        ({"RestartPolicy": "always"}, "HostConfig.RestartPolicy: an object"),
        ({"Ulimits": [{"Name": "nofile", "Soft": "x"}]}, r"HostConfig.Ulimits\[0\].Soft"),
        ({"PortBindings": {"80/tcp": "8080"}}, "HostConfig.PortBindings"),
        ({"PortBindings": {"eighty": None}}, "invalid port"),
    ],
)
def test_a_bad_host_config_is_a_400(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        HostConfig.from_json(doc, strict=True)


def test_a_stored_host_config_is_read_as_berthd_once_read_it() -> None:
    """Records before typed HostConfigs kept the client's values: a string where a number
    belongs is read as a number, not refused."""
    hc = HostConfig.from_json({"ShmSize": "1048576", "Privileged": 1})
    assert (hc.shm_size, hc.privileged) == (1 << 20, True)


def test_an_update_body_is_typed_by_field() -> None:
    assert update_request(
        {
            "Memory": 128 << 20,
            "CpuShares": None,
            "CpusetCpus": "",
            "RestartPolicy": {"Name": "always"},
            "Ulimits": [],
        }
    ) == ResourcesUpdate(memory=128 << 20, restart_policy=RestartPolicy(name="always"))
    with pytest.raises(InvalidArgument, match="HostConfig.Memory"):
        update_request({"Memory": "1g"})


def test_an_exec_body_is_read_at_the_edge() -> None:
    c = exec_config(
        {
            "Cmd": ["sh", "-c", "true"],
            "Env": ["A=1"],
            "Tty": True,
            "User": "1:2",
            "AttachStdout": True,
            "DetachKeys": "ctrl-x",
            "ConsoleSize": [24, 80],
        }
    )
    assert c == ExecConfig(
        cmd=("sh", "-c", "true"),
        env=("A=1",),
        tty=True,
        user="1:2",
        attach_stdout=True,
        detach_keys="ctrl-x",
        console_size=(24, 80),
    )
    assert exec_config({"Cmd": "true"}).cmd == ("true",)  # dockerd's strslice
    for body, message in (
        ({}, "No exec command specified"),
        ({"Cmd": []}, "No exec command specified"),
        ({"Cmd": ["true"], "Env": "A=1"}, "invalid Env"),
        ({"Cmd": ["true"], "Privileged": "yes"}, "invalid Privileged"),
        ({"Cmd": ["true"], "ConsoleSize": [24]}, "invalid ConsoleSize"),
        ({"Cmd": ["true"], "DetachKeys": "ctrl-"}, "Invalid escape keys"),
    ):
        with pytest.raises(InvalidArgument, match=message):
            exec_config(body)
