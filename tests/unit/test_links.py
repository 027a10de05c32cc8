"""Legacy links: `--link` parsing and the environment a link gives, as dockerd 20.10 made it
(the expected text below is what its container printed for the same exposed ports)."""

from __future__ import annotations

import pytest

from berth.containers.networking import link_env, parse_link
from berth.containers.spec import process_env
from berth.errors import InvalidArgument

EXPECTED = """\
D_PORT=tcp://10.123.0.2:8000
D_PORT_8000_TCP_START=tcp://10.123.0.2:8000
D_PORT_8000_TCP_ADDR=10.123.0.2
D_PORT_8000_TCP_PROTO=tcp
D_PORT_8000_TCP_PORT_START=8000
D_PORT_8000_TCP_END=tcp://10.123.0.2:8002
D_PORT_8000_TCP_PORT_END=8002
D_PORT_8000_TCP=tcp://10.123.0.2:8000
D_PORT_8000_TCP_PORT=8000
D_PORT_8001_TCP=tcp://10.123.0.2:8001
D_PORT_8001_TCP_ADDR=10.123.0.2
D_PORT_8001_TCP_PORT=8001
D_PORT_8001_TCP_PROTO=tcp
D_PORT_8001_UDP=udp://10.123.0.2:8001
D_PORT_8001_UDP_ADDR=10.123.0.2
D_PORT_8001_UDP_PORT=8001
D_PORT_8001_UDP_PROTO=udp
D_PORT_8002_TCP=tcp://10.123.0.2:8002
D_PORT_8002_TCP_ADDR=10.123.0.2
D_PORT_8002_TCP_PORT=8002
D_PORT_8002_TCP_PROTO=tcp
D_PORT_9000_TCP=tcp://10.123.0.2:9000
D_PORT_9000_TCP_ADDR=10.123.0.2
D_PORT_9000_TCP_PORT=9000
D_PORT_9000_TCP_PROTO=tcp
D_PORT_9001_UDP=udp://10.123.0.2:9001
D_PORT_9001_UDP_ADDR=10.123.0.2
D_PORT_9001_UDP_PORT=9001
D_PORT_9001_UDP_PROTO=udp
D_NAME=/x/d
"""


def test_the_environment_of_a_link_is_dockerd_s() -> None:
    env = link_env(
        "d",
        "/x/d",
        "10.123.0.2",
        ["8000/tcp", "8001/tcp", "8002/tcp", "8001/udp", "9000/tcp", "9001/udp"],
        [],
    )
    got = [e for e in process_env([], "h", False, links=env) if e.startswith("D_")]
    assert got == EXPECTED.split()


def test_the_target_s_environment_and_name() -> None:
    env = link_env(
        "my-db", "/me/my-db", "10.0.0.2", ["5432"], ["PATH=/bin", "HOME=/root", "A=b=c", "NOVALUE"]
    )
    assert env == [
        "MY_DB_PORT=tcp://10.0.0.2:5432",
        "MY_DB_PORT_5432_TCP=tcp://10.0.0.2:5432",
        "MY_DB_PORT_5432_TCP_ADDR=10.0.0.2",
        "MY_DB_PORT_5432_TCP_PORT=5432",
        "MY_DB_PORT_5432_TCP_PROTO=tcp",
        "MY_DB_NAME=/me/my-db",
        "MY_DB_ENV_A=b=c",
    ]
    # Config.Env of the container itself wins over a link's variable
    assert "MY_DB_NAME=mine" in process_env(["MY_DB_NAME=mine"], "h", False, links=env)


@pytest.mark.parametrize(
    ("link", "want"),
    [
        ("db", ("db", "db")),
        ("db:alias", ("db", "alias")),
        ("/db:/me/alias", ("db", "alias")),
    ],
)
def test_parse_link(link: str, want: tuple[str, str]) -> None:
    assert parse_link(link) == want


@pytest.mark.parametrize("link", ["", "a:b:c"])
def test_bad_links(link: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_link(link)
