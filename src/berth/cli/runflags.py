"""Parsers of `run`'s and `create`'s flag values: `-p`, `--mount`, `--sysctl`, device rates,
`--gpus`, `--security-opt`, health checks and label files, each into its Engine API form.
"""

from __future__ import annotations

from berth.cmdline import UsageError
from berth.units import parse_duration, parse_size

TYPE_CHECKING = False  # not typing's: importing typing costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any


def _label_file_lines(paths: list[str]) -> list[str]:
    """`--label-file`: one `key=value` (or bare `key`) a line; blank lines and `#` comments
    skipped, as the docker CLI reads it."""
    lines: list[str] = []
    for path in paths:
        try:
            with open(path) as f:
                text = f.read()
        except OSError as e:
            raise UsageError(f"open {path}: {(e.strerror or str(e)).lower()}") from None
        for line in text.splitlines():
            line = line.lstrip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def _device_rate(spec: str, flag_name: str, sized: bool) -> dict[str, Any]:
    """`--device-read-bps /dev/sda:1mb`, `--device-write-iops /dev/sda:100`."""
    path, sep, rate = spec.rpartition(":")
    if not sep or not path:
        raise UsageError(f'invalid argument "{spec}" for "--{flag_name}" flag: bad format: {spec}')
    if not path.startswith("/dev/"):
        raise UsageError(
            f'invalid argument "{spec}" for "--{flag_name}" flag: bad format '
            f"for device path: {spec}"
        )
    try:
        value = parse_size(rate) if sized else int(rate)
        if value < 0:
            raise ValueError(rate)
    except ValueError:
        shape = "<number>[<unit>]" if sized else "<number>"
        raise UsageError(
            f'invalid argument "{spec}" for "--{flag_name}" flag: invalid rate '
            f"for device: {spec}. The correct format is <device-path>:{shape}. "
            "Number must be a positive integer"
            + (". Unit is optional and can be kb, mb, or gb" if sized else "")
        ) from None
    return {"Path": path, "Rate": value}


def _gpus(value: str) -> dict[str, Any]:
    """`--gpus all`, `--gpus 2`, `--gpus '"device=0,1",capabilities=compute'` as the docker
    CLI makes a DeviceRequest (the daemon says whether a driver takes it)."""
    req: dict[str, Any] = {
        "Driver": "",
        "Count": 0,
        "DeviceIDs": None,
        "Capabilities": [["gpu"]],
        "Options": {},
    }
    fields: list[str] = []
    cur, quoted = "", False
    for ch in value:  # a small CSV reader: a quoted field may hold commas
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            fields.append(cur)
            cur = ""
        else:
            cur += ch
    fields.append(cur)
    for f in fields:
        key, sep, val = f.partition("=")
        if not sep and key == "all":
            req["Count"] = -1
        elif not sep and key.isdigit():
            req["Count"] = int(key)
        elif key == "count":
            req["Count"] = -1 if val == "all" else int(val) if val.isdigit() else 0
        elif key == "device":
            req["DeviceIDs"] = val.split(",")
        elif key == "driver":
            req["Driver"] = val
        elif key == "capabilities":
            req["Capabilities"] = [val.split(",")]
        elif key == "options":
            req["Options"] = dict(o.partition("=")[::2] for o in val.split(","))
        else:
            raise UsageError(
                f"invalid argument \"{value}\" for \"--gpus\" flag: unexpected key '{key}' in '{f}'"
            )
    return req


def _parse_publish(spec: str) -> dict[str, list[dict[str, str]]]:
    """`-p [ip:][hostPort:]containerPort[/proto]`, ranges included (as the daemon's parser)."""
    import re

    m = re.match(
        r"^(?:(\[[0-9a-fA-F:]+\]|\d+\.\d+\.\d+\.\d+):)?(?:([0-9]*(?:-[0-9]+)?):)?"
        r"([0-9]+(?:-[0-9]+)?)(?:/(tcp|udp|sctp))?$",
        spec,
    )
    if not m:
        raise UsageError(
            f'invalid argument "{spec}" for "-p, --publish" flag: invalid port specification'
        )

    def rng(x: str) -> list[int]:
        lo, _, hi = x.partition("-")
        return list(range(int(lo), int(hi or lo) + 1))

    ctr = rng(m.group(3))
    hosts = rng(m.group(2)) if m.group(2) else [0] * len(ctr)
    if len(hosts) != len(ctr):
        if len(ctr) != 1:
            raise UsageError(
                f'invalid argument "{spec}" for "-p, --publish" flag: invalid '
                "ranges specified for container and host Ports"
            )
        hosts = [0]
    out: dict[str, list[dict[str, str]]] = {}
    for c, h in zip(ctr, hosts, strict=True):
        out.setdefault(f"{c}/{m.group(4) or 'tcp'}", []).append(
            {"HostIp": (m.group(1) or "").strip("[]"), "HostPort": str(h) if h else ""}
        )
    return out


# the docker CLI's own check of --sysctl (opts.ValidateSysctl); the daemon checks it again
_SYSCTLS = (
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
)


def _sysctl_flag(val: str) -> str:
    key, eq, _ = val.partition("=")
    if not eq or not (key in _SYSCTLS or key.startswith(("net.", "fs.mqueue."))):
        raise UsageError(
            f'invalid argument "{val}" for "--sysctl" flag: sysctl \'{val}\' is not allowed'
        )
    return val


def _parse_mount_flag(spec: str) -> dict[str, Any]:
    """`--mount type=volume,source=x,target=/data,readonly,volume-nocopy,...`"""
    m: dict[str, Any] = {"Type": "volume"}
    for field in spec.split(","):
        k, eq, v = field.partition("=")
        k = k.strip().lower()
        if k == "type":
            m["Type"] = v
        elif k in ("source", "src"):
            m["Source"] = v
        elif k in ("target", "destination", "dst"):
            m["Target"] = v
        elif k in ("readonly", "ro"):
            m["ReadOnly"] = not eq or v.lower() in ("1", "true")
        elif k == "volume-nocopy":
            m.setdefault("VolumeOptions", {})["NoCopy"] = not eq or v.lower() in ("1", "true")
        elif k == "volume-label":
            lk, _, lv = v.partition("=")
            m.setdefault("VolumeOptions", {}).setdefault("Labels", {})[lk] = lv
        elif k == "bind-propagation":
            m.setdefault("BindOptions", {})["Propagation"] = v
        elif k == "tmpfs-size":
            try:
                m.setdefault("TmpfsOptions", {})["SizeBytes"] = parse_size(v)
            except ValueError as e:
                raise UsageError(f'invalid argument "{spec}" for "--mount" flag: {e}') from None
        elif k == "tmpfs-mode":
            m.setdefault("TmpfsOptions", {})["Mode"] = int(v, 8)
        elif k in ("consistency", "bind-recursive"):
            continue
        else:
            raise UsageError(
                f'invalid argument "{spec}" for "--mount" flag: unexpected key '
                f"'{k}' in '{field}'"
            )
    if not m.get("Target"):
        raise UsageError(f'invalid argument "{spec}" for "--mount" flag: target is required')
    return m


def _healthcheck(
    disabled: bool, cmd: str, retries: int, durations: tuple[tuple[str, str, str], ...]
) -> dict[str, Any] | None:
    """The `--health-*` flags as a HealthConfig; `durations` are (field, flag, value)."""
    if disabled:
        if cmd:
            raise UsageError("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    h: dict[str, Any] = {}
    if cmd:
        h["Test"] = ["CMD-SHELL", cmd]
    for key, name, value in durations:
        if value:
            try:
                h[key] = int(parse_duration(value) * 1e9)
            except ValueError as e:
                raise UsageError(f'invalid argument "{value}" for "--{name}" flag: {e}') from None
    if retries:
        h["Retries"] = retries
    return h or None


def _security_opt(opt: str) -> str:
    """As the docker CLI: `seccomp=FILE` is sent as the file's content."""
    key, sep, value = opt.partition("=")
    if not sep:
        key, sep, value = opt.partition(":")
    if key == "seccomp" and value and value != "unconfined":
        try:
            with open(value) as f:
                return f"seccomp={f.read()}"
        except OSError as e:
            raise UsageError(f"opening seccomp profile ({value}) failed: {e.strerror}") from None
    return opt
