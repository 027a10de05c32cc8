"""The filters of the prune routes (`until`, `label`, `label!`), as dockerd reads them.

Imports `errors` and `units`. The API hands the services the decoded `filters` query
(`{"label": ["a=1"], "until": ["10m"]}`); a service asks `PruneFilter.selects` of each object.
"""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass

from berth.errors import InvalidArgument
from berth.units import parse_duration


def parse_timestamp(value: str, now: float | None = None) -> float:
    """dockerd's timestamps for filters: a Go duration before now (`10m`, `1h30m`), a unix
    time (`1700000000`, `1700000000.5`), or an RFC 3339 date or time (`2024-01-02`,
    `2024-01-02T15:04:05`, with `Z` or an offset; local time without one)."""
    now = time.time() if now is None else now
    try:
        return now - parse_duration(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        pass
    text, zone = value, None
    if text.endswith("Z"):
        text, zone = text[:-1], 0
    elif len(text) > 6 and text[-6] in "+-" and text[-3] == ":" and "T" in text:
        sign = 1 if text[-6] == "+" else -1
        try:
            zone = sign * (int(text[-5:-3]) * 3600 + int(text[-2:]) * 60)
        except ValueError:
            raise InvalidArgument(f"invalid timestamp: {value!r}") from None
        text = text[:-6]
    whole, _, frac = text.partition(".")
    for layout in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"):
        try:
            parsed = time.strptime(whole, layout)
        except ValueError:
            continue
        seconds = float(calendar.timegm(parsed)) if zone is not None else time.mktime(parsed)
        fraction = float(f"0.{frac}") if frac.isdigit() else 0.0
        return seconds - (zone or 0) + fraction
    raise InvalidArgument(f"invalid timestamp: {value!r}")


def _label_matches(labels: dict[str, str], spec: str) -> bool:
    key, eq, value = spec.partition("=")
    return key in labels and (not eq or labels[key] == value)


@dataclass(frozen=True, slots=True)
class PruneFilter:
    until: float | None = None
    labels: tuple[str, ...] = ()  # each must match
    not_labels: tuple[str, ...] = ()  # none may match

    @classmethod
    def parse(
        cls,
        filters: dict[str, list[str]] | None,
        allowed: tuple[str, ...] = ("until", "label", "label!"),
    ) -> PruneFilter:
        filters = filters or {}
        for key in filters:
            if key not in allowed:
                raise InvalidArgument(f"invalid filter '{key}'")
        until = filters.get("until") or []
        if len(until) > 1:
            raise InvalidArgument("more than one until filter specified")
        return cls(
            until=parse_timestamp(until[0]) if until else None,
            labels=tuple(filters.get("label") or ()),
            not_labels=tuple(filters.get("label!") or ()),
        )

    def selects(self, created: float, labels: dict[str, str] | None) -> bool:
        """Whether a prune may take an object created at `created` with `labels`."""
        labels = labels or {}
        if self.until is not None and created >= self.until:
            return False
        if not all(_label_matches(labels, s) for s in self.labels):
            return False
        return not any(_label_matches(labels, s) for s in self.not_labels)


__all__ = ["PruneFilter", "parse_timestamp"]
