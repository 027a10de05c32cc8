"""The one detach-key parser, which the CLI and the daemon share."""

from __future__ import annotations

import pytest

from berth.cli.attach import _check_detach_keys
from berth.cmdline import UsageError
from berth.containers import channel
from berth.detachkeys import DEFAULT, DetachScanner, parse_detach_keys


@pytest.mark.parametrize(
    ("spec", "keys"),
    [
        (DEFAULT, b"\x10\x11"),
        ("ctrl-a", b"\x01"),
        ("ctrl-z,x", b"\x1ax"),
        ("ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_", bytes([0, 27, 28, 29, 30, 31])),
        ("a,b,c", b"abc"),
    ],
)
def test_parse(spec: str, keys: bytes) -> None:
    assert parse_detach_keys(spec) == keys


@pytest.mark.parametrize("spec", ["", "ctrl-", "ctrl-A", "ctrl-1", "ab", "ctrl-pq", "ctrl-p,"])
def test_bad_keys_are_refused_by_both_sides(spec: str) -> None:
    with pytest.raises(ValueError, match=r"Invalid escape keys \(.*\) provided"):
        parse_detach_keys(spec)
    with pytest.raises(UsageError, match=r"Invalid detach keys \(.*\) provided"):
        _check_detach_keys(spec)


def test_the_daemon_uses_the_same_parser() -> None:
    assert channel.parse_detach_keys is parse_detach_keys
    assert channel.DetachScanner is DetachScanner


def test_scanner_finds_keys_split_across_reads() -> None:
    scan = DetachScanner(b"\x10\x11")
    assert scan.feed(b"ab\x10") == (b"ab", False)  # a partial match is held back
    assert scan.feed(b"\x11rest") == (b"", True)


def test_scanner_passes_a_partial_match_that_does_not_complete() -> None:
    scan = DetachScanner(b"\x10\x11")
    assert scan.feed(b"\x10") == (b"", False)
    assert scan.feed(b"x") == (b"\x10x", False)


def test_scanner_without_keys_passes_everything() -> None:
    assert DetachScanner(b"").feed(b"\x10\x11") == (b"\x10\x11", False)
