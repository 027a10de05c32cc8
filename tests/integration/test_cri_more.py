"""berthd's CRI, its newer RPCs and fields, driven over gRPC as test_cri drives it: the pod
metrics (ListMetricDescriptors, ListPodSandboxMetrics), the streamed lists, the checkpoints
refused, UpdatePodSandboxResources, AppArmor profiles, CDI devices (with hostile specs beside
them), user namespaces refused. One berthd for the module, its pods on a bridge of its own on
10.203.67.0/25; all of it torn down after (test_cri's `cri_daemon`)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .test_cri import Cri, cri_daemon, wait_for

grpc = pytest.importorskip("grpc")

SUBNET = "10.203.67.0/25"


@pytest.fixture(scope="module")
def cri(tmp_path_factory: pytest.TempPathFactory, rootfs_tar: Path) -> Iterator[Cri]:
    base = tmp_path_factory.mktemp("crimore")
    specs = base / "cdi"
    specs.mkdir()
    with cri_daemon(base, rootfs_tar, SUBNET, "--cdi-spec-dir", str(specs)) as c:
        yield c


def _code(call: Any) -> tuple[Any, str]:
    with pytest.raises(grpc.RpcError) as e:
        call()
    return e.value.code(), e.value.details() or ""


def _gone(cri: Cri, sid: str) -> None:
    cri.runtime("StopPodSandbox", pod_sandbox_id=sid)
    cri.runtime("RemovePodSandbox", pod_sandbox_id=sid)


def test_pod_metrics(cri: Cri) -> None:
    """cadvisor's names from the pod's cgroups and interfaces: each metric is described, its
    labels match its descriptor's keys; the streamed form has the same pods."""
    sid, pod = cri.pod("metrics")
    try:
        cid = cri.container(sid, pod, "busy", ["sh", "-c", "while true; do :; done"])
        cri.exec(cid, "ping", "-c", "2", "-i", "0.2", cri.gateway)  # some traffic on eth0
        desc = {
            d.name: list(d.label_keys) for d in cri.runtime("ListMetricDescriptors").descriptors
        }
        assert desc["container_cpu_usage_seconds_total"] == ["id", "name", "image"]
        assert desc["container_network_receive_bytes_total"] == ["id", "name", "image", "interface"]

        def ours() -> Any:
            got = cri.runtime("ListPodSandboxMetrics").pod_metrics
            m = [p for p in got if p.pod_sandbox_id == sid]
            if m and m[0].container_metrics:
                cpu = {x.name: x.value.value for x in m[0].container_metrics[0].metrics}
                if cpu["container_cpu_usage_seconds_total"] >= 1:  # the loop has run a second
                    return m[0]
            return None

        pm = wait_for(ours, 20)
        assert pm is not None
        net = {(m.name, m.label_values[3]): m for m in pm.metrics}
        rx = net[("container_network_receive_bytes_total", "eth0")]
        assert rx.value.value > 0 and list(rx.label_values) == [sid, "POD", "", "eth0"]
        assert rx.metric_type == 0  # COUNTER
        assert net[("container_network_transmit_packets_total", "eth0")].value.value >= 2
        [cm] = pm.container_metrics
        assert cm.container_id == cid
        values = {m.name: m for m in cm.metrics}
        assert list(values["container_memory_usage_bytes"].label_values) == [cid, "busy", "busybox"]
        assert values["container_memory_usage_bytes"].value.value > 0
        assert values["container_memory_usage_bytes"].metric_type == 1  # GAUGE
        assert values["container_processes"].value.value >= 1
        assert values["container_start_time_seconds"].value.value > 1_700_000_000
        for m in [*pm.metrics, *cm.metrics]:
            assert len(m.label_values) == len(desc[m.name]), m.name
        streamed = [
            p.pod_sandbox_id
            for msg in cri.client.stream("RuntimeService", "StreamPodSandboxMetrics")
            for p in msg.pod_sandbox_metrics
        ]
        assert sid in streamed and len(streamed) == len(set(streamed))
    finally:
        _gone(cri, sid)
    assert all(p.pod_sandbox_id != sid for p in cri.runtime("ListPodSandboxMetrics").pod_metrics)


def _streamed(cri: Cri, service: str, method: str, field: str, **req: Any) -> list[Any]:
    out = []
    for msg in cri.client.stream(service, method, **req):
        items = list(getattr(msg, field))
        assert items, "a streamed message has at least one item"
        out += items
    return out


def test_streamed_lists(cri: Cri) -> None:
    """Each Stream* RPC gives what its List RPC gives, filters and all; nothing found: no
    message at all."""
    sid, pod = cri.pod("streams", labels={"app": "streams"})
    try:
        cid = cri.container(sid, pod, "c", ["sleep", "100"], labels={"role": "x"})
        pods = _streamed(
            cri,
            "RuntimeService",
            "StreamPodSandboxes",
            "pod_sandboxes",
            filter={"label_selector": {"app": "streams"}},
        )
        assert [p.id for p in pods] == [sid]
        ctrs = _streamed(
            cri, "RuntimeService", "StreamContainers", "containers", filter={"pod_sandbox_id": sid}
        )
        assert [(c.id, dict(c.labels)) for c in ctrs] == [(cid, {"role": "x"})]
        stats = _streamed(
            cri, "RuntimeService", "StreamContainerStats", "container_stats", filter={"id": cid}
        )
        assert [s.attributes.id for s in stats] == [cid]
        pstats = _streamed(
            cri,
            "RuntimeService",
            "StreamPodSandboxStats",
            "pod_sandbox_stats",
            filter={"id": sid},
        )
        assert [s.attributes.id for s in pstats] == [sid]
        images = _streamed(cri, "ImageService", "StreamImages", "images")
        listed = cri.image("ListImages").images
        assert sorted(i.id for i in images) == sorted(i.id for i in listed) and images
        assert (
            _streamed(
                cri, "RuntimeService", "StreamContainers", "containers", filter={"id": "f" * 64}
            )
            == []
        )
    finally:
        _gone(cri, sid)


def test_checkpoints_and_pod_resources(cri: Cri) -> None:
    sid, pod = cri.pod("ckpt")
    try:
        cid = cri.container(sid, pod, "c", ["sleep", "100"])
        for call in (
            lambda: cri.runtime("CheckpointContainer", container_id=cid, location="/tmp/x.tar"),
            lambda: cri.runtime(
                "CheckpointPod", pod_sandbox_id=sid, output_path="/tmp", container_ids=[cid]
            ),
        ):
            code, why = _code(call)
            assert code == grpc.StatusCode.UNIMPLEMENTED and "CRIU" in why
        # best effort, after the kubelet resized the pod's cgroup: accepted for a pod there is
        cri.runtime(
            "UpdatePodSandboxResources",
            pod_sandbox_id=sid,
            resources={"cpu_shares": 512, "memory_limit_in_bytes": 64 << 20},
        )
        code, _ = _code(lambda: cri.runtime("UpdatePodSandboxResources", pod_sandbox_id="nope"))
        assert code == grpc.StatusCode.NOT_FOUND
        assert cri.runtime("ContainerStatus", container_id=cid).status.state == 1  # still running
    finally:
        _gone(cri, sid)


def _apparmor_on() -> bool:
    try:
        return Path("/sys/module/apparmor/parameters/enabled").read_text().strip() == "Y"
    except OSError:
        return False


def test_apparmor_profiles(cri: Cri) -> None:
    """RuntimeDefault and Unconfined run (berth loads no profile of its own); a localhost
    profile, where the host has no AppArmor, is refused at CreateContainer, by the field and
    by the older string; a privileged container is not confined, so runs."""
    if _apparmor_on():
        pytest.skip("AppArmor is on here: test_runtime_v2_vm runs profiles in its guest")
    sid, pod = cri.pod("aa")
    try:
        for i, sc in enumerate(
            (
                {"apparmor": {"profile_type": 0}},
                {"apparmor": {"profile_type": 1}},
                {"apparmor_profile": "unconfined"},
                {"apparmor": {"profile_type": 2, "localhost_ref": "k8s-x"}, "privileged": True},
            )
        ):
            cid = cri.container(
                sid, pod, f"ok{i}", ["sleep", "100"], linux={"security_context": sc}
            )
            assert cri.exec(cid, "true").exit_code == 0
            status = cri.daemon.ok("inspect", "--format", "{{.HostConfig.SecurityOpt}}", cid)
            assert "apparmor" not in status
        for sc in (
            {"apparmor": {"profile_type": 2, "localhost_ref": "k8s-deny-write"}},
            {"apparmor_profile": "localhost/k8s-deny-write"},
        ):
            code, why = _code(
                lambda sc=sc: cri.container(
                    sid, pod, "denied", ["true"], linux={"security_context": sc}
                )
            )
            assert code == grpc.StatusCode.INVALID_ARGUMENT
            assert "AppArmor is not enabled on this host" in why and "k8s-deny-write" in why
        code, why = _code(
            lambda: cri.container(
                sid,
                pod,
                "badname",
                ["true"],
                linux={
                    "security_context": {
                        "apparmor": {"profile_type": 2, "localhost_ref": "x\nchange_profile y"}
                    }
                },
            )
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "is not valid" in why
        names = [c.metadata.name for c in cri.runtime("ListContainers").containers]
        assert "denied" not in names and "badname" not in names
    finally:
        _gone(cri, sid)


def _cdi_dir(cri: Cri) -> Path:
    return cri.base / "cdi"


def test_cdi_devices(cri: Cri, tmp_path: Path) -> None:
    """CDI_devices from the specs the daemon reads: the device node, its env and mount are
    the container's; a device with hooks, an unknown one, a bad name and hostile specs (a
    symbolic link, a path out of the container, an oversized file) are refused or skipped,
    at CreateContainer."""
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse on this host to stand for a CDI device")
    d = _cdi_dir(cri)
    lib = tmp_path / "lib.txt"
    lib.write_text("vendor library\n")
    spec = {
        "cdiVersion": "0.6.0",
        "kind": "example.com/dev",
        "containerEdits": {"env": ["EXAMPLE_COMMON=1"]},
        "devices": [
            {
                "name": "fuse",
                "containerEdits": {
                    "env": ["EXAMPLE_DEV=fuse"],
                    "deviceNodes": [{"path": "/dev/fuse"}],
                    "mounts": [
                        {
                            "hostPath": str(lib),
                            "containerPath": "/opt/lib.txt",
                            "options": ["ro", "rbind"],
                        }
                    ],
                },
            },
            {
                "name": "hooked",
                "containerEdits": {"hooks": [{"hookName": "createContainer", "path": "/bin/true"}]},
            },
        ],
    }
    (d / "example.json").write_text(json.dumps(spec))
    # hostile beside it: each skipped whole
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({**spec, "kind": "example.com/linked"}))
    (d / "linked.json").symlink_to(outside)
    escape = {
        "cdiVersion": "0.6.0",
        "kind": "example.com/escape",
        "devices": [
            {
                "name": "x",
                "containerEdits": {
                    "mounts": [{"hostPath": "/etc", "containerPath": "/../../../host-etc"}]
                },
            }
        ],
    }
    (d / "escape.json").write_text(json.dumps(escape))
    (d / "huge.json").write_text(json.dumps({**spec, "kind": "example.com/huge"}) + " " * (1 << 20))
    sid, pod = cri.pod("cdi")
    try:
        cid = cri.container(
            sid,
            pod,
            "gpu",
            ["sh", "-c", "echo $EXAMPLE_DEV $EXAMPLE_COMMON > /tmp/env; sleep 100"],
            CDI_devices=[{"name": "example.com/dev=fuse"}],
        )
        # the env is the container's process's (an exec's is the container's config's)
        wait_for(lambda: cri.exec(cid, "cat", "/tmp/env").stdout)
        r = cri.exec(
            cid, "sh", "-c", "cat /tmp/env /opt/lib.txt; head -c0 /dev/fuse && echo opened"
        )
        assert r.stdout.decode().split("\n")[:3] == ["fuse 1", "vendor library", "opened"]
        for name, why in (
            ("example.com/dev=hooked", "OCI hooks, which berth does not run"),
            ("example.com/dev=nope", "unresolvable CDI devices example.com/dev=nope"),
            ("example.com/linked=fuse", "unresolvable CDI devices"),
            ("example.com/escape=x", "unresolvable CDI devices"),
            ("example.com/huge=fuse", "unresolvable CDI devices"),
            ("../../dev=fuse", "is not vendor.com/class=name"),
        ):
            code, got = _code(
                lambda name=name: cri.container(
                    sid, pod, "refused", ["true"], CDI_devices=[{"name": name}]
                )
            )
            assert code == grpc.StatusCode.INVALID_ARGUMENT and why in got, (name, got)
        names = [c.metadata.name for c in cri.runtime("ListContainers").containers]
        assert "refused" not in names
    finally:
        _gone(cri, sid)
        for p in d.iterdir():
            p.unlink()


def test_user_namespaces_refused(cri: Cri) -> None:
    """hostUsers: false (a user namespace of the pod's own) is refused clearly, for the pod
    and for a container; NODE (the host's) runs as before."""
    userns = {
        "mode": 0,
        "uids": [{"host_id": 100000, "container_id": 0, "length": 65536}],
        "gids": [{"host_id": 100000, "container_id": 0, "length": 65536}],
    }
    code, why = _code(
        lambda: cri.pod(
            "userns",
            linux={"security_context": {"namespace_options": {"userns_options": userns}}},
        )
    )
    assert code == grpc.StatusCode.UNIMPLEMENTED and "hostUsers: false" in why
    assert all(p.metadata.name != "userns" for p in cri.runtime("ListPodSandbox").items)
    node = {"namespace_options": {"userns_options": {"mode": 2}}}
    sid, pod = cri.pod("hostusers", linux={"security_context": node})
    try:
        cid = cri.container(sid, pod, "c", ["sleep", "100"], linux={"security_context": node})
        assert cri.exec(cid, "cat", "/proc/self/uid_map").stdout.split()[:3] == [
            b"0",
            b"0",
            b"4294967295",
        ]
        code, why = _code(
            lambda: cri.container(
                sid,
                pod,
                "c2",
                ["true"],
                linux={"security_context": {"namespace_options": {"userns_options": userns}}},
            )
        )
        assert code == grpc.StatusCode.UNIMPLEMENTED and "hostUsers: false" in why
    finally:
        _gone(cri, sid)
