"""`berth ps`: the command every script and shell runs most, in a module of its own so that
it loads nothing of the other container commands.

Imports `client`, `cmdline`, `cli.fmt`, `cli.main`.
"""

from __future__ import annotations

from berth import jsonc as json
from berth.cli import fmt
from berth.cli.main import out, parse_filters
from berth.client import Client
from berth.cmdline import Options, UsageError, boolean, integer, string, strings

TYPE_CHECKING = False  # not typing's: importing typing costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from berth.client.types import Port


class PsOptions(Options):
    all = boolean("all", "a", help="Show all containers")
    quiet = boolean("quiet", "q", help="Only display container IDs")
    latest = boolean("latest", "l", help="Show the latest created container (includes all states)")
    last = integer(
        "last", "n", default=-1, help="Show n last created containers (includes all states)"
    )
    no_trunc = boolean("no-trunc", help="Don't truncate output")
    size = boolean("size", "s", help="Display total file sizes")
    filter = strings("filter", "f", help="Filter output based on conditions provided")
    format = string("format", help="Format output using a custom template")


def cmd_ps(c: Client, opts: PsOptions, args: list[str]) -> int:
    if args:
        raise UsageError('"ps" accepts no arguments.')
    limit = 1 if opts.latest else opts.last
    if ".Size" in opts.format and not opts.quiet:
        opts.size = True  # as docker: a format that shows the size asks for it
    cs = c.containers(
        all=opts.all,
        limit=limit if limit > 0 else 0,
        size=opts.size,
        filters=parse_filters(opts.filter),
    )
    if opts.quiet:
        for ct in cs:
            out(ct["Id"] if opts.no_trunc else ct["Id"][:12])
        return 0
    rows = []
    for ct in cs:
        cmd = ct["Command"]
        mounts = ct.get("Mounts") or []
        row = {
            "ID": ct["Id"] if opts.no_trunc else ct["Id"][:12],
            "Image": ct["Image"]
            if opts.no_trunc or not ct["Image"].startswith("sha256:")
            else ct["Image"][7:19],
            "Command": json.dumps(cmd if opts.no_trunc else fmt.trunc(cmd, 20), ensure_ascii=False),
            "RunningFor": fmt.ago(ct["Created"]),
            "CreatedAt": fmt.ts(ct["Created"]),
            "Status": ct["Status"],
            "Ports": _ports_text(ct.get("Ports") or []),
            "Names": ",".join(n.lstrip("/") for n in ct["Names"]),
            "State": ct["State"],
            "Labels": fmt.labels_text(ct.get("Labels")),
            "Networks": ",".join((ct.get("NetworkSettings") or {}).get("Networks") or {}),
            "Mounts": ",".join(
                m.get("Name") or m.get("Source", "")
                if opts.no_trunc
                else fmt.trunc(m.get("Name") or m.get("Source", ""), 15)
                for m in mounts
            ),
            "LocalVolumes": str(sum(1 for m in mounts if m.get("Driver") == "local")),
        }
        if opts.size:
            row["Size"] = (
                f"{fmt.size(ct.get('SizeRw', 0))} (virtual {fmt.size(ct.get('SizeRootFs', 0))})"
            )
        rows.append(fmt.Row(row, ct.get("Labels"), "*formatter.ContainerContext"))
    cols = [
        ("CONTAINER ID", "ID"),
        ("IMAGE", "Image"),
        ("COMMAND", "Command"),
        ("CREATED", "RunningFor"),
        ("STATUS", "Status"),
        ("PORTS", "Ports"),
        ("NAMES", "Names"),
    ]
    if opts.size:
        cols.append(("SIZE", "Size"))
    fmt.render(
        rows, opts.format, cols, "failed to parse template: ", "failed to execute template: "
    )
    return 0


def _ports_text(ports: list[Port]) -> str:
    parts = []
    for p in ports:
        if p.get("PublicPort"):
            ip = p.get("IP") or "0.0.0.0"
            parts.append(
                f"{f'[{ip}]' if ':' in ip else ip}:{p['PublicPort']}->"
                f"{p['PrivatePort']}/{p['Type']}"
            )
        else:
            parts.append(f"{p['PrivatePort']}/{p['Type']}")
    return ", ".join(parts)
