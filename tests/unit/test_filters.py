"""The prune routes' filters, as dockerd reads them."""

from __future__ import annotations

import calendar
import time

import pytest

from berth.errors import InvalidArgument
from berth.filters import PruneFilter, parse_timestamp


def test_timestamps() -> None:
    now = 1_700_000_000.0
    assert parse_timestamp("10m", now) == now - 600
    assert parse_timestamp("1h30m", now) == now - 5400
    assert parse_timestamp("1700000000.5", now) == 1_700_000_000.5
    assert parse_timestamp("2024-01-02T03:04:05Z") == calendar.timegm((2024, 1, 2, 3, 4, 5))
    assert (
        parse_timestamp("2024-01-02T03:04:05.25+01:00")
        == calendar.timegm((2024, 1, 2, 2, 4, 5)) + 0.25
    )
    assert parse_timestamp("2024-01-02") == time.mktime((2024, 1, 2, 0, 0, 0, 0, 0, -1))
    with pytest.raises(InvalidArgument):
        parse_timestamp("yesterday")


def test_prune_filter() -> None:
    f = PruneFilter.parse({"label": ["a", "b=2"], "label!": ["keep"], "until": ["1000"]})
    assert f.selects(999, {"a": "x", "b": "2"})
    assert not f.selects(1000, {"a": "x", "b": "2"})  # not before until
    assert not f.selects(1, {"a": "x", "b": "3"})
    assert not f.selects(1, {"a": "x", "b": "2", "keep": "1"})
    assert PruneFilter.parse(None).selects(time.time(), None)
    with pytest.raises(InvalidArgument):
        PruneFilter.parse({"dangling": ["true"]})
    with pytest.raises(InvalidArgument):
        PruneFilter.parse({"until": ["1", "2"]})
