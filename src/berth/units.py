"""Human-readable durations and sizes, as Docker's go-units prints them. Imports nothing."""

from __future__ import annotations


def human_duration(seconds: float) -> str:
    """go-units HumanDuration (`docker ps` STATUS and CREATED)."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    m = int(seconds / 60)
    if m == 1:
        return "About a minute"
    if m < 60:
        return f"{m} minutes"
    h = int(round(seconds / 3600))
    if h == 1:
        return "About an hour"
    if h < 48:
        return f"{h} hours"
    if h < 24 * 7 * 2:
        return f"{h // 24} days"
    if h < 24 * 30 * 2:
        return f"{h // 24 // 7} weeks"
    if h < 24 * 365 * 2:
        return f"{h // 24 // 30} months"
    return f"{h // 24 // 365} years"


def human_size(size: float, precision: int = 3) -> str:
    """go-units HumanSizeWithPrecision(size, precision): decimal units (4 is its HumanSize)."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000
        i += 1
    return f"{size:.{precision}g}{units[i]}"


def parse_size(s: str) -> int:
    """go-units RAMInBytes: `512m`, `1g`, `100k`, `1024` (binary units)."""
    t = s.strip().lower()
    mult = 1
    for suffix, m in (
        ("kb", 1 << 10),
        ("mb", 1 << 20),
        ("gb", 1 << 30),
        ("tb", 1 << 40),
        ("k", 1 << 10),
        ("m", 1 << 20),
        ("g", 1 << 30),
        ("t", 1 << 40),
        ("b", 1),
    ):
        if t.endswith(suffix):
            t, mult = t[: -len(suffix)], m
            break
    try:
        v = float(t)
    except ValueError:
        raise ValueError(f"invalid size: '{s}'") from None
    if v < 0:
        raise ValueError(f"invalid size: '{s}'")
    return int(v * mult)


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(s: str) -> float:
    """A Go duration (`30s`, `1m30s`, `500ms`) in seconds."""
    import re

    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", s)
    if not parts or "".join(n + u for n, u in parts) != s:
        raise ValueError(f'time: invalid duration "{s}"')
    return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
