"""The system commands: version, info, events, `system df`, `system prune`, `builder prune`,
printed as the docker CLI prints them.
"""

from __future__ import annotations

import os
import sys
import time

from berth.cli import fmt
from berth.cli.main import err, out, parse_filters
from berth.client import Client
from berth.cmdline import Options, UsageError, boolean, string, strings
from berth.units import human_size

TYPE_CHECKING = False  # not typing's: importing typing costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any


class SystemDfOptions(Options):
    verbose = boolean("verbose", "v", help="Show detailed information on space usage")
    format = string("format", help="Format output using a custom template")


class SystemPruneOptions(Options):
    all = boolean("all", "a", help="Remove all unused images not just dangling ones")
    force = boolean("force", "f", help="Do not prompt for confirmation")
    volumes = boolean("volumes", help="Prune anonymous volumes")
    filter = strings("filter", help='Provide filter values (e.g. "label=<key>=<value>")')


def _size(n: float) -> str:
    return human_size(n, 4)  # go-units HumanSize, as `system df` prints sizes


def _reclaimable(reclaimable: int, total: int) -> str:
    if total <= 0:
        return _size(reclaimable)
    return f"{_size(reclaimable)} ({reclaimable * 100 // total}%)"


def _table(rows: list[list[str]]) -> list[str]:
    """Go's tabwriter as the docker CLI sets it up: cells at least 10 wide, 3 of padding."""
    if not rows:
        return []
    widths = [max(10, max(len(r[i]) for r in rows) + 3) for i in range(len(rows[0]))]
    return [
        "".join(c.ljust(widths[i]) if i < len(r) - 1 else c for i, c in enumerate(r)) for r in rows
    ]


def summary(df: dict[str, Any]) -> list[dict[str, Any]]:
    """The four rows of `system df`: Images, Containers, Local Volumes, Build Cache."""
    images = df.get("Images") or []
    layers = int(df.get("LayersSize") or 0)
    used = sum(
        i["Size"] - i["SharedSize"]
        for i in images
        if i.get("Containers") and i.get("SharedSize", -1) != -1
    )
    containers = df.get("Containers") or []
    c_size = sum(int(c.get("SizeRw") or 0) for c in containers)
    c_free = sum(
        int(c.get("SizeRw") or 0)
        for c in containers
        if c.get("State") not in ("running", "paused", "restarting")
    )
    volumes = df.get("Volumes") or []
    v_size = sum(max(int(v["UsageData"]["Size"]), 0) for v in volumes)
    v_free = sum(
        max(int(v["UsageData"]["Size"]), 0) for v in volumes if v["UsageData"]["RefCount"] == 0
    )
    cache = df.get("BuildCache") or []
    b_size = sum(int(b.get("Size") or 0) for b in cache)
    b_free = sum(int(b.get("Size") or 0) for b in cache if not b.get("InUse"))
    return [
        {
            "Type": "Images",
            "TotalCount": str(len(images)),
            "Active": str(sum(1 for i in images if i.get("Containers"))),
            "Size": _size(layers),
            "Reclaimable": _reclaimable(max(layers - used, 0), layers),
        },
        {
            "Type": "Containers",
            "TotalCount": str(len(containers)),
            "Active": str(sum(1 for c in containers if c.get("State") == "running")),
            "Size": _size(c_size),
            "Reclaimable": _reclaimable(c_free, c_size),
        },
        {
            "Type": "Local Volumes",
            "TotalCount": str(len(volumes)),
            "Active": str(sum(1 for v in volumes if v["UsageData"]["RefCount"])),
            "Size": _size(v_size),
            "Reclaimable": _reclaimable(v_free, v_size),
        },
        {
            "Type": "Build Cache",
            "TotalCount": str(len(cache)),
            "Active": str(sum(1 for b in cache if b.get("InUse"))),
            "Size": _size(b_size),
            "Reclaimable": _size(b_free),
        },
    ]


def _verbose(df: dict[str, Any]) -> list[str]:
    lines = ["Images space usage:", ""]
    rows = [
        [
            "REPOSITORY",
            "TAG",
            "IMAGE ID",
            "CREATED",
            "SIZE",
            "SHARED SIZE",
            "UNIQUE SIZE",
            "CONTAINERS",
        ]
    ]
    for i in df.get("Images") or []:
        tags = i.get("RepoTags") or ["<none>:<none>"]
        for ref in tags:
            repo, _, tag = ref.rpartition(":")
            shared = i.get("SharedSize", -1)
            rows.append(
                [
                    repo,
                    tag,
                    i["Id"].removeprefix("sha256:")[:12],
                    fmt.ago(i["Created"]),
                    human_size(i["Size"]),
                    _size(shared) if shared != -1 else "N/A",
                    _size(i["Size"] - shared) if shared != -1 else "N/A",
                    str(i.get("Containers", 0)),
                ]
            )
    lines += _table(rows) + ["", "Containers space usage:", ""]
    rows = [
        ["CONTAINER ID", "IMAGE", "COMMAND", "LOCAL VOLUMES", "SIZE", "CREATED", "STATUS", "NAMES"]
    ]
    for c in df.get("Containers") or []:
        command = c.get("Command") or ""
        rows.append(
            [
                c["Id"][:12],
                c.get("Image", ""),
                f'"{fmt.trunc(command, 20)}"',
                str(sum(1 for m in c.get("Mounts") or [] if m.get("Type") == "volume")),
                _size(int(c.get("SizeRw") or 0)),
                fmt.ago(c["Created"]),
                c.get("Status", ""),
                ",".join(n.lstrip("/") for n in c.get("Names") or []),
            ]
        )
    lines += _table(rows) + ["", "Local Volumes space usage:", ""]
    rows = [["VOLUME NAME", "LINKS", "SIZE"]]
    for v in df.get("Volumes") or []:
        size = int(v["UsageData"]["Size"])
        rows.append(
            [v["Name"], str(v["UsageData"]["RefCount"]), _size(size) if size >= 0 else "N/A"]
        )
    lines += _table(rows)
    cache = df.get("BuildCache") or []
    lines += ["", f"Build cache usage: {_size(sum(int(b.get('Size') or 0) for b in cache))}", ""]
    lines += _table([["CACHE ID", "CACHE TYPE", "SIZE", "CREATED", "LAST USED", "USAGE", "SHARED"]])
    return lines


def cmd_system_df(c: Client, opts: SystemDfOptions, args: list[str]) -> int:
    if args:
        raise UsageError('"system df" accepts no arguments.')
    df = c.disk_usage()
    if opts.verbose:
        if opts.format:
            raise UsageError("--format is not supported with --verbose")
        sys.stdout.write("\n".join(_verbose(df)) + "\n")
        return 0
    rows = summary(df)
    if opts.format and not opts.format.startswith("table"):
        for r in rows:
            sys.stdout.write(fmt.template(opts.format, r) + "\n")
        return 0
    cols = [
        ("TYPE", "Type"),
        ("TOTAL", "TotalCount"),
        ("ACTIVE", "Active"),
        ("SIZE", "Size"),
        ("RECLAIMABLE", "Reclaimable"),
    ]
    fmt.render(rows, opts.format, cols)
    return 0


def cmd_system_prune(c: Client, opts: SystemPruneOptions, args: list[str]) -> int:
    if args:
        raise UsageError('"system prune" accepts no arguments.')
    what = ["all stopped containers", "all networks not used by at least one container"]
    if opts.volumes:
        what.append("all anonymous volumes not used by at least one container")
    what.append(
        "all images without at least one container associated to them"
        if opts.all
        else "all dangling images"
    )
    what.append("unused build cache")
    if not opts.force:
        sys.stdout.write(
            "WARNING! This will remove:\n"
            + "".join(f"  - {w}\n" for w in what)
            + "\nAre you sure you want to continue? [y/N] "
        )
        sys.stdout.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            return 0
    filters = parse_filters(opts.filter)
    total = 0
    sections: list[tuple[str, list[str]]] = []
    res = c.prune_containers(filters)
    sections.append(("Deleted Containers:", res.get("ContainersDeleted") or []))
    total += res.get("SpaceReclaimed") or 0
    if opts.volumes:
        res = c.prune_volumes(filters)
        sections.append(("Deleted Volumes:", res.get("VolumesDeleted") or []))
        total += res.get("SpaceReclaimed") or 0
    res = c.prune_networks(filters)
    sections.append(("Deleted Networks:", res.get("NetworksDeleted") or []))
    image_filters = parse_filters(opts.filter + (["dangling=false"] if opts.all else []))
    res = c.prune_images(image_filters)
    images = [f"{k}: {v}" for item in res.get("ImagesDeleted") or [] for k, v in item.items()]
    sections.append(("Deleted Images:", images))
    total += res.get("SpaceReclaimed") or 0
    total += c.prune_build_cache().get("SpaceReclaimed") or 0
    for title, items in sections:
        if items:
            sys.stdout.write(title + "\n" + "".join(f"{i}\n" for i in items) + "\n")
    sys.stdout.write(f"Total reclaimed space: {fmt.size(total)}\n")
    return 0


class EventsOptions(Options):
    since = string("since", help="Show all events created since timestamp")
    until = string("until", help="Stream events until this timestamp")
    filter = strings("filter", "f", help="Filter output based on conditions provided")
    format = string("format", help="Format output using a custom template")


def cmd_events(c: Client, opts: EventsOptions, args: list[str]) -> int:
    try:
        since = fmt.parse_time(opts.since) if opts.since else None
        until = fmt.parse_time(opts.until) if opts.until else None
    except ValueError as e:
        raise UsageError(str(e)) from None
    tmpl = None
    if opts.format:
        try:
            tmpl = fmt.compile_format(opts.format, missingkey="default")
        except fmt.FormatFailed as e:
            raise fmt.FormatFailed(
                str(e).replace("template parsing error: ", "Error parsing format: "), 64
            ) from None
    r = c.events(since=since, until=until, filters=parse_filters(opts.filter))
    for ev in r.iter_json():
        if tmpl is not None:
            out(fmt.template(tmpl, fmt.Struct(ev, "*events.Message"), "Error parsing format: "))
            sys.stdout.flush()
            continue
        ns = ev.get("timeNano", 0)
        stamp = (
            time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(ns // 10**9))
            + f".{ns % 10**9:09d}"
            + time.strftime("%z", time.localtime(ns // 10**9))
        )
        # Go's RFC3339NanoFixed, as the docker CLI prints it: "Z" for UTC, else +hh:mm
        stamp = (
            stamp[:-5] + "Z"
            if stamp.endswith(("+0000", "-0000"))
            else stamp[:-2] + ":" + stamp[-2:]
        )
        attrs = ", ".join(f"{k}={v}" for k, v in sorted(ev["Actor"]["Attributes"].items()))
        out(
            f"{stamp} {ev['Type']} {ev['Action']} {ev['Actor']['ID']}"
            + (f" ({attrs})" if attrs else "")
        )
        sys.stdout.flush()
    return 0


class VersionOptions(Options):
    format = string("format", "f", help="Format output using a custom template")


def cmd_version(c: Client, opts: VersionOptions, args: list[str]) -> int:
    from berth import __version__

    if opts.format:
        tmpl = fmt.compile_format(opts.format, name="version", missingkey="default")
        pyver = "python" + sys.version.split()[0]
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
        api = {"APIVersion": "ApiVersion"}  # the Go field's name, the JSON key
        client = fmt.Struct(
            {
                "Version": __version__,
                "ApiVersion": c.version,
                "DefaultAPIVersion": c.version,
                "GitCommit": "",
                "GoVersion": pyver,
                "Os": "linux",
                "Arch": arch,
                "BuildTime": "",
                "Context": "default",
            },
            "*system.clientVersion",
            api,
        )
        data = fmt.Struct(
            {"Client": client, "Server": fmt.Struct(c.version_info(), "*types.Version", api)},
            "system.versionInfo",
        )
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
    v = c.version_info()
    out(f"Server: {v.get('Platform', {}).get('Name', '')}")
    out(" Engine:")
    out(f"  Version:          {v.get('Version')}")
    out(f"  API version:      {v.get('ApiVersion')} (minimum version {v.get('MinAPIVersion')})")
    out(f"  OS/Arch:          {v.get('Os')}/{v.get('Arch')}")
    out(f"  Kernel:           {v.get('KernelVersion')}")
    return 0


class InfoOptions(Options):
    format = string("format", "f", help="Format output using a custom template")


def cmd_info(c: Client, opts: InfoOptions, args: list[str]) -> int:
    tmpl = fmt.compile_format(opts.format, missingkey="default") if opts.format else None
    i = c.info()
    if tmpl is not None:
        out(
            fmt.template(tmpl, fmt.Struct(fmt.typed_nils(i), "system.dockerInfo"), "", partial=True)
        )
        return 0
    out("Server:")
    for label, key in (
        ("Containers", "Containers"),
        (" Running", "ContainersRunning"),
        (" Paused", "ContainersPaused"),
        (" Stopped", "ContainersStopped"),
        ("Images", "Images"),
        ("Server Version", "ServerVersion"),
        ("Storage Driver", "Driver"),
        ("Logging Driver", "LoggingDriver"),
        ("Cgroup Driver", "CgroupDriver"),
        ("Cgroup Version", "CgroupVersion"),
        ("Default Runtime", "DefaultRuntime"),
        ("Live Restore Enabled", "LiveRestoreEnabled"),
        ("Kernel Version", "KernelVersion"),
        ("Operating System", "OperatingSystem"),
        ("Architecture", "Architecture"),
        ("CPUs", "NCPU"),
        ("Total Memory", "MemTotal"),
        ("Name", "Name"),
        ("ID", "ID"),
        ("Berth Root Dir", "DockerRootDir"),
    ):
        v = i.get(key)
        if key == "MemTotal":
            v = fmt.binary_size(v or 0)
        out(f" {label}: {v}")
    for w in i.get("Warnings") or []:  # as the docker CLI: the daemon's warnings, on stderr
        err(w)
    return 0


class BuilderPruneOptions(Options):
    all = boolean("all", "a", help="Remove all unused build cache, not just dangling ones")
    force = boolean("force", "f", help="Do not prompt for confirmation")
    filter = strings("filter", help='Provide filter values (e.g. "until=24h")')


def cmd_builder_prune(c: Client, opts: BuilderPruneOptions, args: list[str]) -> int:
    out(f"Total reclaimed space: {fmt.size(c.prune_build_cache().get('SpaceReclaimed') or 0)}")
    return 0
