"""`berth context create|ls|inspect|use|rm|show`: the docker CLI's contexts, in its own store
and format (berth.client.contexts), so that either CLI reads what the other wrote.

Imported only by these commands. They work whatever the current context is (even one that
does not exist), and talk to no daemon: their errors are printed here, not as the daemon's.
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any

from berth.cli import fmt
from berth.client import Client, InvalidHost, parse_host
from berth.client import contexts as store
from berth.cmdline import Options, UsageError, boolean, optional_string, string
from berth.errors import BerthError


class ContextCreateOptions(Options):
    description = string("description", help="Description of the context")
    docker = optional_string(
        "docker", help="set the docker endpoint (host=, ca=, cert=, key=, skip-tls-verify=, from=)"
    )
    from_ = optional_string("from", help="create context from a named context")


class ContextLsOptions(Options):
    format = string("format", help="Format output using a custom template")
    quiet = boolean("quiet", "q", help="Only show context names")


class ContextInspectOptions(Options):
    format = string("format", "f", help="Format output using a custom template")


class ContextRmOptions(Options):
    force = boolean("force", "f", help="Force the removal of a context in use")


_BOOL = {
    "1": True,
    "t": True,
    "T": True,
    "TRUE": True,
    "true": True,
    "True": True,
    "0": False,
    "f": False,
    "F": False,
    "FALSE": False,
    "false": False,
    "False": False,
}


def _out(s: str) -> None:
    sys.stdout.write(s + "\n")


def _err(s: str) -> None:
    sys.stderr.write(s + "\n")


def _go_json(v: Any, indent: int | None = None) -> str:
    """json as Go's encoder writes it: compact, or indented by `indent`; <, > and & escaped."""
    s = json.dumps(v, indent=indent, separators=(",", ":") if indent is None else None)
    return s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _current(c: Client) -> str:
    return c.context or store.DEFAULT


def _default(c: Client | None = None) -> store.Context:
    """The default context as this command sees it: the client's own host and TLS when it
    talks to it (-H, the TLS flags), else the environment's. TLS files it cannot find are not
    its error here."""
    if c is not None and c.context == store.DEFAULT:
        t = c.tls
        files = (
            {}
            if t is None
            else {k: v for k, v in zip(store.TLS_FILES, (t.ca, t.cert, t.key), strict=True) if v}
        )
        skip = bool(t and t.skip_verify)
        meta = {
            "Name": store.DEFAULT,
            "Metadata": {},
            "Endpoints": {"docker": {"Host": c.host, "SkipTLSVerify": skip}},
        }
        return store.Context(store.DEFAULT, meta, c.host, skip, files)
    try:
        return store.default_context()
    except InvalidHost:
        return store.Context(
            store.DEFAULT,
            {},
            parse_host(os.environ.get("BERTH_HOST") or os.environ.get("DOCKER_HOST") or ""),
            False,
            {},
        )


def _get(name: str, c: Client | None = None) -> store.Context:
    return _default(c) if name == store.DEFAULT else store.load(name)


# --- create -----------------------------------------------------------------------------------
def _parse_docker(spec: str) -> dict[str, str]:
    """`--docker host=...,ca=...`: one CSV record of key=value (Go's encoding/csv)."""
    import csv

    try:
        fields = next(csv.reader([spec], strict=True), [])
    except csv.Error as e:
        raise UsageError(f'invalid argument "{spec}" for "--docker" flag: {e}') from None
    out: dict[str, str] = {}
    for f in fields:
        k, eq, v = f.partition("=")
        if not eq:
            raise BerthError(f"unable to create docker endpoint config: invalid option {f!r}")
        out[k.strip().lower()] = v
    return out


def _endpoint(spec: dict[str, str], c: Client) -> tuple[str, bool, dict[str, bytes]]:
    """(host, skip-tls-verify, TLS files) of `--docker`."""
    host, skip, files = "", False, {}
    if "from" in spec:
        src = _get(spec["from"], c)
        host, skip = src.host, src.skip_verify
        files = {k: _read(p) for k, p in src.files.items()}
    for k, v in spec.items():
        if k == "from":
            continue
        if k == "host":
            host = v
        elif k in ("ca", "cert", "key"):
            files[f"{k}.pem"] = _read(v) if v else b""
        elif k == "skip-tls-verify":
            if v not in _BOOL:
                raise BerthError(
                    f"unable to create docker endpoint config: skip-tls-verify: "
                    f'parsing "{v}": invalid syntax'
                )
            skip = _BOOL[v]
        else:
            raise BerthError(
                f"unable to create docker endpoint config: unrecognized config key: {k}"
            )
    if "from" not in spec and "host" not in spec:
        host = _default(c).host
    proto = host.partition("://")[0] if "://" in host else ""
    if proto not in ("unix", "tcp", "ssh", "npipe"):
        raise BerthError(
            "unable to create docker endpoint config: unable to apply docker "
            f"endpoint options: unable to parse docker host `{host}`"
        )
    if proto in ("unix", "tcp"):
        try:
            parse_host(host)
        except InvalidHost as e:
            raise BerthError(
                "unable to create docker endpoint config: unable to apply docker "
                f"endpoint options: {e}"
            ) from None
    return host, skip, {k: v for k, v in files.items() if v}


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise BerthError(
            f"unable to create docker endpoint config: open {path}: no such file or directory"
        ) from None
    except OSError as e:
        raise BerthError(f"unable to create docker endpoint config: {e}") from None


def _save(name: str, meta: dict[str, Any], files: dict[str, bytes]) -> None:
    """meta.json (0644 in a 0755 directory) and the TLS files (0600 in 0700 directories),
    as the docker CLI lays them out."""
    mdir = store.meta_dir(name)
    os.makedirs(mdir, mode=0o755, exist_ok=True)
    tmp = os.path.join(mdir, ".meta.json.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(_go_json(meta))
    os.replace(tmp, os.path.join(mdir, "meta.json"))
    if files:
        tdir = os.path.join(store.tls_dir(name), "docker")
        os.makedirs(tdir, mode=0o700, exist_ok=True)
        for fname, data in files.items():
            fd = os.open(os.path.join(tdir, fname), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fb:
                fb.write(data)


def cmd_create(c: Client, opts: ContextCreateOptions, args: list[str]) -> int:
    if len(args) != 1:
        raise UsageError('"context create" requires exactly 1 argument.')
    name = args[0]
    try:
        _create(c, name, opts)
    except BerthError as e:
        _err(str(e))
        return 1
    _out(name)
    _err(f'Successfully created context "{name}"')
    return 0


def _create(c: Client, name: str, opts: ContextCreateOptions) -> None:
    if name == store.DEFAULT:
        raise BerthError('"default" is a reserved context name')
    if not re.fullmatch(store.NAME_PATTERN.strip("^$"), name):
        raise BerthError(
            f'context name "{name}" is invalid, names are validated against '
            f'regexp "{store.NAME_PATTERN}"'
        )
    if os.path.exists(os.path.join(store.meta_dir(name), "meta.json")):
        raise BerthError(f'context "{name}" already exists')
    if opts.from_ is not None or opts.docker is None:
        # a copy of a context: --from, or without --docker the current one
        src = _get(opts.from_ if opts.from_ is not None else _current(c), c)
        meta = json.loads(json.dumps(src.meta))
        meta["Name"] = name
        md = meta.get("Metadata") if isinstance(meta.get("Metadata"), dict) else {}
        if src.name == store.DEFAULT:
            md = {"Description": store.DEFAULT_DESCRIPTION}
        if opts.description:
            md["Description"] = opts.description
        meta["Metadata"] = md
        files = {k: _read(p) for k, p in src.files.items()}
        if opts.docker is not None:
            host, skip, files = _endpoint(_parse_docker(opts.docker), c)
            meta.setdefault("Endpoints", {})["docker"] = {"Host": host, "SkipTLSVerify": skip}
    else:
        host, skip, files = _endpoint(_parse_docker(opts.docker), c)
        meta = {
            "Name": name,
            "Metadata": {"Description": opts.description} if opts.description else {},
            "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": skip}},
        }
    _save(name, meta, files)


# --- ls ---------------------------------------------------------------------------------------
def cmd_ls(c: Client, opts: ContextLsOptions, args: list[str]) -> int:
    if args:
        raise UsageError('"context ls" accepts no arguments.')
    current = _current(c)
    found, errors = store.load_all()
    rows: list[dict[str, Any]] = []
    d = _default(c)
    rows.append(
        {
            "Name": d.name,
            "Description": store.DEFAULT_DESCRIPTION,
            "DockerEndpoint": d.host,
            "Error": "",
        }
    )
    for ctx in found:
        rows.append(
            {
                "Name": ctx.name,
                "Description": ctx.description,
                "DockerEndpoint": ctx.host,
                "Error": "",
            }
        )
    if current not in {r["Name"] for r in rows}:
        try:
            store.load(current)
            e = ""
        except BerthError as ex:
            e = str(ex)
        rows.append({"Name": current, "Description": "", "DockerEndpoint": "", "Error": e})
    rows.sort(key=lambda r: r["Name"])
    for r in rows:
        r["Current"] = r["Name"] == current
    for e in errors:
        _err(e)
    if errors:
        return 1
    env = "BERTH_HOST" if os.environ.get("BERTH_HOST") else "DOCKER_HOST"
    if os.environ.get(env) and current == store.DEFAULT:
        _err(
            f"Warning: {env} environment variable overrides the active context. To use a "
            f"context, either set the global --context flag, or unset {env} environment "
            "variable."
        )
    if opts.quiet:
        for r in rows:
            _out(r["Name"])
        return 0
    if opts.format.strip() == "json":
        for r in rows:
            _out(_go_json(dict(sorted(r.items()))))
    elif opts.format:
        fmt.render(
            rows,
            opts.format,
            [
                ("NAME", "Name"),
                ("DESCRIPTION", "Description"),
                ("DOCKER ENDPOINT", "DockerEndpoint"),
                ("ERROR", "Error"),
            ],
        )
    else:
        table = [
            {
                **r,
                "Name": r["Name"] + (" *" if r["Current"] else ""),
                "Error": fmt.trunc(r["Error"], 45),
            }
            for r in rows
        ]
        fmt.render(
            table,
            "",
            [
                ("NAME", "Name"),
                ("DESCRIPTION", "Description"),
                ("DOCKER ENDPOINT", "DockerEndpoint"),
                ("ERROR", "Error"),
            ],
        )
    return 0


# --- inspect ----------------------------------------------------------------------------------
def _inspect(ctx: store.Context) -> dict[str, Any]:
    md = ctx.meta.get("Metadata")
    eps = ctx.meta.get("Endpoints")
    eps = eps if isinstance(eps, dict) else {}
    endpoints = {k: v for k, v in sorted(eps.items())}
    endpoints["docker"] = {"Host": ctx.host, "SkipTLSVerify": ctx.skip_verify}
    in_memory = "<IN MEMORY>"
    return {
        "Name": ctx.name,
        "Metadata": dict(sorted(md.items())) if isinstance(md, dict) else {},
        "Endpoints": dict(sorted(endpoints.items())),
        "TLSMaterial": {"docker": sorted(ctx.files)} if ctx.files else {},
        "Storage": {
            "MetadataPath": ctx.meta_path or in_memory,
            "TLSPath": ctx.tls_path or in_memory,
        },
    }


def cmd_inspect(c: Client, opts: ContextInspectOptions, args: list[str]) -> int:
    names = args or [_current(c)]
    docs = []
    failed = ""
    for n in names:
        try:
            ctx = _get(n, c)
        except BerthError as e:
            failed = str(e)
            break
        docs.append(_inspect(ctx))
    if opts.format:
        for doc in docs:
            _out(fmt.template(opts.format, doc))
    else:
        _out(_go_json(docs, indent=4))
    if failed:
        _err(failed)
        return 1
    return 0


# --- use, show, rm ----------------------------------------------------------------------------
def _set_current(name: str) -> None:
    from berth.cli.registry import load_config, save_config

    doc = load_config()
    if name == store.DEFAULT:
        doc.pop("currentContext", None)
    else:
        doc["currentContext"] = name
    doc.setdefault("auths", {})
    save_config(dict(sorted(doc.items())))


def cmd_use(c: Client, opts: Options, args: list[str]) -> int:
    if len(args) != 1:
        raise UsageError('"context use" requires exactly 1 argument.')
    name = args[0]
    try:
        if name != store.DEFAULT:
            store.load(name)
        _set_current(name)
    except BerthError as e:
        _err(str(e))
        return 1
    _out(name)
    _err(f'Current context is now "{name}"')
    env = "BERTH_HOST" if os.environ.get("BERTH_HOST") else "DOCKER_HOST"
    if name != store.DEFAULT and os.environ.get(env):
        _err(
            f"Warning: {env} environment variable overrides the active context. To use "
            f'"{name}", either set the global --context flag, or unset {env} environment '
            "variable."
        )
    return 0


def cmd_show(c: Client, opts: Options, args: list[str]) -> int:
    if args:
        raise UsageError('"context show" accepts no arguments.')
    _out(_current(c))
    return 0


def cmd_rm(c: Client, opts: ContextRmOptions, args: list[str]) -> int:
    if not args:
        raise UsageError('"context rm" requires at least 1 argument.')
    import shutil

    current = _current(c)
    errors = []
    for name in args:
        if name == store.DEFAULT:
            errors.append('default: context "default" cannot be removed')
            continue
        if not os.path.exists(os.path.join(store.meta_dir(name), "meta.json")):
            errors.append(f'context "{name}" does not exist')
            continue
        if name == current and not opts.force:
            errors.append(f'context "{name}" is in use, set -f flag to force remove')
            continue
        if name == store.current_name():
            _set_current(store.DEFAULT)
        shutil.rmtree(store.meta_dir(name), ignore_errors=True)
        shutil.rmtree(store.tls_dir(name), ignore_errors=True)
        _out(name)
    if errors:
        _err("\n".join(errors))
        return 1
    return 0
