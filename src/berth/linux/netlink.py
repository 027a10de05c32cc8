"""Network plumbing over netlink (pyroute2): bridges, veth pairs, addresses, routes, and the
configuration of an interface inside another network namespace.

Imports `errors`. Used by the daemon (bridges) and by monitors (a container's veth pair).
Nothing here forks but `configure_in_netns`, which must run in a monitor, never in berthd.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from typing import Any

from berth.errors import Conflict, System

_IFA_F_NODAD = 0x02  # linux/if_addr.h


def _ipr() -> Any:
    from pyroute2 import IPRoute  # noqa: PLC0415 - heavy: only where networking is done

    return IPRoute()


def link_exists(name: str) -> bool:
    with _ipr() as ipr:
        return bool(ipr.link_lookup(ifname=name))


def ensure_bridge(name: str, gateway_cidr: str, mtu: int = 1500) -> bool:
    """Create the bridge with the gateway address if absent; True if it was created."""
    iface = ipaddress.ip_interface(gateway_cidr)
    with _ipr() as ipr:
        created = False
        idx = ipr.link_lookup(ifname=name)
        if not idx:
            try:
                ipr.link("add", ifname=name, kind="bridge")
            except Exception as e:  # pyroute2's NetlinkError
                raise System(f"create bridge {name}: {e}") from e
            idx = ipr.link_lookup(ifname=name)
            created = True
        index = idx[0]
        have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=index)}
        if (str(iface.ip), iface.network.prefixlen) not in have:
            try:
                v6 = iface.version == 6
                ipr.addr(
                    "add",
                    index=index,
                    address=str(iface.ip),
                    prefixlen=iface.network.prefixlen,
                    family=socket.AF_INET6 if v6 else socket.AF_INET,
                    **({"flags": _IFA_F_NODAD} if v6 else {}),
                )
            except Exception as e:
                if "File exists" not in str(e):
                    raise Conflict(f"address {gateway_cidr} on {name}: {e}") from e
        ipr.link("set", index=index, state="up", mtu=mtu)
        return created


def remove_address(name: str, cidr: str) -> None:
    """Take the address `cidr` off the link `name`, where it is there (its route goes too)."""
    iface = ipaddress.ip_interface(cidr)
    with _ipr() as ipr:
        idx = ipr.link_lookup(ifname=name)
        have = (
            {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=idx[0])}
            if idx
            else set()
        )
        if (str(iface.ip), iface.network.prefixlen) in have:
            ipr.addr(
                "del",
                index=idx[0],
                address=str(iface.ip),
                prefixlen=iface.network.prefixlen,
                family=socket.AF_INET6 if iface.version == 6 else socket.AF_INET,
            )


def delete_link(name: str) -> None:
    with _ipr() as ipr:
        idx = ipr.link_lookup(ifname=name)
        if idx:
            try:
                ipr.link("del", index=idx[0])
            except Exception:  # noqa: BLE001 - gone already
                pass


def bridge_ports(bridge: str) -> list[str]:
    """The names of the links enslaved to `bridge` (none if it does not exist)."""
    with _ipr() as ipr:
        idx = ipr.link_lookup(ifname=bridge)
        if not idx:
            return []
        return [
            str(link.get_attr("IFLA_IFNAME"))
            for link in ipr.get_links()
            if link.get_attr("IFLA_MASTER") == idx[0]
        ]


def routes_overlap(cidr: str, skip_ifname: str = "") -> str | None:
    """The name of a link whose address overlaps `cidr`, if any (an overlapping subnet)."""
    net = ipaddress.ip_network(cidr, strict=False)
    with _ipr() as ipr:
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        for a in ipr.get_addr(family=socket.AF_INET):
            name = names.get(a["index"], "")
            if name == skip_ifname or name == "lo":
                continue
            other = ipaddress.ip_network(
                f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}", strict=False
            )
            if net.overlaps(other):
                return str(name)
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    bridge: str
    host_if: str  # the host side of the veth pair
    ifname: str  # the name inside the container: eth0, eth1, ...
    address: str  # 10.88.0.2/16 ("" on an IPv6-only network)
    gateway: str  # "" on an internal network: no default route
    mac: str
    kind: str = "veth"  # veth (on `bridge`) | macvlan | ipvlan (on `parent`)
    parent: str = ""
    mode: str = ""  # macvlan: bridge, private, vepa, passthru; ipvlan: l2, l3
    mtu: int = 0  # 0: the kernel's default
    address6: str = ""  # fd00::2/64 on a network with IPv6
    gateway6: str = ""
    link_local_ips: str = ""  # comma-separated (--link-local-ip)

    @classmethod
    def decode(cls, d: dict) -> Endpoint:  # type: ignore[type-arg]
        return cls(
            bridge=d.get("bridge", ""),
            host_if=d["host_if"],
            ifname=d["ifname"],
            address=d["address"],
            gateway=d.get("gateway", ""),
            mac=d["mac"],
            kind=d.get("kind", "veth"),
            parent=d.get("parent", ""),
            mode=d.get("mode", ""),
            mtu=int(d.get("mtu") or 0),
            address6=d.get("address6", ""),
            gateway6=d.get("gateway6", ""),
            link_local_ips=d.get("link_local_ips", ""),
        )


def _in_child(fn, netns_pid: int = 0) -> bool:  # type: ignore[no-untyped-def]
    """Run `fn` in a fresh child (in the network namespace of `netns_pid` if given): pyroute2's
    IPRoute keeps loop state that must not cross a fork, so it never lives in a monitor."""
    child = os.fork()
    if child == 0:
        code = 1
        try:
            if netns_pid:
                from berth import linux

                fd = os.open(f"/proc/{netns_pid}/ns/net", os.O_RDONLY)
                linux.setns(fd, linux.CLONE_NEWNET)
                os.close(fd)
            fn()
            code = 0
        except BaseException:  # noqa: BLE001 - the exit code tells the parent
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    return os.waitstatus_to_exitcode(status) == 0


def setup_endpoints(pid: int, eps: list[Endpoint]) -> None:
    """From a monitor: plug the veth pairs, then configure them inside the namespace."""
    if not _in_child(lambda: plug(pid, eps)):
        raise System("create the container's veth pairs")
    if not _in_child(lambda: _configure(eps), pid):
        raise System("configure the container's network interfaces")


def plug(pid: int, eps: list[Endpoint]) -> None:
    """Give the network namespace of `pid` one veth per endpoint, the host side on its bridge."""
    with _ipr() as ipr:
        for ep in eps:
            peer = ep.host_if + "p"
            if ep.kind in ("macvlan", "ipvlan"):
                parent = ipr.link_lookup(ifname=ep.parent)
                if not parent:
                    raise System(f"parent interface {ep.parent} is gone")
                extra: dict[str, object] = (
                    {
                        "macvlan_mode": {"private": 1, "vepa": 2, "bridge": 4, "passthru": 8}[
                            ep.mode or "bridge"
                        ]
                    }
                    if ep.kind == "macvlan"
                    else {"ipvlan_mode": {"l2": 0, "l3": 1, "l3s": 2}[ep.mode or "l2"]}
                )
                try:
                    ipr.link("add", ifname=peer, kind=ep.kind, link=parent[0], **extra)
                except Exception as e:
                    raise System(f"create {ep.kind} on {ep.parent}: {e}") from e
                if ep.mtu:
                    ipr.link("set", index=ipr.link_lookup(ifname=peer)[0], mtu=ep.mtu)
                ipr.link("set", index=ipr.link_lookup(ifname=peer)[0], net_ns_pid=pid)
                continue
            try:
                ipr.link("add", ifname=ep.host_if, kind="veth", peer=peer)
            except Exception as e:
                raise System(f"create veth {ep.host_if}: {e}") from e
            host = ipr.link_lookup(ifname=ep.host_if)[0]
            inner = ipr.link_lookup(ifname=peer)[0]
            br = ipr.link_lookup(ifname=ep.bridge)
            if not br:
                ipr.link("del", index=host)
                raise System(f"bridge {ep.bridge} is gone")
            if ep.mtu:  # both ends, before the host's joins the bridge
                ipr.link("set", index=host, mtu=ep.mtu)
                ipr.link("set", index=inner, mtu=ep.mtu)
            ipr.link("set", index=host, master=br[0], state="up")
            ipr.link("set", index=inner, net_ns_pid=pid)


def _configure(eps: list[Endpoint]) -> None:
    """Inside the namespace: names, MACs, addresses, the default route."""
    with _ipr() as ipr:
        for ep in eps:
            idx = ipr.link_lookup(ifname=ep.host_if + "p")[0]
            if ep.kind == "ipvlan":  # an ipvlan link has its parent's MAC
                ipr.link("set", index=idx, ifname=ep.ifname)
            else:
                ipr.link("set", index=idx, ifname=ep.ifname, address=ep.mac)
            if ep.address:  # none on an IPv6-only network
                iface = ipaddress.ip_interface(ep.address)
                ipr.addr("add", index=idx, address=str(iface.ip), prefixlen=iface.network.prefixlen)
            extra = [ipaddress.ip_interface(ep.address6)] if ep.address6 else []
            for ll in filter(None, ep.link_local_ips.split(",")):
                # as dockerd: an IPv4 link-local address in 169.254/16, IPv6 in fe80::/64
                ip = ipaddress.ip_address(ll)
                extra.append(ipaddress.ip_interface(f"{ip}/{16 if ip.version == 4 else 64}"))
            for a in extra:
                # no duplicate address detection: the address is ours alone on the bridge,
                # and a tentative one could not be used for the first second
                ipr.addr(
                    "add",
                    index=idx,
                    address=str(a.ip),
                    prefixlen=a.network.prefixlen,
                    family=socket.AF_INET6 if a.version == 6 else socket.AF_INET,
                    **({"flags": _IFA_F_NODAD} if a.version == 6 else {}),
                )
            ipr.link("set", index=idx, state="up")
        for ep in eps:
            if ep.gateway:
                ipr.route("add", dst="0.0.0.0/0", gateway=ep.gateway)
                break
        for ep in eps:
            if ep.gateway6:
                ipr.route("add", dst="::/0", gateway=ep.gateway6, family=socket.AF_INET6)
                break


def unplug(pid: int, ifname: str) -> None:
    """Remove an interface from the namespace of `pid` (its veth peer goes with it)."""

    def go() -> None:
        with _ipr() as ipr:
            idx = ipr.link_lookup(ifname=ifname)
            if idx:
                ipr.link("del", index=idx[0])

    if not _in_child(go, pid):
        raise System(f"remove {ifname} from the container")


def udp_socket_in_netns(pid: int, host: str, port: int) -> int:
    """A UDP socket bound inside the network namespace of `pid` (the embedded DNS server's);
    returns its fd, passed back from a child that entered the namespace."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    child = os.fork()
    if child == 0:
        code = 1
        try:
            a.close()
            from berth import linux

            fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
            linux.setns(fd, linux.CLONE_NEWNET)
            os.close(fd)
            linux.set_link_up("lo")  # 127.0.0.11 needs it; the init would do it only later
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((host, port))
            socket.send_fds(b, [b"dns"], [s.fileno()])
            code = 0
        finally:
            os._exit(code)
    b.close()
    try:
        _, fds, _, _ = socket.recv_fds(a, 16, 1)
    finally:
        a.close()
        os.waitpid(child, 0)
    if not fds:
        raise System("could not bind the embedded DNS server's socket")
    return fds[0]


def mac_for(ip: str) -> str:
    """Docker's scheme: 02:42 followed by the IPv4 address."""
    b = ipaddress.ip_address(ip).packed
    return "02:42:" + ":".join(f"{x:02x}" for x in b)


__all__ = [
    "ensure_bridge",
    "delete_link",
    "link_exists",
    "remove_address",
    "routes_overlap",
    "Endpoint",
    "plug",
    "setup_endpoints",
    "unplug",
    "udp_socket_in_netns",
    "mac_for",
]
