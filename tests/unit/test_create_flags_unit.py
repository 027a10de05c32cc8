"""The run/create flags of issue 15 without a daemon: the daemon's validation and words, the
runtime spec they make, the cgroup files they write on a fake cgroupfs (v1 and v2), the CLI's
request body, and the health check's start interval."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from berth import cgroups
from berth.cli.create import RunOptions, build_create_body
from berth.containers import health
from berth.containers.hostconfig import DeviceRequest, HostConfig
from berth.containers.settings import ContainerConfig, HealthConfig
from berth.containers.spec import (
    UNSUPPORTED_HOST_CONFIG,
    build_spec,
    device_cgroup_rule,
    refuse_unsupported,
    validate_healthcheck,
    validate_host_config,
)
from berth.errors import InvalidArgument

MB = 1 << 20


def _hc(doc: dict[str, Any]) -> HostConfig:
    """A client's HostConfig, typed as the API edge reads it."""
    return HostConfig.from_json(doc, strict=True)


def _spec(doc: dict[str, Any], config: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    hc = _hc(doc)
    validate_host_config(hc, 2)
    return build_spec(
        cid="c" * 64,
        config=ContainerConfig(cmd=("true",), **(config or {})),
        host_config=hc,
        hostname_path="",
        hosts_path="",
        resolv_path="",
        cgroup_parent="berth",
        **kw,
    )


def _ns(spec: dict[str, Any]) -> dict[str, str | None]:
    return {ns["type"]: ns.get("path") for ns in spec["linux"]["namespaces"]}


@pytest.mark.parametrize(
    "hc, msg",
    [
        ({"PidMode": "bogus"}, "invalid PID mode: bogus"),
        ({"PidMode": "container:"}, "invalid PID mode: container:"),
        ({"IpcMode": "bogus"}, "invalid IPC mode: bogus"),
        ({"UTSMode": "container:x"}, "invalid UTS mode: container:x"),
        ({"OomScoreAdj": 1001}, "Invalid value 1001, range for oom score adj is [-1000, 1000]"),
        ({"MemoryReservation": MB}, "Minimum memory reservation allowed is 6MB"),
        (
            {"Memory": 8 * MB, "MemoryReservation": 16 * MB},
            "Minimum memory limit can not be less than memory reservation limit, see usage",
        ),
        ({"MemorySwappiness": 101}, "Invalid value: 101, valid memory swappiness range is 0-100"),
        ({"BlkioWeight": 5}, "Range of blkio weight is from 10 to 1000"),
        (
            {"BlkioDeviceReadBps": [{"Path": "/nonexistent", "Rate": 1}]},
            "stat /nonexistent: no such file or directory",
        ),
        (
            {"BlkioDeviceWriteIOps": [{"Path": "/dev/null", "Rate": 1}]},
            "/dev/null is not a block device",
        ),
        ({"DeviceCgroupRules": ["c 1:3"]}, "invalid device cgroup rule format: 'c 1:3'"),
        (
            {"StorageOpt": {"size": "10G"}},
            "--storage-opt is supported only for overlay over xfs with 'pquota' mount option",
        ),
        ({"CpuRealtimeRuntime": 950000}, "HostConfig.CpuRealtimeRuntime is not supported"),
        ({"Isolation": "hyperv"}, "HostConfig.Isolation is not supported"),
        ({"Annotations": {"berth.user": "0"}}, "the berth. prefix is the daemon's own"),
    ],
)
def test_validation_errors_are_dockers(hc: dict[str, Any], msg: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        validate_host_config(_hc(hc), 2)
    assert msg in e.value.message


def test_defaults_pass_and_ipc_defaults_to_private() -> None:
    hc: dict[str, Any] = {k: v[0] for k, v in UNSUPPORTED_HOST_CONFIG.items()}
    hc.update(
        {"MemorySwappiness": -1, "CpuCount": 0, "Isolation": "default", "VolumeDriver": "local"}
    )
    typed = _hc(hc)
    assert validate_host_config(typed, 2) == []
    assert typed.ipc_mode == "private"
    refuse_unsupported({}, {"NetworkDisabled": False})
    with pytest.raises(InvalidArgument, match="Config.NetworkDisabled"):
        refuse_unsupported({}, {"NetworkDisabled": True})


def test_oom_kill_disable_without_memory_warns() -> None:
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        pytest.skip("cgroup v2 discards OomKillDisable with a warning of its own")
    assert validate_host_config(_hc({"OomKillDisable": True}), 2) == [
        "OOM killer is disabled for the container, but no memory limit is set, this can "
        "result in the system running out of resources."
    ]
    assert validate_host_config(_hc({"OomKillDisable": True, "Memory": 64 * MB}), 2) == []


def test_namespace_modes_in_the_spec() -> None:
    assert _ns(_spec({})).keys() >= {"pid", "ipc", "uts", "mount", "network"}
    spec = _spec({"PidMode": "host", "IpcMode": "host", "UTSMode": "host"})
    assert not {"pid", "ipc", "uts"} & _ns(spec).keys()
    assert spec["hostname"] == ""
    shm = next(m for m in spec["mounts"] if m["destination"] == "/dev/shm")
    assert (shm["type"], shm["source"]) == ("bind", "/dev/shm")
    spec = _spec(
        {"PidMode": "container:a", "IpcMode": "container:b"},
        pidns_path="/proc/7/ns/pid",
        ipcns_path="/proc/8/ns/ipc",
        shm_path="/var/lib/berth/containers/b/mounts/shm",
    )
    assert _ns(spec)["pid"] == "/proc/7/ns/pid" and _ns(spec)["ipc"] == "/proc/8/ns/ipc"
    shm = next(m for m in spec["mounts"] if m["destination"] == "/dev/shm")
    assert shm["source"] == "/var/lib/berth/containers/b/mounts/shm"
    spec = _spec({"IpcMode": "none"})
    assert "ipc" in _ns(spec) and not any(m["destination"] == "/dev/shm" for m in spec["mounts"])


def test_process_resources_and_annotations_in_the_spec() -> None:
    spec = _spec(
        {
            "OomScoreAdj": 300,
            "Memory": 64 * MB,
            "MemoryReservation": 32 * MB,
            "MemorySwappiness": 0,
            "OomKillDisable": True,
            "BlkioWeight": 500,
            "DeviceCgroupRules": ["c 1:3 mr", "a *:* rwm"],
            "Annotations": {"org.example/a": "b"},
        },
        config={"domainname": "example.test", "user": "nobody"},
    )
    assert spec["process"]["oomScoreAdj"] == 300
    assert spec["domainname"] == "example.test"
    assert spec["annotations"] == {"org.example/a": "b", "berth.user": "nobody"}
    mem = spec["linux"]["resources"]["memory"]
    assert (mem["reservation"], mem["swappiness"], mem["disableOOMKiller"]) == (32 * MB, 0, True)
    assert spec["linux"]["resources"]["blockIO"] == {"weight": 500}
    assert spec["linux"]["resources"]["devices"][-2:] == [
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "mr"},
        {"allow": True, "type": "a", "major": -1, "minor": -1, "access": "rwm"},
    ]
    assert device_cgroup_rule("b 8:* r")["minor"] == -1
    # swappiness -1 (the docker CLI's "unset") writes nothing
    assert "memory" not in _spec({"MemorySwappiness": -1})["linux"]["resources"]


def _v1(tmp: Path, *extra: str) -> cgroups.V1:
    mounts = {}
    for c in ("memory", "blkio"):
        (tmp / c / "p" / "c").mkdir(parents=True)
        mounts[c] = str(tmp / c)
    for f in extra:
        (tmp / "blkio" / "p" / "c" / f).write_text("")
    return cgroups.V1("p/c", mounts=mounts)


def test_v1_memory_and_blkio_files(tmp_path: Path) -> None:
    m = _v1(tmp_path, "blkio.bfq.weight", "blkio.bfq.weight_device")
    res = cgroups.Resources.from_spec(
        {
            "memory": {"reservation": 32 * MB, "swappiness": 10, "disableOOMKiller": True},
            "blockIO": {
                "weight": 300,
                "weightDevice": [{"major": 8, "minor": 0, "weight": 20}],
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": MB}],
                "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 50}],
            },
        }
    )
    m.create(res)
    mem, blk = tmp_path / "memory" / "p" / "c", tmp_path / "blkio" / "p" / "c"
    assert (mem / "memory.soft_limit_in_bytes").read_text() == str(32 * MB)
    assert (mem / "memory.swappiness").read_text() == "10"
    assert (mem / "memory.oom_control").read_text() == "1"
    assert (blk / "blkio.bfq.weight").read_text() == "300"
    assert (blk / "blkio.bfq.weight_device").read_text() == "8:0 20"
    assert (blk / "blkio.throttle.read_bps_device").read_text() == f"8:0 {MB}"
    assert (blk / "blkio.throttle.write_iops_device").read_text() == "8:0 50"


def test_v1_blkio_weight_without_a_weight_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="does not support Block I/O weight"):
        _v1(tmp_path).create(cgroups.Resources(blkio_weight=300))


def test_v2_memory_low_and_io(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu io memory pids\n")
    d = tmp_path / "p" / "c"
    d.mkdir(parents=True)
    for f in ("io.weight", "io.max"):
        (d / f).write_text("")
    m = cgroups.V2("p/c", root=str(tmp_path))
    m.create(
        cgroups.Resources(
            memory_reservation=32 * MB,
            memory_swappiness=10,
            blkio_weight=1000,
            blkio_throttle=(("throttleReadBpsDevice", 8, 0, MB),),
        )
    )
    assert (d / "memory.low").read_text() == str(32 * MB)
    assert not (d / "memory.swappiness").exists()
    assert (d / "io.weight").read_text() == "default 10000"  # runc's [10,1000] -> [1,10000]
    assert (d / "io.max").read_text() == f"8:0 rbps={MB}"
    (d / "io.weight").unlink()
    (d / "io.bfq.weight").write_text("")
    m.create(cgroups.Resources(blkio_weight=300))
    assert (d / "io.bfq.weight").read_text() == "300"


def test_cli_body(tmp_path: Path) -> None:
    lf = tmp_path / "labels"
    lf.write_text("# comment\n\na=1\n  b=2\n")
    opts, pos = RunOptions.parse(
        [
            "--pid",
            "host",
            "--ipc",
            "shareable",
            "--uts",
            "host",
            "--oom-score-adj",
            "-5",
            "--memory-reservation",
            "32m",
            "--memory-swappiness",
            "0",
            "--oom-kill-disable",
            "--blkio-weight",
            "300",
            "--blkio-weight-device",
            "/dev/sda:20",
            "--device-read-bps",
            "/dev/sda:1mb",
            "--device-write-iops",
            "/dev/sda:7",
            "--label-file",
            str(lf),
            "-l",
            "b=3",
            "--domainname",
            "ex.test",
            "--device-cgroup-rule",
            "c 1:3 mr",
            "--storage-opt",
            "size=1G",
            "--gpus",
            "all",
            "--annotation",
            "k=v",
            "--health-cmd",
            "true",
            "--health-start-interval",
            "2s",
            "busybox",
        ]
    )
    body, _ = build_create_body(opts, pos[0], pos[1:])
    hc = body["HostConfig"]
    assert (hc["PidMode"], hc["IpcMode"], hc["UTSMode"], hc["OomScoreAdj"]) == (
        "host",
        "shareable",
        "host",
        -5,
    )
    assert (hc["MemoryReservation"], hc["MemorySwappiness"], hc["OomKillDisable"]) == (
        32 * MB,
        0,
        True,
    )
    assert hc["BlkioWeight"] == 300
    assert hc["BlkioWeightDevice"] == [{"Path": "/dev/sda", "Weight": 20}]
    assert hc["BlkioDeviceReadBps"] == [{"Path": "/dev/sda", "Rate": MB}]
    assert hc["BlkioDeviceWriteIOps"] == [{"Path": "/dev/sda", "Rate": 7}]
    assert body["Labels"] == {"a": "1", "b": "3"}
    assert body["Domainname"] == "ex.test"
    assert hc["DeviceCgroupRules"] == ["c 1:3 mr"]
    assert hc["StorageOpt"] == {"size": "1G"}
    assert hc["DeviceRequests"] == [
        {"Driver": "", "Count": -1, "DeviceIDs": None, "Capabilities": [["gpu"]], "Options": {}}
    ]
    assert hc["Annotations"] == {"k": "v"}
    assert body["Healthcheck"]["StartInterval"] == 2_000_000_000
    opts, pos = RunOptions.parse(["busybox"])
    body, _ = build_create_body(opts, pos[0], pos[1:])
    assert not {"PidMode", "IpcMode", "MemorySwappiness", "OomScoreAdj"} & body["HostConfig"].keys()


@pytest.mark.parametrize(
    "argv, msg",
    [
        (["--pid", "bogus"], "--pid: invalid PID mode"),
        (["--ipc", "container:"], "--ipc: invalid IPC mode"),
        (["--device-read-bps", "/dev/sda"], "bad format"),
        (["--device-read-bps", "sda:1mb"], "bad format for device path"),
        (["--device-write-iops", "/dev/sda:x"], "invalid rate for device"),
        (["--blkio-weight-device", "/dev/sda:5"], "invalid weight for device"),
        (["--device-cgroup-rule", "c 1:3 x"], "invalid device cgroup format 'c 1:3 x'"),
        (["--storage-opt", "size"], "invalid storage option"),
        (["--annotation", "k"], "bad format for annotation"),
    ],
)
def test_cli_errors(argv: list[str], msg: str) -> None:
    from berth.cmdline import UsageError

    opts, pos = RunOptions.parse([*argv, "busybox"])
    with pytest.raises(UsageError, match=msg.replace("(", r"\(")):
        build_create_body(opts, pos[0], pos[1:])


def test_health_start_interval_during_the_start_period() -> None:
    hc = health.HealthCheck(
        cmd=("true",),
        interval=60 * health.SECOND,
        start_period=30 * health.SECOND,
        start_interval=health.SECOND // 5,
    )
    starting, healthy = "starting", "healthy"
    assert health.next_interval(hc, 1.0, starting) == 0.2
    assert health.next_interval(hc, 1.0, healthy) == 60.0
    assert health.next_interval(hc, 31.0, starting) == 60.0
    # the default start interval (5 s) applies only with a start period
    eff = health.effective(HealthConfig(test=("CMD", "true")), None)
    assert eff is not None and eff.start_interval == 5 * health.SECOND
    assert health.next_interval(eff, 0.0, starting) == 30.0


def test_healthcheck_durations() -> None:
    validate_healthcheck(HealthConfig(interval=0, start_interval=1_000_000))
    with pytest.raises(
        InvalidArgument, match="StartInterval in Healthcheck cannot be less than 1ms"
    ):
        validate_healthcheck(HealthConfig(start_interval=999))
    with pytest.raises(InvalidArgument, match="Retries in Healthcheck cannot be negative"):
        validate_healthcheck(HealthConfig(retries=-1))


def _registry(tmp_path: Path) -> Any:
    import json

    from berth.containers import cdi

    (tmp_path / "a.json").write_text(
        json.dumps(
            {
                "kind": "nvidia.com/gpu",
                "containerEdits": {"env": ["COMMON=1"]},
                "devices": [
                    {
                        "name": n,
                        "containerEdits": {
                            "env": [f"GPU{n}=1"],
                            "deviceNodes": [
                                {
                                    "path": f"/dev/nvidia{n}",
                                    "type": "c",
                                    "major": 195,
                                    "minor": int(n),
                                    "fileMode": 0o666,
                                }
                            ],
                        },
                    }
                    for n in ("0", "1")
                ],
            }
        )
    )
    (tmp_path / "bad.json").write_text("{not json")
    return cdi.Registry((str(tmp_path),)).load()


def test_cdi_resolve_and_apply(tmp_path: Path) -> None:
    from berth.containers import cdi

    reg = _registry(tmp_path)
    assert reg.kind("nvidia.com/gpu") == ["nvidia.com/gpu=0", "nvidia.com/gpu=1"]
    gpu = DeviceRequest(capabilities=(("gpu",),))
    assert cdi.resolve([replace(gpu, count=-1)], reg) == ["nvidia.com/gpu=0", "nvidia.com/gpu=1"]
    assert cdi.resolve([replace(gpu, count=1)], reg) == ["nvidia.com/gpu=0"]
    assert cdi.resolve([replace(gpu, device_ids=("1",))], reg) == ["nvidia.com/gpu=1"]
    with pytest.raises(InvalidArgument, match="unresolvable CDI devices x.com/y=z"):
        cdi.resolve([DeviceRequest(driver="cdi", device_ids=("x.com/y=z",))], reg)
    spec = _spec({})
    cdi.apply(spec, ["nvidia.com/gpu=0", "nvidia.com/gpu=1"], reg)
    env = spec["process"]["env"]
    assert env.count("COMMON=1") == 1 and "GPU0=1" in env and "GPU1=1" in env
    assert [d["path"] for d in spec["linux"]["devices"]] == ["/dev/nvidia0", "/dev/nvidia1"]
    assert spec["linux"]["resources"]["devices"][-1] == {
        "allow": True,
        "type": "c",
        "major": 195,
        "minor": 1,
        "access": "rwm",
    }


def test_no_driver_is_dockers_error(tmp_path: Path) -> None:
    from berth.containers import cdi

    empty = cdi.Registry((str(tmp_path / "none"),)).load()
    with pytest.raises(InvalidArgument) as e:
        cdi.resolve([DeviceRequest(count=-1, capabilities=(("gpu",),))], empty)
    assert e.value.message == 'could not select device driver "" with capabilities: [[gpu]]'


def test_cli_cdi_device() -> None:
    opts, pos = RunOptions.parse(
        ["--device", "vendor.com/class=dev0", "--device", "/dev/fuse", "busybox"]
    )
    hc = build_create_body(opts, pos[0], pos[1:])[0]["HostConfig"]
    assert hc["DeviceRequests"] == [
        {
            "Driver": "cdi",
            "DeviceIDs": ["vendor.com/class=dev0"],
            "Count": 0,
            "Capabilities": None,
            "Options": {},
        }
    ]
    assert [d["PathOnHost"] for d in hc["Devices"]] == ["/dev/fuse"]


def test_ipc_and_uts_sysctls_need_a_namespace_of_their_own() -> None:
    from berth.containers.spec import validate_sysctls

    validate_sysctls(_hc({"Sysctls": {"kernel.shmmax": "1"}}))
    validate_sysctls(_hc({"IpcMode": "container:x", "Sysctls": {"kernel.shmmax": "1"}}))
    with pytest.raises(InvalidArgument, match="kernel.shmmax"):
        validate_sysctls(_hc({"IpcMode": "host", "Sysctls": {"kernel.shmmax": "1"}}))
    with pytest.raises(InvalidArgument, match="kernel.domainname"):
        validate_sysctls(_hc({"UTSMode": "host", "Sysctls": {"kernel.domainname": "x"}}))
