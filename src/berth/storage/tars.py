"""Tars of layered files: the merged filesystem of a stack of layers streamed as a tar
(`docker export`), and the tar header of one entry, for export, commit and `cp` alike.

Imports `fs`, `storage.merged`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from berth import fs
from berth.storage.merged import MergedView


def merged_entries(dirs_top_first: list[str]) -> Iterator[tuple[str, str]]:
    """Walk overlay-format layer dirs as overlayfs would merge them, without mounting: a
    whiteout or a non-directory (file, symlink) in a higher layer hides everything of the lower
    ones at and below its path; an opaque directory hides the lower ones' contents.

    Yields (relative path, source path) for every visible entry, parents before children. Each
    source path is made of directories of its own layer only (see merged.MergedView)."""
    with MergedView(dirs_top_first) as view:
        for rel, node in view.entries():
            yield rel, view.source_path(node, rel)


def write_merged_tar(
    dirs_top_first: list[str], out: BinaryIO, shift: tuple[int, int] = (0, 0)
) -> None:
    """A tar of the merged filesystem (`docker export`), streamed to `out`. Read by directory
    fd (a running container's upper directory may change under the walk: a symlink swapped in
    is archived as a symlink, never followed)."""
    import tarfile

    with (
        tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf,
        MergedView(dirs_top_first) as view,
    ):
        links: dict[tuple[int, int], str] = {}
        for rel, node in view.entries():
            _add_node_to_tar(tf, view, node, rel, links, shift)


def tar_header(
    name: str,
    st: os.stat_result,
    links: dict[tuple[int, int], str],
    readlink: Callable[[], str],
    shift: tuple[int, int] = (0, 0),
) -> Any:
    """The tar header of an entry described by `st`, or None for a socket (no place in a tar).
    A regular file seen before under another name (`links`, by device and inode) becomes a hard
    link to it; any other regular file's header has its size, and its content is the caller's
    to add. Owners are moved down by `shift` (see LayerStore.shift); a symlink's target comes
    from `readlink`. One place for export, commit and `cp`."""
    import tarfile

    ti = tarfile.TarInfo(name)
    ti.mode = stat.S_IMODE(st.st_mode)
    ti.uid, ti.gid, ti.mtime = st.st_uid, st.st_gid, int(st.st_mtime)
    if shift != (0, 0):
        ti.uid = ti.uid - shift[0] if ti.uid >= shift[0] else 65534
        ti.gid = ti.gid - shift[1] if ti.gid >= shift[1] else 65534
    fmt = stat.S_IFMT(st.st_mode)
    if fmt == stat.S_IFDIR:
        ti.type = tarfile.DIRTYPE
    elif fmt == stat.S_IFLNK:
        ti.type, ti.linkname = tarfile.SYMTYPE, readlink()
    elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
        ti.type = tarfile.CHRTYPE if fmt == stat.S_IFCHR else tarfile.BLKTYPE
        ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif fmt == stat.S_IFIFO:
        ti.type = tarfile.FIFOTYPE
    elif fmt == stat.S_IFREG:
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in links:
            ti.type, ti.linkname = tarfile.LNKTYPE, links[key]
        else:
            links[key] = name
            ti.size = st.st_size
    else:
        return None
    return ti


def _add_node_to_tar(
    tf: Any,
    view: MergedView,
    node: Any,
    rel: str,
    links: dict[tuple[int, int], str],
    shift: tuple[int, int],
) -> None:
    ti = tar_header(rel, node.st, links, lambda: view.readlink(node), shift)
    if ti is None:
        return
    if ti.isreg():
        with os.fdopen(view.open(node), "rb") as f:
            tf.addfile(ti, f)
        return
    tf.addfile(ti)


def _add_to_tar(
    tf: Any,
    root_fd: int,
    rel: str,
    links: dict[tuple[int, int], str],
    shift: tuple[int, int] = (0, 0),
) -> Any:
    """Add the entry `rel` of the directory `root_fd` (a container's upper directory, which its
    processes may be changing right now): opened beneath the root by fd, never through a path
    string, described from that fd and read only as long as its size then. None if the entry
    is gone or is a socket."""
    try:
        fd = fs.open_beneath(root_fd, rel, fs.O_PATH, follow=False)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        ti = tar_header(rel, os.fstat(fd), links, lambda: os.readlink("", dir_fd=fd), shift)
        if ti is None:
            return None
        if ti.isreg():
            # the very inode just described: its O_PATH fd opened again for reading
            with open(os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC), "rb") as f:
                tf.addfile(ti, f)
        else:
            tf.addfile(ti)
        return ti
    finally:
        os.close(fd)
