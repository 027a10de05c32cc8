"""The `berth` command: docker's commands and flags, over the Engine API.

Imports `client`, `cli.flags`, `cli.fmt`, `units`. Fast-path commands (run, ps, exec) must not
import aiohttp, rich, YAML or the daemon: a unit test checks `sys.modules`.
"""

from __future__ import annotations

import _signal as signal  # `signal` and `threading` import enum: ~4 ms of start-up
import _thread
import os
import sys
import time

from berth import jsonc as json
from berth.cli import fmt
from berth.cli.flags import Spec, UsageError, flag
from berth.client import DEFAULT_HOST, Client, ConnectionFailed, InvalidHost, q
from berth.errors import BerthError, NotFound
from berth.units import parse_duration, parse_size

TYPE_CHECKING = False  # not typing's: importing typing costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

ENGINE_ERROR = 125


def out(s: str = "") -> None:
    sys.stdout.write(s + "\n")


def err(s: str) -> None:
    sys.stderr.write(s + "\n")


def parse_filters(values: list[str]) -> str | None:
    if not values:
        return None
    f: dict[str, list[str]] = {}
    for v in values:
        k, eq, val = v.partition("=")
        if not eq:
            raise UsageError(f"bad format of filter (expected name=value): {v}")
        f.setdefault(k.strip(), []).append(val)
    return json.dumps(f)


# --- images -------------------------------------------------------------------------------
IMPORT = Spec([flag("change", "c", "list", help="Apply Dockerfile instruction to the created image"),
               flag("message", "m", "str", "", help="Set commit message for imported image"),
               flag("platform", kind="str", default="")])


def cmd_import(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    if not 1 <= len(args) <= 2:
        raise UsageError('"import" requires at least 1 and at most 2 arguments.')
    src = args[0]
    repo = args[1] if len(args) > 1 else ""
    query: list[tuple[str, Any]] = [("fromSrc", "-"), ("repo", repo),
                                    ("message", opts["message"] or None)]
    query += [("changes", ch) for ch in opts["change"]]
    if src == "-":
        f = sys.stdin.buffer
        r = c.send("POST", "/images/create", query=query, data=f,
                   headers={"Content-Type": "application/x-tar"})
    else:
        if "://" in src:
            raise BerthError("importing from a URL is not supported yet")
        try:
            fh = open(src, "rb")  # noqa: SIM115 - closed below
        except OSError as e:
            err(f"open {src}: {(e.strerror or str(e)).lower()}")
            return 1
        with fh:
            r = c.send("POST", "/images/create", query=query, data=fh,
                       headers={"Content-Type": "application/x-tar"})
    for msg in r.iter_json():
        if msg.get("error"):
            raise BerthError(msg["error"])
        if msg.get("status"):
            out(msg["status"])
    return 0


IMAGES = Spec([flag("all", "a"), flag("quiet", "q"), flag("no-trunc"), flag("digests"),
               flag("filter", "f", "list"), flag("format", kind="str", default=""),
               flag("tree")])


def cmd_images(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    filters = opts["filter"] + ([f"reference={args[0]}"] if args else [])
    imgs = c.get("/images/json", {"all": opts["all"] or None,
                                  "filters": parse_filters(filters)})
    rows = []
    for im in imgs:
        iid = im["Id"] if opts["no-trunc"] else im["Id"].split(":", 1)[1][:12]
        digests = dict(d.split("@", 1) for d in im.get("RepoDigests") or [] if "@" in d)
        tags = im.get("RepoTags") or []
        if not tags:  # as Docker: an image known only by digest shows its repository
            tags = [f"{r}:<none>" for r in digests] or ["<none>:<none>"]
        for t in tags:
            repo, _, tag = t.rpartition(":") if t.rfind(":") > t.rfind("/") else (t, "", "<none>")
            rows.append(fmt.Row({
                "Repository": repo, "Tag": tag, "ID": iid,
                "CreatedSince": fmt.ago(im["Created"]), "CreatedAt": fmt.ts(im["Created"]),
                "Size": fmt.size(im["Size"]), "Digest": digests.get(repo, "<none>"),
                "Containers": _count(im.get("Containers")),
                "VirtualSize": fmt.size4(im.get("VirtualSize", im["Size"])),
                "SharedSize": _count(im.get("SharedSize"), fmt.size),
                "UniqueSize": _count(None if im.get("SharedSize", -1) < 0 else
                                     im["Size"] - im["SharedSize"], fmt.size)},
                None, "*formatter.imageContext", has_labels=False))
    if opts["quiet"]:
        seen = set()
        for r in rows:
            if r["ID"] not in seen:
                seen.add(r["ID"])
                out(r["ID"])
        return 0
    cols = [("REPOSITORY", "Repository"), ("TAG", "Tag")]
    cols += [("DIGEST", "Digest")] if opts["digests"] else []
    cols += [("IMAGE ID", "ID"), ("CREATED", "CreatedSince"), ("SIZE", "Size")]
    fmt.render(rows, opts["format"], cols)
    return 0


def _count(n: int | None, show: Callable[[int], str] = str) -> str:
    """docker's N/A for a count or size the daemon did not work out (-1)."""
    return "N/A" if n is None or n < 0 else show(n)


TAG = Spec([])


def cmd_tag(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    if len(args) != 2:
        raise UsageError('"tag" requires exactly 2 arguments.')
    target = args[1]
    repo, tag = target, ""
    if target.rfind(":") > target.rfind("/"):
        repo, tag = target.rsplit(":", 1)
    r = c.send("POST", f"/images/{q(args[0])}/tag", query={"repo": repo, "tag": tag or None})
    r.close()
    return 0


RMI = Spec([flag("force", "f"), flag("no-prune")])


def cmd_rmi(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    if not args:
        raise UsageError('"rmi" requires at least 1 argument.')
    rc = 0
    for name in args:
        try:
            for item in c.delete(f"/images/{q(name)}", {"force": opts["force"] or None,
                                                        "noprune": opts["no-prune"] or None}):
                for k, v in item.items():
                    out(f"{k}: {v}")
        except BerthError as e:
            err(f"Error response from daemon: {e}")
            rc = 1
    return rc


HISTORY = Spec([flag("quiet", "q"), flag("no-trunc"), flag("human", "H", default=True),
                flag("format", kind="str", default="")])


def cmd_history(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    if len(args) != 1:
        raise UsageError('"history" requires exactly 1 argument.')
    hist = c.get(f"/images/{q(args[0])}/history")
    rows = []
    for h in hist:
        hid = h["Id"]
        if hid != "<missing>" and not opts["no-trunc"]:
            hid = hid.split(":", 1)[-1][:12]
        by = h.get("CreatedBy") or ""
        rows.append(fmt.Row({"ID": hid, "CreatedSince": fmt.ago(h["Created"]),
                             "CreatedAt": fmt.rfc3339(h["Created"]),
                             "CreatedBy": by if opts["no-trunc"] else fmt.trunc(by, 45),
                             "Size": fmt.size(h["Size"]), "Comment": h.get("Comment", "")},
                            None, "*image.historyContext", has_labels=False))
    if opts["quiet"]:
        for r in rows:
            out(r["ID"])
        return 0
    fmt.render(rows, opts["format"], [("IMAGE", "ID"), ("CREATED", "CreatedSince"),
                                      ("CREATED BY", "CreatedBy"), ("SIZE", "Size"),
                                      ("COMMENT", "Comment")])
    return 0


SAVE = Spec([flag("output", "o", "str", ""), flag("platform", kind="str", default="")])


def cmd_save(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    if not args:
        raise UsageError('"save" requires at least 1 argument.')
    if not opts["output"] and sys.stdout.isatty():
        raise BerthError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    r = c.send("GET", "/images/get", query=[("names", n) for n in args])
    _copy_to(r, opts["output"])
    return 0


EXPORT = Spec([flag("output", "o", "str", "")])


def cmd_export(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    if len(args) != 1:
        raise UsageError('"export" requires exactly 1 argument.')
    if not opts["output"] and sys.stdout.isatty():
        raise BerthError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    r = c.send("GET", f"/containers/{q(args[0])}/export")
    _copy_to(r, opts["output"])
    return 0


def _copy_to(r: Any, path: str) -> None:
    if path:
        tmp = path + ".berth-tmp"
        with open(tmp, "wb") as f:
            for piece in r.iter_raw():
                f.write(piece)
        os.replace(tmp, path)
    else:
        for piece in r.iter_raw():
            sys.stdout.buffer.write(piece)
        sys.stdout.buffer.flush()


LOAD = Spec([flag("input", "i", "str", ""), flag("quiet", "q")])


def cmd_load(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    if opts["input"]:
        fh = open(opts["input"], "rb")  # noqa: SIM115
    else:
        if sys.stdin.isatty():
            raise BerthError("requested load from stdin, but stdin is empty")
        fh = sys.stdin.buffer  # type: ignore[assignment]
    with fh:
        r = c.send("POST", "/images/load", query={"quiet": opts["quiet"] or None}, data=fh,
                   headers={"Content-Type": "application/x-tar"})
    for msg in r.iter_json():
        if msg.get("error"):
            err(msg["error"])   # from the stream, as the docker CLI prints it
            return 1
        if msg.get("stream"):
            sys.stdout.write(msg["stream"])
    return 0


IMAGE_PRUNE = Spec([flag("all", "a"), flag("force", "f"), flag("filter", kind="list")])


def cmd_image_prune(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    filters = opts["filter"] + (["dangling=false"] if opts["all"] else [])
    res = c.post("/images/prune", {"filters": parse_filters(filters)})
    for item in res.get("ImagesDeleted") or []:
        for k, v in item.items():
            out(f"{k}: {v}")
    out(f"Total reclaimed space: {fmt.size(res.get('SpaceReclaimed', 0))}")
    return 0


# --- containers ---------------------------------------------------------------------------
_RUN_FLAGS = [
    flag("detach", "d", help="Run container in background and print container ID"),
    flag("rm", help="Automatically remove the container when it exits"),
    flag("name", kind="str", default=""), flag("env", "e", "list"),
    flag("env-file", kind="list"), flag("workdir", "w", "str", ""),
    flag("user", "u", "str", None), flag("hostname", "h", "str", ""),
    flag("entrypoint", kind="str", default=None), flag("label", "l", "list"),
    flag("network", kind="str", default=""), flag("net", kind="str", default=""),
    flag("memory", "m", "str", ""), flag("memory-swap", kind="str", default=""),
    flag("cpus", kind="str", default=""), flag("cpu-shares", "c", "int", 0),
    flag("cpuset-cpus", kind="str", default=""), flag("cpuset-mems", kind="str", default=""),
    flag("cpu-quota", kind="int", default=0), flag("cpu-period", kind="int", default=0),
    flag("pids-limit", kind="int", default=0),
    flag("interactive", "i"), flag("tty", "t"), flag("pull", kind="str", default="missing"),
    flag("stop-signal", kind="str", default=""), flag("stop-timeout", kind="int", default=None),
    flag("privileged"), flag("cap-add", kind="list"), flag("cap-drop", kind="list"),
    flag("read-only"), flag("tmpfs", kind="list"), flag("volume", "v", "list"),
    flag("ulimit", kind="list"), flag("shm-size", kind="str", default=""),
    flag("add-host", kind="list"), flag("dns", kind="list"), flag("dns-search", kind="list"),
    flag("dns-option", kind="list"), flag("restart", kind="str", default=""),
    flag("security-opt", kind="list"), flag("sysctl", kind="list"), flag("init"),
    flag("platform", kind="str", default=""), flag("sig-proxy", default=True),
    flag("attach", "a", "list"), flag("group-add", kind="list"), flag("cidfile", kind="str", default=""),
    flag("runtime", kind="str", default=""), flag("cgroup-parent", kind="str", default=""),
    flag("cgroupns", kind="str", default=""), flag("userns", kind="str", default=""),
    flag("log-driver", kind="str", default=""), flag("log-opt", kind="list"),
    flag("publish", "p", "list"), flag("expose", kind="list"), flag("publish-all", "P"),
    flag("detach-keys", kind="str", default=""),
    flag("mount", kind="list"), flag("volumes-from", kind="list"),
    flag("network-alias", kind="list"), flag("ip", kind="str", default=""),
    flag("mac-address", kind="str", default=""), flag("device", kind="list"),
    flag("health-cmd", kind="str", default=""), flag("health-interval", kind="str", default=""),
    flag("health-timeout", kind="str", default=""), flag("health-retries", kind="int", default=0),
    flag("health-start-period", kind="str", default=""), flag("no-healthcheck"),
    flag("health-start-interval", kind="str", default=""),
    flag("pid", kind="str", default=""), flag("ipc", kind="str", default=""),
    flag("uts", kind="str", default=""), flag("oom-score-adj", kind="int", default=0),
    flag("memory-reservation", kind="str", default=""),
    flag("memory-swappiness", kind="int", default=-1), flag("oom-kill-disable"),
    flag("blkio-weight", kind="int", default=0), flag("blkio-weight-device", kind="list"),
    flag("device-read-bps", kind="list"), flag("device-write-bps", kind="list"),
    flag("device-read-iops", kind="list"), flag("device-write-iops", kind="list"),
    flag("label-file", kind="list"), flag("domainname", kind="str", default=""),
    flag("device-cgroup-rule", kind="list"), flag("storage-opt", kind="list"),
    flag("gpus", kind="str", default=""), flag("annotation", kind="list"),
    flag("link", kind="list"),
]
RUN = Spec(_RUN_FLAGS, interspersed=False)
CREATE = Spec([f for f in _RUN_FLAGS if f.long not in ("detach", "sig-proxy")], interspersed=False)


def _env_list(opts: dict[str, Any]) -> list[str]:
    env: list[str] = []
    for path in opts["env-file"]:
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except OSError as e:
            raise UsageError(f"open {path}: {(e.strerror or str(e)).lower()}") from None
        for line in lines:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            env.append(_env_item(line))
    for item in opts["env"]:
        env.append(_env_item(item))
    return [x for x in env if x]


def _env_item(e: str) -> str:
    if "=" in e:
        if e.startswith("="):
            raise UsageError(f"invalid environment variable: {e}")
        return e
    # as the docker CLI: the value from the client's environment, or the bare name, which the
    # daemon keeps in Config.Env and which unsets the name in the process
    v = os.environ.get(e)
    return f"{e}={v}" if v is not None else e


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
        raise UsageError(f'invalid argument "{spec}" for "--{flag_name}" flag: bad format: '
                         f"{spec}")
    if not path.startswith("/dev/"):
        raise UsageError(f'invalid argument "{spec}" for "--{flag_name}" flag: bad format '
                         f"for device path: {spec}")
    try:
        value = parse_size(rate) if sized else int(rate)
        if value < 0:
            raise ValueError(rate)
    except ValueError:
        shape = "<number>[<unit>]" if sized else "<number>"
        raise UsageError(f'invalid argument "{spec}" for "--{flag_name}" flag: invalid rate '
                         f"for device: {spec}. The correct format is <device-path>:{shape}. "
                         "Number must be a positive integer"
                         + (". Unit is optional and can be kb, mb, or gb" if sized else "")
                         ) from None
    return {"Path": path, "Rate": value}


def _gpus(value: str) -> dict[str, Any]:
    """`--gpus all`, `--gpus 2`, `--gpus '"device=0,1",capabilities=compute'` as the docker
    CLI makes a DeviceRequest (the daemon says whether a driver takes it)."""
    req: dict[str, Any] = {"Driver": "", "Count": 0, "DeviceIDs": None,
                           "Capabilities": [["gpu"]], "Options": {}}
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
            raise UsageError(f'invalid argument "{value}" for "--gpus" flag: unexpected key '
                             f"'{key}' in '{f}'")
    return req


def build_create_body(opts: dict[str, Any], image: str, cmd: list[str]) -> tuple[dict[str, Any], str]:
    labels: dict[str, str] = {}
    for lab in _label_file_lines(opts["label-file"]) + list(opts["label"]):
        k, _, v = lab.partition("=")
        labels[k] = v
    hc: dict[str, Any] = {"AutoRemove": bool(opts["rm"]),
                          "NetworkMode": opts["network"] or opts["net"] or "default"}
    try:
        if opts["memory"]:
            hc["Memory"] = parse_size(opts["memory"])
        if opts["memory-swap"]:
            hc["MemorySwap"] = -1 if opts["memory-swap"] == "-1" else parse_size(opts["memory-swap"])
        if opts["shm-size"]:
            hc["ShmSize"] = parse_size(opts["shm-size"])
        if opts["memory-reservation"]:
            hc["MemoryReservation"] = parse_size(opts["memory-reservation"])
    except ValueError as e:
        raise UsageError(f"invalid argument: {e}") from None
    if opts["cpus"]:
        try:
            hc["NanoCpus"] = int(round(float(opts["cpus"]) * 1e9))
        except ValueError:
            raise UsageError(f'invalid argument "{opts["cpus"]}" for "--cpus" flag: '
                             "failed to parse " + opts["cpus"] + " as a rational number") from None
    for key, name in (("CpuShares", "cpu-shares"), ("CpuQuota", "cpu-quota"),
                      ("CpuPeriod", "cpu-period"), ("PidsLimit", "pids-limit")):
        if opts[name]:
            hc[key] = opts[name]
    for key, name in (("CpusetCpus", "cpuset-cpus"), ("CpusetMems", "cpuset-mems"),
                      ("CgroupParent", "cgroup-parent"), ("Runtime", "runtime"),
                      ("CgroupnsMode", "cgroupns"), ("UsernsMode", "userns")):
        if opts[name]:
            hc[key] = opts[name]
    for key, name, what in (("PidMode", "pid", "PID"), ("IpcMode", "ipc", "IPC"),
                            ("UTSMode", "uts", "UTS")):
        mode = opts[name]
        if mode:
            if mode not in (("host",) if name == "uts" else (
                    "host", "private", "shareable", "none") if name == "ipc" else ("host",)) \
                    and not (name != "uts" and mode.startswith("container:") and mode[10:]):
                raise UsageError(f"--{name}: invalid {what} mode")
            hc[key] = mode
    if opts["oom-score-adj"]:
        hc["OomScoreAdj"] = opts["oom-score-adj"]
    if opts["memory-swappiness"] != -1:
        hc["MemorySwappiness"] = opts["memory-swappiness"]
    if opts["oom-kill-disable"]:
        hc["OomKillDisable"] = True
    if opts["blkio-weight"]:
        hc["BlkioWeight"] = opts["blkio-weight"]
    weights = []
    for w in opts["blkio-weight-device"]:
        path, sep, weight = w.rpartition(":")
        if not sep or not path.startswith("/dev/") or not weight.isdigit() or not (
                10 <= int(weight) <= 1000):
            raise UsageError(f'invalid argument "{w}" for "--blkio-weight-device" flag: '
                             f"invalid weight for device: {w}")
        weights.append({"Path": path, "Weight": int(weight)})
    if weights:
        hc["BlkioWeightDevice"] = weights
    for key, name, sized in (("BlkioDeviceReadBps", "device-read-bps", True),
                             ("BlkioDeviceWriteBps", "device-write-bps", True),
                             ("BlkioDeviceReadIOps", "device-read-iops", False),
                             ("BlkioDeviceWriteIOps", "device-write-iops", False)):
        if opts[name]:
            hc[key] = [_device_rate(d, name, sized) for d in opts[name]]
    for rule in opts["device-cgroup-rule"]:
        parts = rule.split(" ")
        ok = len(parts) == 3 and parts[0] in ("a", "b", "c") and all(
            x == "*" or x.isdigit() for x in parts[1].split(":")) and parts[1].count(":") == 1 \
            and 1 <= len(parts[2]) <= 3 and all(c in "rwm" for c in parts[2])
        if not ok:
            raise UsageError(f'invalid argument "{rule}" for "--device-cgroup-rule" flag: '
                             f"invalid device cgroup format '{rule}'")
    if opts["device-cgroup-rule"]:
        hc["DeviceCgroupRules"] = list(opts["device-cgroup-rule"])
    if opts["storage-opt"]:
        so: dict[str, str] = {}
        for o in opts["storage-opt"]:
            k, sep, v = o.partition("=")
            if not sep:
                raise UsageError(f"invalid storage option {o}")
            so[k] = v
        hc["StorageOpt"] = so
    if opts["gpus"]:
        hc.setdefault("DeviceRequests", []).append(_gpus(opts["gpus"]))
    if opts["annotation"]:
        ann: dict[str, str] = {}
        for a in opts["annotation"]:
            k, sep, v = a.partition("=")
            if not sep or not k:
                raise UsageError(f'invalid argument "{a}" for "--annotation" flag: bad '
                                 "format for annotation: must be in the form key=value")
            ann[k] = v
        hc["Annotations"] = ann
    if opts["privileged"]:
        hc["Privileged"] = True
    if opts["read-only"]:
        hc["ReadonlyRootfs"] = True
    if opts["init"]:
        hc["Init"] = True
    for key, name in (("CapAdd", "cap-add"), ("CapDrop", "cap-drop"), ("Binds", "volume"),
                      ("ExtraHosts", "add-host"), ("Dns", "dns"), ("DnsSearch", "dns-search"),
                      ("DnsOptions", "dns-option"), ("SecurityOpt", "security-opt"),
                      ("GroupAdd", "group-add")):
        if opts[name]:
            hc[key] = list(opts[name])
    if hc.get("SecurityOpt"):
        hc["SecurityOpt"] = [_security_opt(o) for o in hc["SecurityOpt"]]
    if opts["mount"]:
        hc["Mounts"] = [_parse_mount_flag(m) for m in opts["mount"]]
    if opts["device"]:
        devs = []
        for d in opts["device"]:
            kind, eq, _ = d.partition("=")
            if eq and "/" in kind and not d.startswith("/"):
                # a CDI name (vendor.com/class=name): a DeviceRequest, as the docker CLI
                hc.setdefault("DeviceRequests", []).append(
                    {"Driver": "cdi", "DeviceIDs": [d], "Count": 0, "Capabilities": None,
                     "Options": {}})
                continue
            parts = d.split(":")
            host = parts[0]
            ctr = parts[1] if len(parts) > 1 and parts[1].startswith("/") else host
            perms = parts[-1] if len(parts) > 1 and not parts[-1].startswith("/") else "rwm"
            devs.append({"PathOnHost": host, "PathInContainer": ctr, "CgroupPermissions": perms})
        if devs:
            hc["Devices"] = devs
    if opts["volumes-from"]:
        hc["VolumesFrom"] = list(opts["volumes-from"])
    if opts["tmpfs"]:
        hc["Tmpfs"] = {t.split(":", 1)[0]: (t.split(":", 1)[1] if ":" in t else "")
                       for t in opts["tmpfs"]}
    if opts["sysctl"]:
        hc["Sysctls"] = dict(_sysctl_flag(s).split("=", 1) for s in opts["sysctl"])
    if opts["ulimit"]:
        ul = []
        for u in opts["ulimit"]:
            name, _, val = u.partition("=")
            soft, _, hard = val.partition(":")
            try:
                ul.append({"Name": name, "Soft": int(soft), "Hard": int(hard or soft)})
            except ValueError:
                raise UsageError(f"invalid ulimit argument: {u}") from None
        hc["Ulimits"] = ul
    if opts["restart"]:
        name, _, count = opts["restart"].partition(":")
        hc["RestartPolicy"] = {"Name": name, "MaximumRetryCount": int(count or 0)}
    if opts["log-driver"] or opts["log-opt"]:
        # the daemon says which drivers it has, as dockerd does
        hc["LogConfig"] = {"Type": opts["log-driver"], "Config": dict(
            o.split("=", 1) for o in opts["log-opt"] if "=" in o)}
    exposed: dict[str, Any] = {}
    if opts["publish"]:
        binds: dict[str, list[dict[str, str]]] = {}
        for p in opts["publish"]:
            for key, b in _parse_publish(p).items():
                binds.setdefault(key, []).extend(b)
                exposed[key] = {}
        hc["PortBindings"] = binds
    for port in opts["expose"]:
        exposed[port if "/" in port else port + "/tcp"] = {}
    if opts["publish-all"]:
        hc["PublishAllPorts"] = True
    attach = opts.get("attach") or []
    detached = opts.get("detach", True)
    netcfg: dict[str, Any] = {}
    if opts["link"]:
        hc["Links"] = list(opts["link"])
    if opts["network-alias"] or opts["ip"] or opts["mac-address"] or opts["link"]:
        mode = hc["NetworkMode"]
        ec: dict[str, Any] = {}
        if opts["network-alias"]:
            ec["Aliases"] = list(opts["network-alias"])
        if opts["link"]:  # as the docker CLI: the first network's endpoint has them too
            ec["Links"] = list(opts["link"])
        if opts["ip"]:
            ec["IPAMConfig"] = {"IPv4Address": opts["ip"]}
        if opts["mac-address"]:
            ec["MacAddress"] = opts["mac-address"]
        netcfg = {"EndpointsConfig": {mode if mode != "default" else "bridge": ec}}
    body: dict[str, Any] = {
        "Image": image, "Cmd": cmd or None, "Env": _env_list(opts), "Labels": labels,
        "Tty": bool(opts["tty"]), "OpenStdin": bool(opts["interactive"]),
        "StdinOnce": bool(opts["interactive"]) and not detached,
        "AttachStdin": bool(opts["interactive"]) and not detached,
        "AttachStdout": not detached and (not attach or "stdout" in attach),
        "AttachStderr": not detached and (not attach or "stderr" in attach),
        "HostConfig": hc,
    }
    if netcfg:
        body["NetworkingConfig"] = netcfg
    if exposed:
        body["ExposedPorts"] = exposed
    if opts["workdir"]:
        body["WorkingDir"] = opts["workdir"]
    if opts["user"] is not None:
        body["User"] = opts["user"]
    if opts["hostname"]:
        body["Hostname"] = opts["hostname"]
    if opts["domainname"]:
        body["Domainname"] = opts["domainname"]
    if opts["entrypoint"] is not None:
        body["Entrypoint"] = [opts["entrypoint"]] if opts["entrypoint"] else [""]
    if opts["stop-signal"]:
        body["StopSignal"] = opts["stop-signal"]
    if opts["stop-timeout"] is not None:
        body["StopTimeout"] = opts["stop-timeout"]
    if opts["tty"]:
        size = _term_size()
        if size:
            hc["ConsoleSize"] = list(size)
    health = _healthcheck(opts)
    if health is not None:
        body["Healthcheck"] = health
    return body, opts["name"]


def _parse_publish(spec: str) -> dict[str, list[dict[str, str]]]:
    """`-p [ip:][hostPort:]containerPort[/proto]`, ranges included (as the daemon's parser)."""
    import re
    m = re.match(r"^(?:(\[[0-9a-fA-F:]+\]|\d+\.\d+\.\d+\.\d+):)?(?:([0-9]*(?:-[0-9]+)?):)?"
                 r"([0-9]+(?:-[0-9]+)?)(?:/(tcp|udp|sctp))?$", spec)
    if not m:
        raise UsageError(f'invalid argument "{spec}" for "-p, --publish" flag: '
                         "invalid port specification")

    def rng(x: str) -> list[int]:
        lo, _, hi = x.partition("-")
        return list(range(int(lo), int(hi or lo) + 1))
    ctr = rng(m.group(3))
    hosts = rng(m.group(2)) if m.group(2) else [0] * len(ctr)
    if len(hosts) != len(ctr):
        if len(ctr) != 1:
            raise UsageError(f'invalid argument "{spec}" for "-p, --publish" flag: invalid '
                             "ranges specified for container and host Ports")
        hosts = [0]
    out: dict[str, list[dict[str, str]]] = {}
    for c, h in zip(ctr, hosts, strict=True):
        out.setdefault(f"{c}/{m.group(4) or 'tcp'}", []).append(
            {"HostIp": (m.group(1) or "").strip("[]"), "HostPort": str(h) if h else ""})
    return out


# the docker CLI's own check of --sysctl (opts.ValidateSysctl); the daemon checks it again
_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
            "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")


def _sysctl_flag(val: str) -> str:
    key, eq, _ = val.partition("=")
    if not eq or not (key in _SYSCTLS or key.startswith(("net.", "fs.mqueue."))):
        raise UsageError(f'invalid argument "{val}" for "--sysctl" flag: '
                         f"sysctl '{val}' is not allowed")
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
                raise UsageError(f"invalid argument \"{spec}\" for \"--mount\" flag: {e}") from None
        elif k == "tmpfs-mode":
            m.setdefault("TmpfsOptions", {})["Mode"] = int(v, 8)
        elif k in ("consistency", "bind-recursive"):
            continue
        else:
            raise UsageError(f'invalid argument "{spec}" for "--mount" flag: unexpected key '
                             f"'{k}' in '{field}'")
    if not m.get("Target"):
        raise UsageError(f'invalid argument "{spec}" for "--mount" flag: target is required')
    return m


def _healthcheck(opts: dict[str, Any]) -> dict[str, Any] | None:
    if opts["no-healthcheck"]:
        if opts["health-cmd"]:
            raise UsageError("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    h: dict[str, Any] = {}
    if opts["health-cmd"]:
        h["Test"] = ["CMD-SHELL", opts["health-cmd"]]
    for key, name in (("Interval", "health-interval"), ("Timeout", "health-timeout"),
                      ("StartPeriod", "health-start-period"),
                      ("StartInterval", "health-start-interval")):
        if opts[name]:
            try:
                h[key] = int(parse_duration(opts[name]) * 1e9)
            except ValueError as e:
                raise UsageError(f'invalid argument "{opts[name]}" for "--{name}" flag: {e}'
                                 ) from None
    if opts["health-retries"]:
        h["Retries"] = opts["health-retries"]
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


def _create(c: Client, opts: dict[str, Any], args: list[str]) -> str:
    if not args:
        raise UsageError('"create" requires at least 1 argument.')
    image, cmd = args[0], args[1:]
    body, name = build_create_body(opts, image, cmd)
    if opts["pull"] not in ("missing", "always", "never"):
        raise UsageError(f'invalid pull option: \'{opts["pull"]}\': must be one of '
                         '"always", "missing" or "never"')
    if opts["pull"] == "always":
        _pull(c, image, opts.get("platform") or "")
    try:
        res = c.post("/containers/create", {"name": name or None}, body)
    except NotFound as e:
        if "No such image" not in str(e) or opts["pull"] == "never":
            raise
        ref = image if ":" in image.rsplit("/", 1)[-1] or "@" in image else image + ":latest"
        err(f"Unable to find image '{ref}' locally")
        _pull(c, image, opts.get("platform") or "")
        res = c.post("/containers/create", {"name": name or None}, body)
    for w in res.get("Warnings") or []:
        err(f"WARNING: {w}")
    if opts.get("cidfile"):
        with open(opts["cidfile"], "w") as f:
            f.write(res["Id"])
    return str(res["Id"])


def _pull(c: Client, image: str, platform: str = "") -> None:
    """As the docker CLI: the progress of a pull that `run`/`create` needs goes to stderr."""
    from berth.cli import registry
    name, tag = registry.split_name(image)
    registry.pull(c, f"{name}{'@' if tag.startswith('sha256:') else ':'}{tag or 'latest'}",
                  platform=platform, quiet=False, out=sys.stderr)


def cmd_create(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    opts["detach"] = True
    out(_create(c, opts, args))
    return 0


def _start_error_code(message: str) -> int:
    if ("executable file not found" in message or "no such file or directory" in message):
        return 127
    if "permission denied" in message or "is a directory" in message:
        return 126
    return ENGINE_ERROR


def cmd_run(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    if opts["tty"] and opts["interactive"] and not sys.stdin.isatty():
        err("the input device is not a TTY")
        return 1
    if opts["detach-keys"]:
        _check_detach_keys(opts["detach-keys"])
    cid = _create(c, opts, args)
    if opts["detach"]:
        try:
            c.send("POST", f"/containers/{cid}/start").close()
        except BerthError as e:
            err(f"berth: Error response from daemon: {e}")
            return _start_error_code(str(e))
        out(cid)
        return 0
    started = _attach_and_start(c, cid, stdin=bool(opts["interactive"]),
                                keys=opts["detach-keys"], condition="removed" if opts["rm"]
                                else "next-exit", prefix="berth: ")
    if isinstance(started, int):
        return started
    attach, wait = started
    if opts["sig-proxy"] and not opts["tty"]:
        _proxy_signals(c, cid)
    detached = _session(attach, tty=bool(opts["tty"]), stdin=bool(opts["interactive"]),
                        keys=opts["detach-keys"],
                        resize=lambda h, w: _resize(c, f"/containers/{cid}/resize", h, w))
    if detached:
        wait.close()
        return 0
    res = wait.json()
    wait.close()
    if res and res.get("Error") and res["Error"].get("Message"):
        err(f"berth: Error response from daemon: {res['Error']['Message']}")
    return int(res.get("StatusCode", 0)) if res else 0


def _attach_and_start(c: Client, cid: str, *, stdin: bool, keys: str, condition: str,
                      prefix: str) -> tuple[Any, Any] | int:
    """The docker CLI's order: attach (hijacked) and register the wait before the start, so no
    output and no exit is missed. Returns both streams, or the exit code of a failed start."""
    attach = c.send("POST", f"/containers/{cid}/attach",
                    query={"stream": 1, "stdin": 1 if stdin else None, "stdout": 1,
                           "stderr": 1, "detachKeys": keys or None}, upgrade=True)
    wait = c.send("POST", f"/containers/{cid}/wait", query={"condition": condition})
    try:
        c.send("POST", f"/containers/{cid}/start").close()
    except BerthError as e:
        attach.close()
        wait.close()
        err(f"{prefix}Error response from daemon: {e}")
        return _start_error_code(str(e))
    return attach, wait


def _check_detach_keys(keys: str) -> None:
    for part in keys.split(","):
        if not (len(part) == 1 or (part.startswith("ctrl-") and len(part) == 6 and (
                "a" <= part[5] <= "z" or part[5] in "@[\\]^_"))):
            raise UsageError(f"Invalid detach keys ({keys}) provided")


def _detach_bytes(keys: str) -> bytes:
    out = bytearray()
    for part in (keys or "ctrl-p,ctrl-q").split(","):
        if part.startswith("ctrl-"):
            c = part[5]
            out.append(ord(c) - 96 if "a" <= c <= "z" else "@[\\]^_".index(c) + (
                0 if c == "@" else 26))
        else:
            out.append(ord(part))
    return bytes(out)


def _resize(c: Client, path: str, h: int, w: int) -> None:
    try:
        c.send("POST", path, query={"h": h, "w": w}).close()
    except (BerthError, OSError):
        pass


def _term_size() -> tuple[int, int] | None:
    try:
        sz = os.get_terminal_size(sys.stdout.fileno())
        return sz.lines, sz.columns
    except OSError:
        return None


def _session(r: Any, *, tty: bool, stdin: bool, keys: str,
             resize: Callable[[int, int], None] | None = None) -> bool:
    """A hijacked stream: stdin to it, it to stdout/stderr; the terminal in raw mode for a Tty
    and restored on every way out. True if the user typed the detach keys."""
    detached: list[bool] = []  # set by the stdin thread
    in_fd = sys.stdin.fileno() if stdin else -1
    raw = tty and stdin and os.isatty(in_fd)
    saved = None
    if raw:
        import termios
        import tty as ttymod
        saved = termios.tcgetattr(in_fd)
        ttymod.setraw(in_fd)
    if tty and resize is not None:
        size = _term_size()
        if size:
            resize(*size)

        def on_winch(_s: int, _f: Any) -> None:
            sz = _term_size()
            if sz:
                _thread.start_new_thread(resize, sz)
        signal.signal(signal.SIGWINCH, on_winch)

    def pump_stdin() -> None:
        seq = _detach_bytes(keys) if raw else b""
        held = b""
        try:
            while True:
                data = os.read(in_fd, 4096)
                if not data:
                    break
                if seq:
                    buf = held + data
                    if seq in buf:
                        # the daemon sees the keys too, and ends the stream without closing
                        # the container's stdin (closing ours would end a StdinOnce shell).
                        # Flag first: the stream may end before sendall returns
                        detached.append(True)
                        r.sock.sendall(buf[:buf.index(seq) + len(seq)])
                        return
                    held = b""
                    for n in range(min(len(seq) - 1, len(buf)), 0, -1):
                        if seq.startswith(buf[-n:]):
                            held, buf = buf[-n:], buf[:-n]
                            break
                    data = buf
                if data:
                    r.sock.sendall(data)
            Client.close_write(r.sock)
        except OSError:
            pass
    if stdin:
        _thread.start_new_thread(pump_stdin, ())
    else:
        try:
            Client.close_write(r.sock)  # as the docker CLI: no input coming
        except OSError:
            pass
    try:
        _pump_output(r, tty)
    finally:
        if saved is not None:
            import termios
            termios.tcsetattr(in_fd, termios.TCSADRAIN, saved)
    if detached:
        err("\r\nread escape sequence" if raw else "read escape sequence")
    return bool(detached)


def _proxy_signals(c: Client, cid: str) -> None:
    def handler(signo: int, _frame: Any) -> None:
        def send() -> None:
            try:
                c.send("POST", f"/containers/{cid}/kill", query={"signal": str(signo)}).close()
            except BerthError:
                pass
        _thread.start_new_thread(send, ())
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
              signal.SIGUSR2):
        signal.signal(s, handler)


def _pump_output(r: Any, tty: bool) -> None:
    stdout, stderr = sys.stdout.buffer, sys.stderr.buffer
    try:
        if tty:
            for piece in r.iter_raw():
                stdout.write(piece)
                stdout.flush()
        else:
            for stream, data in r.iter_frames():
                dest = stderr if stream == 2 else stdout
                dest.write(data)
                dest.flush()
    except (ConnectionFailed, OSError):
        pass
    finally:
        r.close()


START = Spec([flag("attach", "a"), flag("interactive", "i"),
              flag("detach-keys", kind="str", default="")])


def cmd_start(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    if not args:
        raise UsageError('"start" requires at least 1 argument.')
    if opts["attach"] or opts["interactive"]:
        if len(args) > 1:
            raise UsageError("you cannot start and attach multiple containers at once")
        if opts["detach-keys"]:
            _check_detach_keys(opts["detach-keys"])
        info = c.get(f"/containers/{q(args[0])}/json")
        cid = info["Id"]
        tty = bool(info["Config"]["Tty"])
        stdin = bool(opts["interactive"] and info["Config"]["OpenStdin"])
        started = _attach_and_start(c, cid, stdin=stdin, keys=opts["detach-keys"],
                                    condition="next-exit", prefix="")
        if isinstance(started, int):
            return started
        attach, wait = started
        if _session(attach, tty=tty, stdin=stdin, keys=opts["detach-keys"],
                    resize=lambda h, w: _resize(c, f"/containers/{cid}/resize", h, w)):
            return 0
        res = wait.json()
        return int(res.get("StatusCode", 0)) if res else 0
    rc = 0
    for name in args:
        try:
            c.send("POST", f"/containers/{q(name)}/start").close()
            out(name)
        except BerthError as e:
            err(f"Error response from daemon: {e}")
            rc = 1
    if rc:
        err("Error: failed to start containers: " + ", ".join(args))
    return rc


ATTACH = Spec([flag("no-stdin"), flag("sig-proxy", default=True),
               flag("detach-keys", kind="str", default="")])


def cmd_attach(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    if len(args) != 1:
        raise UsageError('"attach" requires exactly 1 argument.')
    if opts["detach-keys"]:
        _check_detach_keys(opts["detach-keys"])
    info = c.get(f"/containers/{q(args[0])}/json")
    cid = info["Id"]
    if not info["State"]["Running"]:
        raise BerthError("You cannot attach to a stopped container, start it first")
    tty = bool(info["Config"]["Tty"])
    stdin = bool(info["Config"]["OpenStdin"]) and not opts["no-stdin"]
    if tty and stdin and not sys.stdin.isatty():
        err("the input device is not a TTY")
        return 1
    r = c.send("POST", f"/containers/{cid}/attach",
               query={"stream": 1, "stdin": 1 if stdin else None, "stdout": 1, "stderr": 1,
                      "detachKeys": opts["detach-keys"] or None}, upgrade=True)
    if opts["sig-proxy"] and not tty:
        _proxy_signals(c, cid)
    if _session(r, tty=tty, stdin=stdin, keys=opts["detach-keys"],
                resize=lambda h, w: _resize(c, f"/containers/{cid}/resize", h, w)):
        return 0
    res = c.post(f"/containers/{cid}/wait")
    return int(res.get("StatusCode", 0)) if res else 0


EXEC = Spec([flag("detach", "d"), flag("interactive", "i"), flag("tty", "t"),
             flag("env", "e", "list"), flag("env-file", kind="list"),
             flag("workdir", "w", "str", ""), flag("user", "u", "str", ""),
             flag("privileged"), flag("detach-keys", kind="str", default="")],
            interspersed=False)


def cmd_exec(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    if len(args) < 2:
        raise UsageError('"exec" requires at least 2 arguments.')
    if opts["tty"] and opts["interactive"] and not sys.stdin.isatty():
        err("the input device is not a TTY")
        return 1
    if opts["detach-keys"]:
        _check_detach_keys(opts["detach-keys"])
    detach = bool(opts["detach"])
    body: dict[str, Any] = {
        "Cmd": args[1:], "Tty": bool(opts["tty"]), "Env": _env_list(opts),
        "AttachStdin": bool(opts["interactive"]) and not detach,
        "AttachStdout": not detach, "AttachStderr": not detach,
        "Privileged": bool(opts["privileged"]), "User": opts["user"],
        "WorkingDir": opts["workdir"], "DetachKeys": opts["detach-keys"]}
    size = _term_size() if opts["tty"] else None
    if size:
        body["ConsoleSize"] = list(size)
    eid = c.post(f"/containers/{q(args[0])}/exec", body=body)["Id"]
    start = {"Detach": detach, "Tty": bool(opts["tty"]), "ConsoleSize": list(size) if size else None}
    if detach:
        c.send("POST", f"/exec/{eid}/start", body=start).close()
        return 0
    r = c.send("POST", f"/exec/{eid}/start", body=start, upgrade=True)
    if _session(r, tty=bool(opts["tty"]), stdin=bool(opts["interactive"]),
                keys=opts["detach-keys"],
                resize=lambda h, w: _resize(c, f"/exec/{eid}/resize", h, w)):
        return 0
    code = c.get(f"/exec/{eid}/json").get("ExitCode")
    return int(code) if code is not None else 0


PS = Spec([flag("all", "a"), flag("quiet", "q"), flag("latest", "l"), flag("last", "n", "int", -1),
           flag("no-trunc"), flag("size", "s"), flag("filter", "f", "list"),
           flag("format", kind="str", default="")])


def cmd_ps(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    if args:
        raise UsageError('"ps" accepts no arguments.')
    limit = 1 if opts["latest"] else opts["last"]
    if ".Size" in opts["format"] and not opts["quiet"]:
        opts["size"] = True  # as docker: a format that shows the size asks for it
    cs = c.get("/containers/json", {"all": opts["all"] or None,
                                    "limit": limit if limit > 0 else None,
                                    "size": opts["size"] or None,
                                    "filters": parse_filters(opts["filter"])})
    if opts["quiet"]:
        for ct in cs:
            out(ct["Id"] if opts["no-trunc"] else ct["Id"][:12])
        return 0
    rows = []
    for ct in cs:
        cmd = ct["Command"]
        mounts = ct.get("Mounts") or []
        row = {"ID": ct["Id"] if opts["no-trunc"] else ct["Id"][:12],
               "Image": ct["Image"] if opts["no-trunc"] or not ct["Image"].startswith("sha256:")
               else ct["Image"][7:19],
               "Command": json.dumps(cmd if opts["no-trunc"] else fmt.trunc(cmd, 20),
                                     ensure_ascii=False),
               "RunningFor": fmt.ago(ct["Created"]), "CreatedAt": fmt.ts(ct["Created"]),
               "Status": ct["Status"], "Ports": _ports_text(ct.get("Ports") or []),
               "Names": ",".join(
                   n.lstrip("/") for n in ct["Names"]), "State": ct["State"],
               "Labels": fmt.labels_text(ct.get("Labels")),
               "Networks": ",".join((ct.get("NetworkSettings") or {}).get("Networks") or {}),
               "Mounts": ",".join(
                   m.get("Name") or m.get("Source", "") if opts["no-trunc"] else
                   fmt.trunc(m.get("Name") or m.get("Source", ""), 15) for m in mounts),
               "LocalVolumes": str(sum(1 for m in mounts if m.get("Driver") == "local"))}
        if opts["size"]:
            row["Size"] = (f"{fmt.size(ct.get('SizeRw', 0))} "
                           f"(virtual {fmt.size(ct.get('SizeRootFs', 0))})")
        rows.append(fmt.Row(row, ct.get("Labels"), "*formatter.ContainerContext"))
    cols = [("CONTAINER ID", "ID"), ("IMAGE", "Image"), ("COMMAND", "Command"),
            ("CREATED", "RunningFor"), ("STATUS", "Status"), ("PORTS", "Ports"),
            ("NAMES", "Names")]
    if opts["size"]:
        cols.append(("SIZE", "Size"))
    fmt.render(rows, opts["format"], cols, "failed to parse template: ",
               "failed to execute template: ")
    return 0


def _ports_text(ports: list[dict[str, Any]]) -> str:
    parts = []
    for p in ports:
        if p.get("PublicPort"):
            parts.append(f"{p.get('IP') or '0.0.0.0'}:{p['PublicPort']}->"
                         f"{p['PrivatePort']}/{p['Type']}")
        else:
            parts.append(f"{p['PrivatePort']}/{p['Type']}")
    return ", ".join(parts)


PORT = Spec([])


def cmd_port(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    if not 1 <= len(args) <= 2:
        raise UsageError('"port" requires at least 1 and at most 2 arguments.')
    ports = c.get(f"/containers/{q(args[0])}/json")["NetworkSettings"].get("Ports") or {}
    want = args[1] if len(args) > 1 else None
    if want and "/" not in want:
        want += "/tcp"
    found = False
    for key, binds in sorted(ports.items()):
        if want and key != want:
            continue
        for b in binds or []:
            found = True
            out(f"{b['HostIp']}:{b['HostPort']}" if want else
                f"{key} -> {b['HostIp']}:{b['HostPort']}")
    if want and not found:
        raise BerthError(f"No public port '{want}' published for {args[0]}")
    return 0


LOGS = Spec([flag("follow", "f"), flag("timestamps", "t"), flag("tail", "n", "str", "all"),
             flag("since", kind="str", default=""), flag("until", kind="str", default=""),
             flag("details")])


def cmd_logs(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    if len(args) != 1:
        raise UsageError('"logs" requires exactly 1 argument.')
    info = c.get(f"/containers/{q(args[0])}/json")
    try:
        since = fmt.parse_time(opts["since"]) if opts["since"] else None
        until = fmt.parse_time(opts["until"]) if opts["until"] else None
    except ValueError as e:
        raise UsageError(str(e)) from None
    r = c.send("GET", f"/containers/{info['Id']}/logs", query={
        "stdout": 1, "stderr": 1, "follow": opts["follow"] or None,
        "timestamps": opts["timestamps"] or None, "tail": opts["tail"],
        "since": since, "until": until})
    _pump_output(r, bool(info["Config"]["Tty"]))
    return 0


STOP = Spec([flag("time", "t", "int", None), flag("timeout", kind="int", default=None),
             flag("signal", "s", "str", "")])


def _each(c: Client, args: list[str], what: str, fn: Callable[[str], None],
          verb: str) -> int:
    if not args:
        raise UsageError(f'"{what}" requires at least 1 argument.')
    failed = []
    for name in args:
        try:
            fn(name)
            out(name)
        except BerthError as e:
            err(f"Error response from daemon: {e}")
            failed.append(name)
    return 1 if failed else 0


def cmd_stop(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    t = opts["time"] if opts["time"] is not None else opts["timeout"]

    def stop(name: str) -> None:
        c.send("POST", f"/containers/{q(name)}/stop",
               query={"t": t, "signal": opts["signal"] or None}).close()
    return _each(c, args, "stop", stop, "stop")


def cmd_restart(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    t = opts["time"] if opts["time"] is not None else opts["timeout"]

    def restart(name: str) -> None:
        c.send("POST", f"/containers/{q(name)}/restart",
               query={"t": t, "signal": opts["signal"] or None}).close()
    return _each(c, args, "restart", restart, "restart")


KILL = Spec([flag("signal", "s", "str", "")])


def cmd_kill(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    def kill(name: str) -> None:
        c.send("POST", f"/containers/{q(name)}/kill",
               query={"signal": opts["signal"] or None}).close()
    return _each(c, args, "kill", kill, "kill")


RM = Spec([flag("force", "f"), flag("volumes", "v"), flag("link", "l")])


def cmd_rm(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    def rm(name: str) -> None:
        c.send("DELETE", f"/containers/{q(name)}",
               query={"force": opts["force"] or None, "v": opts["volumes"] or None,
                      "link": opts["link"] or None}).close()
    return _each(c, args, "rm", rm, "remove")


WAIT = Spec([])


def cmd_wait(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    if not args:
        raise UsageError('"wait" requires at least 1 argument.')
    rc = 0
    for name in args:
        try:
            res = c.post(f"/containers/{q(name)}/wait")
            out(str(res.get("StatusCode", 0)))
        except BerthError as e:
            err(f"Error response from daemon: {e}")
            rc = 1
    return rc


RENAME = Spec([])


def cmd_rename(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    if len(args) != 2:
        raise UsageError('"rename" requires exactly 2 arguments.')
    c.send("POST", f"/containers/{q(args[0])}/rename", query={"name": args[1]}).close()
    return 0


CONTAINER_PRUNE = Spec([flag("force", "f"), flag("filter", kind="list")])


def cmd_container_prune(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    res = c.post("/containers/prune", {"filters": parse_filters(opts["filter"])})
    deleted = res.get("ContainersDeleted") or []
    if deleted:
        out("Deleted Containers:")
        for d in deleted:
            out(d)
        out()
    out(f"Total reclaimed space: {fmt.size(res.get('SpaceReclaimed', 0))}")
    return 0


INSPECT = Spec([flag("format", "f", "str", ""), flag("type", kind="str", default=""),
                flag("size", "s")])


def cmd_inspect(c: Client, opts: dict[str, Any], args: list[str], kind: str = "") -> int:
    if not args:
        raise UsageError('"inspect" requires at least 1 argument.')
    kind = kind or opts["type"]
    tmpl = fmt.compile_format(opts["format"]) if opts["format"] else None
    results, kinds = [], []
    rc = 0
    for name in args:
        obj = None
        for k in (["container", "image"] if not kind else [kind]):
            try:
                if k == "container":
                    obj = c.get(f"/containers/{q(name)}/json", {"size": opts["size"] or None})
                else:
                    obj = c.get(f"/images/{q(name)}/json")
                break
            except NotFound:
                continue
        if obj is None:
            err(f"Error: No such {kind or 'object'}: {name}")
            rc = 1
            continue
        results.append(obj)
        kinds.append(k)
    _print_inspected(tmpl, results, kinds)
    return rc


def _print_inspected(tmpl: Any, results: list[Any], kinds: list[str] | None = None) -> None:
    """inspect's output: an indented JSON list, or each object through the --format (`json`:
    the list as compact JSON)."""
    if tmpl is None:
        out(json.dumps(results, indent=4))
    elif tmpl == "json":
        from berth import gotemplate
        out(gotemplate.to_json(results, escape_html=False, sort_maps=False))
    else:
        # as docker's: each object that goes through, every error after them, and an empty
        # line when none went through
        errors = []
        printed = False
        for i, obj in enumerate(results):
            try:
                line = fmt.template(tmpl, fmt.typed_nils(obj, kinds[i] if kinds else ""))
            except fmt.FormatFailed as e:
                errors.append(str(e))
                continue
            out(line)
            printed = True
        if errors:
            raise fmt.FormatFailed("\n".join(errors), 1, "" if printed else "\n")


def _simple(path_tmpl: str, what: str) -> Callable[[Client, dict[str, Any], list[str]], int]:
    def cmd(c: Client, opts: dict[str, Any], args: list[str]) -> int:
        def one(name: str) -> None:
            c.send("POST", path_tmpl.format(q(name))).close()
        return _each(c, args, what, one, what)
    return cmd


UPDATE = Spec([flag("memory", "m", "str", ""), flag("memory-swap", kind="str", default=""),
               flag("cpus", kind="str", default=""), flag("cpu-shares", "c", "int", 0),
               flag("cpuset-cpus", kind="str", default=""), flag("pids-limit", kind="int",
                                                                  default=0),
               flag("restart", kind="str", default="")])


def cmd_update(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    body: dict[str, Any] = {}
    try:
        if opts["memory"]:
            body["Memory"] = parse_size(opts["memory"])
        if opts["memory-swap"]:
            body["MemorySwap"] = -1 if opts["memory-swap"] == "-1" else parse_size(
                opts["memory-swap"])
    except ValueError as e:
        raise UsageError(f"invalid argument: {e}") from None
    if opts["cpus"]:
        body["NanoCpus"] = int(round(float(opts["cpus"]) * 1e9))
    for key, name in (("CpuShares", "cpu-shares"), ("PidsLimit", "pids-limit"),
                      ("CpusetCpus", "cpuset-cpus")):
        if opts[name]:
            body[key] = opts[name]
    if opts["restart"]:
        name, _, count = opts["restart"].partition(":")
        body["RestartPolicy"] = {"Name": name, "MaximumRetryCount": int(count or 0)}

    def one(name: str) -> None:
        c.post(f"/containers/{q(name)}/update", body=body)
    return _each(c, args, "update", one, "update")


TOP = Spec([])


def cmd_top(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    if not args:
        raise UsageError('"top" requires at least 1 argument.')
    res = c.get(f"/containers/{q(args[0])}/top", {"ps_args": " ".join(args[1:]) or None})
    rows = [dict(zip(res["Titles"], p, strict=False)) for p in res["Processes"]]
    fmt.render(rows, "", [(t, t) for t in res["Titles"]])
    return 0


STATS = Spec([flag("no-stream"), flag("all", "a"), flag("no-trunc"),
              flag("format", kind="str", default="")])


def _stats_row(s: dict[str, Any]) -> dict[str, str]:
    cpu, pre = s.get("cpu_stats", {}), s.get("precpu_stats", {})
    d_cpu = cpu.get("cpu_usage", {}).get("total_usage", 0) - pre.get("cpu_usage", {}).get(
        "total_usage", 0)
    d_sys = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    pct = d_cpu / d_sys * cpu.get("online_cpus", 1) * 100 if d_sys > 0 and d_cpu > 0 else 0.0
    mem = s.get("memory_stats", {})
    usage = mem.get("usage", 0) - mem.get("stats", {}).get("total_inactive_file", 0)
    limit = mem.get("limit", 0)
    return {"ID": s.get("id", "")[:12], "Container": s.get("id", "")[:12],
            "Name": s.get("name", "").lstrip("/"),
            "CPUPerc": f"{pct:.2f}%",
            "MemUsage": f"{fmt.binary_size(usage)} / {fmt.binary_size(limit)}",
            "MemPerc": f"{usage / limit * 100:.2f}%" if limit else "0.00%",
            "NetIO": "{} / {}".format(
                fmt.size(sum(n.get("rx_bytes", 0) for n in (s.get("networks") or {}).values())),
                fmt.size(sum(n.get("tx_bytes", 0) for n in (s.get("networks") or {}).values()))),
            "BlockIO": "{} / {}".format(*(fmt.size(sum(
                e.get("value", 0) for e in (s.get("blkio_stats") or {}).get(
                    "io_service_bytes_recursive") or [] if e.get("op", "").lower() == op))
                for op in ("read", "write"))),
            "PIDs": str(s.get("pids_stats", {}).get("current", 0))}


def cmd_stats(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    names = args or [ct["Id"] for ct in c.get("/containers/json", {"all": opts["all"] or None})]
    cols = [("CONTAINER ID", "ID"), ("NAME", "Name"), ("CPU %", "CPUPerc"),
            ("MEM USAGE / LIMIT", "MemUsage"), ("MEM %", "MemPerc"), ("NET I/O", "NetIO"),
            ("BLOCK I/O", "BlockIO"), ("PIDS", "PIDs")]
    if opts["no-stream"]:
        rows = [fmt.Row(_stats_row(c.get(f"/containers/{q(n)}/stats", {"stream": 0})), None,
                        "*container.statsContext", has_labels=False) for n in names]
        fmt.render(rows, opts["format"], cols)
        return 0
    streams = [c.send("GET", f"/containers/{q(n)}/stats", query={"stream": 1}).iter_json()
               for n in names]
    try:
        while True:
            rows = [fmt.Row(_stats_row(next(st)), None, "*container.statsContext",
                            has_labels=False) for st in streams]
            sys.stdout.write("\x1b[2J\x1b[H")
            fmt.render(rows, opts["format"], cols)
            sys.stdout.flush()
    except StopIteration:
        return 0


EVENTS = Spec([flag("since", kind="str", default=""), flag("until", kind="str", default=""),
               flag("filter", "f", "list"), flag("format", kind="str", default="")])


def cmd_events(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    try:
        since = fmt.parse_time(opts["since"]) if opts["since"] else None
        until = fmt.parse_time(opts["until"]) if opts["until"] else None
    except ValueError as e:
        raise UsageError(str(e)) from None
    tmpl = None
    if opts["format"]:
        try:
            tmpl = fmt.compile_format(opts["format"], missingkey="default")
        except fmt.FormatFailed as e:
            raise fmt.FormatFailed(str(e).replace("template parsing error: ",
                                                  "Error parsing format: "), 64) from None
    r = c.send("GET", "/events", query={"since": since, "until": until,
                                        "filters": parse_filters(opts["filter"])})
    for ev in r.iter_json():
        if tmpl is not None:
            out(fmt.template(tmpl, fmt.Struct(ev, "*events.Message"), "Error parsing format: "))
            sys.stdout.flush()
            continue
        ns = ev.get("timeNano", 0)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(ns // 10**9)) + \
            f".{ns % 10**9:09d}" + time.strftime("%z", time.localtime(ns // 10**9))
        # Go's RFC3339NanoFixed, as the docker CLI prints it: "Z" for UTC, else +hh:mm
        stamp = stamp[:-5] + "Z" if stamp.endswith(("+0000", "-0000")) else \
            stamp[:-2] + ":" + stamp[-2:]
        attrs = ", ".join(f"{k}={v}" for k, v in sorted(ev["Actor"]["Attributes"].items()))
        out(f"{stamp} {ev['Type']} {ev['Action']} {ev['Actor']['ID']}"
            + (f" ({attrs})" if attrs else ""))
        sys.stdout.flush()
    return 0


# --- networks -----------------------------------------------------------------------------
NETWORK_CREATE = Spec([flag("driver", "d", "str", "bridge"), flag("subnet", kind="list"),
                       flag("gateway", kind="list"), flag("ip-range", kind="list"),
                       flag("internal"), flag("opt", "o", "list"), flag("label", kind="list"),
                       flag("attachable")])


def cmd_network_create(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    if len(args) != 1:
        raise UsageError('"network create" requires exactly 1 argument.')
    ipam: dict[str, Any] = {}
    if opts["subnet"]:
        ipam["Subnet"] = opts["subnet"][0]
    if opts["gateway"]:
        ipam["Gateway"] = opts["gateway"][0]
    if opts["ip-range"]:
        ipam["IPRange"] = opts["ip-range"][0]
    body = {"Name": args[0], "Driver": opts["driver"], "Internal": bool(opts["internal"]),
            "IPAM": {"Driver": "default", "Config": [ipam] if ipam else []},
            "Options": dict(o.split("=", 1) for o in opts["opt"] if "=" in o),
            "Labels": {lab.partition("=")[0]: lab.partition("=")[2] for lab in opts["label"]}}
    out(c.post("/networks/create", body=body)["Id"])
    return 0


NETWORK_LS = Spec([flag("quiet", "q"), flag("filter", "f", "list"), flag("no-trunc"),
                   flag("format", kind="str", default="")])


def cmd_network_ls(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    nets = sorted(c.get("/networks", {"filters": parse_filters(opts["filter"])}),
                  key=lambda n: fmt.natural(n["Name"]))
    rows = [fmt.Row({"ID": n["Id"] if opts["no-trunc"] else n["Id"][:12], "Name": n["Name"],
                     "Driver": n["Driver"], "Scope": n["Scope"],
                     "IPv4": "true" if n.get("EnableIPv4") else "false",
                     "IPv6": "true" if n.get("EnableIPv6") else "false",
                     "Internal": "true" if n.get("Internal") else "false",
                     "Labels": fmt.labels_text(n.get("Labels")),
                     "CreatedAt": fmt.go_time(n.get("Created") or "")},
                    n.get("Labels"), "*network.networkContext") for n in nets]
    if opts["quiet"]:
        for r in rows:
            out(r["ID"])
        return 0
    fmt.render(rows, opts["format"], [("NETWORK ID", "ID"), ("NAME", "Name"),
                                      ("DRIVER", "Driver"), ("SCOPE", "Scope")])
    return 0


def _inspect_each(c: Client, opts: dict[str, Any], args: list[str], kind: str,
                  path: str) -> int:
    """`network inspect`, `volume inspect`: a JSON list, or one template line each."""
    if not args:
        raise UsageError(f'"{kind} inspect" requires at least 1 argument.')
    tmpl = fmt.compile_format(opts["format"]) if opts["format"] else None
    res, rc = [], 0
    for n in args:
        try:
            res.append(c.get(path + q(n)))
        except BerthError as e:
            err(f"Error response from daemon: {e}")
            rc = 1
    if kind == "volume":  # docker tries only its typed struct for volumes
        res = [fmt.Struct(v, "volume.Volume") for v in res]
    _print_inspected(tmpl, res, [kind] * len(res))
    return rc


def cmd_network_inspect(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    return _inspect_each(c, opts, args, "network", "/networks/")


def cmd_network_rm(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    def rm(name: str) -> None:
        c.send("DELETE", f"/networks/{q(name)}").close()
    return _each(c, args, "network rm", rm, "remove")


def cmd_network_prune(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    res = c.post("/networks/prune", {"filters": parse_filters(opts["filter"])})
    deleted = res.get("NetworksDeleted") or []
    if deleted:
        out("Deleted Networks:")
        for d in deleted:
            out(d)
    return 0


NETWORK_CONNECT = Spec([flag("alias", kind="list"), flag("ip", kind="str", default=""),
                        flag("link", kind="list")])


def cmd_network_connect(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    if len(args) != 2:
        raise UsageError('"network connect" requires exactly 2 arguments.')
    ec: dict[str, Any] = {"Aliases": list(opts["alias"])}
    if opts["link"]:
        ec["Links"] = list(opts["link"])
    if opts["ip"]:
        ec["IPAMConfig"] = {"IPv4Address": opts["ip"]}
    c.send("POST", f"/networks/{q(args[0])}/connect",
           body={"Container": args[1], "EndpointConfig": ec}).close()
    return 0


def cmd_network_disconnect(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    if len(args) != 2:
        raise UsageError('"network disconnect" requires exactly 2 arguments.')
    c.send("POST", f"/networks/{q(args[0])}/disconnect",
           body={"Container": args[1], "Force": bool(opts["force"])}).close()
    return 0


# --- volumes ------------------------------------------------------------------------------
VOLUME_CREATE = Spec([flag("driver", "d", "str", "local"), flag("opt", "o", "list"),
                      flag("label", kind="list"), flag("name", kind="str", default="")])


def cmd_volume_create(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    if len(args) > 1:
        raise UsageError('"volume create" requires at most 1 argument.')
    name = args[0] if args else opts["name"]
    body = {"Name": name, "Driver": opts["driver"],
            "DriverOpts": dict(o.split("=", 1) for o in opts["opt"] if "=" in o),
            "Labels": {lab.partition("=")[0]: lab.partition("=")[2] for lab in opts["label"]}}
    for o in opts["opt"]:
        if "=" not in o:
            raise UsageError(f"invalid key value pair format in driver options: {o}")
    out(c.post("/volumes/create", body=body)["Name"])
    return 0


VOLUME_LS = Spec([flag("quiet", "q"), flag("filter", "f", "list"),
                  flag("format", kind="str", default="")])


def cmd_volume_ls(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    vols = sorted(c.get("/volumes", {"filters": parse_filters(opts["filter"])})["Volumes"] or [],
                  key=lambda v: fmt.natural(v["Name"]))
    if opts["quiet"]:
        for v in vols:
            out(v["Name"])
        return 0
    rows = [fmt.Row({"Name": v["Name"], "Driver": v["Driver"], "Scope": v.get("Scope", "local"),
                     "Mountpoint": v.get("Mountpoint", ""),
                     "Labels": fmt.labels_text(v.get("Labels")),
                     "Links": _count((v.get("UsageData") or {}).get("RefCount")),
                     "Size": _count((v.get("UsageData") or {}).get("Size"), fmt.size),
                     # cluster volumes' fields: N/A for a local one, as docker shows them
                     "Group": "N/A", "Availability": "N/A", "Status": "N/A"},
                    v.get("Labels"), "*formatter.volumeContext") for v in vols]
    fmt.render(rows, opts["format"], [("DRIVER", "Driver"), ("VOLUME NAME", "Name")])
    return 0


def cmd_volume_inspect(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    return _inspect_each(c, opts, args, "volume", "/volumes/")


def cmd_volume_rm(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    def rm(name: str) -> None:
        c.send("DELETE", f"/volumes/{q(name)}", query={"force": opts["force"] or None}).close()
    return _each(c, args, "volume rm", rm, "remove")


def cmd_volume_prune(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    filters = opts["filter"] + (["all=true"] if opts["all"] else [])
    res = c.post("/volumes/prune", {"filters": parse_filters(filters)})
    deleted = res.get("VolumesDeleted") or []
    if deleted:
        out("Deleted Volumes:")
        for d in deleted:
            out(d)
        out()
    out(f"Total reclaimed space: {fmt.size(res.get('SpaceReclaimed', 0))}")
    return 0


# --- system -------------------------------------------------------------------------------
VERSION = Spec([flag("format", "f", "str", "")])


def cmd_version(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    from berth import __version__
    if opts["format"]:
        tmpl = fmt.compile_format(opts["format"], name="version", missingkey="default")
        pyver = "python" + sys.version.split()[0]
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine,
                                                           os.uname().machine)
        api = {"APIVersion": "ApiVersion"}  # the Go field's name, the JSON key
        client = fmt.Struct({"Version": __version__, "ApiVersion": c.version,
                             "DefaultAPIVersion": c.version, "GitCommit": "",
                             "GoVersion": pyver, "Os": "linux", "Arch": arch, "BuildTime": "",
                             "Context": "default"}, "*system.clientVersion", api)
        data = fmt.Struct({"Client": client, "Server": fmt.Struct(c.get("/version"),
                                                                  "*types.Version", api)},
                          "system.versionInfo")
        # docker writes it through a tabwriter (cells at least 20 wide, padding 1)
        from berth import gotemplate
        out(gotemplate.tabwrite(fmt.template(tmpl, data, "", partial=True), 20, 1))
        return 0
    out("Client:")
    out(f" Version:           {__version__}")
    out(f" API version:       {c.version}")
    out(f" Python version:    {sys.version.split()[0]}")
    out(" OS/Arch:           linux/" + os.uname().machine)
    out(f" Context:           {c.context}")
    out()
    v = c.get("/version")
    out(f"Server: {v.get('Platform', {}).get('Name', '')}")
    out(" Engine:")
    out(f"  Version:          {v.get('Version')}")
    out(f"  API version:      {v.get('ApiVersion')} (minimum version {v.get('MinAPIVersion')})")
    out(f"  OS/Arch:          {v.get('Os')}/{v.get('Arch')}")
    out(f"  Kernel:           {v.get('KernelVersion')}")
    return 0


INFO = Spec([flag("format", "f", "str", "")])


def cmd_info(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    tmpl = fmt.compile_format(opts["format"], missingkey="default") if opts["format"] else None
    i = c.get("/info")
    if tmpl is not None:
        out(fmt.template(tmpl, fmt.Struct(fmt.typed_nils(i), "system.dockerInfo"), "",
                         partial=True))
        return 0
    out("Server:")
    for label, key in (("Containers", "Containers"), (" Running", "ContainersRunning"),
                       (" Paused", "ContainersPaused"), (" Stopped", "ContainersStopped"),
                       ("Images", "Images"), ("Server Version", "ServerVersion"),
                       ("Storage Driver", "Driver"), ("Logging Driver", "LoggingDriver"),
                       ("Cgroup Driver", "CgroupDriver"), ("Cgroup Version", "CgroupVersion"),
                       ("Default Runtime", "DefaultRuntime"), ("Live Restore Enabled",
                                                             "LiveRestoreEnabled"),
                       ("Kernel Version", "KernelVersion"), ("Operating System",
                                                             "OperatingSystem"),
                       ("Architecture", "Architecture"), ("CPUs", "NCPU"),
                       ("Total Memory", "MemTotal"), ("Name", "Name"), ("ID", "ID"),
                       ("Berth Root Dir", "DockerRootDir")):
        v = i.get(key)
        if key == "MemTotal":
            v = fmt.binary_size(v or 0)
        out(f" {label}: {v}")
    for w in i.get("Warnings") or []:   # as the docker CLI: the daemon's warnings, on stderr
        err(w)
    return 0


def _builder_prune(c: Client) -> int:
    res = c.post("/build/prune")
    out(f"Total reclaimed space: {fmt.size(res.get('SpaceReclaimed') or 0)}")
    return 0


# --- dispatch -----------------------------------------------------------------------------
if TYPE_CHECKING:  # (Spec, handler(client, opts, args) -> exit code, help)
    Command = tuple[Spec, Callable[[Client, dict[str, Any], list[str]], int], str]
else:
    Command = tuple


class _lazy(Spec):  # noqa: N801 - a Spec of a CLI module loaded when first used
    def __init__(self, name: str, module: str = "registry") -> None:  # noqa: D107
        self._name = name
        self._module = module

    def __getattr__(self, attr: str) -> Any:
        import importlib
        mod = importlib.import_module(f"berth.cli.{self._module}")
        return getattr(getattr(mod, self._name), attr)


def _lazy_cmd(name: str, module: str = "registry") -> Callable[..., int]:
    def call(c: Client, opts: dict[str, Any], args: list[str]) -> int:
        import importlib
        mod = importlib.import_module(f"berth.cli.{module}")
        try:
            return int(getattr(mod, name)(c, opts, args))
        except BerthError as e:
            if type(e).__name__ != "BuildFailed":
                raise
            err(str(e))   # as the docker CLI: a failed build's message, and its code
            return int(getattr(e, "code", 1)) or 1
    return call

COMMANDS: dict[str, Command] = {
    "run": (RUN, cmd_run, "Create and run a new container from an image"),
    "create": (CREATE, cmd_create, "Create a new container"),
    "start": (START, cmd_start, "Start one or more stopped containers"),
    "exec": (EXEC, cmd_exec, "Execute a command in a running container"),
    "attach": (ATTACH, cmd_attach, "Attach local standard input, output, and error streams "
               "to a running container"),
    "ps": (PS, cmd_ps, "List containers"),
    "logs": (LOGS, cmd_logs, "Fetch the logs of a container"),
    "stop": (STOP, cmd_stop, "Stop one or more running containers"),
    "restart": (STOP, cmd_restart, "Restart one or more containers"),
    "kill": (KILL, cmd_kill, "Kill one or more running containers"),
    "rm": (RM, cmd_rm, "Remove one or more containers"),
    "wait": (WAIT, cmd_wait, "Block until containers stop, then print their exit codes"),
    "rename": (RENAME, cmd_rename, "Rename a container"),
    "pause": (Spec([]), _simple("/containers/{}/pause", "pause"),
              "Pause all processes within one or more containers"),
    "unpause": (Spec([]), _simple("/containers/{}/unpause", "unpause"),
                "Unpause all processes within one or more containers"),
    "update": (UPDATE, cmd_update, "Update configuration of one or more containers"),
    "top": (TOP, cmd_top, "Display the running processes of a container"),
    "port": (PORT, cmd_port, "List port mappings or a specific mapping for the container"),
    "stats": (STATS, cmd_stats, "Display a live stream of container(s) resource usage"),
    "events": (EVENTS, cmd_events, "Get real time events from the server"),
    "inspect": (INSPECT, cmd_inspect, "Return low-level information on berth objects"),
    "export": (EXPORT, cmd_export, "Export a container's filesystem as a tar archive"),
    "images": (IMAGES, cmd_images, "List images"),
    "import": (IMPORT, cmd_import, "Import the contents from a tarball to create an image"),
    "tag": (TAG, cmd_tag, "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"),
    "rmi": (RMI, cmd_rmi, "Remove one or more images"),
    "history": (HISTORY, cmd_history, "Show the history of an image"),
    "save": (SAVE, cmd_save, "Save one or more images to a tar archive"),
    "load": (LOAD, cmd_load, "Load an image from a tar archive or STDIN"),
    "pull": (_lazy("PULL"), _lazy_cmd("cmd_pull"), "Download an image from a registry"),
    "push": (_lazy("PUSH"), _lazy_cmd("cmd_push"), "Upload an image to a registry"),
    "login": (_lazy("LOGIN"), _lazy_cmd("cmd_login"), "Log in to a registry"),
    "search": (_lazy("SEARCH"), _lazy_cmd("cmd_search"), "Search Docker Hub for images"),
    "build": (_lazy("BUILD", "build"), _lazy_cmd("cmd_build", "build"),
              "Build an image from a Dockerfile"),
    "commit": (_lazy("COMMIT", "build"), _lazy_cmd("cmd_commit", "build"),
               "Create a new image from a container's changes"),
    "diff": (Spec([]), _lazy_cmd("cmd_diff", "build"),
             "Inspect changes to files or directories on a container's filesystem"),
    "logout": (Spec([]), _lazy_cmd("cmd_logout"), "Log out from a registry"),
    "cp": (_lazy("CP", "cp"), _lazy_cmd("cmd_cp", "cp"), "Copy files/folders between a container and the local filesystem"),
    "version": (VERSION, cmd_version, "Show the berth version information"),
    "info": (INFO, cmd_info, "Display system-wide information"),
}

GROUPS: dict[str, dict[str, Command]] = {
    "builder": {
        "prune": (Spec([flag("all", "a"), flag("force", "f"), flag("filter", kind="list")]),
                  lambda c, o, a: _builder_prune(c), "Remove build cache"),
        "build": COMMANDS["build"],
    },
    "network": {
        "create": (NETWORK_CREATE, cmd_network_create, "Create a network"),
        "ls": (NETWORK_LS, cmd_network_ls, "List networks"),
        "list": (NETWORK_LS, cmd_network_ls, ""),
        "inspect": (Spec([flag("format", "f", "str", ""), flag("verbose", "v")]),
                    cmd_network_inspect, ""),
        "rm": (Spec([flag("force", "f")]), cmd_network_rm, "Remove one or more networks"),
        "remove": (Spec([flag("force", "f")]), cmd_network_rm, ""),
        "prune": (Spec([flag("force", "f"), flag("filter", kind="list")]), cmd_network_prune,
                  "Remove all unused networks"),
        "connect": (NETWORK_CONNECT, cmd_network_connect, "Connect a container to a network"),
        "disconnect": (Spec([flag("force", "f")]), cmd_network_disconnect,
                       "Disconnect a container from a network"),
    },
    "volume": {
        "create": (VOLUME_CREATE, cmd_volume_create, "Create a volume"),
        "ls": (VOLUME_LS, cmd_volume_ls, "List volumes"),
        "list": (VOLUME_LS, cmd_volume_ls, ""),
        "inspect": (Spec([flag("format", "f", "str", "")]), cmd_volume_inspect, ""),
        "rm": (Spec([flag("force", "f")]), cmd_volume_rm, "Remove one or more volumes"),
        "remove": (Spec([flag("force", "f")]), cmd_volume_rm, ""),
        "prune": (Spec([flag("all", "a"), flag("force", "f"), flag("filter", kind="list")]),
                  cmd_volume_prune, "Remove unused volumes"),
    },
    "container": {
        "ls": (PS, cmd_ps, ""), "list": (PS, cmd_ps, ""), "ps": (PS, cmd_ps, ""),
        "prune": (CONTAINER_PRUNE, cmd_container_prune, "Remove all stopped containers"),
        "inspect": (INSPECT, lambda c, o, a: cmd_inspect(c, o, a, "container"), ""),
        **{k: COMMANDS[k] for k in ("run", "create", "start", "logs", "stop", "restart", "kill",
                                    "rm", "wait", "rename", "export", "exec", "attach",
                                    "pause", "unpause", "update", "top", "stats", "port",
                                    "commit", "diff")},
    },
    "system": {
        "df": (_lazy("SYSTEM_DF", "system"), _lazy_cmd("cmd_system_df", "system"),
               "Show docker disk usage"),
        "prune": (_lazy("SYSTEM_PRUNE", "system"), _lazy_cmd("cmd_system_prune", "system"),
                  "Remove unused data"),
        "info": (INFO, cmd_info, "Display system-wide information"),
        "events": (EVENTS, cmd_events, "Get real time events from the server"),
    },
    "context": {
        "create": (_lazy("CREATE", "context"), _lazy_cmd("cmd_create", "context"),
                   "Create a context"),
        "inspect": (_lazy("INSPECT", "context"), _lazy_cmd("cmd_inspect", "context"),
                    "Display detailed information on one or more contexts"),
        "ls": (_lazy("LS", "context"), _lazy_cmd("cmd_ls", "context"), "List contexts"),
        "list": (_lazy("LS", "context"), _lazy_cmd("cmd_ls", "context"), ""),
        "rm": (_lazy("RM", "context"), _lazy_cmd("cmd_rm", "context"),
               "Remove one or more contexts"),
        "remove": (_lazy("RM", "context"), _lazy_cmd("cmd_rm", "context"), ""),
        "show": (Spec([]), _lazy_cmd("cmd_show", "context"), "Print the name of the current "
                 "context"),
        "use": (Spec([]), _lazy_cmd("cmd_use", "context"), "Set the current berth context"),
    },
    "image": {
        "ls": (IMAGES, cmd_images, ""), "list": (IMAGES, cmd_images, ""),
        "rm": (RMI, cmd_rmi, ""), "prune": (IMAGE_PRUNE, cmd_image_prune, "Remove unused images"),
        "inspect": (INSPECT, lambda c, o, a: cmd_inspect(c, o, a, "image"), ""),
        **{k: COMMANDS[k] for k in ("import", "tag", "history", "save", "load", "pull",
                                    "push", "build")},
    },
}

GLOBAL = Spec([flag("config", kind="str", default=None,
                    help="Location of client config files (default \"~/.docker\")"),
               flag("context", "c", "str", None,
                    help="Name of the context to use to connect to the daemon (overrides "
                    "DOCKER_HOST env var and default context set with \"berth context use\")"),
               flag("debug", "D", help="Enable debug mode"),
               flag("host", "H", "list", help="Daemon socket to connect to"),
               flag("log-level", "l", "str", "info", help="Set the logging level"),
               flag("tls", help="Use TLS; implied by --tlsverify"),
               flag("tlscacert", kind="str", default=None,
                    help="Trust certs signed only by this CA (default \"~/.docker/ca.pem\")"),
               flag("tlscert", kind="str", default=None,
                    help="Path to TLS certificate file (default \"~/.docker/cert.pem\")"),
               flag("tlskey", kind="str", default=None,
                    help="Path to TLS key file (default \"~/.docker/key.pem\")"),
               # "" until given: --tlsverify=false still turns TLS on, as for the docker CLI
               flag("tlsverify", default="", help="Use TLS and verify the remote"),
               flag("version", "v", help="Print version information and quit"),
               flag("help")], interspersed=False)


def make_client(gopts: dict[str, Any]) -> Client:
    """The client for the context this command talks to (berth.client.contexts). A unix
    socket's costs nothing more than before but a look at config.json."""
    if gopts["config"]:
        os.environ["DOCKER_CONFIG"] = gopts["config"]
    hosts = gopts["host"]
    if len(hosts) > 1:
        raise InvalidHost("Specify only one -H")
    host = hosts[0] if hosts else None
    if not (host or gopts["context"] or gopts["tls"] or gopts["tlsverify"] != ""):
        env = os.environ
        env_host = env.get("BERTH_HOST") or env.get("DOCKER_HOST")
        if env_host and env_host.startswith("unix://") and not (
                env.get("DOCKER_TLS") or env.get("DOCKER_TLS_VERIFY")):
            return Client(env_host)   # the fast path: nothing to read
    from berth.client import contexts
    verify = gopts["tlsverify"]
    ctx = contexts.resolve(host, gopts["context"], gopts["tls"],
                           None if verify == "" else bool(verify), gopts["tlscacert"],
                           gopts["tlscert"], gopts["tlskey"])
    return Client(ctx.host, tls=ctx.tls(), context=ctx.name)


def _context_name(gopts: dict[str, Any]) -> str:
    from berth.client import contexts
    try:
        return contexts.resolve_name(gopts["host"][0] if gopts["host"] else None,
                                     gopts["context"])
    except BerthError:
        return gopts["context"] or contexts.DEFAULT


def usage() -> str:
    lines = ["Usage:  berth [OPTIONS] COMMAND", "", "A Docker-compatible container engine",
             "", "Commands:"]
    for name, (_, _, h) in COMMANDS.items():
        lines.append(f"  {name:<10} {h}")
    lines += ["", "Management Commands:", "  container  Manage containers",
              "  context    Manage contexts",
              "  image      Manage images", "  network    Manage networks",
              "  system     Manage berth",
              "  volume     Manage volumes", "",
              "Global Options:", GLOBAL.usage(), "",
              "Run 'berth COMMAND --help' for more information on a command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    sys.exit(run(argv))


def run(argv: list[str]) -> int:
    try:
        gopts, rest = GLOBAL.parse(argv)
    except UsageError as e:
        err(f"{e}\nSee 'berth --help'.")
        return ENGINE_ERROR
    if gopts["version"]:
        from berth import __version__
        out(f"berth version {__version__}")
        return 0
    if gopts["help"] or not rest:
        out(usage())
        return 0
    name, args = rest[0], rest[1:]
    path = name
    if name in GROUPS:
        if not args or args[0] in ("--help", "-h"):
            out(f"Usage:  berth {name} COMMAND\n\nCommands:\n" + "\n".join(
                f"  {k}" for k in GROUPS[name]))
            return 0
        sub = args[0]
        if sub not in GROUPS[name]:
            err(f"berth: unknown command: berth {name} {sub}\n\nRun 'berth {name} --help' "
                "for more information")
            return 1
        spec, fn, _ = GROUPS[name][sub]
        args = args[1:]
        path = f"{name} {sub}"
    elif name in COMMANDS:
        spec, fn, _ = COMMANDS[name]
    else:
        err(f"berth: unknown command: berth {name}\n\nRun 'berth --help' for more information")
        return 1
    if args[:1] in (["--help"],):
        out(f"Usage:  berth {path} [OPTIONS]\n\nOptions:\n{spec.usage()}")
        return 0
    # as the docker CLI: only `run` reports engine errors with 125 (and a "berth: " prefix);
    # a bad flag is 125 everywhere
    is_run = path.split()[-1] == "run"
    try:
        opts, pos = spec.parse(args)
    except UsageError as e:
        err(f"{e}\nSee 'berth {path} --help'.")
        return ENGINE_ERROR
    try:
        client = make_client(gopts)
    except BerthError as e:
        if name != "context":
            err(f"{e}" if "conflicting options" in str(e) else
                f"Failed to initialize: unable to resolve docker endpoint: {e}")
            return 1
        # the context commands work whatever the current context is
        client = Client("unix://" + DEFAULT_HOST.split("://", 1)[1])
        client.context = _context_name(gopts)
    try:
        return int(fn(client, opts, pos))
    except UsageError as e:
        err(f"{'berth: ' if is_run else ''}{e}\nSee 'berth {path} --help'.")
        return ENGINE_ERROR if is_run else 1
    except ConnectionFailed as e:
        err(str(e))
        return ENGINE_ERROR if is_run else 1
    except fmt.FormatFailed as e:
        sys.stdout.write(e.stdout)
        err(str(e))
        return e.code
    except BerthError as e:
        prefix = "berth: " if is_run else ""
        err(f"{prefix}Error response from daemon: {e}")
        if is_run:
            err(f"\nRun 'berth {path} --help' for more information")
            return ENGINE_ERROR
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    main()
