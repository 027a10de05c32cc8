"""berthd's flags and daemon.json keys for runtimes and the default bridge's IPv6 (issue 15):
what dockerd takes, read the same way."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from berth.daemon.config import DaemonConfig


def _args(tmp_path: Path, *args: str, config: dict[str, object] | None = None) -> DaemonConfig:
    from berth.daemon.main import parse_args

    cfg = tmp_path / "daemon.json"
    cfg.write_text(json.dumps(config or {}))
    return parse_args(
        [
            "--config-file",
            str(cfg),
            "--exec-root",
            str(tmp_path / "run"),
            "--data-root",
            str(tmp_path / "data"),
            *args,
        ]
    )


def test_runc_is_a_runtime_only_where_configured(tmp_path: Path) -> None:
    """An installed runc is not taken on its own: "runc" is dockerd's name of the default
    runtime, and so berth's own, unless runc is configured (flag or daemon.json)."""
    c = _args(tmp_path)
    assert "runc" not in c.runtimes and c.default_runtime == "berth"
    assert _args(tmp_path, "--default-runtime", "runc").default_runtime == "berth"
    c = _args(tmp_path, "--add-runtime", "runc=sh", "--default-runtime", "runc")
    assert c.runtimes["runc"] == shutil.which("sh") and c.default_runtime == "runc"
    c = _args(tmp_path, config={"runtimes": {"runc": {"path": "sh"}}, "default-runtime": "runc"})
    assert c.runtimes["runc"] == shutil.which("sh") and c.default_runtime == "runc"


@pytest.mark.parametrize(
    "conf",
    [
        {"runc": {"path": "sh", "runtimeArgs": ["--debug"]}},
        {"runc": "sh"},
        {"berth": {"path": "sh"}},
    ],
)
def test_runtimes_berthd_cannot_honour_are_refused(tmp_path: Path, conf: dict[str, object]) -> None:
    with pytest.raises(SystemExit):
        _args(tmp_path, config={"runtimes": conf})


def test_ipv6_on_the_default_bridge_from_flags_or_daemon_json(tmp_path: Path) -> None:
    c = _args(tmp_path)
    assert (c.ipv6, c.fixed_cidr_v6) == (False, "")
    c = _args(tmp_path, "--ipv6", "--fixed-cidr-v6", "fd00:b3:63:1::/64")
    assert (c.ipv6, c.fixed_cidr_v6) == (True, "fd00:b3:63:1::/64")
    c = _args(tmp_path, config={"ipv6": True, "fixed-cidr-v6": "fd00:b3:63:1::5/64"})
    assert (c.ipv6, c.fixed_cidr_v6) == (True, "fd00:b3:63:1::/64")
    assert _args(tmp_path, "--ipv6=false").ipv6 is False


@pytest.mark.parametrize(
    ("args", "conf"),
    [
        (["--fixed-cidr-v6", "10.1.0.0/16"], None),
        (["--fixed-cidr-v6", "fd00::/200"], None),
        (["--ipv6"], {"ipv6": True}),
        ([], {"ipv6": "yes"}),
        ([], {"fixed-cidr-v6": ["x"]}),
    ],
)
def test_bad_ipv6_settings_are_refused(
    tmp_path: Path, args: list[str], conf: dict[str, object] | None
) -> None:
    with pytest.raises(SystemExit):
        _args(tmp_path, *args, config=conf)
