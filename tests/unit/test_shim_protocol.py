"""berth.shim.protocol: what berthd and a shim say to each other, both ways."""

from __future__ import annotations

import json

import pytest

from berth.shim import protocol
from berth.shim.protocol import (
    CommandFailed,
    DnsConfig,
    Exit,
    Plug,
    Plugged,
    ProtocolError,
    Ready,
    RootfsMount,
    Signal,
    StartFailed,
    StartRequest,
    Unplug,
    Unplugged,
)


def _control(msg: protocol.ShimMessage | protocol.Command) -> bytes:
    frames, rest = protocol.split_frames(protocol.encode_control(msg))
    assert rest == b"" and len(frames) == 1 and frames[0][0] == protocol.T_CONTROL
    return frames[0][1]


def test_a_start_request_survives_the_wire() -> None:
    req = StartRequest(
        id="c1",
        state_dir="/run/x/state",
        bundle="/run/x/bundle",
        log_path="/l.log",
        socket="/run/x/state/monitor.sock",
        rootfs_mount=RootfsMount(
            type="overlay", source="overlay", options=("lowerdir=/a", "upperdir=/b")
        ),
        stdin=True,
        tty=True,
        console_size=(24, 80),
        log_max_size=10,
        log_max_file=3,
        networks=({"ifname": "eth0", "address": "10.0.0.2/24"},),
        dns=DnsConfig(hosts=("/h",), upstream=("1.1.1.1",), forward=True),
        runtime="/usr/bin/runc",
        runtime_root="/run/r",
    )
    line = req.encode()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert protocol.decode_request(line) == req


def test_a_request_of_an_older_daemon_has_version_1_and_defaults() -> None:
    old = {
        "id": "e1",
        "state_dir": "/s",
        "exec_pid": 42,
        "container_id": "c1",
        "console_size": [10, 20],
        "rootfs_mount": {"type": "bind", "source": "/x"},
    }
    req = protocol.decode_request(json.dumps(old).encode())
    assert isinstance(req, StartRequest)
    assert (req.version, req.exec_pid, req.console_size, req.log_max_file) == (1, 42, (10, 20), 1)
    assert req.rootfs_mount == RootfsMount(type="bind", source="/x")


def test_a_newer_request_is_refused() -> None:
    line = json.dumps(
        {"version": protocol.PROTOCOL_VERSION + 1, "id": "x", "state_dir": "/s"}
    ).encode()
    with pytest.raises(ProtocolError, match="newer"):
        protocol.decode_request(line)


def test_the_netsetup_request() -> None:
    req = protocol.NetSetupRequest(pid=7, networks=({"ifname": "eth0"},))
    assert protocol.decode_request(req.encode()) == req


@pytest.mark.parametrize(
    "msg",
    [
        Ready(pid=10, monitor=9),
        StartFailed(error="monitor: boom", code=125),
        Exit(exit=137, oom=True, finished_at=5),
        Exit(exit=127, error="not found", code=127),
        Plugged(ifname="eth1"),
        Unplugged(ifname="eth1"),
        CommandFailed(why="no such device"),
    ],
)
def test_shim_messages_round_trip(msg: protocol.ShimMessage) -> None:
    assert protocol.decode_control(_control(msg)) == msg


@pytest.mark.parametrize(
    "cmd",
    [
        Plug(endpoint={"ifname": "eth1"}, hosts="/h", dns_forward=False),
        Plug(endpoint={}),
        Plug(
            endpoint={},
            hosts="/h",
            dns=protocol.DnsConfig(hosts=("/h",), upstream=("10.0.0.1",), forward=True),
        ),
        Unplug(ifname="eth1", dns_forward=True),
        Unplug(ifname="eth2"),
        Unplug(ifname="eth1", hosts="/h"),
        Signal(signo=15),
    ],
)
def test_commands_round_trip(cmd: protocol.Command) -> None:
    assert protocol.decode_command(_control(cmd)) == cmd


def test_an_exit_record_as_the_state_directory_keeps_it() -> None:
    rec = Exit(exit=3, finished_at=1)
    assert Exit.from_json(rec.to_json()) == rec
    # the keys monitors have always written
    assert json.loads(rec.to_json()) == {"exit": 3, "oom": False, "finished_at": 1}
    with pytest.raises(ProtocolError):
        Exit.from_json(b'{"pid": 1}')


def test_unknown_messages_are_protocol_errors() -> None:
    with pytest.raises(ProtocolError):
        protocol.decode_control(b'{"what": 1}')
    with pytest.raises(ProtocolError):
        protocol.decode_command(b"[]")


def test_frames_split_only_when_complete() -> None:
    data = protocol.frame(protocol.T_STDOUT, b"abc") + protocol.frame(protocol.T_STDERR, b"de")
    frames, rest = protocol.split_frames(data[:-1])
    assert frames == [(protocol.T_STDOUT, b"abc")] and rest == data[11:-1]
    assert protocol.split_frames(data) == ([(1, b"abc"), (2, b"de")], b"")
