"""A CRI container as a berth container: the create body made from a ContainerConfig and its
pod's sandbox, and the CRI's view of a berth container record.

The CRI's own fields ride on the berth container's labels under `io.berth.cri.` (its pod, name,
attempt, log path, image as asked, annotations); the pod's labels are the container's labels as
they are, so `berth ps --filter label=...` finds them. The container is named as dockershim
named them (`k8s_NAME_POD_NAMESPACE_UID_ATTEMPT`) and shows in `berth ps`.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from berth import linux
from berth.containers.bundle import CRI_IPCNS, CRI_NETNS, CRI_PIDNS
from berth.containers.create import CRI_PREFIX, CreateRequest
from berth.containers.hostconfig import DeviceMapping, DeviceRequest, HostConfig, LogConfig
from berth.containers.record import ContainerRecord
from berth.containers.settings import ContainerConfig
from berth.containers.status import ContainerStatus
from berth.cri.sandboxes import Sandbox
from berth.errors import InvalidArgument

PREFIX = CRI_PREFIX
L_SANDBOX = PREFIX + "sandbox-id"
L_NAME = PREFIX + "name"
L_ATTEMPT = PREFIX + "attempt"
L_LOG = PREFIX + "log-path"
L_IMAGE = PREFIX + "image"
L_ANNOTATIONS = PREFIX + "annotations"

# MountPropagation: PROPAGATION_PRIVATE, _HOST_TO_CONTAINER, _BIDIRECTIONAL
_PROPAGATION = {0: "rprivate", 1: "rslave", 2: "rshared"}
# SecurityProfile.ProfileType
PROFILE_RUNTIME_DEFAULT, PROFILE_UNCONFINED, PROFILE_LOCALHOST = 0, 1, 2
SECCOMP_PROFILE_MAX = 1 << 20
# an AppArmor profile's name as the kernel takes it in /proc/self/attr/apparmor/exec
APPARMOR_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/+@=-]{0,254}")
CDI_DEVICES_MAX = 64
CDI_NAME = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}/[A-Za-z0-9][A-Za-z0-9_.-]{0,62}=[A-Za-z0-9_.:-]{1,128}"
)


class State:
    """ContainerState's values."""

    CREATED, RUNNING, EXITED, UNKNOWN = 0, 1, 2, 3


@dataclass(slots=True, kw_only=True)
class Spec:
    """What CreateContainer asks, typed (the handler reads it from the message)."""

    name: str
    attempt: int = 0
    image: str
    shown_image: str = ""  # the name a user gave (kubelets pass the image's ID in `image`)
    command: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    working_dir: str = ""
    env: list[tuple[str, str]] = field(default_factory=list)
    # (host path, container path, read-only, propagation)
    mounts: list[tuple[str, str, bool, int]] = field(default_factory=list)
    # (host path, container path, cgroup permissions "rwm")
    devices: list[tuple[str, str, str]] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    log_path: str = ""
    stdin: bool = False
    stdin_once: bool = False
    tty: bool = False
    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_username: str = ""
    privileged: bool = False
    readonly_rootfs: bool = False
    no_new_privs: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    masked_paths: list[str] | None = None
    readonly_paths: list[str] | None = None
    supplemental_groups: list[int] = field(default_factory=list)
    seccomp: tuple[int, str] = (PROFILE_RUNTIME_DEFAULT, "")  # (type, localhost file)
    apparmor: tuple[int, str] = (PROFILE_RUNTIME_DEFAULT, "")  # (type, profile name)
    cdi_devices: list[str] = field(default_factory=list)  # fully qualified CDI names
    cpu_shares: int = 0
    cpu_period: int = 0
    cpu_quota: int = 0
    memory: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""


def container_name(spec: Spec, sb: Sandbox) -> str:
    raw = f"k8s_{spec.name}_{sb.name}_{sb.namespace}_{sb.uid}_{spec.attempt}"
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", raw)


def _seccomp_opt(kind: int, path: str) -> list[str]:
    if kind == PROFILE_UNCONFINED:
        return ["seccomp=unconfined"]
    if kind == PROFILE_LOCALHOST:
        if not path.startswith("/"):
            raise InvalidArgument(f"seccomp localhost profile {path!r} is not an absolute path")
        try:
            # never blocking (a FIFO), never a device: a regular file, read bounded
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
            with open(fd, "rb") as f:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise InvalidArgument(f"seccomp profile {path}: not a regular file")
                data = f.read(SECCOMP_PROFILE_MAX + 1)
        except OSError as e:
            raise InvalidArgument(f"seccomp profile {path}: {e.strerror}") from None
        if len(data) > SECCOMP_PROFILE_MAX:
            raise InvalidArgument(f"seccomp profile {path}: larger than 1 MiB")
        return ["seccomp=" + data.decode(errors="replace")]
    return []  # RuntimeDefault: berth's default profile, as Docker's


def _check_mount(host: str, target: str) -> None:
    """A CRI mount is a host path onto a container path, both absolute: it rides on a bind
    string (`-v`'s form), where a relative source would name a volume (shared by every pod
    that names it) and a `:` would be read as the next field."""
    for path, what in ((host, "host_path"), (target, "container_path")):
        if not path.startswith("/") or ":" in path or "\x00" in path:
            raise InvalidArgument(f"mount {what} {path!r} is not an absolute path without ':'")


def _apparmor_opt(kind: int, name: str, privileged: bool) -> list[str]:
    """The security option of an AppArmor profile: a localhost profile by its name (loaded on
    the node), refused where the host has no AppArmor, as containerd refuses it. RuntimeDefault
    is berth's default, which is no profile (berth loads none of its own); a privileged
    container is not confined."""
    if kind != PROFILE_LOCALHOST or privileged:
        return []
    name = name.removeprefix("localhost/")
    if not APPARMOR_NAME.fullmatch(name):
        raise InvalidArgument(f"AppArmor profile name {name[:100]!r} is not valid")
    if not linux.apparmor_enabled():
        raise InvalidArgument(
            f"AppArmor profile {name!r}: AppArmor is not enabled on this host "
            "(/sys/module/apparmor/parameters/enabled)"
        )
    return [f"apparmor={name}"]


def _cdi_requests(names: list[str]) -> tuple[DeviceRequest, ...] | None:
    """CDI_devices as a DeviceRequest of the `cdi` driver (`berth.containers.cdi` resolves and
    applies it, as for `--device vendor.com/class=name`), the names checked first."""
    if not names:
        return None
    if len(names) > CDI_DEVICES_MAX:
        raise InvalidArgument(f"{len(names)} CDI devices asked: at most {CDI_DEVICES_MAX}")
    for n in names:
        if not CDI_NAME.fullmatch(n):
            raise InvalidArgument(f"CDI device name {n[:200]!r} is not vendor.com/class=name")
    return (DeviceRequest(driver="cdi", device_ids=tuple(names)),)


def create_body(spec: Spec, sb: Sandbox) -> CreateRequest:
    """What the containers service creates for `spec` in `sb`: its Config and HostConfig,
    typed (Docker's JSON is the Engine API's edge only)."""
    for h, c, _ro, _p in spec.mounts:
        _check_mount(h, c)
    labels = dict(spec.labels)
    labels.update(
        {
            L_SANDBOX: sb.id,
            L_NAME: spec.name,
            L_ATTEMPT: str(spec.attempt),
            L_LOG: spec.log_path,
            L_IMAGE: spec.shown_image or spec.image,
            L_ANNOTATIONS: json.dumps(spec.annotations, sort_keys=True),
        }
    )
    user = ""
    if spec.run_as_user is not None:
        user = str(spec.run_as_user)
    elif spec.run_as_username:
        user = spec.run_as_username
    if user and spec.run_as_group is not None:
        user += f":{spec.run_as_group}"
    annotations: dict[str, str] = {}
    if not sb.host_network:
        annotations[CRI_NETNS] = sb.ns_path("net")
    if not sb.host_ipc:
        annotations[CRI_IPCNS] = sb.ns_path("ipc")
    if not sb.host_pid and sb.share_pid:
        annotations[CRI_PIDNS] = sb.ns_path("pid")
    hc = HostConfig(
        binds=tuple(
            f"{h}:{c}:{'ro' if ro else 'rw'},{_PROPAGATION.get(p, 'rprivate')}"
            for h, c, ro, p in spec.mounts
        ),
        privileged=spec.privileged,
        readonly_rootfs=spec.readonly_rootfs,
        cap_add=tuple(spec.cap_add) or None,
        cap_drop=tuple(spec.cap_drop) or None,
        security_opt=(
            *_seccomp_opt(*spec.seccomp),
            *_apparmor_opt(*spec.apparmor, spec.privileged),
            *(["no-new-privileges:true"] if spec.no_new_privs else []),
        ),
        device_requests=_cdi_requests(spec.cdi_devices),
        group_add=tuple(str(g) for g in spec.supplemental_groups) or None,
        devices=tuple(
            DeviceMapping(path_on_host=h, path_in_container=c or h, cgroup_permissions=p or "rwm")
            for h, c, p in spec.devices
        )
        or None,
        cpu_shares=spec.cpu_shares,
        cpu_period=spec.cpu_period,
        cpu_quota=spec.cpu_quota,
        memory=spec.memory,
        cpuset_cpus=spec.cpuset_cpus,
        cpuset_mems=spec.cpuset_mems,
        log_config=LogConfig(type="json-file"),
        dns=tuple(sb.dns.servers),
        dns_search=tuple(sb.dns.searches),
        dns_options=tuple(sb.dns.options),
        masked_paths=None if spec.masked_paths is None else tuple(spec.masked_paths),
        readonly_paths=None if spec.readonly_paths is None else tuple(spec.readonly_paths),
        network_mode="host" if sb.host_network else "none",
        ipc_mode="host" if sb.host_ipc else "private",
        pid_mode="host" if sb.host_pid else "",
        cgroup_parent=sb.cgroup_parent,
        runtime=sb.runtime_handler,  # a RuntimeClass: one of berthd's runtimes, by name
        # the pod's /dev/shm, shared by its containers
        mounts=({"Type": "bind", "Source": sb.shm_path, "Target": "/dev/shm"},)
        if sb.shm_path
        else None,
        annotations=annotations,
    )
    cmd: tuple[str, ...] | None = tuple(spec.args) if spec.command or spec.args else None
    config = ContainerConfig(
        image=spec.image,
        labels=labels,
        env=tuple(f"{k}={v}" for k, v in spec.env),
        working_dir=spec.working_dir,
        user=user,
        tty=spec.tty,
        open_stdin=spec.stdin,
        stdin_once=spec.stdin_once,
        hostname="" if sb.host_network else sb.hostname,
        entrypoint=tuple(spec.command) if spec.command else None,
        cmd=cmd,
    )
    return CreateRequest(config=config, host_config=hc)


def record_labels(rec: ContainerRecord) -> dict[str, str]:
    """The berth container's labels: the one place the CRI reads its record's config."""
    return dict(rec.config.labels)


def resources_of(rec: ContainerRecord) -> dict[str, Any]:
    """LinuxContainerResources' fields from the container's limits (the one place the CRI
    reads its record's host config)."""
    hc = rec.host_config
    return {
        "cpu_shares": hc.cpu_shares,
        "cpu_period": hc.cpu_period,
        "cpu_quota": hc.cpu_quota,
        "memory_limit_in_bytes": hc.memory,
        "cpuset_cpus": hc.cpuset_cpus,
        "cpuset_mems": hc.cpuset_mems,
    }


def is_cri(rec: ContainerRecord) -> bool:
    return L_SANDBOX in record_labels(rec)


def labels_of(rec: ContainerRecord) -> dict[str, str]:
    """The labels the CRI was given (berth's own taken out)."""
    return {k: v for k, v in record_labels(rec).items() if not k.startswith(PREFIX)}


def label(rec: ContainerRecord, key: str) -> str:
    return str(record_labels(rec).get(key, ""))


def annotations_of(rec: ContainerRecord) -> dict[str, str]:
    try:
        got = json.loads(label(rec, L_ANNOTATIONS) or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in got.items()} if isinstance(got, dict) else {}


def state_of(rec: ContainerRecord) -> int:
    s = rec.state.status
    if s is ContainerStatus.CREATED:
        return State.CREATED
    if s.is_running or s is ContainerStatus.RESTARTING:
        return State.RUNNING
    if s in (ContainerStatus.EXITED, ContainerStatus.DEAD):
        return State.EXITED
    return State.UNKNOWN


_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)")


def time_ns(rfc3339: str) -> int:
    """Nanoseconds since the epoch of a Docker time ("0001-01-01T00:00:00Z", unset: 0)."""
    m = _TIME.fullmatch(rfc3339 or "")
    if not m or rfc3339.startswith("0001-"):
        return 0
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    secs = int(datetime.fromisoformat(m.group(1) + tz).timestamp())
    frac = (m.group(2) or "").ljust(9, "0")[:9]
    return secs * 1_000_000_000 + int(frac)


def reason_of(rec: ContainerRecord) -> str:
    """ContainerStatus.reason, as kubelets read it."""
    if state_of(rec) != State.EXITED:
        return ""
    if rec.state.oom_killed:
        return "OOMKilled"
    return "Completed" if rec.state.exit_code == 0 else "Error"


__all__ = [
    "L_ATTEMPT",
    "L_IMAGE",
    "L_LOG",
    "L_NAME",
    "L_SANDBOX",
    "Spec",
    "State",
    "annotations_of",
    "container_name",
    "create_body",
    "is_cri",
    "label",
    "labels_of",
    "reason_of",
    "record_labels",
    "resources_of",
    "state_of",
    "time_ns",
]
