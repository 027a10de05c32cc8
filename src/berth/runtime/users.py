"""Users: `user[:group]` through the container's own /etc/passwd and /etc/group.

Imports `linux` and `runtime.report`.
"""

from __future__ import annotations

import os

from berth import linux
from berth.runtime.report import StartError


def home_of(uid: int) -> str | None:
    for e in _read_db("/etc/passwd"):
        if len(e) > 5 and e[2] == str(uid):
            return e[5]
    return None


def resolve_user(
    spec_user: str, extra_groups: list[int], root: str = "/"
) -> tuple[int, int, list[int], str | None]:
    """`user[:group]` by name or number, through the container's /etc/passwd and /etc/group
    (we are already inside the rootfs). Returns uid, gid, supplementary gids and the home
    directory. Raises StartError with Docker's wording."""
    user, _, group = spec_user.partition(":")
    passwd = _read_db(os.path.join(root, "etc/passwd"))
    groups_db = _read_db(os.path.join(root, "etc/group"))
    uid = gid = None
    name = home = None
    if user.isdigit():
        uid = int(user)
        for e in passwd:
            if len(e) > 3 and e[2] == user:
                name, gid = e[0], int(e[3])
                home = e[5] if len(e) > 5 else None
                break
        if gid is None:
            gid = 0
    else:
        for e in passwd:
            if len(e) > 3 and e[0] == user:
                name, uid, gid = e[0], int(e[2]), int(e[3])
                home = e[5] if len(e) > 5 else None
                break
        if uid is None:
            raise StartError(f"unable to find user {user}: no matching entries in passwd file", 125)
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            for e in groups_db:
                if len(e) > 2 and e[0] == group:
                    gid = int(e[2])
                    break
            else:
                raise StartError(
                    f"unable to find group {group}: no matching entries in group file", 125
                )
    assert uid is not None and gid is not None  # found, or StartError above
    # as runc: the primary group is among the supplementary ones
    supplementary = list(extra_groups)
    if gid not in supplementary:
        supplementary.append(gid)
    if name and not group:
        for e in groups_db:
            if len(e) > 3 and name in e[3].split(",") and int(e[2]) not in supplementary:
                supplementary.append(int(e[2]))
    return uid, gid, supplementary, home


def _read_db(path: str) -> list[list[str]]:
    try:
        text = linux.read_text(path)
    except OSError:
        return []
    return [
        line.split(":") for line in text.splitlines() if line.strip() and not line.startswith("#")
    ]
