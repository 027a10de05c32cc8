"""What the `berth compose` commands share: loading the project the flags name, the
orchestrator for it, and the small printing helpers.

Imports `client`, `compose`, `cmdline`, `cli.main`, `cli.composeprogress`.
"""

from __future__ import annotations

import os
import sys

from berth.cli.main import err, out
from berth.client import Client
from berth.cmdline import UsageError

TYPE_CHECKING = False  # not typing's: importing typing costs ~5 ms of every compose command
if TYPE_CHECKING:
    from typing import Any


def _cache_dir() -> str | None:
    """Where validated compose trees are remembered: $XDG_CACHE_HOME/berth/compose-valid."""
    base = os.environ.get("XDG_CACHE_HOME") or (
        os.path.join(os.environ["HOME"], ".cache") if os.environ.get("HOME") else ""
    )
    return os.path.join(base, "berth", "compose-valid") if base else None


def _load_options(gopts: Any, enable: tuple[str, ...] = (), interpolate: bool = True) -> Any:
    from berth.compose import LoadOptions

    return LoadOptions(
        files=tuple(gopts.file),
        project_name=gopts.project_name,
        project_directory=gopts.project_directory,
        env_files=tuple(gopts.env_file),
        profiles=tuple(gopts.profile),
        environ=dict(os.environ),
        cwd=os.getcwd(),
        enable=enable,
        cache_dir=_cache_dir(),
        interpolate=interpolate,
    )


def _up_cache_entry(gopts: Any) -> str | None:
    """The fast-path entry of this `up -d` (compose.upcache), or None without a cache."""
    base = _cache_dir()
    if base is None:
        return None
    from berth.compose.upcache import entry_path

    options = [
        list(gopts.file),
        gopts.project_name,
        gopts.project_directory,
        list(gopts.env_file),
        list(gopts.profile),
    ]
    return entry_path(
        os.path.join(os.path.dirname(base), "compose-up"), os.getcwd(), options, os.environ
    )


def up_unchanged(c: Client, gopts: Any) -> bool:
    """`up -d` of a project that is as the last `up -d` left it, and whose files and
    variables have not changed since: its warnings and containers printed as the full `up`
    prints them, and nothing done."""
    path = _up_cache_entry(gopts)
    if path is None:
        return False
    from berth.compose.upcache import converged

    found = converged(path, os.environ, c)
    if found is None:
        return False
    warnings, names = found
    for w in warnings:
        err(f"WARN[0000] {w}")
    from berth.cli.composeprogress import Progress, mode_for

    progress = Progress(sys.stderr, mode_for(gopts.progress, gopts.ansi, sys.stderr.isatty()))
    for n in names:
        progress("Container", n, "Running")
    return True


def load_noted(gopts: Any) -> tuple[Any, Any, list[str]]:
    """The project as `_load` loads it, with what its load read (for `up_unchanged`) and
    its warnings (printed)."""
    from berth.compose import load_project
    from berth.compose.upcache import Inputs

    inputs = Inputs(os.environ)
    opts = _load_options(gopts)
    from dataclasses import replace

    project, warnings = load_project(replace(opts, inputs=inputs))
    for w in warnings:
        err(f"WARN[0000] {w}")
    return project, inputs, warnings


def _load(gopts: Any, enable: tuple[str, ...] = (), by_name: bool = False) -> Any:
    from berth.compose import ComposeFileError, load_project

    if by_name and gopts.project_name and not gopts.file:
        try:
            return _load(gopts, enable)
        except ComposeFileError as e:
            if "no configuration file provided" not in str(e):
                raise
            from pathlib import Path

            from berth.compose.model import Project

            return Project(
                name=gopts.project_name,
                working_dir=Path(os.getcwd()),
                config_files=(),
                services={},
                networks={},
                volumes={},
                secrets={},
                configs={},
            )
    project, warnings = load_project(_load_options(gopts, enable))
    for w in warnings:
        err(f"WARN[0000] {w}")
    return project


def _warn(msg: str) -> None:
    err(f"WARN[0000] {msg}")


def _context_tar(context: str, dockerfile: str, inline: str = "") -> tuple[bytes, str]:
    """A build context as the classic builder takes it, filtered by .dockerignore, and the
    Dockerfile's name in it. `inline` (build.dockerfile_inline): the Dockerfile, sent as the
    docker CLI sends one from outside the context, under a name of its own that the
    .dockerignore sent lists, so that the daemon leaves it out of what COPY sees."""
    import io

    from berth import dockerignore
    from berth.cli.build import _tar_context

    if not os.path.isdir(context):
        raise UsageError(f"unable to prepare context: path {context!r} not found")
    matcher = dockerignore.load(context, os.path.join(context, dockerfile))
    buf = io.BytesIO()
    if not inline:
        _tar_context(context, matcher, {".dockerignore", dockerfile}, [], buf)
        return buf.getvalue(), dockerfile
    import secrets

    name = f".dockerfile.{secrets.token_hex(10)}"
    try:
        with open(os.path.join(context, ".dockerignore"), "rb") as f:
            ignore = f.read(1 << 20)
    except OSError:
        ignore = b".dockerignore"
    _tar_context(
        context,
        matcher,
        {".dockerignore"},
        [],
        buf,
        {name: inline.encode(), ".dockerignore": ignore + f"\n{name}\n".encode()},
    )
    return buf.getvalue(), name


def _orch(
    c: Client, g: Any, enable: tuple[str, ...] = (), project: Any = None, by_name: bool = False
) -> Any:
    """The orchestrator of the project the flags name. `by_name`: with `-p NAME` and no
    compose file, a project with no services, known by its labels alone (down, ps, logs,
    stop, ... work on it as docker compose's do)."""
    from berth.cli.composeprogress import Progress, mode_for
    from berth.compose.engine import Engine
    from berth.compose.orchestrator import Orchestrator

    if project is None:
        project = _load(g, enable, by_name=by_name)
    progress = Progress(sys.stderr, mode_for(g.progress, g.ansi, sys.stderr.isatty()))
    return Orchestrator(
        project,
        Engine(c),
        progress,
        _warn,
        _context_tar,
        parallel=int(getattr(g, "parallel", -1) or -1),
    )


def _timeout(opts: Any) -> int | None:
    t = getattr(opts, "timeout", None)
    return int(t) if t is not None else None


def _stream_lines(pieces: Any, prefix: str, lock: Any) -> None:
    buf = b""
    for _stream, data in pieces:
        buf += data
        while b"\n" in buf:
            line, _, buf = buf.partition(b"\n")
            with lock:
                sys.stdout.write(prefix + line.decode(errors="replace") + "\n")
                sys.stdout.flush()
    if buf:
        with lock:
            sys.stdout.write(prefix + buf.decode(errors="replace") + "\n")
            sys.stdout.flush()


def _table(cols: list[tuple[str, str]], rows: list[dict[str, Any]]) -> None:
    widths = [max([len(h)] + [len(str(r[k])) for r in rows]) for h, k in cols]
    out("   ".join(h.ljust(w) for (h, _), w in zip(cols, widths, strict=True)).rstrip())
    for r in rows:
        out("   ".join(str(r[k]).ljust(w) for (_, k), w in zip(cols, widths, strict=True)).rstrip())


def _one_container(o: Any, service: str, index: int) -> Any:
    from berth.compose import labels as L

    if service not in o.project.services:
        raise UsageError(f"no such service: {service}")
    found = [x for x in o.containers([service], all=False) if x.label(L.NUMBER) == str(index or 1)]
    if not found:
        from berth.errors import NotFound

        raise NotFound(f'service "{service}" is not running')
    return found[0]


def _ports(ports: Any) -> str:
    shown = []
    for p in sorted(ports, key=lambda p: (p.private, p.ip)):
        if p.public:
            shown.append(f"{p.ip}:{p.public}->{p.private}/{p.protocol}")
        else:
            shown.append(f"{p.private}/{p.protocol}")
    return ", ".join(dict.fromkeys(shown))
