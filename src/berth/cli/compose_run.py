"""`berth compose` commands that run the plain CLI's own commands on a service's container:
exec, run (a one-off container of the service) and cp.

Imports `client`, `compose`, `cmdline`, `cli.main`, `cli.compose_common`, `cli.attach` and
`cli.cp`.
"""

from __future__ import annotations

import os
import sys

from berth.cli.compose_common import _one_container, _orch
from berth.cli.main import out
from berth.client import Client
from berth.cmdline import (
    Options,
    UsageError,
    boolean,
    integer,
    optional_string,
    string,
    strings,
)

TYPE_CHECKING = False  # not typing's: importing typing costs ~5 ms of every compose command
if TYPE_CHECKING:
    from typing import Any


class ExecOptions(Options):
    INTERSPERSED = False
    detach = boolean("detach", "d", help="Detached mode: Run command in the background")
    env = strings("env", "e", help="Set environment variables")
    index = integer(
        "index", default=0, help="Index of the container if service has multiple replicas"
    )
    no_TTY = boolean(
        "no-TTY",
        "T",
        help="Disable pseudo-TTY allocation. By default `berth compose exec` allocates a TTY.",
    )
    privileged = boolean("privileged", help="Give extended privileges to the process")
    user = string("user", "u", default="", help="Run the command as this user")
    workdir = string("workdir", "w", default="", help="Path to workdir directory for this command")
    interactive = boolean(
        "interactive", "i", default=True, help="Keep STDIN open even if not attached"
    )


def cmd_exec(c: Client, g: Any, opts: Any, args: list[str]) -> int:
    if len(args) < 2:
        raise UsageError('"exec" requires at least 2 arguments.')
    from berth.cli import attach

    o = _orch(c, g)
    x = _one_container(o, args[0], opts.index)
    argv: list[str] = []
    tty = not opts.no_TTY and sys.stdin.isatty()
    if opts.detach:
        argv.append("-d")
    else:
        argv.append("-i")
        if tty:
            argv.append("-t")
    for e in opts.env:
        argv += ["-e", e]
    if opts.user:
        argv += ["-u", opts.user]
    if opts.workdir:
        argv += ["-w", opts.workdir]
    if opts.privileged:
        argv.append("--privileged")
    eopts, pos = attach.ExecOptions.parse([*argv, x.id, *args[1:]])
    return attach.cmd_exec(c, eopts, pos)


class RunOptions(Options):
    INTERSPERSED = False
    detach = boolean("detach", "d", help="Run container in background and print container ID")
    rm = boolean("rm", help="Automatically remove the container when it exits")
    env = strings("env", "e", help="Set environment variables")
    no_deps = boolean("no-deps", help="Don't start linked services")
    no_TTY = boolean("no-TTY", "T", help="Disable pseudo-TTY allocation (default: auto-detected)")
    name = string("name", default="", help="Assign a name to the container")
    entrypoint = optional_string("entrypoint", help="Override the entrypoint of the image")
    user = string("user", "u", default="", help="Run as specified username or uid")
    workdir = string("workdir", "w", default="", help="Working directory inside the container")
    service_ports = boolean(
        "service-ports", help="Run command with all service's ports enabled and mapped to the host"
    )
    interactive = boolean(
        "interactive", "i", default=True, help="Keep STDIN open even if not attached"
    )
    build = boolean("build", help="Build image before starting container")
    volume = strings("volume", "v", help="Bind mount a volume")
    publish = strings("publish", "p", help="Publish a container's port(s) to the host")
    label = strings("label", "l", help="Add or override a label")
    quiet_pull = boolean("quiet-pull", help="Pull without printing progress information")


def cmd_run(c: Client, g: Any, opts: Any, args: list[str]) -> int:
    import dataclasses
    import secrets

    from berth.cli import attach
    from berth.compose import labels as L
    from berth.compose.orchestrator import UpOptions
    from berth.compose.spec import container_body, endpoint

    if not args:
        raise UsageError('"run" requires at least 1 argument.')
    o = _orch(c, g, (args[0],))
    name = args[0]
    if name not in o.project.services:
        raise UsageError(f"no such service: {name}")
    svc = o.project.services[name]
    deps = [d for d in o.project.order([name]) if d != name]
    if deps and not opts.no_deps:
        o.up(UpOptions(services=deps, no_recreate=True))
        o.waiter.dependencies(svc, deps)  # the one-off waits on its conditions too
        o.ensure_networks([name])
        o.ensure_volumes([name])
    else:
        o.ensure_networks([name])
        o.ensure_volumes([name])
    tty = not opts.no_TTY and sys.stdin.isatty()
    changes: dict[str, Any] = {"tty": tty, "stdin_open": True}
    if opts.entrypoint is not None:
        import shlex

        changes["entrypoint"] = tuple(shlex.split(opts.entrypoint))
    if opts.user:
        changes["user"] = opts.user
    if opts.workdir:
        changes["working_dir"] = opts.workdir
    if not opts.service_ports:
        changes["ports"] = ()
    if opts.publish:
        from berth.compose.model import Port
        from berth.compose.normalize import parse_ports

        changes["ports"] = tuple(changes.get("ports", svc.ports)) + tuple(
            Port(
                target=int(x["target"]),
                published=str(x.get("published") or ""),
                host_ip=str(x.get("host_ip") or ""),
                protocol=str(x["protocol"]),
            )
            for x in parse_ports(list(opts.publish), "--publish")
        )
    if opts.volume:
        from pathlib import Path

        from berth.compose.model import Mount, MountType
        from berth.compose.normalize import parse_volume

        extra_mounts = []
        for v in opts.volume:
            m = parse_volume(v, Path(os.getcwd()), "--volume")
            if m["type"] == "volume" and m.get("source") and m["source"] not in o.project.volumes:
                raise UsageError(
                    f"invalid volume {v!r}: {m['source']} is not a volume of the project"
                )
            extra_mounts.append(
                Mount(
                    type=MountType(m["type"]),
                    target=m["target"],
                    source=str(m.get("source") or ""),
                    read_only=bool(m.get("read_only", False)),
                )
            )
        kept = [m for m in svc.mounts if m.target not in {x.target for x in extra_mounts}]
        changes["mounts"] = tuple(kept + extra_mounts)
    if opts.label:
        changes["labels"] = {
            **svc.labels,
            **dict(x.split("=", 1) if "=" in x else (x, "") for x in opts.label),
        }
    svc = dataclasses.replace(svc, **changes)
    image_id = o.image_id(svc, UpOptions(build=opts.build))
    cname = opts.name or L.oneoff_name(o.project, svc, secrets.token_hex(6))
    extra = dict(e.split("=", 1) if "=" in e else (e, os.environ.get(e, "")) for e in opts.env)
    body = container_body(
        o.project,
        svc,
        1,
        image_id,
        cname,
        oneoff=True,
        command=args[1:] or None,
        extra_env=extra,
        container_of=o.container_of,
    )
    if svc.networks and not svc.network_mode:
        net = o.project.networks[svc.networks[0].name].name
        body["NetworkingConfig"] = {
            "EndpointsConfig": {net: endpoint(svc, svc.networks[0].name, cname)}
        }
    body["AttachStdin"] = body["AttachStdout"] = body["AttachStderr"] = not opts.detach
    body["StdinOnce"] = not opts.detach
    if opts.rm:
        body["HostConfig"]["AutoRemove"] = True
    cid = o.engine.create(cname, body)
    if opts.detach:
        o.engine.start(cid)
        out(cid)
        return 0
    sopts, pos = attach.StartOptions.parse(["-a", "-i", cid])
    return attach.cmd_start(c, sopts, pos)


class CpOptions(Options):
    index = integer(
        "index", default=0, help="Index of the container if service has multiple replicas"
    )
    archive = boolean("archive", "a", help="Archive mode (copy all uid/gid information)")
    follow_link = boolean("follow-link", "L", help="Always follow symbol link in SRC_PATH")


def cmd_cp(c: Client, g: Any, opts: Any, args: list[str]) -> int:
    """`cp SERVICE:SRC DEST` / `cp SRC SERVICE:DEST`: berth cp on the service's container."""
    if len(args) != 2:
        raise UsageError('"cp" requires exactly 2 arguments.')
    from berth.cli import cp

    o = _orch(c, g)
    conv = []
    for a in args:
        svc, colon, path = a.partition(":")
        if colon and svc in o.project.services:
            conv.append(f"{_one_container(o, svc, opts.index).id}:{path}")
        else:
            conv.append(a)
    flags = (["-a"] if opts.archive else []) + (["-L"] if opts.follow_link else [])
    copts, pos = cp.CpOptions.parse([*flags, *conv])
    return cp.cmd_cp(c, copts, pos)
