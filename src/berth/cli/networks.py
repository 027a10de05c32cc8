"""The `network` commands.
"""

from __future__ import annotations

from berth.cli import fmt
from berth.cli.common import (
    _each,
    _inspect_each,
    out,
    parse_filters,
)
from berth.cli.flags import Spec, UsageError, flag
from berth.client import Client, q

TYPE_CHECKING = False  # not typing's: importing typing costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any


NETWORK_CREATE = Spec([flag("driver", "d", "str", "bridge", help="Driver to manage the Network"),
                       flag("subnet", kind="list",
                            help="Subnet in CIDR format that represents a network segment"),
                       flag("gateway", kind="list",
                            help="IPv4 or IPv6 Gateway for the master subnet"),
                       flag("ip-range", kind="list", help="Allocate container ip from a sub-range"),
                       flag("aux-address", kind="list",
                            help="Auxiliary IPv4 or IPv6 addresses used by Network driver"),
                       flag("ipam-driver", kind="str", default="default",
                            help="IP Address Management Driver"),
                       flag("ipam-opt", kind="list", help="Set IPAM driver specific options"),
                       flag("ipv6", help="Enable or disable IPv6 networking"),
                       flag("internal", help="Restrict external access to the network"),
                       flag("opt", "o", "list", help="Set driver specific options"),
                       flag("label", kind="list", help="Set metadata on a network"),
                       flag("attachable", help="Enable manual container attachment")])


def _key_values(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            raise UsageError(f'invalid argument "{item}" for "--{what}" flag: '
                             "expected key=value")
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


def consolidate_ipam(subnets: list[str], ranges: list[str], gateways: list[str],
                     aux: dict[str, str]) -> list[dict[str, Any]]:
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
                    raise UsageError(f"cannot configure multiple {what}s ({v}, "
                                     f"{pools[s][key]}) on the same subnet ({s})"
                                     if what == "range" else
                                     f"cannot configure multiple gateways ({v}, "
                                     f"{pools[s][key]}) for the same subnet ({s})")
                pools[s][key] = v
    for name, addr in aux.items():
        matched = [s for s in subnets if _subnet_of(s, addr)]
        if not matched:
            raise UsageError(f"no matching subnet for aux-address {addr}")
        for s in matched:
            pools[s]["AuxiliaryAddresses"][name] = addr
    return list(pools.values())


def network_create_body(name: str, opts: dict[str, Any]) -> dict[str, Any]:
    """The body of `POST /networks/create` from `network create`'s options (by flag name):
    the IPAM pools consolidated as the docker CLI does, key=value options split."""
    config = consolidate_ipam(list(opts["subnet"]), list(opts["ip-range"]),
                              list(opts["gateway"]),
                              _key_values(opts["aux-address"], "aux-address"))
    return {"Name": name, "Driver": opts["driver"], "Internal": bool(opts["internal"]),
            "Attachable": bool(opts["attachable"]), "EnableIPv6": bool(opts["ipv6"]),
            "IPAM": {"Driver": opts["ipam-driver"], "Config": config,
                     "Options": _key_values(opts["ipam-opt"], "ipam-opt")},
            "Options": _key_values(opts["opt"], "opt"),
            "Labels": {lab.partition("=")[0]: lab.partition("=")[2] for lab in opts["label"]}}


def endpoint_ipam(ip: str, ip6: str, link_local: list[str]) -> dict[str, Any] | None:
    """An EndpointConfig's IPAMConfig from `--ip`, `--ip6` and `--link-local-ip` (None if
    none is given); empty fields are left out, as the docker CLI sends them."""
    ipam = {k: v for k, v in (("IPv4Address", ip), ("IPv6Address", ip6),
                              ("LinkLocalIPs", list(link_local))) if v}
    return ipam or None


def cmd_network_create(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    if len(args) != 1:
        raise UsageError('"network create" requires exactly 1 argument.')
    out(c.post("/networks/create", body=network_create_body(args[0], opts))["Id"])
    return 0


NETWORK_LS = Spec([flag("quiet", "q", help="Only display network IDs"),
                   flag("filter", "f", "list",
                        help="Provide filter values (e.g. \"driver=bridge\")"),
                   flag("no-trunc", help="Do not truncate the output"),
                   flag("format", kind="str", default="",
                        help="Format output using a custom template")])


def cmd_network_ls(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    nets = sorted(c.get("/networks", {"filters": parse_filters(opts["filter"])}),
                  key=lambda n: fmt.natural(n["Name"]))
    rows = [fmt.Row({"ID": n["Id"] if opts["no-trunc"] else n["Id"][:12], "Name": n["Name"],
                     "Driver": n["Driver"], "Scope": n["Scope"],
                     "IPv4": "true" if n.get("EnableIPv4", True) else "false",
                     "IPv6": "true" if n.get("EnableIPv6") else "false",
                     "Internal": "true" if n.get("Internal") else "false",
                     "Labels": fmt.labels_text(n.get("Labels")),
                     "CreatedAt": fmt.go_time(n.get("Created") or "")},
                    n.get("Labels"), "*network.networkContext") for n in nets]
    if opts["quiet"]:
        for r in rows:
            out(r["ID"])
        return 0
    fmt.render(rows, opts["format"], [("NETWORK ID", "ID"), ("NAME", "Name"),
                                      ("DRIVER", "Driver"), ("SCOPE", "Scope")])
    return 0


def cmd_network_inspect(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    return _inspect_each(c, opts, args, "network", "/networks/")


def cmd_network_rm(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    def rm(name: str) -> None:
        c.send("DELETE", f"/networks/{q(name)}").close()
    return _each(c, args, "network rm", rm, "remove")


def cmd_network_prune(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    res = c.post("/networks/prune", {"filters": parse_filters(opts["filter"])})
    deleted = res.get("NetworksDeleted") or []
    if deleted:
        out("Deleted Networks:")
        for d in deleted:
            out(d)
    return 0


NETWORK_CONNECT = Spec([flag("alias", kind="list",
                             help="Add network-scoped alias for the container"),
                        flag("driver-opt", kind="list",
                             help="driver options for the network"),
                        flag("ip", kind="str", default="",
                             help="IPv4 address (e.g., \"172.30.100.104\")"),
                        flag("ip6", kind="str", default="",
                             help="IPv6 address (e.g., \"2001:db8::33\")"),
                        flag("link", kind="list", help="Add link to another container"),
                        flag("link-local-ip", kind="list",
                             help="Add a link-local address for the container")])


def cmd_network_connect(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    if len(args) != 2:
        raise UsageError('"network connect" requires exactly 2 arguments.')
    ec: dict[str, Any] = {"Aliases": list(opts["alias"])}
    if opts["link"]:
        ec["Links"] = list(opts["link"])
    ipam = endpoint_ipam(opts["ip"], opts["ip6"], opts["link-local-ip"])
    if ipam:
        ec["IPAMConfig"] = ipam
    if opts["driver-opt"]:
        ec["DriverOpts"] = _key_values(opts["driver-opt"], "driver-opt")
    c.send("POST", f"/networks/{q(args[0])}/connect",
           body={"Container": args[1], "EndpointConfig": ec}).close()
    return 0


def cmd_network_disconnect(c: Client, opts: dict[str, Any], args: list[str]) -> int:
    if len(args) != 2:
        raise UsageError('"network disconnect" requires exactly 2 arguments.')
    c.send("POST", f"/networks/{q(args[0])}/disconnect",
           body={"Container": args[1], "Force": bool(opts["force"])}).close()
    return 0


NETWORK_INSPECT = Spec([flag("format", "f", "str", "",
                             help="Format output using a custom template"),
                        flag("verbose", "v", help="Verbose output for diagnostics")])
NETWORK_RM = Spec([flag("force", "f", help="Do not error if the network does not exist")])
NETWORK_PRUNE = Spec([flag("force", "f", help="Do not prompt for confirmation"),
                      flag("filter", kind="list",
                           help="Provide filter values (e.g. \"until=<timestamp>\")")])
NETWORK_DISCONNECT = Spec([flag("force", "f",
                                help="Force the container to disconnect from a network")])
