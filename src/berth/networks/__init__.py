"""Networks: the default bridge, user-defined bridge networks (IPv4 and IPv6), `host` and
`none`; IPAM; the packet filter rules (NAT out, isolation between networks, for both address
families: `networks.rules`); the name tables the embedded DNS of each container answers from.

The service's truth is typed (`networks.records`: `NetworkRecord`, `IpamConfig`, `Endpoint`);
Docker's JSON for a network is made at the API edge.
User-defined networks' create, remove, prune, list and inspect are `networks.usernets`
(`UserNetworks`, a part `NetworkService` holds and hands its state).

Imports `metadata`, `linux` (netlink), `fs`, `filters`, `errors`. The bridges and rules are set up by the daemon;
a container's veth pair is plugged by its monitor (`linux.netlink`).
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
import threading
from collections.abc import Callable, Sequence
from typing import Any

from berth.errors import Conflict, InvalidArgument, NotFound
from berth.fs import atomic_write
from berth.linux import netlink
from berth.networks import ipam
from berth.networks.locks import Claims
from berth.networks.ports import PortMapper, parse_publish, ps_ports
from berth.networks.records import (
    BRIDGE_NAME_OPT,
    MTU_OPT,
    Driver,
    Endpoint,
    IpamConfig,
    NetworkRecord,
)
from berth.networks.rules import Rules
from berth.networks.usernets import NetConfig as NetConfig
from berth.networks.usernets import NetworkView as NetworkView
from berth.networks.usernets import UserNetworks, _now

log = logging.getLogger(__name__)

_DEFAULT_BRIDGE_OPTIONS = {  # the options dockerd shows on its default bridge
    "com.docker.network.bridge.default_bridge": "true",
    "com.docker.network.bridge.enable_icc": "true",
    "com.docker.network.bridge.enable_ip_masquerade": "true",
    "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
    MTU_OPT: "1500",
}


class NetworkService:
    def __init__(
        self,
        meta: Any,
        cfg: NetConfig,
        *,
        emit: Callable[[str, str, str, dict[str, str]], None] | None = None,
    ) -> None:
        self.meta = meta
        self.cfg = cfg
        # the daemon's event bus: a network's create and destroy are published here
        self.emit = emit or (lambda typ, action, actor, attrs: None)
        self.nets: dict[str, NetworkRecord] = {}
        os.makedirs(cfg.run_dir, exist_ok=True)
        # endpoints of running containers: network id -> container id -> endpoint
        self.endpoints: dict[str, dict[str, Endpoint]] = {}
        self.ports = PortMapper(cfg.chain, lambda net: self.get(net).bridge, iptables=cfg.iptables)
        self.rules4 = Rules(cfg.chain, "iptables")
        self.rules6 = Rules(cfg.chain, "ip6tables")
        self._chains6 = False  # the ip6tables chains are made with the first IPv6 bridge
        self._stale: NetworkRecord | None = None  # the default bridge before its flags changed
        # the bridges and the chain prefix this daemon uses, held against other daemons
        self.claims = Claims()
        # network create, remove and prune, and the rules' repair, run in worker threads:
        # one at a time (two creates of one name were two networks)
        self._lock = threading.RLock()
        # held for moments only (allocate runs on berthd's event loop): a network's removal
        # and a container's endpoint on it exclude each other, so that a network removed has
        # no running container on it, and a starting container's network is not removed
        # under it (the users the API passes to `remove` were read before it ran)
        self._ep_lock = threading.Lock()
        self.usernets = UserNetworks(
            meta,
            cfg,
            self.nets,
            self.endpoints,
            self,
            claims=self.claims,
            rules6=self.rules6,
            lock=self._lock,
            ep_lock=self._ep_lock,
            emit=self.emit,
        )

    # --- state ------------------------------------------------------------------------------
    def load(self) -> None:
        for doc in self.meta.networks():
            rec = NetworkRecord.decode(doc)
            self.nets[rec.id] = rec
        self._default_bridge()
        for name in ("host", "none"):
            if not any(n.name == name for n in self.nets.values()):
                self._add(
                    NetworkRecord(
                        id=secrets.token_hex(32),
                        name=name,
                        created=_now(),
                        driver=Driver.HOST if name == "host" else Driver.NULL,
                    )
                )

    def _default_bridge(self) -> None:
        """The default bridge network as the daemon's flags make it at each start (as
        dockerd): --bip, and --ipv6 with --fixed-cidr-v6 (a unique local /64 without it, kept
        over restarts while IPv6 stays on)."""
        old = next((n for n in self.nets.values() if n.name == "bridge"), None)
        iface = ipaddress.ip_interface(self.cfg.bip)
        pools = [IpamConfig(subnet=str(iface.network), gateway=str(iface.ip))]
        if self.cfg.ipv6:
            kept = old.ipv6 if old is not None else None
            if self.cfg.fixed_cidr_v6:
                net6: ipam.Net = ipaddress.IPv6Network(self.cfg.fixed_cidr_v6)
            elif kept is not None:
                net6 = kept.network
            else:
                net6 = ipam.free_subnet6([c.network for n in self._records() for c in n.ipam])
            for n in self._records():
                if n.name != "bridge" and any(net6.overlaps(c.network) for c in n.ipam):
                    raise InvalidArgument(
                        f"--fixed-cidr-v6 {net6} overlaps the subnet of network {n.name}"
                    )
            # dockerd shows the subnet alone; the bridge has its first address
            pools.append(
                IpamConfig(subnet=str(net6), gateway=str(next(net6.hosts())), gateway_shown=False)
            )
        rec = NetworkRecord(
            id=old.id if old is not None else secrets.token_hex(32),
            name="bridge",
            driver=Driver.BRIDGE,
            created=old.created if old is not None else _now(),
            ipam=tuple(pools),
            enable_ipv6=self.cfg.ipv6,
            options={**_DEFAULT_BRIDGE_OPTIONS, BRIDGE_NAME_OPT: self.cfg.bridge},
            bridge=self.cfg.bridge,
        )
        if rec != old:
            self._add(rec)
            # the pools it had no more: their addresses and rules go at set-up (those of a
            # daemon stopped with containers running, which kept them)
            self._stale = old

    def _add(self, rec: NetworkRecord) -> NetworkRecord:
        self.nets[rec.id] = rec
        self.meta.put_network(rec.id, rec.name, rec.encode())
        return rec

    def _records(self) -> builtins.list[NetworkRecord]:
        """The networks now: a copy, as worker threads add and remove them while the event
        loop reads (iterating the dict itself could fail with 'changed size')."""
        return builtins.list(self.nets.values())

    def get(self, ref: str) -> NetworkRecord:
        """The network named `ref`, or with that ID or unique ID prefix."""
        for rec in self._records():
            if ref in (rec.name, rec.id):
                return rec
        matches = [rec for rec in self._records() if rec.id.startswith(ref)]
        if ref and len(matches) == 1:
            return matches[0]
        raise NotFound(f"network {ref} not found")

    def resolve(self, ref: str) -> dict[str, Any]:
        """The few fields of a network the container service still reads by key (Id, Name,
        Driver, Internal, IPAM.Config[].Gateway, Options): a view of its record, to go once
        that service takes `get`'s NetworkRecord."""
        rec = self.get(ref)
        return {
            "Id": rec.id,
            "Name": rec.name,
            "Driver": str(rec.driver),
            "Internal": rec.internal,
            "EnableIPv6": rec.enable_ipv6,
            "Options": dict(rec.options),
            "IPAM": {"Config": [{"Subnet": c.subnet, "Gateway": c.gateway} for c in rec.ipam]},
        }

    # --- user-defined networks: `UserNetworks`' ---------------------------------------------
    def create(
        self,
        name: str,
        *,
        driver: str = "bridge",
        subnet: str = "",
        gateway: str = "",
        ip_range: str = "",
        ipam: Sequence[IpamConfig] = (),
        ipam_driver: str = "default",
        ipam_options: dict[str, str] | None = None,
        enable_ipv6: bool = False,
        enable_ipv4: bool = True,
        internal: bool = False,
        attachable: bool = False,
        options: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
    ) -> NetworkRecord:
        return self.usernets.create(
            name,
            driver=driver,
            subnet=subnet,
            gateway=gateway,
            ip_range=ip_range,
            ipam=ipam,
            ipam_driver=ipam_driver,
            ipam_options=ipam_options,
            enable_ipv6=enable_ipv6,
            enable_ipv4=enable_ipv4,
            internal=internal,
            attachable=attachable,
            options=options,
            labels=labels,
        )

    def prune(
        self,
        users_of: Callable[[str], builtins.list[str]],
        filters: dict[str, builtins.list[str]] | None = None,
    ) -> builtins.list[NetworkRecord]:
        return self.usernets.prune(users_of, filters)

    def remove(self, ref: str, users: builtins.list[str]) -> None:
        self.usernets.remove(ref, users)

    def list(
        self, filters: dict[str, builtins.list[str]] | None = None
    ) -> builtins.list[NetworkView]:
        return self.usernets.list(filters)

    def inspect(self, ref: str) -> NetworkView:
        return self.usernets.inspect(ref)

    # --- set-up -----------------------------------------------------------------------------
    def claim(self) -> None:
        """Hold the default bridge, the chain prefix and every bridge network's bridge against
        other daemons (`networks.locks`), before anything is set up: Conflict, with nothing
        held, if another berthd uses one of them. Held until the daemon exits."""
        try:
            self.claims.claim("bridge", self.cfg.bridge, "bridge")
            self.claims.claim("chain", self.cfg.chain, "iptables chain prefix")
            for rec in builtins.list(self.nets.values()):
                if rec.driver == Driver.BRIDGE:
                    self.claims.claim("bridge", rec.bridge, f"bridge of network {rec.name}:")
        except Conflict:
            self.claims.release_all()
            raise

    def check_rules(self) -> bool:
        """Put the daemon's packet filter rules back if they were removed under it (an
        `iptables -F`/`-X`, a firewalld reload), as dockerd does on firewalld's reload; True if
        it did. Called periodically by the daemon and before each network create; cheap when
        all is in place (four `iptables -C`)."""
        if not self.cfg.iptables:
            return False
        with self._lock:
            if (
                self.rules4.intact()
                and self.ports.intact()
                and (not self._chains6 or self.rules6.intact())
            ):
                return False
            log.warning(
                "the iptables rules of chain %s were removed (a firewall reload?): "
                "putting them back",
                self.cfg.chain,
            )
            self.rules4.chains()
            if self._chains6:
                self.rules6.chains()
            for rec in builtins.list(self.nets.values()):
                if rec.driver == Driver.BRIDGE:
                    self._bridge_rules(rec, add=True)
            self.ports.reapply()  # in front of the bridges' last rules, as publish does
            return True

    def setup(self) -> None:
        """At start: bridges and rules for every bridge network."""
        if self.cfg.ip_forward:
            with contextlib.suppress(OSError), open("/proc/sys/net/ipv4/ip_forward", "w") as f:
                f.write("1")
        with self._lock:
            if self.cfg.iptables:
                self.rules4.chains()
                self.ports.setup()
                self.ports.clear_stale()
            self._drop_stale()
            for rec in self.nets.values():
                if rec.driver == Driver.BRIDGE:
                    self._bring_up(rec)

    def _drop_stale(self) -> None:
        old, self._stale = self._stale, None
        if old is None:
            return
        now = self.get("bridge").ipam
        for c in old.ipam:
            if c in now:
                continue
            if self.cfg.iptables:
                (self.rules6 if c.v6 else self.rules4).bridge(
                    old.bridge, c.subnet, internal=old.internal, add=False
                )
            netlink.remove_address(old.bridge, f"{c.gateway}/{c.network.prefixlen}")

    def _bring_up(self, rec: NetworkRecord) -> None:
        v4, v6 = rec.ipv4, rec.ipv6
        if v6 is not None and self.cfg.iptables and not self._chains6:
            self.rules6.chains()  # raises if ip6tables is missing: nothing made yet
            self._chains6 = True
        mtu = rec.mtu or 1500
        if v4 is not None:
            netlink.ensure_bridge(rec.bridge, f"{v4.gateway}/{v4.network.prefixlen}", mtu)
        if v6 is not None:
            if v4 is not None:  # the bridge is there: IPv6 on it before its address
                with (
                    contextlib.suppress(OSError),
                    open(f"/proc/sys/net/ipv6/conf/{rec.bridge}/disable_ipv6", "w") as f,
                ):
                    f.write("0")
            netlink.ensure_bridge(rec.bridge, f"{v6.gateway}/{v6.network.prefixlen}", mtu)
            if self.cfg.ip_forward:
                # as dockerd (libnetwork's setupIPv6Forwarding): containers reach out over
                # IPv6 through the host, masqueraded by the ip6tables rules
                for conf in ("default", "all"):
                    with (
                        contextlib.suppress(OSError),
                        open(f"/proc/sys/net/ipv6/conf/{conf}/forwarding", "w") as f,
                    ):
                        f.write("1")
        if self.cfg.iptables:
            self._bridge_rules(rec, add=True)

    def _bridge_rules(self, rec: NetworkRecord, *, add: bool) -> None:
        for rules, c in ((self.rules4, rec.ipv4), (self.rules6, rec.ipv6)):
            if c is not None:
                rules.bridge(rec.bridge, c.subnet, internal=rec.internal, add=add)

    def teardown(self) -> None:
        """At a shutdown with no container running: bridges and rules go (those of both
        address families)."""
        with self._lock:
            for rec in self.nets.values():
                if rec.driver == Driver.BRIDGE:
                    if self.cfg.iptables:
                        self._bridge_rules(rec, add=False)
                    netlink.delete_link(rec.bridge)
            if self.cfg.iptables:
                self.ports.teardown()
                self.rules4.remove_chains()
                self.rules6.remove_chains()
                self._chains6 = False

    # --- endpoints --------------------------------------------------------------------------
    def allocate(
        self,
        ref: str,
        cid: str,
        *,
        name: str,
        aliases: builtins.list[str],
        ip: str = "",
        ifname: str = "eth0",
        mac: str = "",
        ip6: str = "",
        link_local: Sequence[str] = (),
        driver_opts: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Addresses and a link for a starting container on a bridge (or macvlan, ipvlan)
        network; the endpoint in the form the container service keeps."""
        with self._ep_lock:  # not while the network is being removed (see _ep_lock)
            return self._allocate(
                ref,
                cid,
                name=name,
                aliases=aliases,
                ip=ip,
                ifname=ifname,
                mac=mac,
                ip6=ip6,
                link_local=link_local,
                driver_opts=driver_opts,
            )

    def _allocate(
        self,
        ref: str,
        cid: str,
        *,
        name: str,
        aliases: builtins.list[str],
        ip: str,
        ifname: str,
        mac: str,
        ip6: str,
        link_local: Sequence[str],
        driver_opts: dict[str, str] | None,
    ) -> dict[str, Any]:
        rec = self.get(ref)
        if mac and not re.fullmatch(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}", mac):
            raise InvalidArgument(f"invalid MAC address: {mac}")
        for addr in link_local:
            if not ipam.ip_address(addr, "link-local IP").is_link_local:
                raise InvalidArgument(f"invalid link-local IP address: {addr}")
        eps = self.endpoints.get(rec.id, {})
        v4, v6 = rec.ipv4, rec.ipv6
        if v4 is None and v6 is None:
            raise InvalidArgument(f"network {rec.name} has no address pool")
        for want, pool in ((ip, v4), (ip6, v6)):
            if want and pool is None:
                raise InvalidArgument(
                    f"Invalid address {want}: It does not belong to any of this network's subnets"
                )
        addr4 = ipam.address(rec.name, v4, ip, {e.ip for e in eps.values()}) if v4 else ""
        addr6 = ""
        if v6 is not None:
            used6 = {e.ip6 for e in eps.values()}
            # on the default bridge, as dockerd: the address made of the prefix and the MAC
            derived = (
                ipam.mac_derived(v6, mac or netlink.mac_for(addr4), used6)
                if (rec.name == "bridge" and addr4)
                else ""
            )
            addr6 = ipam.address(rec.name, v6, ip6 or derived, used6)
        ep = Endpoint(
            network=rec.id,
            name=name,
            aliases=builtins.list(aliases),
            ip=addr4,
            prefix=v4.network.prefixlen if v4 is not None else 0,
            gateway="" if rec.internal or v4 is None else v4.gateway,
            # an IPv6-only endpoint's MAC is made of its address's last four bytes
            mac=mac
            or netlink.mac_for(
                addr4 or str(ipaddress.IPv4Address(ipaddress.IPv6Address(addr6).packed[-4:]))
            ),
            endpoint=secrets.token_hex(32),
            bridge=rec.bridge,
            host_if="vb" + secrets.token_hex(6)[:11],
            ifname=ifname,
            kind="veth" if rec.driver == Driver.BRIDGE else str(rec.driver),
            parent=rec.parent,
            mode=rec.mode,
            ip6=addr6,
            prefix6=v6.network.prefixlen if v6 is not None else 0,
            gateway6=v6.gateway if v6 is not None and not rec.internal else "",
            link_local=builtins.list(link_local),
            driver_opts=dict(driver_opts or {}),
            mtu=rec.mtu,
            requested_ip=ip,
            requested_ip6=ip6,
        )
        self.endpoints.setdefault(rec.id, {})[cid] = ep
        self._write_hosts(rec.id)
        return ep.to_dict()

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
                self.endpoints.setdefault(ep["network"], {})[cid] = Endpoint.from_dict(ep)
                self._write_hosts(ep["network"])

    def reclaim_links(self, known: set[str]) -> int:
        """At start, once running containers are restored: the veths on this daemon's bridges
        that no running container's record names go (a daemon killed between a monitor's
        plug and the record's save left one; its address was never recorded as taken, so it
        would be handed out again). Returns how many went."""
        gone = 0
        with self._lock:
            for rec in self.nets.values():
                if rec.driver != Driver.BRIDGE:
                    continue
                for link in netlink.bridge_ports(rec.bridge):
                    if link.startswith("vb") and link not in known:
                        log.warning(
                            "network %s: removing veth %s, which no container holds", rec.name, link
                        )
                        netlink.delete_link(link)
                        gone += 1
        return gone

    def _hosts_file(self, nid: str) -> str:
        return os.path.join(self.cfg.run_dir, f"{nid[:16]}.json")

    def hosts_files(self, eps: builtins.list[dict[str, Any]]) -> builtins.list[str]:
        return [self._hosts_file(ep["network"]) for ep in eps]

    def _write_hosts(self, nid: str) -> None:
        """name → addresses on this network (IPv4, and IPv6 where it has it), for the embedded
        DNS (names, aliases, short IDs)."""
        table: dict[str, list[str]] = {}
        for cid, ep in self.endpoints.get(nid, {}).items():
            for n in {ep.name, cid[:12], *ep.aliases}:
                table.setdefault(n.lower(), []).extend(a for a in (ep.ip, ep.ip6) if a)
        # as before: no fsync (the run directory's copy of what the database holds, made
        # again at start; it is written on every container's start)
        atomic_write(self._hosts_file(nid), json.dumps(table).encode(), sync=False)

    def user_defined(self, ref: str) -> bool:
        return not self.get(ref).predefined


def link_spec(ep: dict[str, Any]) -> dict[str, str]:
    """What a container's shim needs to plumb one endpoint (`linux.netlink.Endpoint`'s
    fields), from the endpoint the container service keeps."""
    spec = {
        k: str(ep.get(k) or "")
        for k in (
            "bridge",
            "host_if",
            "ifname",
            "gateway",
            "mac",
            "kind",
            "parent",
            "mode",
            "gateway6",
            "address6",
            "link_local_ips",
        )
    }
    spec["address"] = f"{ep['ip']}/{ep['prefix']}" if ep["ip"] else ""  # "": IPv6 only
    spec["mtu"] = str(ep.get("mtu") or 0)
    return spec


__all__ = [
    "BRIDGE_NAME_OPT",
    "Driver",
    "Endpoint",
    "IpamConfig",
    "MTU_OPT",
    "NetConfig",
    "NetworkRecord",
    "NetworkService",
    "NetworkView",
    "link_spec",
    "parse_publish",
    "ps_ports",
]
