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
