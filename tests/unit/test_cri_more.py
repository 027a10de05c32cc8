"""berth.cri's newer parts that need no root: AppArmor and CDI in the create body, CDI specs as
hostile input, the streamed lists' chunks, the metrics' values, user namespaces refused."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from berth import linux
from berth.containers.hostconfig import HostConfig
from berth.containers.spec import apparmor_profile
from berth.cri import containers as cc
from berth.cri.containers import Spec, create_body
from berth.cri.gen import api
from berth.cri.sandboxes import Sandbox
from berth.errors import InvalidArgument, NotImplemented_


def _sb() -> Sandbox:
    return Sandbox(id="s" * 64, name="web", uid="u", namespace="ns", hostname="web", pid=42)


def _opts(spec: Spec) -> tuple[str, ...]:
    return create_body(spec, _sb()).host_config.security_opt or ()


def test_apparmor_in_the_create_body(monkeypatch: pytest.MonkeyPatch) -> None:
    local = (cc.PROFILE_LOCALHOST, "localhost/k8s-deny-write")
    monkeypatch.setattr(linux, "apparmor_enabled", lambda: False)
    with pytest.raises(InvalidArgument, match="AppArmor is not enabled on this host"):
        _opts(Spec(name="a", image="busybox", apparmor=local))
    # unconfined, the runtime's default and a privileged container need no AppArmor
    assert _opts(Spec(name="a", image="busybox", apparmor=(cc.PROFILE_UNCONFINED, ""))) == ()
    assert _opts(Spec(name="a", image="busybox")) == ()
    assert _opts(Spec(name="a", image="busybox", apparmor=local, privileged=True)) == ()
    monkeypatch.setattr(linux, "apparmor_enabled", lambda: True)
    assert _opts(Spec(name="a", image="busybox", apparmor=local)) == ("apparmor=k8s-deny-write",)
    for bad in ("", "a b", "x\nchange_profile", "/../../etc", "p" * 300):
        with pytest.raises(InvalidArgument, match="AppArmor profile name"):
            _opts(Spec(name="a", image="busybox", apparmor=(cc.PROFILE_LOCALHOST, bad)))


def test_apparmor_in_the_runtime_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    hc = HostConfig(security_opt=("apparmor=one", "apparmor:two"))
    monkeypatch.setattr(linux, "apparmor_enabled", lambda: True)
    assert apparmor_profile(hc) == "two"  # the last one given
    assert apparmor_profile(HostConfig(security_opt=("apparmor=unconfined",))) == ""
    assert apparmor_profile(HostConfig(security_opt=("apparmor=x",), privileged=True)) == ""
    monkeypatch.setattr(linux, "apparmor_enabled", lambda: False)
    assert apparmor_profile(hc) == ""  # as dockerd: no effect where the host has none


def test_cdi_devices_in_the_create_body() -> None:
    hc = create_body(
        Spec(name="a", image="busybox", cdi_devices=["vendor.com/gpu=0", "vendor.com/gpu=1"]),
        _sb(),
    ).host_config
    assert hc.device_requests is not None
    [req] = hc.device_requests
    assert (req.driver, req.device_ids) == ("cdi", ("vendor.com/gpu=0", "vendor.com/gpu=1"))
    assert create_body(Spec(name="a", image="busybox"), _sb()).host_config.device_requests is None
    for bad in ("gpu0", "vendor.com/gpu", "../x=y", "v/c=a b", "v/c=" + "x" * 200):
        with pytest.raises(InvalidArgument, match="CDI device name"):
            create_body(Spec(name="a", image="busybox", cdi_devices=[bad]), _sb())
    with pytest.raises(InvalidArgument, match="at most 64"):
        create_body(Spec(name="a", image="busybox", cdi_devices=["v.com/c=d"] * 65), _sb())


def test_streamed_lists_are_chunked() -> None:
    from berth.cri.extras import STREAM_CHUNK, Extras

    a = api()

    class Lists:
        def __init__(self, n: int) -> None:
            self.n = n
            self.asked: Any = None

        async def ListContainers(self, req: Any) -> Any:  # noqa: N802
            self.asked = req
            return a.ListContainersResponse(
                containers=[a.Container(id=str(i)) for i in range(self.n)]
            )

    async def collect(n: int, **filt: Any) -> tuple[list[int], Lists]:
        impl = Lists(n)
        ex = Extras(None, impl)  # type: ignore[arg-type]
        sizes = []
        seen: list[str] = []
        async for msg in ex.StreamContainers(a.StreamContainersRequest(**filt)):
            sizes.append(len(msg.containers))
            seen += [c.id for c in msg.containers]
        assert seen == [str(i) for i in range(n)]  # each once, in order
        return sizes, impl

    sizes, _ = asyncio.run(collect(2 * STREAM_CHUNK + 5))
    assert sizes == [STREAM_CHUNK, STREAM_CHUNK, 5]
    sizes, impl = asyncio.run(collect(0, filter={"id": "abc"}))
    assert sizes == [] and impl.asked.filter.id == "abc"  # no items: no message, the filter passed


def test_checkpoints_refused_with_a_reason() -> None:
    from berth.cri.extras import Extras

    ex = Extras(None)  # type: ignore[arg-type]
    for rpc in ("CheckpointContainer", "CheckpointPod", "RestorePod"):
        with pytest.raises(NotImplemented_, match="CRIU"):
            asyncio.run(getattr(ex, rpc)(None))


def test_metric_values() -> None:
    from berth.containers.record import ContainerRecord
    from berth.containers.resources import StatsSample
    from berth.cri import metrics

    names = [d.name for d in metrics.DESCRIPTORS]
    assert len(names) == len(set(names)) and "container_cpu_usage_seconds_total" in names
    nets = metrics.net_counters(os.getpid())
    assert "lo" not in nets and all(len(v) == len(metrics.NETWORK) for v in nets.values())
    assert metrics.net_counters(2**22 + 1) == {}  # no such process
    rec: Any = type("R", (), {})()
    rec.host_config = HostConfig(memory=1 << 20)
    rec.state = type("S", (), {"started_at": "2026-01-01T00:00:01.5Z"})()
    s = StatsSample(
        read="",
        name="x",
        id="x",
        cpu_usage_ns=2_600_000_000,
        memory_usage=1000,
        memory_extra={"inactive_file": 100, "anon": 700, "file": 200, "pgfault": 9},
        pids=3,
    )
    v = dict(zip(names, metrics.container_values(rec, s), strict=False))
    assert v["container_cpu_usage_seconds_total"] == 2  # whole seconds, as containerd
    assert v["container_memory_working_set_bytes"] == 900
    assert (v["container_memory_rss"], v["container_memory_cache"]) == (700, 200)
    assert v["container_spec_memory_limit_bytes"] == 1 << 20 and v["container_processes"] == 3
    assert v["container_start_time_seconds"] == 1767225601
    assert isinstance(rec, object) and ContainerRecord  # the type the handler passes


def test_user_namespaces_refused_clearly() -> None:
    from berth.cri.runtime import refuse_userns

    a = api()
    refuse_userns(a.NamespaceOption(), "pod")  # not asked
    refuse_userns(a.NamespaceOption(userns_options={"mode": 2}), "pod")  # NODE: the host's
    with pytest.raises(NotImplemented_, match="hostUsers: false"):
        refuse_userns(
            a.NamespaceOption(
                userns_options={
                    "mode": 0,
                    "uids": [{"host_id": 65536, "container_id": 0, "length": 65536}],
                }
            ),
            "pod",
        )
    with pytest.raises(InvalidArgument):
        refuse_userns(a.NamespaceOption(userns_options={"mode": 3}), "pod")


def test_create_body_typed_as_before() -> None:
    """The typed HostConfig is the one the Docker-named form the CRI once built reads as."""
    sb = _sb()
    sb.share_pid = True
    sb.cgroup_parent = "/kubepods/pod1"
    sb.runtime_handler = "runc"
    sb.shm_path = "/run/shm/x"
    sb.dns.servers = ["10.0.0.10"]
    sb.dns.searches = ["ns.svc"]
    sb.dns.options = ["ndots:5"]
    spec = Spec(
        name="app",
        image="busybox",
        mounts=[("/h", "/c", False, 2), ("/r", "/o", True, 0)],
        devices=[("/dev/fuse", "", "")],
        privileged=False,
        readonly_rootfs=True,
        no_new_privs=True,
        cap_add=["NET_ADMIN"],
        cap_drop=["ALL"],
        masked_paths=["/proc/kcore"],
        readonly_paths=[],
        supplemental_groups=[5, 6],
        seccomp=(cc.PROFILE_UNCONFINED, ""),
        cpu_shares=512,
        cpu_period=100000,
        cpu_quota=50000,
        memory=1 << 26,
        cpuset_cpus="0",
        cpuset_mems="0",
    )
    docker_named = {
        "Binds": ["/h:/c:rw,rshared", "/r:/o:ro,rprivate"],
        "Privileged": False,
        "ReadonlyRootfs": True,
        "CapAdd": ["NET_ADMIN"],
        "CapDrop": ["ALL"],
        "SecurityOpt": ["seccomp=unconfined", "no-new-privileges:true"],
        "GroupAdd": ["5", "6"],
        "Devices": [
            {"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "rwm"}
        ],
        "CpuShares": 512,
        "CpuPeriod": 100000,
        "CpuQuota": 50000,
        "Memory": 1 << 26,
        "CpusetCpus": "0",
        "CpusetMems": "0",
        "LogConfig": {"Type": "json-file"},
        "Dns": ["10.0.0.10"],
        "DnsSearch": ["ns.svc"],
        "DnsOptions": ["ndots:5"],
        "MaskedPaths": ["/proc/kcore"],
        "ReadonlyPaths": [],
        "NetworkMode": "none",
        "IpcMode": "private",
        "CgroupParent": "/kubepods/pod1",
        "Runtime": "runc",
        "Mounts": [{"Type": "bind", "Source": "/run/shm/x", "Target": "/dev/shm"}],
        "Annotations": {
            "io.berth.cri.netns": "/proc/42/ns/net",
            "io.berth.cri.ipcns": "/proc/42/ns/ipc",
            "io.berth.cri.pidns": "/proc/42/ns/pid",
        },
    }
    assert create_body(spec, sb).host_config == HostConfig.from_json(docker_named, strict=True)
    sb.host_network = sb.host_ipc = sb.host_pid = True
    sb.shm_path = ""
    hc = create_body(Spec(name="a", image="busybox"), sb).host_config
    assert (hc.network_mode, hc.ipc_mode, hc.pid_mode, hc.annotations) == (
        "host",
        "host",
        "host",
        {},
    )
    assert hc.mounts is None and hc.cap_add is None and hc.devices is None
