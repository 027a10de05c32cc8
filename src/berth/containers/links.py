"""Legacy links (`--link NAME[:ALIAS]`): how dockerd reads one, the environment and /etc/hosts
lines it gives the container that links, `rm --link`. `LegacyLinks` is a part of
`containers.networking.Networking` (which re-exports these names), handed the store and the
network service.

Imports `containers.hostconfig`, `containers.record`, `containers.store`, `networks`, `errors`.
"""

from __future__ import annotations

from berth.containers.hostconfig import HostConfig
from berth.containers.record import ContainerRecord, Link, NetworkRequest
from berth.containers.store import ContainerStore
from berth.errors import Conflict, InvalidArgument, NotFound, System
from berth.networks import NetworkService


def parse_link(link: str) -> tuple[str, str]:
    """`NAME[:ALIAS]` of `--link` as dockerd reads it (also the `/NAME:/PARENT/ALIAS` form
    that inspect shows): the target's name and the alias."""
    if not link:
        raise InvalidArgument("empty string specified for links")
    parts = link.split(":")
    if len(parts) > 2:
        raise InvalidArgument(f"bad format for links: {link}")
    if len(parts) == 1:
        return link.lstrip("/"), link.lstrip("/")
    if parts[0].startswith("/"):
        return parts[0][1:], parts[1].rsplit("/", 1)[-1]
    return parts[0], parts[1]


def _port_key(port: str) -> tuple[int, int]:
    num, _, proto = port.partition("/")
    return int(num), 0 if (proto or "tcp") == "tcp" else 1


def link_env(
    alias: str, full_name: str, ip: str, exposed: list[str], env: list[str] | None
) -> list[str]:
    """The environment a legacy link gives (dockerd's): ALIAS_PORT for the lowest exposed port
    (TCP first), ALIAS_PORT_<port>_<PROTO>[_ADDR|_PORT|_PROTO] for each, ALIAS_NAME, and the
    target's Config.Env as ALIAS_ENV_<VAR> (but HOME and PATH)."""
    a = alias.upper().replace("-", "_")
    ports = sorted((p if "/" in p else p + "/tcp" for p in exposed), key=_port_key)
    out: list[str] = []
    if ports:
        num, _, proto = ports[0].partition("/")
        out.append(f"{a}_PORT={proto}://{ip}:{num}")
    i = 0
    while i < len(ports):  # runs of ports, dockerd's way (it counts other protocols in)
        j, value = i, _port_key(ports[i])[0]
        while j + 1 < len(ports) and _port_key(ports[j + 1])[0] <= value + 1:
            j, value = j + 1, value + 1
        if j > i + 1:
            num, _, proto = ports[i].partition("/")
            end, _, end_proto = ports[j].partition("/")
            key = f"{a}_PORT_{num}_{proto.upper()}"
            out += [
                f"{key}_START={proto}://{ip}:{num}",
                f"{key}_ADDR={ip}",
                f"{key}_PROTO={proto}",
                f"{key}_PORT_START={num}",
                f"{a}_PORT_{num}_{end_proto.upper()}_END={end_proto}://{ip}:{end}",
                f"{a}_PORT_{num}_{end_proto.upper()}_PORT_END={end}",
            ]
            i = j + 1
        else:
            i += 1
    for p in ports:
        num, _, proto = p.partition("/")
        key = f"{a}_PORT_{num}_{proto.upper()}"
        out += [
            f"{key}={proto}://{ip}:{num}",
            f"{key}_ADDR={ip}",
            f"{key}_PORT={num}",
            f"{key}_PROTO={proto}",
        ]
    out.append(f"{a}_NAME={full_name}")
    for e in env or []:
        name, eq, val = e.partition("=")
        if eq and name not in ("HOME", "PATH"):
            out.append(f"{a}_ENV_{name}={val}")
    return out


class LegacyLinks:
    """The legacy links of containers (a part of `Networking`)."""

    def __init__(self, store: ContainerStore, networks: NetworkService | None) -> None:
        self.store = store
        self.networks = networks

    def _link_target(self, name: str) -> ContainerRecord:
        try:
            child = self.store.resolve(name)
        except NotFound:
            # a 400, not a 404: the docker CLI takes any 404 of create for a missing image
            raise InvalidArgument(
                f"could not get container for {name}: No such container: {name}"
            ) from None
        seen = set()
        while child.host_config.network_mode.startswith("container:") and child.id not in seen:
            seen.add(child.id)
            child = self._link_target(child.host_config.network_mode.split(":", 1)[1])
        if child.host_config.network_mode == "host":
            raise InvalidArgument(
                "conflicting options: host type networking can't be used "
                "with links. This would result in undefined behavior"
            )
        return child

    def register_links(self, hc: HostConfig, nets: list[NetworkRequest]) -> list[Link]:
        """`--link` at create. On the default bridge: the legacy links, kept as the targets'
        IDs (inspect shows them under their current names); on a user-defined network they
        are the endpoint's links (aliases of its embedded DNS), as dockerd."""
        links = list(hc.links or ())
        mode = hc.network_mode or "bridge"
        if links and mode == "host":
            raise InvalidArgument(
                "conflicting options: host type networking can't be used "
                "with links. This would result in undefined behavior"
            )
        if links and mode.startswith("container:"):
            raise InvalidArgument(
                "conflicting options: container type network can't be used "
                "with links. This would result in undefined behavior"
            )
        if not links or mode == "none":
            return []
        parsed = [parse_link(link) for link in links]
        hc.links = None  # legacy links are shown from the record's `links` by inspect
        if nets and self.networks is not None and self.networks.user_defined(nets[0].net):
            have = nets[0].links or []
            nets[0].links = [*have, *(link for link in links if link not in have)]
            return []
        targets = [(self._link_target(name), alias) for name, alias in parsed]
        return [Link(id=child.id, alias=alias) for child, alias in targets]

    def links_view(self, rec: ContainerRecord) -> list[str] | None:
        """HostConfig.Links as dockerd shows legacy links: `/TARGET:/PARENT/ALIAS`."""
        out = [
            f"{self.store.records[lk.id].name}:{rec.name}/{lk.alias}"
            for lk in rec.links or []
            if lk.id in self.store.records
        ]
        return out or (list(rec.host_config.links) if rec.host_config.links else None)

    def _linked(self, rec: ContainerRecord) -> list[tuple[ContainerRecord, str]]:
        """The targets of the legacy links (those not removed since) with their aliases; each
        must run, as dockerd."""
        out = []
        for lk in rec.links or []:
            child = self.store.records.get(lk.id)
            if child is None:
                continue
            if not child.state.status.is_running:
                raise System(
                    f"Cannot link to a non running container: {child.name} AS {rec.name}/{lk.alias}"
                )
            out.append((child, lk.alias))
        return out

    @staticmethod
    def _bridge_ip(child: ContainerRecord) -> str:
        """Its address on the default bridge, while it runs."""
        return next((e.ip for e in child.endpoints if e.netname == "bridge"), "")

    def links_env(self, rec: ContainerRecord) -> list[str]:
        env: list[str] = []
        for child, alias in self._linked(rec):
            env += link_env(
                alias,
                f"{rec.name}/{alias}",
                self._bridge_ip(child),
                [str(p) for p in child.config.exposed_ports],
                list(child.config.env or ()),
            )
        return env

    def hosts(self, rec: ContainerRecord) -> str:
        """/etc/hosts lines of the legacy links: the alias, the target's hostname and name."""
        out = ""
        for lk in rec.links or []:
            child = self.store.records.get(lk.id)
            ip = self._bridge_ip(child) if child is not None else ""
            if child is None or not ip:
                continue
            names = [lk.alias, child.config.hostname or child.id[:12]]
            if lk.alias != child.name[1:]:
                names.append(child.name[1:])
            out += f"{ip}\t{' '.join(names)}\n"
        return out

    def remove_link(self, ref: str) -> None:
        """`rm --link /PARENT/ALIAS`: the legacy link goes (dockerd's errors)."""
        name = ref if ref.startswith("/") else "/" + ref
        parent, _, alias = name.rpartition("/")
        if not parent:
            # dockerd answers 500 with these words; a 409 says the same to its CLI
            raise Conflict("Conflict, cannot remove the default link name of the container")
        try:
            prec = self.store.resolve(parent)
        except NotFound:
            raise System(f"Cannot get parent {parent} for link name {name}") from None
        links = prec.links or []
        if not any(lk.alias == alias for lk in links):
            raise NotFound(f"No such container: {name[1:]}")
        prec.links = [lk for lk in links if lk.alias != alias]
        self.store.save(prec)
