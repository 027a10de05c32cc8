"""`inspect` (a container or an image), `container inspect`, `image inspect`, and the output
that `network inspect` and `volume inspect` share with them: an indented JSON list, or each
object through the `--format` template.

Imports `client`, `cmdline`, `errors`, `cli.fmt`, `cli.main`.
"""

from __future__ import annotations

from berth import jsonc as json
from berth.cli.fmt import FormatFailed, Struct, compile_format, template, typed_nils
from berth.cli.main import err, out
from berth.client import Client
from berth.cmdline import Options, UsageError, boolean, string
from berth.errors import BerthError, NotFound

TYPE_CHECKING = False  # not typing's: importing typing costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class InspectOptions(Options):
    format = string("format", "f", help="Format output using a custom template")
    type = string("type", help="Only inspect objects of the given type")
    size = boolean("size", "s", help="Display total file sizes if the type is container")


def cmd_inspect(c: Client, opts: InspectOptions, args: list[str], kind: str = "") -> int:
    if not args:
        raise UsageError('"inspect" requires at least 1 argument.')
    kind = kind or opts.type
    tmpl = compile_format(opts.format) if opts.format else None
    results, kinds = [], []
    rc = 0
    for name in args:
        obj: Any = None
        for k in ["container", "image"] if not kind else [kind]:
            try:
                if k == "container":
                    obj = c.inspect_container(name, size=opts.size)
                else:
                    obj = c.inspect_image(name)
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


def cmd_container_inspect(c: Client, opts: InspectOptions, args: list[str]) -> int:
    return cmd_inspect(c, opts, args, "container")


def cmd_image_inspect(c: Client, opts: InspectOptions, args: list[str]) -> int:
    return cmd_inspect(c, opts, args, "image")


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
                line = template(tmpl, typed_nils(obj, kinds[i] if kinds else ""))
            except FormatFailed as e:
                errors.append(str(e))
                continue
            out(line)
            printed = True
        if errors:
            raise FormatFailed("\n".join(errors), 1, "" if printed else "\n")


def _inspect_each(
    fetch: Callable[[str], dict[str, Any]], format_: str, args: list[str], kind: str
) -> int:
    """`network inspect`, `volume inspect`: a JSON list, or one template line each."""
    if not args:
        raise UsageError(f'"{kind} inspect" requires at least 1 argument.')
    tmpl = compile_format(format_) if format_ else None
    res, rc = [], 0
    for n in args:
        try:
            res.append(fetch(n))
        except BerthError as e:
            err(f"Error response from daemon: {e}")
            rc = 1
    if kind == "volume":  # docker tries only its typed struct for volumes
        res = [Struct(v, "volume.Volume") for v in res]
    _print_inspected(tmpl, res, [kind] * len(res))
    return rc
