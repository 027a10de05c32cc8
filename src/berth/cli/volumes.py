"""The `volume` commands."""

from __future__ import annotations

from berth.cli import fmt
from berth.cli.fmt import _count
from berth.cli.inspect import _inspect_each
from berth.cli.main import _each, out, parse_filters
from berth.client import Client
from berth.cmdline import Options, UsageError, boolean, string, strings


class VolumeCreateOptions(Options):
    driver = string("driver", "d", default="local", help="Specify volume driver name")
    opt = strings("opt", "o", help="Set driver specific options")
    label = strings("label", help="Set metadata for a volume")
    name = string("name", help="Specify volume name")


def cmd_volume_create(c: Client, opts: VolumeCreateOptions, args: list[str]) -> int:
    if len(args) > 1:
        raise UsageError('"volume create" requires at most 1 argument.')
    name = args[0] if args else opts.name
    body = {
        "Name": name,
        "Driver": opts.driver,
        "DriverOpts": dict(o.split("=", 1) for o in opts.opt if "=" in o),
        "Labels": {lab.partition("=")[0]: lab.partition("=")[2] for lab in opts.label},
    }
    for o in opts.opt:
        if "=" not in o:
            raise UsageError(f"invalid key value pair format in driver options: {o}")
    out(c.create_volume(body)["Name"])
    return 0


class VolumeLsOptions(Options):
    quiet = boolean("quiet", "q", help="Only display volume names")
    filter = strings("filter", "f", help='Provide filter values (e.g. "dangling=true")')
    format = string("format", help="Format output using a custom template")


def cmd_volume_ls(c: Client, opts: VolumeLsOptions, args: list[str]) -> int:
    vols = sorted(c.volumes(parse_filters(opts.filter)), key=lambda v: fmt.natural(v["Name"]))
    if opts.quiet:
        for v in vols:
            out(v["Name"])
        return 0
    rows = [
        fmt.Row(
            {
                "Name": v["Name"],
                "Driver": v["Driver"],
                "Scope": v.get("Scope", "local"),
                "Mountpoint": v.get("Mountpoint", ""),
                "Labels": fmt.labels_text(v.get("Labels")),
                "Links": _count((v.get("UsageData") or {}).get("RefCount")),
                "Size": _count((v.get("UsageData") or {}).get("Size"), fmt.size),
                # cluster volumes' fields: N/A for a local one, as docker shows them
                "Group": "N/A",
                "Availability": "N/A",
                "Status": "N/A",
            },
            v.get("Labels"),
            "*formatter.volumeContext",
        )
        for v in vols
    ]
    fmt.render(rows, opts.format, [("DRIVER", "Driver"), ("VOLUME NAME", "Name")])
    return 0


def cmd_volume_inspect(c: Client, opts: VolumeInspectOptions, args: list[str]) -> int:
    return _inspect_each(c.inspect_volume, opts.format, args, "volume")


def cmd_volume_rm(c: Client, opts: VolumeRmOptions, args: list[str]) -> int:
    def rm(name: str) -> None:
        c.remove_volume(name, force=opts.force)

    return _each(c, args, "volume rm", rm, "remove")


def cmd_volume_prune(c: Client, opts: VolumePruneOptions, args: list[str]) -> int:
    filters = opts.filter + (["all=true"] if opts.all else [])
    res = c.prune_volumes(parse_filters(filters))
    deleted = res.get("VolumesDeleted") or []
    if deleted:
        out("Deleted Volumes:")
        for d in deleted:
            out(d)
        out()
    out(f"Total reclaimed space: {fmt.size(res.get('SpaceReclaimed', 0))}")
    return 0


class VolumeInspectOptions(Options):
    format = string("format", "f", help="Format output using a custom template")


class VolumeRmOptions(Options):
    force = boolean("force", "f", help="Force the removal of one or more volumes")


class VolumePruneOptions(Options):
    all = boolean("all", "a", help="Remove all unused volumes, not just anonymous ones")
    force = boolean("force", "f", help="Do not prompt for confirmation")
    filter = strings("filter", help='Provide filter values (e.g. "label=<label>")')
