"""The changes of a container's upper directory against the image below it (`docker diff`),
and the layer tarball of them (`docker commit`).

Imports `fs`, `storage.merged`, `storage.tars`.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from typing import BinaryIO

from berth import fs
from berth.storage.merged import MergedView
from berth.storage.tars import _add_to_tar


def _lower_stat(
    rel: str, lowers_top_first: list[str], view: MergedView | None = None
) -> os.stat_result | None:
    """What the image below has at `rel`, as the kernel would show it (whiteouts, opaque
    directories and non-directories of higher layers honoured; no symlink followed)."""
    if view is None:
        if not lowers_top_first:
            return None
        with MergedView(lowers_top_first) as v:
            return _lower_stat(rel, lowers_top_first, v)
    node = view.lookup(rel)
    if node is None:
        return None
    node.close()
    return node.st


def upper_changes(
    upper: str,
    lowers_top_first: list[str],
    exclude: set[str] = frozenset(),  # type: ignore[assignment]
) -> Iterator[tuple[str, str, str]]:
    """(kind, relative path, source path) for what a container changed, parents first:
    kind is "A" (added), "C" (changed) or "D" (deleted). `exclude` names paths the runtime
    made as mount points (/etc/hosts, ...), which are not part of the container's changes.
    A directory only copied up (same owner and mode, nothing else changed in it) is not a
    change of its own."""
    with contextlib.ExitStack() as stack:
        view = stack.enter_context(MergedView(lowers_top_first)) if lowers_top_first else None
        yield from _upper_changes(upper, lowers_top_first, exclude, view)


def _upper_changes(
    upper: str, lowers_top_first: list[str], exclude: set[str], view: MergedView | None
) -> Iterator[tuple[str, str, str]]:
    entries: list[tuple[str, str, str]] = []
    for dirpath, dirnames, filenames in os.walk(upper):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, upper)
        rel_dir = "" if rel_dir == "." else rel_dir
        for name in sorted(dirnames + filenames):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if rel in exclude:
                continue
            src = os.path.join(dirpath, name)
            st = os.lstat(src)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                entries.append(("D", rel, src))
                continue
            low = _lower_stat(rel, lowers_top_first, view)
            entries.append(("A" if low is None else "C", rel, src))
    # directories that are only copied up: keep them only when something below them changed,
    # or their own owner or mode did
    keep_dirs: set[str] = set()
    for kind, rel, src in entries:
        if not os.path.isdir(src) or os.path.islink(src) or kind != "C":
            parts = rel.split("/")
            for k in range(1, len(parts)):
                keep_dirs.add("/".join(parts[:k]))
    for kind, rel, src in entries:
        if kind == "C" and os.path.isdir(src) and not os.path.islink(src) and rel not in keep_dirs:
            st = os.lstat(src)
            low = _lower_stat(rel, lowers_top_first, view)
            opaque = False
            with contextlib.suppress(OSError):
                opaque = os.getxattr(src, "trusted.overlay.opaque") == b"y"
            if (
                low is not None
                and not opaque
                and stat.S_IMODE(st.st_mode) == stat.S_IMODE(low.st_mode)
                and (st.st_uid, st.st_gid) == (low.st_uid, low.st_gid)
            ):
                continue
        yield kind, rel, src


class _Fd:
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def close(self) -> None:
        os.close(self.fd)


def write_diff_tar(
    upper: str,
    lowers_top_first: list[str],
    out: BinaryIO,
    exclude: set[str] = frozenset(),  # type: ignore[assignment]
    shift: tuple[int, int] = (0, 0),
) -> None:
    """A layer tarball of a container's changes: whiteouts become `.wh.` entries and opaque
    directories a `.wh..wh..opq` entry, as in an image layer."""
    import tarfile

    root_fd = fs.open_dir(upper)
    with (
        contextlib.closing(_Fd(root_fd)),
        tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf,
    ):
        links: dict[tuple[int, int], str] = {}
        for kind, rel, src in upper_changes(upper, lowers_top_first, exclude):
            if kind == "D":
                head, _, name = rel.rpartition("/")
                ti = tarfile.TarInfo((head + "/" if head else "") + ".wh." + name)
                with contextlib.suppress(OSError):
                    ti.mtime = int(os.lstat(src).st_mtime)
                tf.addfile(ti)
                continue
            ti = _add_to_tar(tf, root_fd, rel, links, shift)
            if ti is not None and ti.isdir():
                with contextlib.suppress(OSError):
                    if os.getxattr(src, "trusted.overlay.opaque", follow_symlinks=False) == b"y":
                        wh = tarfile.TarInfo(rel + "/.wh..wh..opq")
                        wh.mtime = ti.mtime
                        tf.addfile(wh)
