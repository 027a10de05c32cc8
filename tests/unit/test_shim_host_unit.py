"""The shim host's channel to the daemon never blocks the host (berth.shim.host)."""

from __future__ import annotations

import socket

from berth.shim import host, protocol


def test_a_daemon_that_does_not_read_never_blocks_the_host() -> None:
    ours, theirs = socket.socketpair()
    try:
        ch = host.QueuedChannel(ours)
        chunk = b"x" * 65536
        for _ in range((host.QUEUE_LIMIT >> 16) + 64):  # far more than the socket takes
            ch.send(protocol.T_STDOUT, chunk)          # returns at once
        assert ch.dropped > 0 and len(ch.out) <= host.QUEUE_LIMIT + len(chunk) + 8
        ch.control(protocol.Exit(exit=0, finished_at=1))  # control is never dropped
        assert ch.out.endswith(protocol.encode_control(protocol.Exit(exit=0, finished_at=1)))
        # once the daemon reads, everything queued arrives in order
        theirs.setblocking(False)
        got = bytearray()
        while ch.out:
            try:
                while data := theirs.recv(1 << 20):
                    got += data
            except BlockingIOError:
                pass
            ch.flush()
        try:
            got += theirs.recv(1 << 20)
        except BlockingIOError:
            pass
        frames, rest = protocol.split_frames(bytes(got))
        assert rest == b"" and frames[-1][0] == protocol.T_CONTROL
        assert all(f == (protocol.T_STDOUT, chunk) for f in frames[:-1])
    finally:
        ours.close()
        theirs.close()


def test_a_gone_daemon_is_a_closed_channel() -> None:
    ours, theirs = socket.socketpair()
    ch = host.QueuedChannel(ours)
    theirs.close()
    ch.send(protocol.T_STDOUT, b"x")
    assert ch.sock is None  # no error reaches the host's loop
    ch.control(protocol.Exit(exit=0, finished_at=1))
    ch.close()
