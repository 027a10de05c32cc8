"""The container commands but the fast paths (ps in cli/ps.py; run, create, start, exec and
attach in cli/create.py and cli/attach.py): port, logs, stop, restart, kill, rm, wait, rename,
pause, unpause, prune, update, top, stats.
"""

from __future__ import annotations

import sys

from berth.cli import fmt
from berth.cli.main import _each, _simple, err, out, parse_filters
from berth.client import Client
from berth.cmdline import Options, UsageError, boolean, integer, optional_integer, string, strings
from berth.errors import BerthError
from berth.units import parse_size

TYPE_CHECKING = False  # not typing's: importing typing costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any


def cmd_port(c: Client, opts: Options, args: list[str]) -> int:
    if not 1 <= len(args) <= 2:
        raise UsageError('"port" requires at least 1 and at most 2 arguments.')
    ports = c.inspect_container(args[0])["NetworkSettings"].get("Ports") or {}
    want = args[1] if len(args) > 1 else None
    if want and "/" not in want:
        want += "/tcp"
    lines = []
    for key, binds in ports.items():
        if want and key != want:
            continue
        for b in binds or []:
            ip = f"[{b['HostIp']}]" if ":" in b["HostIp"] else b["HostIp"]
            lines.append(f"{ip}:{b['HostPort']}" if want else f"{key} -> {ip}:{b['HostPort']}")
    if want and not lines:
        raise BerthError(f"No public port '{want}' published for {args[0]}")
    for line in sorted(lines, key=_natural):  # the docker CLI's order (sortorder.NaturalLess)
        out(line)
    return 0


def _natural(s: str) -> list[tuple[int, int, str]]:
    """Runs of digits compare as numbers and before any other character; the rest byte by
    byte."""
    out: list[tuple[int, int, str]] = []
    i = 0
    while i < len(s):
        j = i
        while j < len(s) and s[j].isdigit():
            j += 1
        if j > i:
            out.append((0, int(s[i:j]), s[i:j]))
        else:
            out.append((1, 0, s[i]))
            j = i + 1
        i = j
    return out


class LogsOptions(Options):
    follow = boolean("follow", "f", help="Follow log output")
    timestamps = boolean("timestamps", "t", help="Show timestamps")
    tail = string(
        "tail", "n", default="all", help="Number of lines to show from the end of the logs"
    )
    since = string(
        "since",
        help='Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative '
        '(e.g. "42m" for 42 minutes)',
    )
    until = string(
        "until",
        help='Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative '
        '(e.g. "42m" for 42 minutes)',
    )
    details = boolean("details", help="Show extra details provided to logs")


def cmd_logs(c: Client, opts: LogsOptions, args: list[str]) -> int:
    if len(args) != 1:
        raise UsageError('"logs" requires exactly 1 argument.')
    info = c.inspect_container(args[0])
    try:
        since = fmt.parse_time(opts.since) if opts.since else None
        until = fmt.parse_time(opts.until) if opts.until else None
    except ValueError as e:
        raise UsageError(str(e)) from None
    r = c.container_logs(
        info["Id"],
        follow=opts.follow,
        timestamps=opts.timestamps,
        tail=opts.tail,
        since=since,
        until=until,
    )
    from berth.cli.attach import _pump_output

    _pump_output(r, bool(info["Config"]["Tty"]))
    return 0


class StopOptions(Options):
    time = optional_integer("time", "t", help="Seconds to wait before killing the container")
    timeout = optional_integer("timeout", help="Seconds to wait before killing the container")
    signal = string("signal", "s", help="Signal to send to the container")


def cmd_stop(c: Client, opts: StopOptions, args: list[str]) -> int:
    t = opts.time if opts.time is not None else opts.timeout

    def stop(name: str) -> None:
        c.stop_container(name, timeout=t, signal=opts.signal)

    return _each(c, args, "stop", stop, "stop")


def cmd_restart(c: Client, opts: StopOptions, args: list[str]) -> int:
    t = opts.time if opts.time is not None else opts.timeout

    def restart(name: str) -> None:
        c.restart_container(name, timeout=t, signal=opts.signal)

    return _each(c, args, "restart", restart, "restart")


class KillOptions(Options):
    signal = string("signal", "s", help="Signal to send to the container")


def cmd_kill(c: Client, opts: KillOptions, args: list[str]) -> int:
    def kill(name: str) -> None:
        c.kill_container(name, opts.signal)

    return _each(c, args, "kill", kill, "kill")


class RmOptions(Options):
    force = boolean("force", "f", help="Force the removal of a running container (uses SIGKILL)")
    volumes = boolean("volumes", "v", help="Remove anonymous volumes associated with the container")
    link = boolean("link", "l", help="Remove the specified link")


def cmd_rm(c: Client, opts: RmOptions, args: list[str]) -> int:
    def rm(name: str) -> None:
        c.remove_container(name, force=opts.force, volumes=opts.volumes, link=opts.link)

    return _each(c, args, "rm", rm, "remove")


def cmd_wait(c: Client, opts: Options, args: list[str]) -> int:
    if not args:
        raise UsageError('"wait" requires at least 1 argument.')
    rc = 0
    for name in args:
        try:
            out(str(c.wait_container(name).get("StatusCode", 0)))
        except BerthError as e:
            err(f"Error response from daemon: {e}")
            rc = 1
    return rc


def cmd_rename(c: Client, opts: Options, args: list[str]) -> int:
    if len(args) != 2:
        raise UsageError('"rename" requires exactly 2 arguments.')
    c.rename_container(args[0], args[1])
    return 0


class ContainerPruneOptions(Options):
    force = boolean("force", "f", help="Do not prompt for confirmation")
    filter = strings("filter", help='Provide filter values (e.g. "until=<timestamp>")')


def cmd_container_prune(c: Client, opts: ContainerPruneOptions, args: list[str]) -> int:
    res = c.prune_containers(parse_filters(opts.filter))
    deleted = res.get("ContainersDeleted") or []
    if deleted:
        out("Deleted Containers:")
        for d in deleted:
            out(d)
        out()
    out(f"Total reclaimed space: {fmt.size(res.get('SpaceReclaimed', 0))}")
    return 0


class UpdateOptions(Options):
    memory = string("memory", "m", help="Memory limit")
    memory_swap = string(
        "memory-swap", help="Swap limit equal to memory plus swap: -1 to enable unlimited swap"
    )
    cpus = string("cpus", help="Number of CPUs")
    cpu_shares = integer("cpu-shares", "c", help="CPU shares (relative weight)")
    cpuset_cpus = string("cpuset-cpus", help="CPUs in which to allow execution (0-3, 0,1)")
    pids_limit = integer("pids-limit", help="Tune container pids limit (set -1 for unlimited)")
    restart = string("restart", help="Restart policy to apply when a container exits")


def cmd_update(c: Client, opts: UpdateOptions, args: list[str]) -> int:
    body: dict[str, Any] = {}
    try:
        if opts.memory:
            body["Memory"] = parse_size(opts.memory)
        if opts.memory_swap:
            body["MemorySwap"] = -1 if opts.memory_swap == "-1" else parse_size(opts.memory_swap)
    except ValueError as e:
        raise UsageError(f"invalid argument: {e}") from None
    if opts.cpus:
        body["NanoCpus"] = int(round(float(opts.cpus) * 1e9))
    for key, value in (
        ("CpuShares", opts.cpu_shares),
        ("PidsLimit", opts.pids_limit),
        ("CpusetCpus", opts.cpuset_cpus),
    ):
        if value:
            body[key] = value
    if opts.restart:
        name, _, count = opts.restart.partition(":")
        body["RestartPolicy"] = {"Name": name, "MaximumRetryCount": int(count or 0)}

    def one(name: str) -> None:
        c.update_container(name, body)

    return _each(c, args, "update", one, "update")


def cmd_top(c: Client, opts: Options, args: list[str]) -> int:
    if not args:
        raise UsageError('"top" requires at least 1 argument.')
    top = c.container_top(args[0], " ".join(args[1:]))
    rows = [dict(zip(top["Titles"], p, strict=False)) for p in top["Processes"]]
    fmt.render(rows, "", [(t, t) for t in top["Titles"]])
    return 0


class StatsOptions(Options):
    no_stream = boolean("no-stream", help="Disable streaming stats and only pull the first result")
    all = boolean("all", "a", help="Show all containers")
    no_trunc = boolean("no-trunc", help="Do not truncate output")
    format = string("format", help="Format output using a custom template")


def _stats_row(s: dict[str, Any]) -> dict[str, str]:
    cpu, pre = s.get("cpu_stats", {}), s.get("precpu_stats", {})
    d_cpu = cpu.get("cpu_usage", {}).get("total_usage", 0) - pre.get("cpu_usage", {}).get(
        "total_usage", 0
    )
    d_sys = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    pct = d_cpu / d_sys * cpu.get("online_cpus", 1) * 100 if d_sys > 0 and d_cpu > 0 else 0.0
    mem = s.get("memory_stats", {})
    usage = mem.get("usage", 0) - mem.get("stats", {}).get("total_inactive_file", 0)
    limit = mem.get("limit", 0)
    return {
        "ID": s.get("id", "")[:12],
        "Container": s.get("id", "")[:12],
        "Name": s.get("name", "").lstrip("/"),
        "CPUPerc": f"{pct:.2f}%",
        "MemUsage": f"{fmt.binary_size(usage)} / {fmt.binary_size(limit)}",
        "MemPerc": f"{usage / limit * 100:.2f}%" if limit else "0.00%",
        "NetIO": "{} / {}".format(
            fmt.size(sum(n.get("rx_bytes", 0) for n in (s.get("networks") or {}).values())),
            fmt.size(sum(n.get("tx_bytes", 0) for n in (s.get("networks") or {}).values())),
        ),
        "BlockIO": "{} / {}".format(
            *(
                fmt.size(
                    sum(
                        e.get("value", 0)
                        for e in (s.get("blkio_stats") or {}).get("io_service_bytes_recursive")
                        or []
                        if e.get("op", "").lower() == op
                    )
                )
                for op in ("read", "write")
            )
        ),
        "PIDs": str(s.get("pids_stats", {}).get("current", 0)),
    }


def cmd_stats(c: Client, opts: StatsOptions, args: list[str]) -> int:
    names = args or [ct["Id"] for ct in c.containers(all=opts.all)]
    cols = [
        ("CONTAINER ID", "ID"),
        ("NAME", "Name"),
        ("CPU %", "CPUPerc"),
        ("MEM USAGE / LIMIT", "MemUsage"),
        ("MEM %", "MemPerc"),
        ("NET I/O", "NetIO"),
        ("BLOCK I/O", "BlockIO"),
        ("PIDS", "PIDs"),
    ]
    if opts.no_stream:
        rows = [
            fmt.Row(
                _stats_row(c.container_stats(n)), None, "*container.statsContext", has_labels=False
            )
            for n in names
        ]
        fmt.render(rows, opts.format, cols)
        return 0
    streams = [c.stream_stats(n).iter_json() for n in names]
    try:
        while True:
            rows = [
                fmt.Row(_stats_row(next(st)), None, "*container.statsContext", has_labels=False)
                for st in streams
            ]
            sys.stdout.write("\x1b[2J\x1b[H")
            fmt.render(rows, opts.format, cols)
            sys.stdout.flush()
    except StopIteration:
        return 0


cmd_pause = _simple(Client.pause_container, "pause")
cmd_unpause = _simple(Client.unpause_container, "unpause")
