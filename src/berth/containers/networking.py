"""Networking of containers: the networks they ask for, their endpoints, /etc files, published ports, connect/disconnect.

A part of the container service (see `berth.containers.service`), holding the shared
`ContainerStore`. Legacy links are `containers.links` (`LegacyLinks`, a part `Networking` holds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from berth.containers import etchosts
from berth.containers.hostconfig import HostConfig
from berth.containers.links import LegacyLinks
from berth.containers.links import link_env as link_env
from berth.containers.links import parse_link as parse_link
from berth.containers.ports import Port, PortBinding, PortMap, port_map_to_json
from berth.containers.record import ContainerEndpoint, ContainerRecord, Link, NetworkRequest
from berth.containers.store import ContainerStore
from berth.errors import (
    Conflict,
    Forbidden,
    InvalidArgument,
    NotFound,
    System,
)
from berth.networks import NetworkService, link_spec
from berth.shim import protocol

log = logging.getLogger(__name__)


def _why(answer: protocol.Answer) -> str | None:
    return answer.why if isinstance(answer, protocol.CommandFailed) else None


def _request(net: str, ec: NetworkRequest) -> NetworkRequest:
    """What a container asks of one network (its EndpointConfig, read at the API edge), as its
    record keeps it: on the network's own name, and without links (see their callers)."""
    return NetworkRequest(
        net=net,
        aliases=list(ec.aliases),
        ip=ec.ip,
        mac=ec.mac,
        ip6=ec.ip6,
        link_local=list(ec.link_local),
        driver_opts=dict(ec.driver_opts),
    )


class Networking:
    """The networks of containers: what they ask for at create, their endpoints while they
    run, their /etc files, published ports, legacy links, `network connect`/`disconnect`."""

    def __init__(self, store: ContainerStore, networks: NetworkService | None) -> None:
        self.store = store
        self.cfg = store.cfg
        self.networks = networks
        self.links = LegacyLinks(store, networks)

    # --- legacy links: `LegacyLinks`' ----------------------------------------------------------
    def register_links(self, hc: HostConfig, nets: list[NetworkRequest]) -> list[Link]:
        return self.links.register_links(hc, nets)

    def links_view(self, rec: ContainerRecord) -> list[str] | None:
        return self.links.links_view(rec)

    def links_env(self, rec: ContainerRecord) -> list[str]:
        return self.links.links_env(rec)

    def remove_link(self, ref: str) -> None:
        self.links.remove_link(ref)

    def network_users(self, net: str) -> list[str]:
        return [d.id for d in self.store.records.values() if any(n.net == net for n in d.nets)]

    async def monitor_command(self, cid: str, cmd: protocol.Command) -> protocol.Answer:
        live = self.store.live[cid]
        if live.channel is None:
            raise Conflict(f"Container {cid} is not running")
        async with live.lock:
            live.answer = asyncio.get_running_loop().create_future()
            live.channel.command(cmd)
            try:
                return await asyncio.wait_for(live.answer, 30)
            finally:
                live.answer = None

    async def connect(self, net: str, ref: str, ec: NetworkRequest) -> None:
        """`network connect`; a running container gets its interface plugged at once."""
        rec = self.store.resolve(ref)
        assert self.networks is not None
        n = self.networks.resolve(net)
        if n["Driver"] in ("host", "null"):
            raise Forbidden(
                f"container cannot be disconnected from host network or "
                f"connected to {n['Name']} network"
            )
        if rec.host_config.network_mode in (
            "host",
            "none",
        ) or rec.host_config.network_mode.startswith("container:"):
            raise Forbidden(
                "container sharing network namespace with another container or "
                "host cannot be connected to any other network"
            )
        nets = rec.nets
        if any(x.net == n["Name"] for x in nets):
            raise Forbidden(
                f"endpoint with name {rec.name[1:]} already exists in network {n['Name']}"
            )
        entry = _request(n["Name"], ec)
        if ec.links and self.networks.user_defined(n["Name"]):
            for link in ec.links:  # their format; a target may come later (dockerd)
                parse_link(link)
            entry.links = list(ec.links)
        if rec.state.status.is_running:
            eps = rec.endpoints
            used = {e.ifname for e in eps}
            ifname = next(f"eth{i}" for i in range(64) if f"eth{i}" not in used)
            ep = ContainerEndpoint.of(
                self.networks.allocate(
                    n["Name"],
                    rec.id,
                    name=rec.name[1:],
                    aliases=entry.aliases,
                    ip=entry.ip,
                    ifname=ifname,
                    mac=entry.mac,
                    ip6=entry.ip6,
                    link_local=entry.link_local,
                    driver_opts=entry.driver_opts,
                ),
                n["Name"],
            )
            plug = link_spec(ep.to_dict()) | {"gateway": "", "gateway6": ""}
            forward = self.dns_forward([*(x.net for x in nets), n["Name"]])
            user_net = self.networks.user_defined(n["Name"])
            # a container started on the default bridge has no embedded DNS yet: its monitor
            # starts one now, answering from the tables of all its user-defined networks
            dns = (
                protocol.DnsConfig(
                    hosts=tuple(
                        self.networks.hosts_files(
                            [
                                e.to_dict()
                                for e in [*eps, ep]
                                if self.networks.user_defined(e.netname)
                            ]
                        )
                    ),
                    upstream=tuple(self.upstream_dns(rec.host_config, False)),
                    forward=forward,
                    links=self.dns_links([*nets, entry]),
                )
                if user_net
                else None
            )
            answer = await self.monitor_command(
                rec.id,
                protocol.Plug(
                    endpoint=plug,
                    hosts=self.networks.hosts_files([ep.to_dict()])[0],
                    dns_forward=forward,
                    dns=dns,
                    links=self.dns_links([entry]),
                ),
            )
            if not isinstance(answer, protocol.Plugged):
                self.networks.release_one(rec.id, n["Id"])
                raise System(f"connect {rec.name[1:]} to {n['Name']}: {_why(answer)}")
            eps.append(ep)
            # as dockerd: the new address names the container in its own /etc/hosts
            etchosts.add(rec.hosts_path, self._own_records(rec, ep))
            if user_net:
                # as dockerd: the container's resolv.conf now names the embedded DNS (and
                # keeps it after a disconnect; the server forwards other names upstream)
                self.write_resolv_conf(rec, embedded=True)
        nets.append(entry)
        self.store.save(rec)
        self.store.event(rec, "connect", network=n["Name"])

    async def disconnect(self, net: str, ref: str, *, force: bool = False) -> None:
        rec = self.store.resolve(ref)
        assert self.networks is not None
        n = self.networks.resolve(net)
        nets = rec.nets
        if not any(x.net == n["Name"] for x in nets):
            raise Forbidden(f"container {rec.id[:12]} is not connected to network {n['Name']}")
        eps = rec.endpoints
        ep = next((e for e in eps if e.netname == n["Name"]), None)
        if rec.state.status.is_running and ep is not None:
            answer = await self.monitor_command(
                rec.id,
                protocol.Unplug(
                    ifname=ep.ifname,
                    hosts=self.networks.hosts_files([ep.to_dict()])[0],
                    dns_forward=self.dns_forward([x.net for x in nets if x.net != n["Name"]]),
                ),
            )
            if not isinstance(answer, protocol.Unplugged) and not force:
                raise System(f"disconnect: {_why(answer)}")
            self.networks.release_one(rec.id, ep.network)
            rec.endpoints = [e for e in eps if e is not ep]
            # its lines for this network's addresses only: the others' stay (dockerd 28)
            etchosts.delete(rec.hosts_path, self._own_records(rec, ep))
        rec.nets = [x for x in nets if x.net != n["Name"]]
        self.store.save(rec)
        self.store.event(rec, "disconnect", network=n["Name"])

    def dns_links(self, nets: list[NetworkRequest]) -> dict[str, str]:
        """alias → the target's short ID (a name in the network's table), for the embedded
        DNS of a container whose endpoints have links (user-defined networks)."""
        out = {}
        for n in nets:
            for link in n.links or []:
                name, alias = parse_link(link)
                try:
                    out[alias.lower()] = self.store.resolve(name).id[:12]
                except NotFound:
                    continue
        return out

    def dns_forward(self, nets: list[str]) -> bool:
        """Whether the embedded DNS of a container on these networks forwards the names it
        does not know to the upstream resolvers: not if they are all `--internal` (as Docker
        since CVE-2024-29018: an internal network has no way out, not even through the DNS
        server, which forwards from the host's namespace)."""
        for net in nets:
            try:
                if self.networks is not None and not self.networks.resolve(net).get("Internal"):
                    return True
            except NotFound:
                continue
        return False

    def requested(
        self, hc: HostConfig, endpoints: dict[str, NetworkRequest]
    ) -> list[NetworkRequest]:
        """The bridge networks a container joins: its NetworkMode and NetworkingConfig's
        EndpointsConfig (by the names the client gave)."""
        mode = hc.network_mode or "bridge"
        if mode in ("host", "none") or mode.startswith("container:"):
            return []
        # the docker CLI names the default network "default"
        eps = {("bridge" if k == "default" else k): v for k, v in endpoints.items()}
        names = [mode] + [n for n in eps if n != mode]
        out: list[NetworkRequest] = []
        for n in names:
            try:
                if self.networks is None:
                    raise NotFound(n)
                ndoc = self.networks.resolve(n)
            except NotFound:
                # a 400, not a 404: the docker CLI takes any 404 of create for a missing
                # image, and would try to pull
                raise InvalidArgument(f"network {n} not found") from None
            if ndoc["Driver"] in ("host", "null"):
                raise InvalidArgument(
                    f"container cannot be connected to network {n} alongside others"
                )
            ec = eps.get(n) or NetworkRequest(net=n)
            if ndoc["Name"] == "bridge" and ec.aliases:
                raise InvalidArgument(
                    "network-scoped alias is supported only for containers in user defined networks"
                )
            entry = _request(ndoc["Name"], ec)
            if ec.links and ndoc["Name"] != "bridge":
                for link in ec.links:  # their format; a target may come later (dockerd)
                    parse_link(link)
                entry.links = list(ec.links)
            out.append(entry)
        return out

    def network_ids(self, rec: ContainerRecord) -> dict[str, str]:
        """The IDs of the networks it asked for, by name (the endpoint's where the network
        is gone meanwhile)."""
        out = {}
        by_net = {e.netname: e for e in rec.endpoints}
        for n in rec.nets:
            try:
                out[n.net] = self.networks.resolve(n.net)["Id"] if self.networks else ""
            except NotFound:
                ep = by_net.get(n.net)
                out[n.net] = ep.network if ep is not None else ""
        return out

    def write_etc_files(
        self,
        rec: ContainerRecord,
        eps: list[ContainerEndpoint] | None = None,
        *,
        only_hosts: bool = False,
    ) -> None:
        hc = rec.host_config
        cfg = rec.config
        host_net = hc.network_mode == "host"
        hostname = cfg.hostname
        if not only_hosts:
            with open(rec.hostname_path, "w") as f:
                f.write(hostname + "\n")
        if host_net:
            try:
                with open("/etc/hosts") as f:
                    hosts = f.read()
            except OSError:
                hosts = "127.0.0.1\tlocalhost\n"
        else:
            hosts = (
                "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n"
                "ff02::2\tip6-allrouters\n"
            )
        if hosts and not hosts.endswith("\n"):
            hosts += "\n"
        # --add-host: in the host's network too, as dockerd
        for extra in hc.extra_hosts or ():
            h, _, ip = extra.partition(":")
            if ip == "host-gateway":
                ip = self._host_gateway()
            hosts += f"{ip}\t{h}\n"
        if not host_net:
            hosts += self.links.hosts(rec)
            for ep in eps or []:
                # none for an IPv6-only network's IPv4; the IPv6 address names the host too
                for r in self._own_records(rec, ep):
                    hosts += r.line()
        with open(rec.hosts_path, "w") as f:
            f.write(hosts)
        if only_hosts:
            return
        user_net = any(self.networks and self.networks.user_defined(n.net) for n in rec.nets)
        self.write_resolv_conf(rec, embedded=user_net)

    @staticmethod
    def _own_records(rec: ContainerRecord, ep: ContainerEndpoint) -> list[etchosts.HostsRecord]:
        """The /etc/hosts lines of the container's own addresses on one network."""
        return etchosts.endpoint_records(
            rec.config.hostname, rec.config.domainname, [ep.ip, ep.ip6]
        )

    def write_resolv_conf(self, rec: ContainerRecord, *, embedded: bool) -> None:
        """In place: the file is bind-mounted into a running container."""
        hc = rec.host_config
        with open(rec.resolv_conf_path, "w") as f:
            f.write(self._resolv_conf(hc, hc.network_mode == "host", embedded=embedded))

    def _host_gateway(self) -> str:
        """`host-gateway` in --add-host, as dockerd resolves it: the default bridge's
        gateway, the host's address as the containers on that bridge reach it."""
        gw = ""
        if self.networks is not None:
            with contextlib.suppress(NotFound):
                cfg = (self.networks.resolve("bridge").get("IPAM") or {}).get("Config") or []
                gw = cfg[0].get("Gateway", "") if cfg else ""
        if not gw:
            raise InvalidArgument("unable to derive the IP value for host-gateway")
        return str(gw)

    def upstream_dns(self, hc: HostConfig, host_net: bool) -> list[str]:
        return [
            line.split()[1]
            for line in self._resolv_conf(hc, host_net).splitlines()
            if line.startswith("nameserver ")
        ]

    def _resolv_conf(self, hc: HostConfig, host_net: bool, embedded: bool = False) -> str:
        if embedded:
            # user-defined networks: the embedded DNS server answers names, forwards the rest
            search = list(hc.dns_search or self.cfg.dns_search)
            options = ["ndots:0", *(hc.dns_options or self.cfg.dns_options)]
            out = "nameserver 127.0.0.11\n"
            if search:
                out += "search " + " ".join(search) + "\n"
            return out + "options " + " ".join(options) + "\n"
        dns = list(hc.dns or self.cfg.dns)
        search = list(hc.dns_search or self.cfg.dns_search)
        options = list(hc.dns_options or self.cfg.dns_options)
        if not dns:
            try:
                with open("/etc/resolv.conf") as f:
                    host = f.read().splitlines()
            except OSError:
                host = []
            for line in host:
                w = line.split()
                if len(w) >= 2 and w[0] == "nameserver":
                    # a loopback resolver of the host is unreachable from a container netns
                    if host_net or not (w[1].startswith("127.") or w[1] == "::1"):
                        dns.append(w[1])
                elif len(w) >= 2 and w[0] == "search" and not search:
                    search = w[1:]
                elif len(w) >= 2 and w[0] == "options" and not options:
                    options = w[1:]
        out = "".join(f"nameserver {d}\n" for d in dns)
        if search:
            out += "search " + " ".join(search) + "\n"
        if options:
            out += "options " + " ".join(options) + "\n"
        return out

    def plug(self, rec: ContainerRecord) -> list[ContainerEndpoint]:
        """Addresses on the container's bridge networks, for this run; /etc/hosts with them."""
        eps: list[ContainerEndpoint] = []
        nets = rec.nets
        if self.networks is None or not nets:
            self.write_etc_files(rec)
            return eps
        try:
            for i, n in enumerate(nets):
                eps.append(
                    ContainerEndpoint.of(
                        self.networks.allocate(
                            n.net,
                            rec.id,
                            name=rec.name[1:],
                            aliases=n.aliases,
                            ip=n.ip,
                            ifname=f"eth{i}",
                            mac=n.mac,
                            ip6=n.ip6,
                            link_local=n.link_local,
                            driver_opts=n.driver_opts,
                        ),
                        n.net,
                    )
                )
        except BaseException:
            self.networks.release(rec.id)
            raise
        rec.endpoints = eps
        self.write_etc_files(rec, eps)
        # running containers linked to this one see its new address (dockerd's
        # updateParentsHosts)
        for parent in self.store.records.values():
            if parent.state.status.is_running and any(lk.id == rec.id for lk in parent.links or []):
                self.write_etc_files(parent, parent.endpoints, only_hosts=True)
        return eps

    def _bindings(self, rec: ContainerRecord) -> dict[str, list[dict[str, str]]]:
        """HostConfig.PortBindings (and, with PublishAllPorts, the exposed ports on any host
        port), in the networks service's form."""
        hc = rec.host_config
        binds = port_map_to_json(hc.port_bindings or {})
        if hc.publish_all_ports:
            for port in rec.config.exposed_ports:
                binds.setdefault(str(port), [{"HostIp": "", "HostPort": ""}])
        return binds

    async def publish(
        self, rec: ContainerRecord, eps: list[ContainerEndpoint], *, restoring: bool = False
    ) -> None:
        """Open the container's published ports. `restoring` (a running container found at
        start) opens the host ports it had, as dockerd's live restore keeps them: clients
        that were told the port go on reaching it. One taken meanwhile gets a new one."""
        binds = self._bindings(rec)
        if not binds or self.networks is None:
            return
        if not eps or eps[0].kind != "veth":
            raise InvalidArgument(
                f"published ports need a bridge network: {rec.host_config.network_mode} is not one"
            )
        if restoring and rec.ports:
            try:
                ports = await self.networks.ports.publish(
                    rec.id, port_map_to_json(rec.ports), eps[0].ip, eps[0].netname, eps[0].ip6
                )
                rec.ports = _port_map(ports)
                return
            except Conflict as e:
                log.warning("container %s: its host ports are taken (%s): new ones", rec.id[:12], e)
        ports = await self.networks.ports.publish(
            rec.id, binds, eps[0].ip, eps[0].netname, eps[0].ip6
        )
        rec.ports = _port_map(ports)

    def unplug(self, rec: ContainerRecord) -> None:
        if self.networks is not None and rec.endpoints:
            self.networks.ports.unpublish(rec.id, rec.endpoints[0].netname)
            self.networks.release(rec.id)
            rec.endpoints = []
            rec.ports = {}


def _port_map(published: dict[str, list[dict[str, str]]]) -> PortMap:
    """The ports the networks service published (its NetworkSettings.Ports form), typed."""
    return {
        Port.parse(key): tuple(
            PortBinding(str(b.get("HostIp") or ""), str(b.get("HostPort") or "")) for b in binds
        )
        for key, binds in published.items()
    }
