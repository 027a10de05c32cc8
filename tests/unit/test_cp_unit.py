"""cp's pure parts: Go's FileMode bits, the name a copy takes, the stat header, and the CLI's
CONTAINER:PATH split."""

from __future__ import annotations

import base64
import json
import stat

from berth.api.archive import stat_header
from berth.cli.cp import _split
from berth.containers.archive import PathStat, _base, go_mode


def test_go_mode() -> None:
    assert go_mode(stat.S_IFREG | 0o644) == 0o644
    assert go_mode(stat.S_IFDIR | 0o755) == (1 << 31) | 0o755
    assert go_mode(stat.S_IFLNK | 0o777) == (1 << 27) | 0o777
    assert go_mode(stat.S_IFCHR | 0o600) == (1 << 26) | (1 << 21) | 0o600
    assert go_mode(stat.S_IFDIR | stat.S_ISVTX | 0o777) == (1 << 31) | (1 << 20) | 0o777
    assert go_mode(stat.S_IFREG | stat.S_ISUID | 0o755) == (1 << 23) | 0o755


def test_base_name_of_a_copy() -> None:
    assert _base("/etc/passwd") == "passwd"
    assert _base("/etc/") == "etc"
    assert _base("/etc/.") == "."
    assert _base("/") == "/"
    assert _base("tmp/x/../y") == "y"


def test_stat_header_is_dockers_json() -> None:
    h = stat_header(PathStat("etc", 4096, (1 << 31) | 0o755, 0.5, ""))
    doc = json.loads(base64.b64decode(h))
    assert doc == {
        "name": "etc",
        "size": 4096,
        "mode": (1 << 31) | 0o755,
        "mtime": "1970-01-01T00:00:00.500000Z",
        "linkTarget": "",
    }


def test_split_container_path() -> None:
    assert _split("c1:/etc") == ("c1", "/etc")
    assert _split("./a:b") == ("", "./a:b")
    assert _split("/abs:x") == ("", "/abs:x")
    assert _split("local") == ("", "local")
    assert _split("-") == ("", "-")
