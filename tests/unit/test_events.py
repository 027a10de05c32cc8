"""Docker's event filters, as `docker events -f` sends them."""

from __future__ import annotations

from berth.events import Event, EventBus, matches


def _events() -> list[Event]:
    bus = EventBus()
    bus.publish("volume", "create", "live-vol", {"driver": "local"})
    bus.publish("volume", "destroy", "other-vol", {"driver": "local"})
    bus.publish("network", "connect", "f00d" * 16, {"name": "front", "container": "c1"})
    bus.publish("container", "start", "abc" * 20, {"name": "web", "image": "busybox"})
    return list(bus.recent)


def _pick(filters: dict[str, list[str]]) -> list[tuple[str, str]]:
    return [(e["Type"], e["Action"]) for e in _events() if matches(e, filters)]


def test_a_volume_filter_keeps_only_that_volume() -> None:
    # another volume's destroy once reached a client filtering on one volume
    assert _pick({"type": ["volume"], "volume": ["live-vol"]}) == [("volume", "create")]
    assert _pick({"volume": ["other"]}) == [("volume", "destroy")]  # a prefix, as Docker's


def test_a_network_filter_matches_its_name_or_id() -> None:
    assert _pick({"network": ["front"]}) == [("network", "connect")]
    assert _pick({"network": ["f00d"]}) == [("network", "connect")]
    assert _pick({"network": ["back"]}) == []


def test_filters_of_different_keys_all_apply() -> None:
    assert _pick({"type": ["container"], "event": ["start"], "container": ["web"]}) == [
        ("container", "start")
    ]
    assert _pick({"type": ["container"], "volume": ["live-vol"]}) == []
    assert _pick({"scope": ["swarm"]}) == []
    assert len(_pick({"scope": ["local"]})) == 4
