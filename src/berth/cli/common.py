"""What every command module shares: output, filters, `inspect` and the one-name-at-a-time loop.

Imports `client`, `cmdline`, `cli.fmt`. On every command's path: keep it lean.
"""

from __future__ import annotations

import os
import sys

from berth import jsonc as json
from berth.cli import fmt
from berth.client import Client
from berth.cmdline import Options, UsageError, boolean, string
from berth.errors import BerthError, NotFound

TYPE_CHECKING = False  # not typing's: importing typing costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


ENGINE_ERROR = 125


class CommandFailed(BerthError):
    """A command that failed in a way that chose its own exit code (a failed build's step, as
    the docker CLI): `main` prints the message alone and exits with `code`."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


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


class InspectOptions(Options):
    format = string("format", "f", help="Format output using a custom template")
    type = string("type", help="Only inspect objects of the given type")
    size = boolean("size", "s", help="Display total file sizes if the type is container")


def cmd_inspect(c: Client, opts: InspectOptions, args: list[str], kind: str = "") -> int:
    if not args:
        raise UsageError('"inspect" requires at least 1 argument.')
    kind = kind or opts.type
    tmpl = fmt.compile_format(opts.format) if opts.format else None
    results, kinds = [], []
    rc = 0
    for name in args:
        obj: Any = None
        for k in (["container", "image"] if not kind else [kind]):
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


def _simple(action: Callable[[Client, str], None], what: str
            ) -> Callable[[Client, Options, list[str]], int]:
    """A command that does one route's `action` to each name it is given."""
    def cmd(c: Client, opts: Options, args: list[str]) -> int:
        return _each(c, args, what, lambda name: action(c, name), what)
    return cmd


def _inspect_each(fetch: Callable[[str], dict[str, Any]], format_: str, args: list[str],
                  kind: str) -> int:
    """`network inspect`, `volume inspect`: a JSON list, or one template line each."""
    if not args:
        raise UsageError(f'"{kind} inspect" requires at least 1 argument.')
    tmpl = fmt.compile_format(format_) if format_ else None
    res, rc = [], 0
    for n in args:
        try:
            res.append(fetch(n))
        except BerthError as e:
            err(f"Error response from daemon: {e}")
            rc = 1
    if kind == "volume":  # docker tries only its typed struct for volumes
        res = [fmt.Struct(v, "volume.Volume") for v in res]
    _print_inspected(tmpl, res, [kind] * len(res))
    return rc


def _count(n: int | None, show: Callable[[int], str] = str) -> str:
    """docker's N/A for a count or size the daemon did not work out (-1)."""
    return "N/A" if n is None or n < 0 else show(n)


def _term_size() -> tuple[int, int] | None:
    try:
        sz = os.get_terminal_size(sys.stdout.fileno())
        return sz.lines, sz.columns
    except OSError:
        return None


def _env_list(env_files: list[str], items: list[str]) -> list[str]:
    """`--env-file` and `-e`, in that order, as `K=V` (or a bare `K`)."""
    env: list[str] = []
    for path in env_files:
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
    for item in items:
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


def cmd_container_inspect(c: Client, opts: InspectOptions, args: list[str]) -> int:
    return cmd_inspect(c, opts, args, "container")


def cmd_image_inspect(c: Client, opts: InspectOptions, args: list[str]) -> int:
    return cmd_inspect(c, opts, args, "image")
