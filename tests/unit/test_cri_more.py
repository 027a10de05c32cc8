"""berth.cri's create body, typed: the HostConfig as the Docker-named form once built reads."""

from __future__ import annotations

from berth.containers.hostconfig import HostConfig
from berth.cri import containers as cc
from berth.cri.containers import Spec, create_body
from berth.cri.sandboxes import Sandbox


def _sb() -> Sandbox:
    return Sandbox(id="s" * 64, name="web", uid="u", namespace="ns", hostname="web", pid=42)


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
