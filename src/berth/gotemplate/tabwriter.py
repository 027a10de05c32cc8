"""Go's text/tabwriter, as the docker CLI aligns a `table` format's columns."""

from __future__ import annotations


def tabwrite(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """Align tab-separated cells as Go's tabwriter.NewWriter(w, minwidth, 1, padding, ' ', 0):
    a column block is a run of lines that have that cell; its width is the widest cell plus
    the padding, at least minwidth; text after a line's last tab is not aligned."""
    lines = [ln.split("\t") for ln in text.split("\n")]
    widths: list[int] = []
    out: list[str] = []

    def write_lines(line0: int, line1: int) -> None:
        for i in range(line0, line1):
            parts = []
            for j, c in enumerate(lines[i]):
                parts.append(c)
                if j < len(widths) and widths[j] > len(c):
                    parts.append(" " * (widths[j] - len(c)))
            out.append("".join(parts))

    def block(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write_lines(line0, this)
            line0 = this
            width = minwidth
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + padding)
                this += 1
            widths.append(width)
            block(line0, this)
            widths.pop()
            line0 = this
        write_lines(line0, line1)

    block(0, len(lines))
    return "\n".join(out)
