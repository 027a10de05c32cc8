"""The `network` commands."""

from __future__ import annotations

from berth.cli import fmt
from berth.cli.inspect import _inspect_each
from berth.cli.main import _each, out, parse_filters
from berth.client import Client
from berth.cmdline import Options, UsageError, boolean, string, strings, tristate

TYPE_CHECKING = False  # not typing's: importing typing costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any


class NetworkCreateOptions(Options):
    driver = string("driver", "d", default="bridge", help="Driver to manage the Network")
    subnet = strings("subnet", help="Subnet in CIDR format that represents a network segment")
    gateway = strings("gateway", help="IPv4 or IPv6 Gateway for the master subnet")
    ip_range = strings("ip-range", help="Allocate container ip from a sub-range")
    aux_address = strings(
        "aux-address", help="Auxiliary IPv4 or IPv6 addresses used by Network driver"
    )
    ipam_driver = string("ipam-driver", default="default", help="IP Address Management Driver")
    ipam_opt = strings("ipam-opt", help="Set IPAM driver specific options")
    ipv4 = tristate("ipv4", help="Enable or disable IPv4 address assignment")
    ipv6 = boolean("ipv6", help="Enable or disable IPv6 networking")
    internal = boolean("internal", help="Restrict external access to the network")
    opt = strings("opt", "o", help="Set driver specific options")
    label = strings("label", help="Set metadata on a network")
    attachable = boolean("attachable", help="Enable manual container attachment")


def _key_values(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            raise UsageError(f'invalid argument "{item}" for "--{what}" flag: expected key=value')
        out[key] = value
    return out


def _subnet_of(subnet: str, addr: str) -> bool:
    """Whether `addr` (an address or a range in CIDR) lies in `subnet`, as the docker CLI
    matches gateways, ranges and auxiliary addresses to the subnets they belong to."""
    import ipaddress  # noqa: PLC0415 - only network create pays for it

    try:
        net = ipaddress.ip_network(subnet, strict=False)
        other = ipaddress.ip_network(addr, strict=False)
    except ValueError as e:
        raise UsageError(f"invalid CIDR address: {e}") from None
    return other.version == net.version and other.subnet_of(net)  # type: ignore[arg-type]


def consolidate_ipam(
    subnets: list[str], ranges: list[str], gateways: list[str], aux: dict[str, str]
) -> list[dict[str, Any]]:
    """IPAM.Config from the flags, each range, gateway and auxiliary address given to the
    subnet it lies in (the docker CLI's rules and messages)."""
    if len(subnets) < len(ranges) or len(subnets) < len(gateways):
        raise UsageError("every ip-range or gateway must have a corresponding subnet")
    pools: dict[str, dict[str, Any]] = {}
    for s in subnets:
        if any(_subnet_of(s, k) or _subnet_of(k, s) for k in pools):
            raise UsageError("multiple overlapping subnet configuration is not supported")
        pools[s] = {"Subnet": s, "AuxiliaryAddresses": {}}
    for key, what, values in (("IPRange", "range", ranges), ("Gateway", "gateway", gateways)):
        for v in values:
            matched = [s for s in subnets if _subnet_of(s, v)]
            if not matched:
                raise UsageError(f"no matching subnet for {what} {v}")
            for s in matched:
                if pools[s].get(key):
                    raise UsageError(
                        f"cannot configure multiple {what}s ({v}, "
                        f"{pools[s][key]}) on the same subnet ({s})"
                        if what == "range"
                        else f"cannot configure multiple gateways ({v}, "
                        f"{pools[s][key]}) for the same subnet ({s})"
                    )
                pools[s][key] = v
    for name, addr in aux.items():
        matched = [s for s in subnets if _subnet_of(s, addr)]
        if not matched:
            raise UsageError(f"no matching subnet for aux-address {addr}")
        for s in matched:
            pools[s]["AuxiliaryAddresses"][name] = addr
    return list(pools.values())


def network_create_body(name: str, opts: NetworkCreateOptions) -> dict[str, Any]:
    """The body of `POST /networks/create` from `network create`'s options: the IPAM pools
    consolidated as the docker CLI does, key=value options split."""
    config = consolidate_ipam(
        list(opts.subnet),
        list(opts.ip_range),
        list(opts.gateway),
        _key_values(opts.aux_address, "aux-address"),
    )
    return {
        "Name": name,
        "Driver": opts.driver,
        "Internal": opts.internal,
        "Attachable": opts.attachable,
        "EnableIPv6": opts.ipv6,
        # as the docker CLI 28: only where the flag was given (API 1.48)
        **({} if opts.ipv4 is None else {"EnableIPv4": opts.ipv4}),
        "IPAM": {
            "Driver": opts.ipam_driver,
            "Config": config,
            "Options": _key_values(opts.ipam_opt, "ipam-opt"),
        },
        "Options": _key_values(opts.opt, "opt"),
        "Labels": {lab.partition("=")[0]: lab.partition("=")[2] for lab in opts.label},
    }


def endpoint_ipam(ip: str, ip6: str, link_local: list[str]) -> dict[str, Any] | None:
    """An EndpointConfig's IPAMConfig from `--ip`, `--ip6` and `--link-local-ip` (None if
    none is given); empty fields are left out, as the docker CLI sends them."""
    ipam = {
        k: v
        for k, v in (("IPv4Address", ip), ("IPv6Address", ip6), ("LinkLocalIPs", list(link_local)))
        if v
    }
    return ipam or None


def cmd_network_create(c: Client, opts: NetworkCreateOptions, args: list[str]) -> int:
    if len(args) != 1:
        raise UsageError('"network create" requires exactly 1 argument.')
    out(c.create_network(network_create_body(args[0], opts))["Id"])
    return 0


class NetworkLsOptions(Options):
    quiet = boolean("quiet", "q", help="Only display network IDs")
    filter = strings("filter", "f", help='Provide filter values (e.g. "driver=bridge")')
    no_trunc = boolean("no-trunc", help="Do not truncate the output")
    format = string("format", help="Format output using a custom template")


def cmd_network_ls(c: Client, opts: NetworkLsOptions, args: list[str]) -> int:
    nets = sorted(c.networks(parse_filters(opts.filter)), key=lambda n: fmt.natural(n["Name"]))
    rows = [
        fmt.Row(
            {
                "ID": n["Id"] if opts.no_trunc else n["Id"][:12],
                "Name": n["Name"],
                "Driver": n["Driver"],
                "Scope": n["Scope"],
                "IPv4": "true" if n.get("EnableIPv4", True) else "false",
                "IPv6": "true" if n.get("EnableIPv6") else "false",
                "Internal": "true" if n.get("Internal") else "false",
                "Labels": fmt.labels_text(n.get("Labels")),
                "CreatedAt": fmt.go_time(n.get("Created") or ""),
            },
            n.get("Labels"),
            "*network.networkContext",
        )
        for n in nets
    ]
    if opts.quiet:
        for r in rows:
            out(r["ID"])
        return 0
    fmt.render(
        rows,
        opts.format,
        [("NETWORK ID", "ID"), ("NAME", "Name"), ("DRIVER", "Driver"), ("SCOPE", "Scope")],
    )
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
    driver_opt = strings("driver-opt", help="driver options for the network")
    ip = string("ip", help='IPv4 address (e.g., "172.30.100.104")')
    ip6 = string("ip6", help='IPv6 address (e.g., "2001:db8::33")')
    link = strings("link", help="Add link to another container")
    link_local_ip = strings("link-local-ip", help="Add a link-local address for the container")


def cmd_network_connect(c: Client, opts: NetworkConnectOptions, args: list[str]) -> int:
    if len(args) != 2:
        raise UsageError('"network connect" requires exactly 2 arguments.')
    ec: dict[str, Any] = {"Aliases": list(opts.alias)}
    if opts.link:
        ec["Links"] = list(opts.link)
    ipam = endpoint_ipam(opts.ip, opts.ip6, opts.link_local_ip)
    if ipam:
        ec["IPAMConfig"] = ipam
    if opts.driver_opt:
        ec["DriverOpts"] = _key_values(opts.driver_opt, "driver-opt")
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
    filter = strings("filter", help='Provide filter values (e.g. "until=<timestamp>")')


class NetworkDisconnectOptions(Options):
    force = boolean("force", "f", help="Force the container to disconnect from a network")
