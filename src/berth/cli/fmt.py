"""Output for the CLI: docker-style tables, `--format` templates, times and sizes.

Imports `units`. The template language is the small subset of Go templates that scripts use
with docker: `{{.Field.Sub}}`, `{{json .Field}}`, `{{.Field}}` on table rows, and the `table`
prefix.
"""

from __future__ import annotations

import sys
import time

from berth import jsonc as json
from berth.units import human_duration, human_size

TYPE_CHECKING = False  # not typing's: importing typing costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    import re
    from typing import Any

# `re` (with the `enum` it imports, ~4 ms of start-up) only where templates and times are parsed


def ago(ts: float) -> str:
    return human_duration(time.time() - ts) + " ago"


def ts(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(t))


def size(n: float) -> str:
    return human_size(n)


def binary_size(n: float) -> str:
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    i = 0
    while n >= 1024 and i < len(units) - 1:
        n /= 1024
        i += 1
    return f"{n:.4g}{units[i]}"


def trunc(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


_FIELD = r"{{\s*(json\s+)?\.([A-Za-z0-9_.]*)\s*}}"


def _lookup(obj: Any, path: str) -> Any:
    for part in [p for p in path.split(".") if p]:
        if isinstance(obj, dict):
            obj = obj.get(part)
        else:
            return None
    return obj


def _show(v: Any) -> str:
    if v is None:
        return "<no value>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{_show(x)}" for k, x in sorted(v.items())) + "]"
    if isinstance(v, list):
        return "[" + " ".join(_show(x) for x in v) + "]"
    return str(v)


def template(tmpl: str, obj: Any) -> str:
    if tmpl.strip() == "json":
        return json.dumps(obj)

    def sub(m: re.Match[str]) -> str:
        v = _lookup(obj, m.group(2))
        return json.dumps(v) if m.group(1) else _show(v)
    import re
    return re.sub(_FIELD, sub, tmpl.replace("\\t", "\t").replace("\\n", "\n"))


def render(rows: list[dict[str, Any]], fmt: str, columns: list[tuple[str, str]]) -> None:
    """A table like docker's tabwriter (3 spaces between columns), or one line per row
    through a template; `table {{.A}}\\t{{.B}}` gives a table of those columns."""
    if fmt and not fmt.startswith("table"):
        for r in rows:
            sys.stdout.write(template(fmt, r) + "\n")
        return
    if fmt.startswith("table"):
        import re
        fields = re.findall(r"{{\s*\.([A-Za-z0-9_]+)\s*}}", fmt)
        names = {k: h for h, k in columns}
        columns = [(names.get(f, f.upper()), f) for f in fields]
    table = [[h for h, _ in columns]] + [[str(r.get(k, "")) for _, k in columns] for r in rows]
    # Go's tabwriter as docker sets it up: minimum cell width 10, padding 3
    widths = [max(10, max(len(row[i]) for row in table) + 3) for i in range(len(columns))]
    for row in table:
        line = "".join(cell.ljust(widths[i]) if i < len(row) - 1 else cell
                       for i, cell in enumerate(row))
        sys.stdout.write(line + "\n")


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
        raise ValueError(f'invalid value for "since": failed to parse value as time or '
                         f"duration: \"{s}\"")
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
