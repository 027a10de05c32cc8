"""`berth compose`'s progress display: in a terminal, one line per object redrawn in place as its
state changes (`[+] Running 2/3`, ✔ when done), as docker compose shows it; elsewhere one
plain line per object and state; nothing with `--progress quiet`.

Imports nothing of berth's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

TYPE_CHECKING = False  # not typing's: importing typing costs ~5 ms of every compose command
if TYPE_CHECKING:
    from typing import TextIO

# states that end an object's work; the others are in progress
DONE = frozenset(
    {
        "Created",
        "Started",
        "Healthy",
        "Running",
        "Removed",
        "Stopped",
        "Exited",
        "Built",
        "Pulled",
        "Recreated",
        "Killed",
        "Paused",
        "Unpaused",
        "Pushed",
        "Pull complete",
        "Already exists",
        "Download complete",
    }
)
FAILED = frozenset({"Error"})
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


class Progress:
    """A callback for the orchestrator: `progress(kind, name, state)`. `mode` is `tty`,
    `plain` or `quiet`. Layers of a pull (kind "Layer") show only in a terminal."""

    def __init__(self, out: TextIO, mode: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.out = out
        self.mode = mode
        self.clock = clock
        # (kind, name) -> [state, started, ended or None]
        self.rows: dict[tuple[str, str], tuple[str, float, float | None]] = {}
        self.drawn = 0
        self.lock = threading.Lock()  # services converge in threads

    def __call__(self, kind: str, name: str, state: str) -> None:
        if self.mode == "quiet":
            return
        with self.lock:
            self._event(kind, name, state)

    def _event(self, kind: str, name: str, state: str) -> None:
        if self.mode != "tty":
            if kind != "Layer" or state in ("Pull complete", "Already exists"):
                self.out.write(f" {kind} {name}  {state}\n")
                self.out.flush()
            return
        now = self.clock()
        row = self.rows.get((kind, name))
        ended = now if state in DONE or state in FAILED else None
        self.rows[(kind, name)] = (state, row[1] if row else now, ended)
        self.draw()

    def draw(self) -> None:
        now = self.clock()
        done = sum(1 for r in self.rows.values() if r[2] is not None)
        lines = [f"[+] Running {done}/{len(self.rows)}"]
        width = max((len(k) + len(n) + 1 for k, n in self.rows), default=0)
        for i, ((kind, name), (state, start, end)) in enumerate(self.rows.items()):
            if state in FAILED:
                mark = "\x1b[31m✘\x1b[0m"
            elif end is not None:
                mark = "\x1b[32m✔\x1b[0m"
            else:
                mark = SPINNER[(int(now * 10) + i) % len(SPINNER)]
            took = (end if end is not None else now) - start
            label = f"{kind} {name}".ljust(width)
            indent = "   " if kind == "Layer" else " "
            lines.append(f"{indent}{mark} {label}  {state:<16}{took:>5.1f}s")
        text = ""
        if self.drawn:
            text += f"\x1b[{self.drawn}A"
        text += "".join(f"\x1b[2K{line}\n" for line in lines)
        self.out.write(text)
        self.out.flush()
        self.drawn = len(lines)


def mode_for(progress: str, ansi: str, is_tty: bool) -> str:
    """The display for `--progress` and `--ansi` on this stream."""
    if progress in ("quiet", "plain", "tty"):
        return progress
    if ansi == "never":
        return "plain"
    if ansi == "always":
        return "tty"
    return "tty" if is_tty else "plain"
