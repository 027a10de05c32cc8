"""ContainerRecord: its own versioned JSON in the metadata store, the Docker-shaped documents of
berthd before it (a daemon upgraded in place keeps its containers), and Docker's inspect JSON
made of it at the API edge."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from berth.api.containers_wire import (
    container_inspect,
    container_state,
    container_stats,
    container_summary,
)
from berth.containers.hostconfig import HostConfig
from berth.containers.record import (
    VERSION,
    ContainerRecord,
    ContainerState,
    Health,
    HealthProbe,
    HealthStatus,
    Link,
    NetworkRequest,
)
from berth.containers.resources import NetStats, StatsSample
from berth.containers.status import ContainerStatus
from berth.containers.views import ContainerView
from berth.errors import Conflict, System

CID = "ab" * 32
NID = "12" * 32

# what berthd stored before records were typed: Docker's inspect JSON plus `_berth`
LEGACY: dict[str, Any] = {
    "Id": CID,
    "Created": "2026-12-01T05:00:00.5Z",
    "Path": "sh",
    "Args": ["-c", "exit 3"],
    "State": {
        "Status": "exited",
        "Running": False,
        "Paused": False,
        "Restarting": False,
        "OOMKilled": False,
        "Dead": False,
        "Pid": 0,
        "ExitCode": 3,
        "Error": "",
        "StartedAt": "2026-12-01T05:00:01Z",
        "FinishedAt": "2026-12-01T05:00:02Z",
    },
    "Image": "sha256:" + "cd" * 32,
    "ResolvConfPath": f"/d/containers/{CID}/resolv.conf",
    "HostnamePath": f"/d/containers/{CID}/hostname",
    "HostsPath": f"/d/containers/{CID}/hosts",
    "LogPath": f"/d/containers/{CID}/{CID}-json.log",
    "Name": "/web",
    "RestartCount": 1,
    "Driver": "overlay2",
    "Platform": "linux",
    "MountLabel": "",
    "ProcessLabel": "",
    "AppArmorProfile": "",
    "ExecIDs": None,
    "HostConfig": {
        "NetworkMode": "bridge",
        "Runtime": "berth",
        "Links": None,
        "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
        "LogConfig": {"Type": "json-file", "Config": {}},
    },
    "GraphDriver": {
        "Name": "overlay2",
        "Data": {"UpperDir": "/d/overlay/up", "LowerDir": "/d/l/2:/d/l/1"},
    },
    "Mounts": [
        {
            "Type": "volume",
            "Name": "v",
            "Source": "/d/volumes/v/_data",
            "Destination": "/data",
            "Driver": "local",
            "Mode": "z",
            "RW": True,
            "Propagation": "",
        }
    ],
    # as berthd's create made it (all of dockerd's keys, in its order)
    "Config": {
        "Hostname": CID[:12],
        "Domainname": "",
        "User": "",
        "AttachStdin": False,
        "AttachStdout": True,
        "AttachStderr": True,
        "Tty": False,
        "OpenStdin": False,
        "StdinOnce": False,
        "Env": ["PATH=/bin"],
        "Cmd": ["sh", "-c", "exit 3"],
        "Image": "busybox",
        "Volumes": None,
        "WorkingDir": "",
        "Entrypoint": None,
        "OnBuild": None,
        "Labels": {"a": "b"},
    },
    # as berthd kept it for a stopped container on the default bridge
    "NetworkSettings": {
        "Bridge": "",
        "SandboxID": "",
        "SandboxKey": "",
        "Ports": {},
        "HairpinMode": False,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "SecondaryIPAddresses": None,
        "SecondaryIPv6Addresses": None,
        "EndpointID": "",
        "Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": "",
        "IPPrefixLen": 0,
        "IPv6Gateway": "",
        "MacAddress": "",
        "Networks": {
            "bridge": {
                "IPAMConfig": None,
                "Links": None,
                "Aliases": None,
                "MacAddress": "",
                "NetworkID": NID,
                "EndpointID": "",
                "Gateway": "",
                "IPAddress": "",
                "IPPrefixLen": 0,
                "IPv6Gateway": "",
                "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0,
                "DriverOpts": None,
                "DNSNames": None,
            }
        },
    },
    "_berth": {
        "layers": ["sha256:1", "sha256:2"],
        "created": 1796101200,
        "created_ns": 1796101200_500000000,
        "nets": [{"net": "bridge", "aliases": [], "ip": "", "mac": ""}],
        "links": [{"id": "ef" * 32, "alias": "db"}],
        "monitor": 0,
        "manually_stopped": True,
        "link_env": ["DB_NAME=/web/db"],
    },
}


def test_an_older_berthds_document_loads_as_a_record() -> None:
    r = ContainerRecord.from_stored(copy.deepcopy(LEGACY))
    assert (r.id, r.name, r.short_name, r.image) == (CID, "/web", "web", LEGACY["Image"])
    assert (r.path, r.args, r.restart_count) == ("sh", ["-c", "exit 3"], 1)
    assert r.state == ContainerState(
        status=ContainerStatus.EXITED,
        exit_code=3,
        started_at="2026-12-01T05:00:01Z",
        finished_at="2026-12-01T05:00:02Z",
    )
    assert (r.created_ns, r.created) == (1796101200_500000000, 1796101200)
    assert (r.upper_dir, r.lower_dirs) == ("/d/overlay/up", ["/d/l/2", "/d/l/1"])
    assert r.layers == ["sha256:1", "sha256:2"] and r.links == [Link(id="ef" * 32, alias="db")]
    assert r.manually_stopped and r.link_env == ["DB_NAME=/web/db"] and r.exec_ids == []
    assert r.nets == [NetworkRequest(net="bridge")]


def test_the_stored_form_is_versioned_and_round_trips() -> None:
    r = ContainerRecord.from_stored(copy.deepcopy(LEGACY))
    j = r.to_json()
    assert j["v"] == VERSION and "_berth" not in j and "State" not in j
    assert ContainerRecord.from_stored(j) == r


def test_a_network_request_round_trips() -> None:
    n = NetworkRequest(
        net="front", aliases=["web"], ip="10.1.0.9", mac="02:42:0a:01:00:09", links=["db:data"]
    )
    assert NetworkRequest.from_json(n.to_json()) == n
    assert "links" not in NetworkRequest(net="front").to_json()


def test_health_keeps_dockers_shape() -> None:
    docker = {
        "Status": "unhealthy",
        "FailingStreak": 3,
        "Log": [
            {
                "Start": "2026-12-01T05:00:01Z",
                "End": "2026-12-01T05:00:02Z",
                "ExitCode": 1,
                "Output": "no\n",
            }
        ],
    }
    legacy = copy.deepcopy(LEGACY)
    legacy["State"]["Health"] = docker
    r = ContainerRecord.from_stored(legacy)
    assert r.state.health == Health(
        status=HealthStatus.UNHEALTHY,
        failing_streak=3,
        log=[
            HealthProbe(
                start="2026-12-01T05:00:01Z", end="2026-12-01T05:00:02Z", exit_code=1, output="no\n"
            )
        ],
    )
    assert ContainerRecord.from_stored(r.to_json()) == r
    assert container_inspect(ContainerView(r))["State"]["Health"] == docker


def test_a_record_of_an_unknown_version_is_refused() -> None:
    j = ContainerRecord.from_stored(copy.deepcopy(LEGACY)).to_json()
    with pytest.raises(System, match="unknown version 99"):
        ContainerRecord.from_stored({**j, "v": 99})


def test_inspect_json_is_the_older_document_without_berths_own() -> None:
    """The API's inspect of a record equals what berthd stored and showed before, key for key
    and in the same order (but the legacy links, shown under their targets' names)."""
    r = ContainerRecord.from_stored(copy.deepcopy(LEGACY))
    out = container_inspect(ContainerView(r, links=["/db:/web/db"], network_ids={"bridge": NID}))
    want = {k: v for k, v in LEGACY.items() if k != "_berth"}
    want["Created"] = "2026-12-01T05:00:00.500000000Z"  # from the nanoseconds kept
    # every key of dockerd's HostConfig, those the older document lacked unset
    want["HostConfig"] = {
        **HostConfig.from_json(LEGACY["HostConfig"]).to_json(),
        "Links": ["/db:/web/db"],
    }
    assert list(out) == list(want)
    assert out == want
    sized = container_inspect(ContainerView(r, size_rw=5, size_root_fs=9))
    assert (sized["SizeRw"], sized["SizeRootFs"]) == (5, 9)


def test_state_json_follows_the_status() -> None:
    for status, running, paused, restarting, dead in [
        (ContainerStatus.RUNNING, True, False, False, False),
        (ContainerStatus.PAUSED, True, True, False, False),
        (ContainerStatus.RESTARTING, False, False, True, False),
        (ContainerStatus.DEAD, False, False, False, True),
    ]:
        j = container_state(ContainerState(status=status))
        assert (j["Status"], j["Running"], j["Paused"], j["Restarting"], j["Dead"]) == (
            status.value,
            running,
            paused,
            restarting,
            dead,
        )


def test_a_state_changes_only_along_its_transitions() -> None:
    st = ContainerState()
    st.become(ContainerStatus.RUNNING)
    st.become(ContainerStatus.PAUSED)
    with pytest.raises(Conflict):
        st.become(ContainerStatus.REMOVING)
    assert st.status is ContainerStatus.PAUSED


def test_ps_summary() -> None:
    r = ContainerRecord.from_stored(copy.deepcopy(LEGACY))
    s = container_summary(
        ContainerView(r, status_text="Exited (3) 2 minutes ago", network_ids={"bridge": NID})
    )
    assert s == {
        "Id": CID,
        "Names": ["/web"],
        "Image": "busybox",
        "ImageID": LEGACY["Image"],
        "Command": "sh -c exit 3",
        "Created": 1796101200,
        "Ports": [],
        "Labels": {"a": "b"},
        "State": "exited",
        "Status": "Exited (3) 2 minutes ago",
        "HostConfig": {"NetworkMode": "bridge"},
        "NetworkSettings": {"Networks": LEGACY["NetworkSettings"]["Networks"]},
        "Mounts": LEGACY["Mounts"],
    }


def test_stats_json_of_two_samples() -> None:
    stopped = StatsSample(read="t0", name="/web", id=CID)
    running = StatsSample(
        read="t1",
        name="/web",
        id=CID,
        running=True,
        pids=3,
        pids_limit=10,
        cpu_usage_ns=5,
        system_cpu_ns=7,
        online_cpus=2,
        memory_usage=4,
        memory_limit=8,
        networks={"eth0": NetStats(rx_bytes=1, tx_bytes=2)},
    )
    j = container_stats(running, stopped)
    assert (j["read"], j["preread"], j["pids_stats"]) == ("t1", "t0", {"current": 3, "limit": 10})
    assert j["precpu_stats"] == {"cpu_usage": {"total_usage": 0}, "throttling_data": {}}
    assert j["cpu_stats"]["cpu_usage"]["total_usage"] == 5 and j["cpu_stats"]["online_cpus"] == 2
    assert j["networks"]["eth0"]["rx_bytes"] == 1 and j["networks"]["eth0"]["tx_dropped"] == 0
    assert j["memory_stats"] == {"usage": 4, "limit": 8, "stats": {}}
    assert container_stats(stopped, stopped)["memory_stats"] == {}
