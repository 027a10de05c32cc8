"""The `network` commands.
"""

from __future__ import annotations

from berth.cli import fmt
from berth.cli.inspect import _inspect_each
from berth.cli.main import _each, out, parse_filters
from berth.client import Client
from berth.cmdline import Options, UsageError, boolean, string, strings

TYPE_CHECKING = False  # not typing's: importing typing costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any


class NetworkCreateOptions(Options):
    driver = string("driver", "d", default="bridge", help="Driver to manage the Network")
    subnet = strings("subnet", help="Subnet in CIDR format that represents a network segment")
    gateway = strings("gateway", help="IPv4 or IPv6 Gateway for the master subnet")
    ip_range = strings("ip-range", help="Allocate container ip from a sub-range")
    internal = boolean("internal", help="Restrict external access to the network")
    opt = strings("opt", "o", help="Set driver specific options")
    label = strings("label", help="Set metadata on a network")
    attachable = boolean("attachable", help="Enable manual container attachment")


def cmd_network_create(c: Client, opts: NetworkCreateOptions, args: list[str]) -> int:
    if len(args) != 1:
        raise UsageError('"network create" requires exactly 1 argument.')
    ipam: dict[str, Any] = {}
    if opts.subnet:
        ipam["Subnet"] = opts.subnet[0]
    if opts.gateway:
        ipam["Gateway"] = opts.gateway[0]
    if opts.ip_range:
        ipam["IPRange"] = opts.ip_range[0]
    body = {"Name": args[0], "Driver": opts.driver, "Internal": opts.internal,
            "IPAM": {"Driver": "default", "Config": [ipam] if ipam else []},
            "Options": dict(o.split("=", 1) for o in opts.opt if "=" in o),
            "Labels": {lab.partition("=")[0]: lab.partition("=")[2] for lab in opts.label}}
    out(c.create_network(body)["Id"])
    return 0


class NetworkLsOptions(Options):
    quiet = boolean("quiet", "q", help="Only display network IDs")
    filter = strings("filter", "f", help="Provide filter values (e.g. \"driver=bridge\")")
    no_trunc = boolean("no-trunc", help="Do not truncate the output")
    format = string("format", help="Format output using a custom template")


def cmd_network_ls(c: Client, opts: NetworkLsOptions, args: list[str]) -> int:
    nets = sorted(c.networks(parse_filters(opts.filter)), key=lambda n: fmt.natural(n["Name"]))
    rows = [fmt.Row({"ID": n["Id"] if opts.no_trunc else n["Id"][:12], "Name": n["Name"],
                     "Driver": n["Driver"], "Scope": n["Scope"],
                     "IPv4": "true" if n.get("EnableIPv4") else "false",
                     "IPv6": "true" if n.get("EnableIPv6") else "false",
                     "Internal": "true" if n.get("Internal") else "false",
                     "Labels": fmt.labels_text(n.get("Labels")),
                     "CreatedAt": fmt.go_time(n.get("Created") or "")},
                    n.get("Labels"), "*network.networkContext") for n in nets]
    if opts.quiet:
        for r in rows:
            out(r["ID"])
        return 0
    fmt.render(rows, opts.format, [("NETWORK ID", "ID"), ("NAME", "Name"),
                                      ("DRIVER", "Driver"), ("SCOPE", "Scope")])
    return 0


def cmd_network_inspect(c: Client, opts: NetworkInspectOptions, args: list[str]) -> int:
    return _inspect_each(c.inspect_network, opts.format, args, "network")


def cmd_network_rm(c: Client, opts: NetworkRmOptions, args: list[str]) -> int:
    def rm(name: str) -> None:
        c.remove_network(name)
    return _each(c, args, "network rm", rm, "remove")


def cmd_network_prune(c: Client, opts: NetworkPruneOptions, args: list[str]) -> int:
    res = c.prune_networks(parse_filters(opts.filter))
    deleted = res.get("NetworksDeleted") or []
    if deleted:
        out("Deleted Networks:")
        for d in deleted:
            out(d)
    return 0


class NetworkConnectOptions(Options):
    alias = strings("alias", help="Add network-scoped alias for the container")
    ip = string("ip", help="IPv4 address (e.g., \"172.30.100.104\")")
    link = strings("link", help="Add link to another container")


def cmd_network_connect(c: Client, opts: NetworkConnectOptions, args: list[str]) -> int:
    if len(args) != 2:
        raise UsageError('"network connect" requires exactly 2 arguments.')
    ec: dict[str, Any] = {"Aliases": list(opts.alias)}
    if opts.link:
        ec["Links"] = list(opts.link)
    if opts.ip:
        ec["IPAMConfig"] = {"IPv4Address": opts.ip}
    c.connect_network(args[0], args[1], ec)
    return 0


def cmd_network_disconnect(c: Client, opts: NetworkDisconnectOptions, args: list[str]) -> int:
    if len(args) != 2:
        raise UsageError('"network disconnect" requires exactly 2 arguments.')
    c.disconnect_network(args[0], args[1], force=opts.force)
    return 0


class NetworkInspectOptions(Options):
    format = string("format", "f", help="Format output using a custom template")
    verbose = boolean("verbose", "v", help="Verbose output for diagnostics")


class NetworkRmOptions(Options):
    force = boolean("force", "f", help="Do not error if the network does not exist")


class NetworkPruneOptions(Options):
    force = boolean("force", "f", help="Do not prompt for confirmation")
    filter = strings("filter", help="Provide filter values (e.g. \"until=<timestamp>\")")


class NetworkDisconnectOptions(Options):
    force = boolean("force", "f", help="Force the container to disconnect from a network")
