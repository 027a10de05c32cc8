"""The packet filter rules of bridge networks, the same for IPv4 (iptables) and IPv6
(ip6tables): the daemon's chains, and per bridge the isolation from other bridges, the
forwarding in and out, and masquerading.

Chains are named from the daemon's bridge (`prefix`), so private daemons never share them:
PREFIX-FWD (filter FORWARD), PREFIX-ISO1/ISO2 (Docker's two-stage isolation between
bridges), PREFIX-POST (nat POSTROUTING, masquerade).

Imports `networks.ports` (the one iptables call), `errors`.
"""

from __future__ import annotations

import shutil

from berth.errors import System
from berth.networks.ports import iptables

_CHAINS = (("filter", ("FWD", "ISO1", "ISO2")), ("nat", ("POST",)))


class Rules:
    """The rules of one address family: `binary` is iptables or ip6tables."""

    def __init__(self, prefix: str, binary: str = "iptables") -> None:
        self.prefix = prefix
        self.binary = binary

    def available(self) -> bool:
        return shutil.which(self.binary) is not None

    def _ipt(self, *args: str, table: str = "filter", check: bool = True) -> bool:
        return iptables(*args, table=table, check=check, binary=self.binary)

    def chains(self) -> None:
        """The daemon's chains and the jumps to them (kept if present)."""
        if not self.available():
            raise System(
                f"{self.binary} is not installed: install it, or start berthd with --iptables=false"
            )
        ch = self.prefix
        for table, chains in _CHAINS:
            for c in chains:
                self._ipt("-N", f"{ch}-{c}", table=table, check=False)
        if not self._ipt("-C", "FORWARD", "-j", f"{ch}-FWD", check=False):
            self._ipt("-I", "FORWARD", "-j", f"{ch}-FWD")
        if not self._ipt("-C", f"{ch}-FWD", "-j", f"{ch}-ISO1", check=False):
            self._ipt("-I", f"{ch}-FWD", "-j", f"{ch}-ISO1")
        if not self._ipt("-C", "POSTROUTING", "-j", f"{ch}-POST", table="nat", check=False):
            self._ipt("-I", "POSTROUTING", "-j", f"{ch}-POST", table="nat")

    def intact(self) -> bool:
        """Whether the daemon's anchors are in place: the jumps from FORWARD and POSTROUTING
        and the first rule of PREFIX-FWD. A flush of the tables (`iptables -F`, `-X`, a
        firewalld reload) removes them all; a missing one means the rules must be put back."""
        ch = self.prefix
        return (
            self._ipt("-C", "FORWARD", "-j", f"{ch}-FWD", check=False)
            and self._ipt("-C", f"{ch}-FWD", "-j", f"{ch}-ISO1", check=False)
            and self._ipt("-C", "POSTROUTING", "-j", f"{ch}-POST", table="nat", check=False)
        )

    def remove_chains(self) -> None:
        """The jumps and the chains go, with whatever is left in them."""
        if not self.available():
            return
        ch = self.prefix
        self._ipt("-D", "FORWARD", "-j", f"{ch}-FWD", check=False)
        self._ipt("-D", "POSTROUTING", "-j", f"{ch}-POST", table="nat", check=False)
        for table, chains in _CHAINS:
            for c in chains:
                self._ipt("-F", f"{ch}-{c}", table=table, check=False)
                self._ipt("-X", f"{ch}-{c}", table=table, check=False)

    def bridge(self, br: str, subnet: str, *, internal: bool, add: bool) -> None:
        """Add (or remove) the rules of one bridge with `subnet` (of this family)."""
        ch = self.prefix
        rules: list[tuple[str, list[str]]] = [
            ("filter", [f"{ch}-ISO1", "-i", br, "!", "-o", br, "-j", f"{ch}-ISO2"]),
            ("filter", [f"{ch}-ISO2", "-o", br, "-j", "DROP"]),
            ("filter", [f"{ch}-FWD", "-i", br, "-o", br, "-j", "ACCEPT"]),
        ]
        if internal:
            rules += [
                ("filter", [f"{ch}-FWD", "-i", br, "!", "-o", br, "-j", "DROP"]),
                ("filter", [f"{ch}-FWD", "-o", br, "!", "-i", br, "-j", "DROP"]),
            ]
        else:
            rules += [
                (
                    "filter",
                    [
                        f"{ch}-FWD",
                        "-o",
                        br,
                        "-m",
                        "conntrack",
                        "--ctstate",
                        "RELATED,ESTABLISHED",
                        "-j",
                        "ACCEPT",
                    ],
                ),
                ("filter", [f"{ch}-FWD", "-i", br, "!", "-o", br, "-j", "ACCEPT"]),
                ("nat", [f"{ch}-POST", "-s", subnet, "!", "-o", br, "-j", "MASQUERADE"]),
                # nothing else reaches the containers from outside: only what is published
                # (those rules go in front of this one)
                ("filter", [f"{ch}-FWD", "-o", br, "-j", "DROP"]),
            ]
        if not add and not self.available():
            return
        for table, r in rules:
            exists = self._ipt("-C", *r, table=table, check=False)
            if add and not exists:
                self._ipt("-A", *r, table=table)
            elif not add and exists:
                self._ipt("-D", *r, table=table, check=False)


__all__ = ["Rules"]
