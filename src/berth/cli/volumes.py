"""The `volume` commands.
"""

from __future__ import annotations

from berth.cli import fmt
from berth.cli.common import (
    _count,
    _each,
    _inspect_each,
    out,
    parse_filters,
)
from berth.cli.flags import Spec, UsageError, flag
from berth.client import Client, q

TYPE_CHECKING = False  # not typing's: importing typing costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any


VOLUME_CREATE = Spec([flag("driver", "d", "str", "local", help="Specify volume driver name"),
                      flag("opt", "o", "list", help="Set driver specific options"),
                      flag("label", kind="list", help="Set metadata for a volume"),
                      flag("name", kind="str", default="", help="Specify volume name")])


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


VOLUME_LS = Spec([flag("quiet", "q", help="Only display volume names"),
                  flag("filter", "f", "list",
                       help="Provide filter values (e.g. \"dangling=true\")"),
                  flag("format", kind="str", default="",
                       help="Format output using a custom template")])


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


VOLUME_INSPECT = Spec([flag("format", "f", "str", "",
                            help="Format output using a custom template")])
VOLUME_RM = Spec([flag("force", "f", help="Force the removal of one or more volumes")])
VOLUME_PRUNE = Spec([flag("all", "a", help="Remove all unused volumes, not just anonymous ones"),
                     flag("force", "f", help="Do not prompt for confirmation"),
                     flag("filter", kind="list",
                          help="Provide filter values (e.g. \"label=<label>\")")])
