"""Output for the CLI: docker-style tables, `--format` templates, times and sizes.

Imports `units`. `--format` is Go's text/template (berth.gotemplate, imported only when a
format is given), with docker's rows, `table` headers and tabwriter.
"""

from __future__ import annotations

import sys
import time

from berth.units import human_duration, human_size

TYPE_CHECKING = False  # not typing's: importing typing costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

# `re` (with the `enum` it imports, ~4 ms of start-up) only where templates and times are parsed


def ago(ts: float) -> str:
    return human_duration(time.time() - ts) + " ago"


def ts(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(t))


def size(n: float) -> str:
    return human_size(n)


def size4(n: float) -> str:
    """go-units HumanSize: four significant digits."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000
        i += 1
    return f"{n:.4g}{units[i]}"


def rfc3339(t: float) -> str:
    """Go's time.RFC3339 in local time: `Z` in UTC, else the offset as +hh:mm."""
    lt = time.localtime(t)
    z = time.strftime("%z", lt)
    zone = "Z" if z in ("+0000", "-0000") else z[:3] + ":" + z[3:]
    return time.strftime("%Y-%m-%dT%H:%M:%S", lt) + zone


def go_time(s: str) -> str:
    """An RFC 3339 time from the API as Go's Time.String prints it, in the zone it was given
    in: `2026-12-01 03:11:02.5 +0000 UTC`."""
    if len(s) < 19:
        return s
    date, clock = s[:10], s[11:19]
    rest = s[19:]
    frac = ""
    if rest.startswith("."):
        i = 1
        while i < len(rest) and rest[i].isdigit():
            i += 1
        frac, rest = rest[1:i].rstrip("0"), rest[i:]
    if rest in ("Z", ""):
        zone = "+0000 UTC"
    else:
        off = rest.replace(":", "")
        zone = f"{off} {off}"
    return f"{date} {clock}{'.' + frac if frac else ''} {zone}"


def binary_size(n: float) -> str:
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    i = 0
    while n >= 1024 and i < len(units) - 1:
        n /= 1024
        i += 1
    return f"{n:.4g}{units[i]}"


def natural(s: str) -> list[tuple[int, int | str]]:
    """A sort key in the docker CLI's natural order (`net2` before `net10`), as its list
    commands sort networks and volumes by name."""
    key: list[tuple[int, int | str]] = []
    i = 0
    while i < len(s):
        j = i
        digits = s[i].isdigit()
        while j < len(s) and s[j].isdigit() == digits:
            j += 1
        key.append((0, int(s[i:j])) if digits else (1, s[i:j]))
        i = j
    return key


def trunc(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


class FormatFailed(Exception):
    """A `--format` that does not parse or run: the message as the docker CLI words it, the exit
    code it gives, and what it has printed on stdout by then."""

    def __init__(self, message: str, code: int = 1, stdout: str = "") -> None:
        super().__init__(message)
        self.code, self.stdout = code, stdout


# docker's header for each field of its formatters' rows (cli/command/formatter); a command's
# own columns override these (ID is CONTAINER ID in ps, IMAGE ID in images, ...)
HEADERS = {
    "ID": "ID",
    "Names": "NAMES",
    "Name": "NAME",
    "Image": "IMAGE",
    "Command": "COMMAND",
    "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED",
    "CreatedSince": "CREATED",
    "Ports": "PORTS",
    "State": "STATE",
    "Status": "STATUS",
    "Size": "SIZE",
    "Labels": "LABELS",
    "Mounts": "MOUNTS",
    "LocalVolumes": "LOCAL VOLUMES",
    "Networks": "NETWORKS",
    "Platform": "PLATFORM",
    "Repository": "REPOSITORY",
    "Tag": "TAG",
    "Digest": "DIGEST",
    "Containers": "CONTAINERS",
    "VirtualSize": "SIZE",
    "SharedSize": "SHARED SIZE",
    "UniqueSize": "UNIQUE SIZE",
    "Driver": "DRIVER",
    "Scope": "SCOPE",
    "IPv4": "IPV4",
    "IPv6": "IPV6",
    "Internal": "INTERNAL",
    "Mountpoint": "MOUNTPOINT",
    "Links": "LINKS",
    "Group": "GROUP",
    "Availability": "AVAILABILITY",
    "CreatedBy": "CREATED BY",
    "Comment": "COMMENT",
    "CPUPerc": "CPU %",
    "MemUsage": "MEM USAGE / LIMIT",
    "MemPerc": "MEM %",
    "NetIO": "NET I/O",
    "BlockIO": "BLOCK I/O",
    "PIDs": "PIDS",
    "Container": "CONTAINER",
}


class Row(dict):  # type: ignore[type-arg]
    """One row of a list command, as docker's formatter contexts have it: its fields, the
    `.Label "k"` method over the object's labels, Go's type name for errors, and `{{json .}}`
    as json.Marshal of the fields (keys sorted, `<>&` escaped)."""

    go_fields_are_methods = True  # docker's fields are methods taking no argument

    def __init__(
        self,
        fields: dict[str, Any],
        labels: dict[str, str] | None = None,
        go_type: str = "",
        has_labels: bool = True,
    ) -> None:
        super().__init__(fields)
        self.labels = labels or {}
        self.go_type = go_type
        self.has_labels = has_labels

    @property
    def go_methods(self) -> dict[str, Any]:
        if not self.has_labels:
            return {}
        return {"Label": (lambda k: self.labels.get(k, ""), "s")}

    def go_json(self) -> str:
        from berth import gotemplate

        return gotemplate.to_json(dict(sorted(self.items())))


class Struct(dict):  # type: ignore[type-arg]
    """A JSON object standing for one of docker's Go structs: a field it lacks is an error
    naming the type, as for docker's typed templates."""

    def __init__(
        self, fields: dict[str, Any], go_type: str, renames: dict[str, str] | None = None
    ) -> None:
        super().__init__(fields)
        self.go_type = go_type
        self.go_renames = renames or {}


class Header(dict):  # type: ignore[type-arg]
    """The header row of a `table` format: each field's title; `.Label "a.b-c"` is `b c`."""

    @property
    def go_methods(self) -> dict[str, Any]:
        def label(name: str) -> str:
            return name.split(".")[-1].replace("-", " ").replace("_", " ")

        return {"Label": (label, "s")}


def labels_text(labels: dict[str, str] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in (labels or {}).items())


def render(
    rows: Sequence[dict[str, Any]],
    fmt: str,
    columns: list[tuple[str, str]],
    parse_error: str = "template parsing error: ",
    exec_error: str = "template parsing error: ",
) -> None:
    """A table like docker's tabwriter (3 spaces between columns), or one line per row
    through a Go template; `table {{.A}}\\t{{.B}}` gives a table with a header row, made by
    running the same template over the columns' titles, as the docker CLI does."""
    if not fmt or fmt == "table":
        table = [[h for h, _ in columns]] + [[str(r.get(k, "")) for _, k in columns] for r in rows]
        # Go's tabwriter as docker sets it up: minimum cell width 10, padding 3
        widths = [max(10, max(len(row[i]) for row in table) + 3) for i in range(len(columns))]
        for row in table:
            line = "".join(
                cell.ljust(widths[i]) if i < len(row) - 1 else cell for i, cell in enumerate(row)
            )
            sys.stdout.write(line + "\n")
        return
    from berth import gotemplate

    is_table = fmt.startswith("table")
    body = fmt[len("table") :] if is_table else "{{json .}}" if fmt == "json" else fmt
    body = body.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    try:
        tmpl = gotemplate.Template(body)
    except gotemplate.TemplateError as e:
        raise FormatFailed(parse_error + str(e)) from None
    try:
        lines = [tmpl.execute(r) + "\n" for r in rows]
        if is_table:
            head = Header({**HEADERS, **{k: h for h, k in columns}})
            lines.insert(0, tmpl.execute(head, funcs=gotemplate.HEADER_FUNCS) + "\n")
    except gotemplate.TemplateError as e:
        raise FormatFailed(exec_error + str(e)) from None
    text = "".join(lines)
    sys.stdout.write(gotemplate.tabwrite(text) if is_table else text)


def compile_format(fmt: str, name: str = "", missingkey: str = "inspect") -> Any:
    """An inspect-style `--format` (inspect, info, version, events): parsed before anything
    is asked of the daemon; docker's exit code for one that does not parse is 64."""
    if fmt == "json":
        return "json"
    from berth import gotemplate

    try:
        return gotemplate.Template(fmt, name=name, missingkey=missingkey)
    except gotemplate.TemplateError as e:
        raise FormatFailed(f"template parsing error: {e}", 64) from None


def template(
    tmpl: Any, obj: Any, error: str = "template parsing error: ", partial: bool = False
) -> str:
    """`obj` through a compiled (or not yet compiled) inspect-style format. A failure prints
    on stdout what docker's does before the error: an empty line, or (`partial`: info,
    version) what the template had written by then and a newline."""
    if isinstance(tmpl, str):
        tmpl = compile_format(tmpl, missingkey="default")
    from berth import gotemplate

    if tmpl == "json":  # docker's shorthand for {{json .}}
        return gotemplate.to_json(obj, escape_html=False)
    try:
        return str(tmpl.execute(obj))
    except gotemplate.ExecError as e:
        raise FormatFailed(error + str(e), 1, (e.partial if partial else "") + "\n") from None


# Go types that are slices or maps in docker's inspect structs: a null there prints as `[]`
# or `map[]` (the typed value docker's template sees), not `<no value>`
_SLICES = {
    "Args",
    "Mounts",
    "ExecIDs",
    "RepoTags",
    "RepoDigests",
    "Cmd",
    "Entrypoint",
    "Env",
    "OnBuild",
    "Shell",
    "Binds",
    "Links",
    "Dns",
    "DnsOptions",
    "DnsSearch",
    "ExtraHosts",
    "GroupAdd",
    "CapAdd",
    "CapDrop",
    "SecurityOpt",
    "VolumesFrom",
    "Devices",
    "DeviceCgroupRules",
    "DeviceRequests",
    "MaskedPaths",
    "ReadonlyPaths",
    "Ulimits",
    "BlkioWeightDevice",
    "Layers",
    "Aliases",
    "DNSNames",
}
_MAPS = {
    "Labels",
    "Volumes",
    "ExposedPorts",
    "Tmpfs",
    "StorageOpt",
    "Sysctls",
    "PortBindings",
    "Ports",
    "Options",
    "DriverOpts",
    "Annotations",
    "Networks",
    "Data",
}


# fields docker's structs have that the JSON leaves out when empty, by kind of object
_ABSENT: dict[str, dict[tuple[str, ...], str]] = {
    "container": {
        ("State", "Health"): "nil",
        ("SizeRw",): "nil",
        ("SizeRootFs",): "nil",
        ("Node",): "nil",
    },
    "network": {("Peers",): "list", ("Services",): "map"},
    "volume": {("Status",): "map", ("UsageData",): "nil", ("ClusterVolume",): "nil"},
}


def typed_nils(obj: Any, kind: str = "") -> Any:
    """Inspect JSON as the typed struct docker's template sees first: a null is a typed nil
    (`[]` at a known slice, `map[]` at a map, else `<nil>`), known maps marshal sorted, fields
    left out when empty are there, a network's Created prints as Go's Time.String."""
    from berth import gotemplate

    if isinstance(obj, list):
        return [typed_nils(x) for x in obj]
    if not isinstance(obj, dict):
        return obj
    out: dict[str, Any] = {}
    for k, v in obj.items():
        if v is None:
            v = (
                gotemplate.NilList()
                if k in _SLICES
                else gotemplate.NilMap()
                if k in _MAPS
                else gotemplate.NILPTR
            )
        else:
            v = typed_nils(v)
            if k in _MAPS and isinstance(v, dict) and not isinstance(v, Struct):
                v = gotemplate.GoMap(v)
        out[k] = v
    for path, what in _ABSENT.get(kind, {}).items():
        parent: Any = out
        for part in path[:-1]:
            parent = parent.get(part) if isinstance(parent, dict) else None
        if isinstance(parent, dict) and path[-1] not in parent:
            parent[path[-1]] = gotemplate.omitted(
                {
                    "nil": gotemplate.NILPTR,
                    "list": gotemplate.NilList(),
                    "map": gotemplate.NilMap(),
                }[what]
            )
    if kind == "network" and isinstance(out.get("Created"), str):
        t = gotemplate.GoTime(out["Created"])
        t.go_string = go_time(t)
        out["Created"] = t
    return Struct(out, obj.go_type) if isinstance(obj, Struct) else out


_DUR = r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)"
_DUR_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def parse_time(s: str) -> str:
    """`--since/--until`: RFC 3339, a unix timestamp, or a Go duration ago (`10m`, `1h30m`)."""
    import re

    if re.fullmatch(r"\d+(\.\d+)?", s):
        return s
    if re.fullmatch(r"(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+", s):
        secs = sum(float(n) * _DUR_UNITS[u] for n, u in re.findall(_DUR, s))
        return f"{time.time() - secs:.9f}"
    m = re.fullmatch(r"(\d{4}-\d\d-\d\d)(?:T(\d\d:\d\d(?::\d\d)?)(\.\d+)?(Z|[+-]\d\d:\d\d)?)?", s)
    if not m:
        raise ValueError(
            f'invalid value for "since": failed to parse value as time or duration: "{s}"'
        )
    import calendar

    clock = m.group(2) or "00:00:00"
    if clock.count(":") == 1:
        clock += ":00"
    t = time.strptime(f"{m.group(1)}T{clock}", "%Y-%m-%dT%H:%M:%S")
    zone = m.group(4)
    if zone is None:
        base = time.mktime(t)
    else:
        base = calendar.timegm(t)
        if zone != "Z":
            sign = 1 if zone[0] == "+" else -1
            base -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return f"{base + float(m.group(3) or 0):.9f}"


# --- counts ------------------------------------------------------------------------------
def _count(n: int | None, show: Callable[[int], str] = str) -> str:
    """docker's N/A for a count or size the daemon did not work out (-1)."""
    return "N/A" if n is None or n < 0 else show(n)
