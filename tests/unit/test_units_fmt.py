from __future__ import annotations

import time

import pytest

from berth.cli import fmt
from berth.units import human_duration, human_size, parse_size


@pytest.mark.parametrize(
    "secs,text",
    [
        (0.2, "Less than a second"),
        (1, "1 second"),
        (45, "45 seconds"),
        (61, "About a minute"),
        (600, "10 minutes"),
        (3700, "About an hour"),
        (7 * 3600, "7 hours"),
        (3 * 86400, "3 days"),
    ],
)
def test_human_duration(secs: float, text: str) -> None:
    assert human_duration(secs) == text


def test_sizes() -> None:
    assert human_size(1982365) == "1.98MB"
    assert human_size(0) == "0B"
    assert human_size(5600) == "5.6kB"
    assert parse_size("64m") == 64 << 20
    assert parse_size("1g") == 1 << 30
    assert parse_size("512") == 512
    with pytest.raises(ValueError):
        parse_size("lots")


def test_templates() -> None:
    obj = {"State": {"Status": "running", "Pid": 7}, "Args": ["a"], "Flag": True}
    assert fmt.template("{{.State.Status}}/{{.State.Pid}}", obj) == "running/7"
    assert fmt.template("{{json .Args}} {{.Flag}} {{.Missing}}", obj) == '["a"] true <no value>'


def test_parse_time() -> None:
    assert fmt.parse_time("1700000000") == "1700000000"
    assert float(fmt.parse_time("2024-01-01T00:00:00Z")) == 1704067200.0
    assert abs(float(fmt.parse_time("10m")) - (time.time() - 600)) < 2
    with pytest.raises(ValueError):
        fmt.parse_time("yesterday")


def test_table(capsys: pytest.CaptureFixture[str]) -> None:
    fmt.render([{"A": "x", "B": "long value"}], "", [("COL A", "A"), ("B", "B")])
    lines = capsys.readouterr().out.splitlines()
    # docker's tabwriter: minimum width 10, padding 3
    assert lines == ["COL A     B", "x         long value"]
