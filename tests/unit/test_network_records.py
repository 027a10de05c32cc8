"""The network service's typed records: what a data root from before them stored still loads,
the stored form goes round, and Docker's JSON is made at the API edge with dockerd's keys."""

from __future__ import annotations

import pytest

from berth.api.networks import decode_create, network_json
from berth.cli.networks import consolidate_ipam
from berth.cmdline import UsageError
from berth.errors import InvalidArgument
from berth.networks import Endpoint, IpamConfig, NetworkRecord, NetworkView, link_spec
from berth.networks.records import Driver, mtu_of

LEGACY = {  # a user network as berth stored it before the typed records
    "Name": "front",
    "Id": "ab" * 32,
    "Created": "2024-05-01T10:00:00Z",
    "Scope": "local",
    "Driver": "bridge",
    "EnableIPv6": False,
    "IPAM": {
        "Driver": "default",
        "Options": {},
        "Config": [{"Subnet": "10.89.0.0/24", "Gateway": "10.89.0.1", "IPRange": "10.89.0.128/25"}],
    },
    "Internal": True,
    "Attachable": False,
    "Ingress": False,
    "ConfigFrom": {"Network": ""},
    "ConfigOnly": False,
    "Containers": {},
    "Options": {"com.docker.network.driver.mtu": "1400"},
    "Labels": {"a": "b"},
    "_bridge": "br-0123456789ab",
}

LEGACY_DEFAULT = {  # the default bridge, its bridge named in Options
    "Name": "bridge",
    "Id": "cd" * 32,
    "Created": "2024-05-01T10:00:00Z",
    "Driver": "bridge",
    "IPAM": {
        "Driver": "default",
        "Options": {},
        "Config": [{"Subnet": "10.88.0.0/16", "Gateway": "10.88.0.1"}],
    },
    "Internal": False,
    "Options": {"com.docker.network.bridge.name": "berth0"},
    "Labels": {},
}


def test_a_legacy_document_loads_and_shows_as_before() -> None:
    rec = NetworkRecord.decode(LEGACY)
    assert rec.driver == Driver.BRIDGE and rec.bridge == "br-0123456789ab"
    assert rec.internal and rec.mtu == 1400 and rec.ipv6 is None
    assert rec.ipv4 == IpamConfig(
        subnet="10.89.0.0/24", gateway="10.89.0.1", ip_range="10.89.0.128/25"
    )
    shown = network_json(NetworkView(record=rec, endpoints={}))
    assert shown == {k: v for k, v in LEGACY.items() if k != "_bridge"}
    assert list(shown) == [k for k in LEGACY if k != "_bridge"]  # dockerd's key order
    assert NetworkRecord.decode(LEGACY_DEFAULT).bridge == "berth0"


def test_the_stored_form_goes_round() -> None:
    rec = NetworkRecord(
        id="ef" * 32,
        name="dual",
        driver=Driver.BRIDGE,
        created="2024-05-01T10:00:00Z",
        ipam=(
            IpamConfig(
                subnet="10.9.0.0/24",
                gateway="10.9.0.1",
                gateway_shown=False,
                aux_addresses={"r": "10.9.0.5"},
            ),
            IpamConfig(subnet="fd00:9::/64", gateway="fd00:9::1"),
        ),
        ipam_options={"o": "1"},
        enable_ipv6=True,
        options={"x": "y"},
        bridge="br-x",
    )
    assert NetworkRecord.decode(rec.encode()) == rec
    assert rec.ipv6 is not None and rec.ipv6.subnet == "fd00:9::/64"
    assert network_json(NetworkView(record=rec, endpoints={}))["IPAM"] == {
        "Driver": "default",
        "Options": {"o": "1"},
        "Config": [
            {"Subnet": "10.9.0.0/24", "AuxiliaryAddresses": {"r": "10.9.0.5"}},
            {"Subnet": "fd00:9::/64", "Gateway": "fd00:9::1"},
        ],
    }


def test_an_endpoint_goes_round_and_tells_the_shim_what_to_plumb() -> None:
    ep = Endpoint(
        network="n",
        name="c",
        aliases=["a"],
        ip="10.9.0.2",
        prefix=24,
        gateway="10.9.0.1",
        mac="02:42:0a:09:00:02",
        endpoint="e",
        bridge="br-x",
        host_if="vbx",
        ifname="eth0",
        ip6="fd00:9::2",
        prefix6=64,
        gateway6="fd00:9::1",
        link_local=["169.254.1.1", "fe80::5"],
        mtu=1400,
    )
    d = ep.to_dict()
    assert Endpoint.from_dict(d) == ep
    spec = link_spec(d)
    assert spec["address"] == "10.9.0.2/24" and spec["address6"] == "fd00:9::2/64"
    assert spec["mtu"] == "1400" and spec["link_local_ips"] == "169.254.1.1,fe80::5"
    # an endpoint kept by a container from before: no IPv6, no MTU
    old = {
        k: d[k]
        for k in (
            "network",
            "name",
            "aliases",
            "ip",
            "prefix",
            "gateway",
            "mac",
            "endpoint",
            "bridge",
            "host_if",
            "ifname",
            "kind",
        )
    }
    assert link_spec(old)["mtu"] == "0" and Endpoint.from_dict(old).ip6 == ""
    # an IPv6-only endpoint: no IPv4 address to plumb
    v6only = Endpoint.from_dict({**d, "ip": "", "prefix": 0, "gateway": ""}).to_dict()
    assert v6only["address"] == "" and link_spec(v6only)["address"] == ""


def test_decode_create() -> None:
    kw = decode_create(
        {
            "Name": "n",
            "EnableIPv6": True,
            "IPAM": {
                "Options": {"a": "b"},
                "Config": [
                    {"Subnet": "10.1.0.0/24", "AuxiliaryAddresses": {"k": "10.1.0.9"}},
                    {"Subnet": "fd00::/64"},
                ],
            },
        }
    )
    assert kw["enable_ipv6"] and kw["ipam_options"] == {"a": "b"} and kw["enable_ipv4"]
    # API 1.48's IPv6-only networks: IPv4 off only where the body says so
    assert decode_create({"Name": "n", "EnableIPv4": False})["enable_ipv4"] is False
    assert kw["ipam"] == [
        IpamConfig(subnet="10.1.0.0/24", aux_addresses={"k": "10.1.0.9"}),
        IpamConfig(subnet="fd00::/64"),
    ]
    for bad in (
        {"Ingress": True},
        {"ConfigOnly": True},
        {"Options": {"mtu": 1}},
        {"IPAM": {"Config": "x"}},
        {"Scope": "swarm"},
    ):
        with pytest.raises(InvalidArgument):
            decode_create({"Name": "n", **bad})
    with pytest.raises(InvalidArgument):
        mtu_of({"com.docker.network.driver.mtu": "12"})


def test_consolidate_ipam_as_the_docker_cli() -> None:
    assert consolidate_ipam(
        ["10.1.0.0/24", "fd00::/64"], ["10.1.0.128/25"], ["fd00::99", "10.1.0.1"], {"x": "10.1.0.7"}
    ) == [
        {
            "Subnet": "10.1.0.0/24",
            "IPRange": "10.1.0.128/25",
            "Gateway": "10.1.0.1",
            "AuxiliaryAddresses": {"x": "10.1.0.7"},
        },
        {"Subnet": "fd00::/64", "Gateway": "fd00::99", "AuxiliaryAddresses": {}},
    ]
    for args, msg in (
        ((["10.1.0.0/24"], [], ["10.2.0.1"], {}), "no matching subnet for gateway"),
        (([], [], ["10.2.0.1"], {}), "every ip-range or gateway"),
        ((["10.1.0.0/16", "10.1.2.0/24"], [], [], {}), "overlapping"),
        ((["10.1.0.0/24"], [], [], {"a": "10.3.0.1"}), "aux-address 10.3.0.1"),
    ):
        with pytest.raises(UsageError, match=msg):
            consolidate_ipam(*args)


class _FakeTables:
    """iptables and ip6tables as a set of rules per binary and table (`-C` checks it)."""

    def __init__(self) -> None:
        self.rules: set[tuple[str, str, tuple[str, ...]]] = set()
        self.calls: list[tuple[str, ...]] = []

    def __call__(
        self, *args: str, table: str = "filter", check: bool = True, binary: str = "iptables"
    ) -> bool:
        op, rule = args[0], (binary, table, tuple(args[1:]))
        self.calls.append((binary, table, *args))
        if op == "-C":
            return rule in self.rules
        if op in ("-A", "-I"):
            self.rules.add(rule)
        elif op == "-D":
            self.rules.discard(rule)
        elif op == "-F":
            self.rules = {r for r in self.rules if r[:2] != rule[:2] or r[2][0] != args[1]}
        return True


def test_ip6tables_mirrors_iptables_and_a_bridge_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from berth.networks import rules

    fake = _FakeTables()
    monkeypatch.setattr(rules, "iptables", fake)
    monkeypatch.setattr(rules.shutil, "which", lambda name: f"/usr/sbin/{name}")
    v4, v6 = rules.Rules("BERTH-x", "iptables"), rules.Rules("BERTH-x", "ip6tables")
    for internal in (False, True):
        v4.bridge("br-a", "10.1.0.0/24", internal=internal, add=True)
        v6.bridge("br-a", "fd00::/64", internal=internal, add=True)
        mine = {(t, r) for b, t, r in fake.rules if b == "iptables"}
        theirs = {
            (t, tuple(a.replace("fd00::/64", "10.1.0.0/24") for a in r))
            for b, t, r in fake.rules
            if b == "ip6tables"
        }
        assert mine == theirs and mine
        assert any("MASQUERADE" in r for _, r in mine) is not internal
        v4.bridge("br-a", "10.1.0.0/24", internal=internal, add=False)
        v6.bridge("br-a", "fd00::/64", internal=internal, add=False)
        assert fake.rules == set()
    v6.chains()
    assert ("ip6tables", "filter", ("FORWARD", "-j", "BERTH-x-FWD")) in fake.rules
    v6.remove_chains()
    assert fake.rules == set()
    assert ("ip6tables", "nat", "-X", "BERTH-x-POST") in fake.calls
