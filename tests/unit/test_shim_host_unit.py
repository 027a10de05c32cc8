"""The shim host's channel to the daemon never blocks the host (berth.shim.host)."""

from __future__ import annotations

import socket

from berth.shim import protocol, queued


def test_a_daemon_that_does_not_read_never_blocks_the_host() -> None:
    ours, theirs = socket.socketpair()
    closed: list[socket.socket] = []
    try:
        ch = queued.QueuedChannel(ours, on_close=closed.append)
        chunk = b"x" * 65536
        n = (queued.HIGH_WATER >> 16) + 64  # far more than the socket takes
        for _ in range(n):
            ch.send(protocol.T_STDOUT, chunk)  # returns at once
        # full: the host stops reading the container's output (lossless backpressure)
        assert ch.full and ch.full_since > 0
        ch.control(protocol.Exit(exit=0, finished_at=1))
        # once the daemon reads, everything queued arrives, in order
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
        assert not ch.full and ch.full_since == 0
        frames, rest = protocol.split_frames(bytes(got))
        assert rest == b"" and len(frames) == n + 1 and frames[-1][0] == protocol.T_CONTROL
        assert all(f == (protocol.T_STDOUT, chunk) for f in frames[:-1])
        assert closed == []
    finally:
        ours.close()
        theirs.close()


def test_a_gone_daemon_is_a_closed_channel_the_host_is_told_of() -> None:
    ours, theirs = socket.socketpair()
    closed: list[socket.socket] = []
    ch = queued.QueuedChannel(ours, on_close=closed.append)
    theirs.close()
    ch.send(protocol.T_STDOUT, b"x")
    # no error reaches the host's loop, and it hears of the close while the descriptor's
    # number is still this socket's (to stop watching it)
    assert ch.sock is None and closed == [ours]
    ch.control(protocol.Exit(exit=0, finished_at=1))
    ch.close()
    assert closed == [ours]
