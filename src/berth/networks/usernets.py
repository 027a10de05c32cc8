"""User-defined networks: their create (and dockerd's checks of it), remove, prune, list and
inspect; the daemon's network config (`NetConfig`) and a network's view (`NetworkView`).

`UserNetworks` is a part of `NetworkService` (`berth.networks`, which re-exports these names),
handed the state it uses; the bridges' set-up stays the service's (`Bridges`).

Imports `linux` (netlink), `filters`, `errors` and the `networks` modules.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from berth.errors import Conflict, Forbidden, InvalidArgument, NotFound, System
from berth.filters import PruneFilter, parse_timestamp
from berth.linux import netlink
from berth.networks import ipam
from berth.networks.locks import Claims
from berth.networks.records import (
    BRIDGE_NAME_OPT,
    Driver,
    Endpoint,
    IpamConfig,
    NetworkRecord,
    mtu_of,
)
from berth.networks.rules import Rules


@dataclass(frozen=True, slots=True, kw_only=True)
class NetConfig:
    bridge: str = "berth0"
    bip: str = "10.88.0.1/16"
    iptables: bool = True
    ip_forward: bool = True
    run_dir: str = "/run/berth/networks"
    pool: str = "10.89.0.0/16"  # where user networks get a /24 when no --subnet is given
    ipv6: bool = False  # IPv6 on the default bridge (--ipv6)
    fixed_cidr_v6: str = ""  # its subnet; "": a unique local /64, picked once

    @property
    def chain(self) -> str:
        return "BERTH" if self.bridge == "berth0" else f"BERTH-{self.bridge[:12]}"


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkView:
    """A network with the endpoints of its running containers (container id -> endpoint)."""

    record: NetworkRecord
    endpoints: dict[str, Endpoint]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Bridges(Protocol):
    """What user networks ask of the service that holds every network and sets up bridges
    and their rules (`NetworkService`; the underscored are private to this package)."""

    def get(self, ref: str) -> NetworkRecord: ...
    def check_rules(self) -> bool: ...
    def _add(self, rec: NetworkRecord) -> NetworkRecord: ...
    def _bring_up(self, rec: NetworkRecord) -> None: ...
    def _bridge_rules(self, rec: NetworkRecord, *, add: bool) -> None: ...
    def _hosts_file(self, nid: str) -> str: ...


class UserNetworks:
    """The user-defined networks: a part of a `NetworkService`, handed its store (`meta`), its
    config, its tables of networks and endpoints (shared, not copied), its locks, bridge
    claims, IPv6 rules and event bus, and the service itself for bridges (`Bridges`)."""

    def __init__(
        self,
        meta: Any,
        cfg: NetConfig,
        nets: dict[str, NetworkRecord],
        endpoints: dict[str, dict[str, Endpoint]],
        bridges: Bridges,
        *,
        claims: Claims,
        rules6: Rules,
        lock: threading.RLock,
        ep_lock: threading.Lock,
        emit: Callable[[str, str, str, dict[str, str]], None],
    ) -> None:
        self.meta = meta
        self.cfg = cfg
        self.nets = nets
        self.endpoints = endpoints
        self.bridges = bridges
        self.claims = claims
        self.rules6 = rules6
        self._lock = lock
        self._ep_lock = ep_lock
        self.emit = emit

    def _records(self) -> builtins.list[NetworkRecord]:
        return builtins.list(self.nets.values())  # a copy: see NetworkService._records

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
        """A user-defined network (a `create` event); its record. `ipam` holds the pools asked
        for (at most one IPv4 and one IPv6 on a bridge, as dockerd); `subnet`, `gateway` and
        `ip_range` are a short form of one of them. A pool's empty gateway is its first host.
        Without `enable_ipv4` (API 1.48), an IPv6-only network: no IPv4 pool, nor addresses."""
        pools = list(ipam)
        if subnet or gateway or ip_range:
            pools.insert(0, IpamConfig(subnet=subnet, gateway=gateway, ip_range=ip_range))
        with self._lock:
            rec = self._create(
                name,
                driver=driver,
                pools=pools,
                ipam_driver=ipam_driver,
                ipam_options=dict(ipam_options or {}),
                enable_ipv6=enable_ipv6,
                enable_ipv4=enable_ipv4,
                internal=internal,
                attachable=attachable,
                options=dict(options or {}),
                labels=dict(labels or {}),
            )
        self.emit("network", "create", rec.id, {"name": rec.name, "type": str(rec.driver)})
        return rec

    def _check_driver(self, driver: str, ipam_driver: str, options: dict[str, str]) -> Driver:
        if driver not in ("bridge", "macvlan", "ipvlan"):
            raise NotFound(
                f"could not find plugin {driver} in v1 plugin registry: plugin not found"
            )
        if ipam_driver not in ("", "default"):
            raise NotFound(
                f"could not find plugin {ipam_driver} in v1 plugin registry: plugin not found"
            )
        mtu_of(options)  # a bad MTU is refused before anything is made
        if driver in ("macvlan", "ipvlan"):
            parent = options.get("parent", "")
            if not parent:
                raise InvalidArgument(
                    f"the {driver} driver needs -o parent=INTERFACE "
                    "(a dummy parent is created by berth in no case)"
                )
            if not netlink.link_exists(parent):
                raise InvalidArgument(f"-o parent interface was not found on the host: {parent}")
            mode = options.get(f"{driver}_mode", "bridge" if driver == "macvlan" else "l2")
            if mode not in (
                ("bridge", "private", "vepa", "passthru")
                if driver == "macvlan"
                else ("l2", "l3", "l3s")
            ):
                raise InvalidArgument(f"unknown {driver}_mode: {mode}")
        return Driver(driver)

    def _create(
        self,
        name: str,
        *,
        driver: str,
        pools: builtins.list[IpamConfig],
        ipam_driver: str,
        ipam_options: dict[str, str],
        enable_ipv6: bool,
        enable_ipv4: bool,
        internal: bool,
        attachable: bool,
        options: dict[str, str],
        labels: dict[str, str],
    ) -> NetworkRecord:
        if not name:
            raise InvalidArgument("network name cannot be empty")
        if any(n.name == name for n in self._records()):
            raise Conflict(f"network with name {name} already exists")
        kind = self._check_driver(driver, ipam_driver, options)
        v4 = [p for p in pools if not p.subnet or ipam.ip_network(p.subnet, "subnet").version == 4]
        v6 = [p for p in pools if p.subnet and ipam.ip_network(p.subnet, "subnet").version == 6]
        if len(v4) > 1 or len(v6) > 1:
            raise InvalidArgument(f"{driver} driver doesn't support multiple subnets")
        if not enable_ipv4 and not enable_ipv6:
            raise InvalidArgument("a network needs IPv4 or IPv6 (or both) enabled")
        if not enable_ipv4 and v4:
            raise InvalidArgument(
                f"IPv4 is disabled on network {name}, but an IPv4 subnet was given"
            )
        configs = [self._pool(v4[0] if v4 else None, 4)] if enable_ipv4 else []
        if v6 or enable_ipv6:
            configs.append(self._pool(v6[0] if v6 else None, 6))
        bridge = ""
        if kind == Driver.BRIDGE:
            bridge = options.get(BRIDGE_NAME_OPT, "") or f"br-{secrets.token_hex(6)}"
            if len(bridge) > 15:
                raise InvalidArgument(f"bridge name {bridge!r} is longer than 15 characters")
            if any(n.bridge == bridge for n in self._records()):
                raise Conflict(f"bridge name {bridge} is already used by another network")
        rec = NetworkRecord(
            id=secrets.token_hex(32),
            name=name,
            driver=kind,
            created=_now(),
            ipam=tuple(configs),
            ipam_driver="default",
            ipam_options=ipam_options,
            enable_ipv6=enable_ipv6,
            internal=internal,
            attachable=attachable,
            options=options,
            labels=labels,
            bridge=bridge,
        )
        if (
            kind == Driver.BRIDGE
            and rec.ipv6 is not None
            and self.cfg.iptables
            and not self.rules6.available()
        ):
            raise System(
                "ip6tables is not installed: an IPv6 network needs it, or berthd "
                "started with --iptables=false"
            )
        if kind == Driver.BRIDGE:
            # another berthd's bridge is refused before it is touched
            self.claims.claim("bridge", bridge, "bridge")
            # rules flushed under the daemon are put back first: the new bridge's go in them
            try:
                self.bridges.check_rules()
            except Exception:
                self.claims.release("bridge", bridge)
                raise
        self.bridges._add(rec)
        if kind != Driver.BRIDGE:
            # no bridge and no iptables: the container's link sits on the parent directly
            return rec
        try:
            self.bridges._bring_up(rec)
        except Exception:
            with contextlib.suppress(Exception):
                if self.cfg.iptables:
                    self.bridges._bridge_rules(rec, add=False)
                netlink.delete_link(rec.bridge)
            self._forget(rec)
            self.claims.release("bridge", bridge)
            raise
        return rec

    def _pool(self, asked: IpamConfig | None, version: int) -> IpamConfig:
        return ipam.pool(
            asked,
            version,
            used=self._used(),
            free4=self.cfg.pool,
            host_overlap=netlink.routes_overlap,
        )

    def _used(self) -> builtins.list[ipam.Net]:
        return [c.network for n in self._records() for c in n.ipam]

    def _forget(self, rec: NetworkRecord) -> None:
        self.nets.pop(rec.id, None)
        self.meta.delete_network(rec.id)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.bridges._hosts_file(rec.id))

    def prune(
        self,
        users_of: Callable[[str], builtins.list[str]],
        filters: dict[str, builtins.list[str]] | None = None,
    ) -> builtins.list[NetworkRecord]:
        """Remove the user-defined networks no container uses that `filters` select (`until`,
        `label`, `label!`); the records of those removed (a `destroy` event each)."""
        selected = PruneFilter.parse(filters)
        deleted = []
        with self._lock:
            for rec in builtins.list(self.nets.values()):
                if rec.predefined or users_of(rec.name):
                    continue
                if not selected.selects(parse_timestamp(rec.created), rec.labels):
                    continue
                self.remove(rec.id, [])
                deleted.append(rec)
        return deleted

    def remove(self, ref: str, users: builtins.list[str]) -> None:
        """Remove a user-defined network that `users` (container IDs) no longer hold; a
        `destroy` event."""
        with self._lock:
            rec = self.bridges.get(ref)
            if rec.predefined:
                raise Forbidden(f"{rec.name} is a pre-defined network and cannot be removed")
            with self._ep_lock:
                if users or self.endpoints.get(rec.id):
                    raise Forbidden(
                        f"error while removing network: network {rec.name} id "
                        f"{rec.id} has active endpoints"
                    )
                # gone for `get` (and so for `allocate`) from here on
                self.nets.pop(rec.id, None)
            try:
                if rec.driver == Driver.BRIDGE:
                    if self.cfg.iptables:
                        self.bridges._bridge_rules(rec, add=False)
                    netlink.delete_link(rec.bridge)
                    self.claims.release("bridge", rec.bridge)
            except BaseException:
                self.nets[rec.id] = rec
                raise
            self._forget(rec)
        self.emit("network", "destroy", rec.id, {"name": rec.name})

    def list(
        self, filters: dict[str, builtins.list[str]] | None = None
    ) -> builtins.list[NetworkView]:
        filters = filters or {}
        out = []
        for rec in sorted(self._records(), key=lambda n: n.created):
            if filters.get("name") and not any(f in rec.name for f in filters["name"]):
                continue
            if filters.get("id") and not any(rec.id.startswith(f) for f in filters["id"]):
                continue
            if filters.get("driver") and str(rec.driver) not in filters["driver"]:
                continue
            if (
                filters.get("type")
                and ("builtin" if rec.predefined else "custom") not in filters["type"]
            ):
                continue
            labels = rec.labels
            if any(
                lab.partition("=")[0] not in labels
                or ("=" in lab and labels[lab.partition("=")[0]] != lab.partition("=")[2])
                for lab in filters.get("label", [])
            ):
                continue
            out.append(self.inspect(rec.id))
        return out

    def inspect(self, ref: str) -> NetworkView:
        rec = self.bridges.get(ref)
        return NetworkView(record=rec, endpoints=dict(self.endpoints.get(rec.id, {})))
