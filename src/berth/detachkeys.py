"""Docker's detach keys (`--detach-keys`, `detachKeys`): parse a spec into the byte sequence,
and find that sequence in a stream of input. The CLI and the daemon both use this one parser.

A leaf: imports nothing of berth's, and nothing of the standard library (the CLI's start-up).
"""

from __future__ import annotations

DEFAULT = "ctrl-p,ctrl-q"

# `ctrl-@` is NUL, `ctrl-[` .. `ctrl-_` are 27..31, as a terminal sends them
_CTRL_PUNCT = "[\\]^_"


def parse_detach_keys(spec: str) -> bytes:
    """Comma-separated `ctrl-<x>` (x a lowercase letter or one of `@[\\]^_`) or single
    characters, as bytes: `ctrl-p,ctrl-q` is b"\\x10\\x11".

    Raises:
        ValueError: a part that is neither (the message names the whole spec, as dockerd's).
    """
    out = bytearray()
    for part in spec.split(","):
        if part.startswith("ctrl-") and len(part) == 6:
            c = part[5]
            if "a" <= c <= "z":
                out.append(ord(c) - ord("a") + 1)
            elif c == "@":
                out.append(0)
            elif c in _CTRL_PUNCT:
                out.append(27 + _CTRL_PUNCT.index(c))
            else:
                raise ValueError(f"Invalid escape keys ({spec}) provided")
        elif len(part) == 1:
            out.append(ord(part))
        else:
            raise ValueError(f"Invalid escape keys ({spec}) provided")
    return bytes(out)


class DetachScanner:
    """Finds the detach sequence in a stream of input; holds back a partial match until the
    next piece says whether it completes."""

    __slots__ = ("keys", "held")

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(the bytes to pass on, whether the sequence was typed). Once it was, what followed
        it in `data` is dropped: the stream ends there."""
        if not self.keys:
            return data, False
        buf = self.held + data
        idx = buf.find(self.keys)
        if idx >= 0:
            self.held = b""
            return buf[:idx], True
        # keep the longest tail that could still start the sequence
        for n in range(min(len(self.keys) - 1, len(buf)), 0, -1):
            if self.keys.startswith(buf[-n:]):
                self.held = buf[-n:]
                return buf[:-n], False
        self.held = b""
        return buf, False


__all__ = ["DEFAULT", "DetachScanner", "parse_detach_keys"]
