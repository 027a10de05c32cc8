"""The validation Docker does at create time of a container's typed `HostConfig` (and
Config.Healthcheck): the checks and defaults, the fields berth refuses, the block devices and
device cgroup rules asked for, the namespaced sysctls. Split from `containers.spec`, which
re-exports these names.

Imports `containers.hostconfig`, `containers.settings`, `oci.sysctl`, `errors`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from typing import Any

from berth.containers.hostconfig import HostConfig, ThrottleDevice
from berth.containers.settings import HealthConfig
from berth.errors import InvalidArgument
from berth.oci import sysctl


def validate_host_config(hc: HostConfig, ncpu: int) -> list[str]:
    """Docker's checks and defaults, in place. Returns warnings."""
    warnings: list[str] = []
    mem = hc.memory
    swap = hc.memory_swap
    if mem and mem < 6 * 1024 * 1024:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if swap > 0 and mem and swap < mem:
        raise InvalidArgument(
            "Minimum memoryswap limit should be larger than memory limit, see usage"
        )
    if swap and not mem:
        raise InvalidArgument(
            "You should always set the Memory limit when using Memoryswap limit, see usage"
        )
    nano = hc.nano_cpus
    if nano and (hc.cpu_quota or hc.cpu_period):
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano < 0 or nano > ncpu * 1_000_000_000:
        raise InvalidArgument(
            f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
        )
    shares = hc.cpu_shares
    if shares < 0:
        raise InvalidArgument("invalid CPU shares")
    cpus = hc.cpuset_cpus
    if cpus:
        for part in cpus.split(","):
            lo, _, hi = part.partition("-")
            if not lo.isdigit() or (hi and not hi.isdigit()) or max(int(lo), int(hi or lo)) >= ncpu:
                raise InvalidArgument(
                    f"Requested CPUs are not available - requested {cpus}, available: 0-{ncpu - 1}"
                )
    restart = hc.restart_policy.name or "no"
    if restart not in ("no", "", "always", "unless-stopped", "on-failure"):
        raise InvalidArgument(f"invalid restart policy '{restart}'")
    if hc.auto_remove and restart not in ("no", ""):
        raise InvalidArgument("can't create 'AutoRemove' container with restart policy")
    if (hc.network_mode or "default") == "default":
        hc.network_mode = "bridge"
    warnings += _validate_namespaces(hc)
    warnings += _validate_resources(hc, mem)
    refuse_unsupported(hc.extra)
    return warnings


def _validate_namespaces(hc: HostConfig) -> list[str]:
    """PidMode, IpcMode, UTSMode: dockerd's valid values and words; IpcMode gets dockerd's
    default (`private`, its default-ipc-mode) as it records it."""
    pid = hc.pid_mode
    if pid not in ("", "host") and not (pid.startswith("container:") and pid[10:]):
        raise InvalidArgument(f"invalid PID mode: {pid}")
    ipc = hc.ipc_mode
    if ipc not in ("", "host", "private", "shareable", "none") and not (
        ipc.startswith("container:") and ipc[10:]
    ):
        raise InvalidArgument(f"invalid IPC mode: {ipc}")
    if not ipc:
        hc.ipc_mode = "private"
    uts = hc.uts_mode
    if uts not in ("", "host"):
        raise InvalidArgument(f"invalid UTS mode: {uts}")
    return []


def _validate_resources(hc: HostConfig, mem: int) -> list[str]:
    """The memory, OOM and block I/O fields: dockerd's ranges and words, and its warnings
    where cgroup v2 has no such knob."""
    warnings: list[str] = []
    v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    adj = hc.oom_score_adj
    if not -1000 <= adj <= 1000:
        raise InvalidArgument(f"Invalid value {adj}, range for oom score adj is [-1000, 1000]")
    res = hc.memory_reservation
    if res and res < 6 * 1024 * 1024:
        raise InvalidArgument("Minimum memory reservation allowed is 6MB")
    if res and mem and mem < res:
        raise InvalidArgument(
            "Minimum memory limit can not be less than memory reservation limit, see usage"
        )
    swappiness = hc.memory_swappiness
    if swappiness is not None and swappiness != -1:
        if not 0 <= swappiness <= 100:
            raise InvalidArgument(
                f"Invalid value: {swappiness}, valid memory swappiness range is 0-100"
            )
        if v2:
            warnings.append(
                "Your kernel does not support memory swappiness capabilities or "
                "the cgroup is not mounted. Memory swappiness discarded."
            )
            hc.memory_swappiness = None
    if hc.oom_kill_disable:
        if v2:
            warnings.append(
                "Your kernel does not support OomKillDisable. OomKillDisable discarded."
            )
            hc.oom_kill_disable = False
        elif not mem:
            warnings.append(
                "OOM killer is disabled for the container, but no memory limit "
                "is set, this can result in the system running out of resources."
            )
    weight = hc.blkio_weight
    if weight and not 10 <= weight <= 1000:
        raise InvalidArgument("Range of blkio weight is from 10 to 1000")
    for w in hc.blkio_weight_device or ():
        if not 10 <= w.weight <= 1000:
            raise InvalidArgument(
                f"invalid weight for device: {w.path}: range of blkio weight is from 10 to 1000"
            )
        block_device(w.path)
    for key in THROTTLE:
        for d in throttled(hc, key):
            if d.rate < 0:
                raise InvalidArgument(f"invalid rate for device: {d.path}")
            block_device(d.path)
    for rule in hc.device_cgroup_rules or ():
        device_cgroup_rule(rule)
    for key in hc.annotations or {}:
        if not key or key.startswith("berth."):
            raise InvalidArgument(
                f"invalid annotation {key!r}: the berth. prefix is the daemon's own"
            )
    storage = hc.storage_opt or {}
    if storage:
        if "size" in storage:
            raise InvalidArgument(
                "--storage-opt is supported only for overlay over xfs with 'pquota' mount option"
            )
        raise InvalidArgument(f"overlay2: unknown option {next(iter(storage))}")
    return warnings


def validate_healthcheck(health: HealthConfig | None) -> None:
    """dockerd's checks of Config.Healthcheck: each duration 0 (the default) or at least
    1ms, Retries not negative."""
    if health is None:
        return
    for key, v in (
        ("Interval", health.interval),
        ("Timeout", health.timeout),
        ("StartPeriod", health.start_period),
        ("StartInterval", health.start_interval),
    ):
        if v and v < 1_000_000:
            raise InvalidArgument(f"{key} in Healthcheck cannot be less than 1ms")
    if health.retries < 0:
        raise InvalidArgument("Retries in Healthcheck cannot be negative")


def throttled(hc: HostConfig, key: str) -> tuple[ThrottleDevice, ...]:
    """The throttled devices of one of THROTTLE's HostConfig keys."""
    return {
        "BlkioDeviceReadBps": hc.blkio_device_read_bps,
        "BlkioDeviceWriteBps": hc.blkio_device_write_bps,
        "BlkioDeviceReadIOps": hc.blkio_device_read_iops,
        "BlkioDeviceWriteIOps": hc.blkio_device_write_iops,
    }[key] or ()


# the throttling fields: HostConfig key -> runtime-spec blockIO key, cgroup v1 file
THROTTLE = {
    "BlkioDeviceReadBps": ("throttleReadBpsDevice", "read_bps_device"),
    "BlkioDeviceWriteBps": ("throttleWriteBpsDevice", "write_bps_device"),
    "BlkioDeviceReadIOps": ("throttleReadIOPSDevice", "read_iops_device"),
    "BlkioDeviceWriteIOps": ("throttleWriteIOPSDevice", "write_iops_device"),
}

# HostConfig and Config fields (v1.50) berth does not implement, with the value each has
# when not asked for: any other value is refused, never dropped (README: "Refused fields")
UNSUPPORTED_HOST_CONFIG: dict[str, tuple[Any, ...]] = {
    "CpuRealtimePeriod": (None, 0),
    "CpuRealtimeRuntime": (None, 0),
    "KernelMemoryTCP": (None, 0),
    "CpuCount": (None, 0),
    "CpuPercent": (None, 0),
    "IOMaximumIOps": (None, 0),
    "IOMaximumBandwidth": (None, 0),
    "VolumeDriver": (None, "", "local"),
    "Cgroup": (None, ""),
    "Isolation": (None, "", "default"),
}
UNSUPPORTED_CONFIG: dict[str, tuple[Any, ...]] = {
    "NetworkDisabled": (None, False),
}


def refuse_unsupported(hc: Mapping[str, Any], config: Mapping[str, Any] | None = None) -> None:
    """A HostConfig (its `extra`) or Config field berth does not implement, given a value other
    than its default: a 400 naming it, as nothing may be dropped silently."""
    for fields, doc, what in (
        (UNSUPPORTED_HOST_CONFIG, hc, "HostConfig"),
        (UNSUPPORTED_CONFIG, config or {}, "Config"),
    ):
        for key, defaults in fields.items():
            if key in doc and doc[key] not in defaults:
                raise InvalidArgument(
                    f"{what}.{key} is not supported by berth (given {doc[key]!r})"
                )


def block_device(path: str) -> tuple[int, int]:
    """A `--blkio-weight-device` or `--device-*-bps/iops` path: the host's block device, as
    major and minor."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise InvalidArgument(f"stat {path}: {(e.strerror or str(e)).lower()}") from None
    if not stat.S_ISBLK(st.st_mode):
        raise InvalidArgument(f"{path} is not a block device")
    return os.major(st.st_rdev), os.minor(st.st_rdev)


def device_cgroup_rule(rule: str) -> dict[str, Any]:
    """`--device-cgroup-rule 'c 1:3 mr'` (`a`, `b` or `c`; numbers or `*`; `rwm`) as a
    runtime-spec device rule; dockerd's error for anything else."""
    import re

    m = re.fullmatch(r"([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})", rule or "")
    if not m:
        raise InvalidArgument(f"invalid device cgroup rule format: '{rule}'")
    typ, major, minor, access = m.groups()
    return {
        "allow": True,
        "type": typ,
        "major": -1 if major == "*" else int(major),
        "minor": -1 if minor == "*" else int(minor),
        "access": access,
    }


def validate_sysctls(hc: HostConfig, joined_mode: str = "") -> None:
    """`--sysctl`: only the namespaced ones, where the container has the namespace of its own
    (runc's rules and words, at create as a 400). `joined_mode`: the NetworkMode of the container
    whose network a `container:` one joins."""
    mode = hc.network_mode or "bridge"
    host_net = mode == "host" or joined_mode == "host"
    # --network host shares the host's UTS namespace too
    why = sysctl.check(
        hc.sysctls,
        ipc=hc.ipc_mode != "host",
        net=not host_net,
        uts=not host_net and hc.uts_mode != "host",
    )
    if why:
        raise InvalidArgument(why)
