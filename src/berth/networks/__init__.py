"""Networks: the default bridge, user-defined bridge networks, `host` and `none`; IPAM; the
iptables rules (NAT out, isolation between networks); the name tables the embedded DNS of
each container answers from.

Imports `metadata`, `linux` (netlink), `errors`. The bridges and rules are set up by the daemon;
a container's veth pair is plugged by its monitor (`linux.netlink.plug`).

iptables chains are named from the daemon's bridge, so private daemons never share them:
PREFIX-FWD (filter FORWARD), PREFIX-ISO1/ISO2 (Docker's two-stage isolation between
bridges), PREFIX-POST (nat POSTROUTING, masquerade).
"""

from __future__ import annotations

import builtins
import contextlib
import ipaddress
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from berth.errors import Conflict, Forbidden, InvalidArgument, NotFound, System, Unavailable
from berth.filters import PruneFilter, parse_timestamp
from berth.fs import atomic_write
from berth.linux import netlink
from berth.networks.ports import PortMapper, iptables, parse_publish, ps_ports

log = logging.getLogger(__name__)

BRIDGE_NAME_OPT = "com.docker.network.bridge.name"


def bridge_of(doc: dict[str, Any]) -> str:
    """The kernel bridge of a bridge network. Kept beside the record's Options, which hold only
    what the user set, as dockerd shows them (docker-compose compares them with its file);
    records from before keep it in Options."""
    return str(doc.get("_bridge") or doc["Options"].get(BRIDGE_NAME_OPT, ""))


def _public(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if not k.startswith("_")}


@dataclass(frozen=True, slots=True, kw_only=True)
class NetConfig:
    bridge: str = "berth0"
    bip: str = "10.88.0.1/16"
    iptables: bool = True
    ip_forward: bool = True
    run_dir: str = "/run/berth/networks"
    pool: str = "10.89.0.0/16"       # where user networks get a /24 when no --subnet is given

    @property
    def chain(self) -> str:
        return "BERTH" if self.bridge == "berth0" else f"BERTH-{self.bridge[:12]}"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class NetworkService:
    def __init__(self, meta: Any, cfg: NetConfig, *,
                 emit: Callable[[str, str, str, dict[str, str]], None] | None = None) -> None:
        self.meta = meta
        self.cfg = cfg
        # the daemon's event bus: a network's create and destroy are published here
        self.emit = emit or (lambda typ, action, actor, attrs: None)
        self.nets: dict[str, dict[str, Any]] = {}
        os.makedirs(cfg.run_dir, exist_ok=True)
        # endpoints of running containers: network id -> container id -> endpoint
        self.endpoints: dict[str, dict[str, dict[str, Any]]] = {}
        self.ports = PortMapper(cfg.chain, lambda net: bridge_of(self.resolve(net)), iptables=cfg.iptables)

    # --- state ------------------------------------------------------------------------------
    def load(self) -> None:
        for doc in self.meta.networks():
            self.nets[doc["Id"]] = doc
        if not any(n["Name"] == "bridge" for n in self.nets.values()):
            iface = ipaddress.ip_interface(self.cfg.bip)
            self._add({"Name": "bridge", "Driver": "bridge", "subnet": str(iface.network),
                       "gateway": str(iface.ip), "bridge": self.cfg.bridge, "default": True})
        for name in ("host", "none"):
            if not any(n["Name"] == name for n in self.nets.values()):
                self._add({"Name": name, "Driver": "host" if name == "host" else "null"})

    def _add(self, spec: dict[str, Any], labels: dict[str, str] | None = None,
             internal: bool = False, ip_range: str = "",
             options: dict[str, str] | None = None) -> dict[str, Any]:
        nid = secrets.token_hex(32)
        config = []
        if spec.get("subnet"):
            c = {"Subnet": spec["subnet"], "Gateway": spec["gateway"]}
            if ip_range:
                c["IPRange"] = ip_range
            config.append(c)
        opts = dict(options or {})
        if spec.get("default"):   # the options dockerd shows on its default bridge
            opts.update({"com.docker.network.bridge.default_bridge": "true",
                         "com.docker.network.bridge.enable_icc": "true",
                         "com.docker.network.bridge.enable_ip_masquerade": "true",
                         "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                         BRIDGE_NAME_OPT: spec["bridge"],
                         "com.docker.network.driver.mtu": "1500"})
        doc = {"Name": spec["Name"], "Id": nid, "Created": _now(), "Scope": "local",
               "Driver": spec["Driver"], "EnableIPv6": False,
               "IPAM": {"Driver": "default", "Options": {}, "Config": config},
               "Internal": internal, "Attachable": False, "Ingress": False,
               "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Containers": {},
               "Options": opts, "Labels": labels or {}}
        if spec["Driver"] == "bridge":
            doc["_bridge"] = spec["bridge"]
        self.nets[nid] = doc
        self.meta.put_network(nid, spec["Name"], doc)
        return doc

    def resolve(self, ref: str) -> dict[str, Any]:
        for d in self.nets.values():
            if d["Name"] == ref or d["Id"] == ref:
                return d
        matches = [d for d in self.nets.values() if d["Id"].startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        raise NotFound(f"network {ref} not found")

    # --- set-up -----------------------------------------------------------------------------
    def setup(self) -> None:
        """At start: bridges and rules for every bridge network."""
        if self.cfg.ip_forward:
            with contextlib.suppress(OSError), open("/proc/sys/net/ipv4/ip_forward", "w") as f:
                f.write("1")
        if self.cfg.iptables:
            self._chains()
            self.ports.setup()
        for doc in self.nets.values():
            if doc["Driver"] == "bridge":
                self._bring_up(doc)

    def _bring_up(self, doc: dict[str, Any]) -> None:
        c = doc["IPAM"]["Config"][0]
        prefix = ipaddress.ip_network(c["Subnet"]).prefixlen
        netlink.ensure_bridge(bridge_of(doc), f"{c['Gateway']}/{prefix}")
        if self.cfg.iptables:
            self._bridge_rules(doc, add=True)

    def _ipt(self, *args: str, table: str = "filter", check: bool = True) -> bool:
        return iptables(*args, table=table, check=check)

    def _chains(self) -> None:
        ch = self.cfg.chain
        for table, chains in (("filter", ("FWD", "ISO1", "ISO2")), ("nat", ("POST",))):
            for c in chains:
                self._ipt("-N", f"{ch}-{c}", table=table, check=False)
        if not self._ipt("-C", "FORWARD", "-j", f"{ch}-FWD", check=False):
            self._ipt("-I", "FORWARD", "-j", f"{ch}-FWD")
        for c in ("ISO1",):
            if not self._ipt("-C", f"{ch}-FWD", "-j", f"{ch}-{c}", check=False):
                self._ipt("-I", f"{ch}-FWD", "-j", f"{ch}-{c}")
        if not self._ipt("-C", "POSTROUTING", "-j", f"{ch}-POST", table="nat", check=False):
            self._ipt("-I", "POSTROUTING", "-j", f"{ch}-POST", table="nat")

    def _bridge_rules(self, doc: dict[str, Any], *, add: bool) -> None:
        ch = self.cfg.chain
        br = bridge_of(doc)
        subnet = doc["IPAM"]["Config"][0]["Subnet"]
        op = "-A" if add else "-D"
        rules: list[tuple[str, list[str]]] = [
            ("filter", [f"{ch}-ISO1", "-i", br, "!", "-o", br, "-j", f"{ch}-ISO2"]),
            ("filter", [f"{ch}-ISO2", "-o", br, "-j", "DROP"]),
            ("filter", [f"{ch}-FWD", "-i", br, "-o", br, "-j", "ACCEPT"]),
        ]
        if doc["Internal"]:
            rules += [("filter", [f"{ch}-FWD", "-i", br, "!", "-o", br, "-j", "DROP"]),
                      ("filter", [f"{ch}-FWD", "-o", br, "!", "-i", br, "-j", "DROP"])]
        else:
            rules += [
                ("filter", [f"{ch}-FWD", "-o", br, "-m", "conntrack", "--ctstate",
                            "RELATED,ESTABLISHED", "-j", "ACCEPT"]),
                ("filter", [f"{ch}-FWD", "-i", br, "!", "-o", br, "-j", "ACCEPT"]),
                ("nat", [f"{ch}-POST", "-s", subnet, "!", "-o", br, "-j", "MASQUERADE"]),
                # nothing else reaches the containers from outside: only what is published
                # (those rules go in front of this one)
                ("filter", [f"{ch}-FWD", "-o", br, "-j", "DROP"]),
            ]
        for table, r in rules:
            exists = self._ipt("-C", *r, table=table, check=False)
            if add and not exists:
                self._ipt(op, *r, table=table)
            elif not add and exists:
                self._ipt(op, *r, table=table, check=False)

    def teardown(self) -> None:
        """At a shutdown with no container running: bridges and rules go."""
        for doc in self.nets.values():
            if doc["Driver"] == "bridge":
                if self.cfg.iptables:
                    self._bridge_rules(doc, add=False)
                netlink.delete_link(bridge_of(doc))
        if self.cfg.iptables:
            self.ports.teardown()
            ch = self.cfg.chain
            self._ipt("-D", "FORWARD", "-j", f"{ch}-FWD", check=False)
            self._ipt("-D", "POSTROUTING", "-j", f"{ch}-POST", table="nat", check=False)
            for table, chains in (("filter", ("FWD", "ISO1", "ISO2")), ("nat", ("POST",))):
                for c in chains:
                    self._ipt("-F", f"{ch}-{c}", table=table, check=False)
                    self._ipt("-X", f"{ch}-{c}", table=table, check=False)

    # --- user networks ----------------------------------------------------------------------
    def create(self, name: str, *, driver: str = "bridge", subnet: str = "", gateway: str = "",
               ip_range: str = "", internal: bool = False, options: dict[str, str] | None = None,
               labels: dict[str, str] | None = None) -> dict[str, Any]:
        """A user-defined network (a `create` event); its record."""
        doc = self._create(name, driver=driver, subnet=subnet, gateway=gateway,
                           ip_range=ip_range, internal=internal, options=options, labels=labels)
        self.emit("network", "create", doc["Id"], {"name": doc["Name"], "type": doc["Driver"]})
        return doc

    def _create(self, name: str, *, driver: str, subnet: str, gateway: str, ip_range: str,
                internal: bool, options: dict[str, str] | None, labels: dict[str, str] | None
                ) -> dict[str, Any]:
        if not name:
            raise InvalidArgument("network name cannot be empty")
        if any(n["Name"] == name for n in self.nets.values()):
            raise Conflict(f"network with name {name} already exists")
        if driver not in ("bridge", "macvlan", "ipvlan"):
            raise NotFound(f'could not find plugin {driver} in v1 plugin registry: '
                           "plugin not found")
        options = dict(options or {})
        if driver in ("macvlan", "ipvlan"):
            parent = options.get("parent", "")
            if not parent:
                raise InvalidArgument(f"the {driver} driver needs -o parent=INTERFACE "
                                      "(a dummy parent is created by berth in no case)")
            if not netlink.link_exists(parent):
                raise InvalidArgument(f"-o parent interface was not found on the host: {parent}")
            mode = options.get(f"{driver}_mode", "bridge" if driver == "macvlan" else "l2")
            if mode not in (("bridge", "private", "vepa", "passthru") if driver == "macvlan"
                            else ("l2", "l3", "l3s")):
                raise InvalidArgument(f"unknown {driver}_mode: {mode}")
        try:
            net = ipaddress.ip_network(subnet) if subnet else self._free_subnet()
        except ValueError as e:
            raise InvalidArgument(f"invalid subnet {subnet}: {e}") from None
        for other in self.nets.values():
            for c in other["IPAM"]["Config"]:
                if net.overlaps(ipaddress.ip_network(c["Subnet"])):
                    raise Forbidden("Pool overlaps with other one on this address space")
        taken = netlink.routes_overlap(str(net)) if driver == "bridge" else None
        if taken:
            raise Forbidden(f"Pool overlaps with other one on this address space ({taken})")
        gw = ipaddress.ip_address(gateway) if gateway else next(net.hosts())
        if gw not in net:
            raise InvalidArgument(f"gateway {gw} is not in subnet {net}")
        if ip_range and not ipaddress.ip_network(ip_range).subnet_of(net):  # type: ignore[arg-type]
            raise InvalidArgument(f"ip-range {ip_range} is not in subnet {net}")
        if driver != "bridge":
            # no bridge and no iptables: the container's link sits on the parent directly
            doc = self._add({"Name": name, "Driver": driver, "subnet": str(net),
                             "gateway": str(gw)}, labels=labels, internal=internal,
                            ip_range=ip_range, options=options)
            return doc
        br = options.get(BRIDGE_NAME_OPT, "") or f"br-{secrets.token_hex(6)}"
        if len(br) > 15:
            raise InvalidArgument(f"bridge name {br!r} is longer than 15 characters")
        doc = self._add({"Name": name, "Driver": "bridge", "subnet": str(net),
                         "gateway": str(gw), "bridge": br}, labels=labels, internal=internal,
                        ip_range=ip_range, options=options)
        try:
            self._bring_up(doc)
        except Exception:
            self._forget(doc)
            raise
        return doc

    def _free_subnet(self) -> ipaddress.IPv4Network:
        used = [ipaddress.ip_network(c["Subnet"]) for n in self.nets.values()
                for c in n["IPAM"]["Config"]]
        for cand in ipaddress.ip_network(self.cfg.pool).subnets(new_prefix=24):
            if not any(cand.overlaps(u) for u in used) and not netlink.routes_overlap(str(cand)):
                return cand  # type: ignore[return-value]
        raise System("no free subnet left in the pool")

    def _forget(self, doc: dict[str, Any]) -> None:
        self.nets.pop(doc["Id"], None)
        self.meta.delete_network(doc["Id"])
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._hosts_file(doc["Id"]))

    def prune(self, users_of: Callable[[str], builtins.list[str]],
              filters: dict[str, builtins.list[str]] | None = None
              ) -> builtins.list[dict[str, Any]]:
        """Remove the user-defined networks no container uses that `filters` select (`until`,
        `label`, `label!`); the records of those removed (a `destroy` event each)."""
        selected = PruneFilter.parse(filters)
        deleted = []
        for doc in builtins.list(self.nets.values()):
            if doc["Name"] in ("bridge", "host", "none") or users_of(doc["Name"]):
                continue
            if not selected.selects(parse_timestamp(doc["Created"]), doc.get("Labels")):
                continue
            self.remove(doc["Id"], [])
            deleted.append(doc)
        return deleted

    def remove(self, ref: str, users: list[str]) -> None:
        """Remove a user-defined network that `users` (container IDs) no longer hold; a
        `destroy` event."""
        doc = self.resolve(ref)
        if doc["Name"] in ("bridge", "host", "none"):
            raise Forbidden(f"{doc['Name']} is a pre-defined network and cannot be removed")
        if users:
            raise Forbidden(f"error while removing network: network {doc['Name']} id "
                            f"{doc['Id']} has active endpoints")
        if doc["Driver"] == "bridge":
            if self.cfg.iptables:
                self._bridge_rules(doc, add=False)
            netlink.delete_link(bridge_of(doc))
        self._forget(doc)
        self.emit("network", "destroy", doc["Id"], {"name": doc["Name"]})

    def list(self, filters: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        filters = filters or {}
        out = []
        for d in sorted(self.nets.values(), key=lambda n: n["Created"]):
            if filters.get("name") and not any(f in d["Name"] for f in filters["name"]):
                continue
            if filters.get("id") and not any(d["Id"].startswith(f) for f in filters["id"]):
                continue
            if filters.get("driver") and d["Driver"] not in filters["driver"]:
                continue
            labels = d.get("Labels") or {}
            if any(lab.partition("=")[0] not in labels or (
                    "=" in lab and labels[lab.partition("=")[0]] != lab.partition("=")[2])
                   for lab in filters.get("label", [])):
                continue
            out.append(self.inspect(d["Id"]))
        return out

    def inspect(self, ref: str) -> dict[str, Any]:
        doc = self.resolve(ref)
        out = _public(doc)
        out["Containers"] = {cid: {"Name": ep["name"], "EndpointID": ep["endpoint"],
                                   "MacAddress": ep["mac"],
                                   "IPv4Address": f"{ep['ip']}/{ep['prefix']}",
                                   "IPv6Address": ""}
                             for cid, ep in self.endpoints.get(doc["Id"], {}).items()}
        return out

    # --- endpoints --------------------------------------------------------------------------
    def allocate(self, ref: str, cid: str, *, name: str, aliases: builtins.list[str],
                 ip: str = "", ifname: str = "eth0", mac: str = "") -> dict[str, Any]:
        """An address and a veth for a starting container on a bridge network."""
        doc = self.resolve(ref)
        if mac and not re.fullmatch(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}", mac):
            raise InvalidArgument(f"invalid MAC address: {mac}")
        c = doc["IPAM"]["Config"][0]
        net = ipaddress.ip_network(c["Subnet"])
        pool = ipaddress.ip_network(c.get("IPRange") or c["Subnet"])
        used = {ep["ip"] for ep in self.endpoints.get(doc["Id"], {}).values()} | {c["Gateway"]}
        if ip:
            if ipaddress.ip_address(ip) not in net:
                raise InvalidArgument(f"Invalid address {ip}: It does not belong to any of "
                                      "this network's subnets")
            if ip in used:
                raise Conflict(f"Address already in use: {ip}")
            addr = ip
        else:
            addr = next((str(h) for h in pool.hosts() if str(h) not in used), "")
            if not addr:
                raise Unavailable(f"no available IPv4 addresses on network {doc['Name']}")
        ep = {"network": doc["Id"], "name": name, "aliases": aliases, "ip": addr,
              "prefix": net.prefixlen, "gateway": "" if doc["Internal"] else c["Gateway"],
              "mac": mac or netlink.mac_for(addr), "endpoint": secrets.token_hex(32),
              "bridge": bridge_of(doc),
              "host_if": "vb" + secrets.token_hex(6)[:11], "ifname": ifname,
              "kind": "veth" if doc["Driver"] == "bridge" else doc["Driver"],
              "parent": doc["Options"].get("parent", ""),
              "mode": doc["Options"].get(f"{doc['Driver']}_mode", "")}
        self.endpoints.setdefault(doc["Id"], {})[cid] = ep
        self._write_hosts(doc["Id"])
        return ep

    def release(self, cid: str) -> None:
        for nid, eps in self.endpoints.items():
            if eps.pop(cid, None) is not None:
                self._write_hosts(nid)

    def release_one(self, cid: str, nid: str) -> None:
        if self.endpoints.get(nid, {}).pop(cid, None) is not None:
            self._write_hosts(nid)

    def restore(self, cid: str, eps: builtins.list[dict[str, Any]]) -> None:
        """A running container found at start-up keeps its addresses."""
        for ep in eps:
            if ep["network"] in self.nets:
                self.endpoints.setdefault(ep["network"], {})[cid] = ep
                self._write_hosts(ep["network"])

    def _hosts_file(self, nid: str) -> str:
        return os.path.join(self.cfg.run_dir, f"{nid[:16]}.json")

    def hosts_files(self, eps: builtins.list[dict[str, Any]]) -> builtins.list[str]:
        return [self._hosts_file(ep["network"]) for ep in eps]

    def _write_hosts(self, nid: str) -> None:
        """name → addresses on this network, for the embedded DNS (names, aliases, short IDs)."""
        table: dict[str, list[str]] = {}
        for cid, ep in self.endpoints.get(nid, {}).items():
            for n in {ep["name"], cid[:12], *ep["aliases"]}:
                table.setdefault(n.lower(), []).append(ep["ip"])
        # as before: no fsync (the run directory's copy of what the database holds, made
        # again at start; it is written on every container's start)
        atomic_write(self._hosts_file(nid), json.dumps(table).encode(), sync=False)

    def user_defined(self, ref: str) -> bool:
        return self.resolve(ref)["Name"] not in ("bridge", "host", "none")


__all__ = ["NetworkService", "NetConfig", "BRIDGE_NAME_OPT", "bridge_of", "parse_publish", "ps_ports"]
