"""An image's files read from its layer directories, without mounting them.

Imports `storage`. The builder reads a stage's or an image's files this way (COPY --from,
RUN --mount=from=..., the owner names of COPY --chown): the layers are merged as overlayfs
would merge them (whiteouts, opaque directories, nothing of a lower layer under a higher one's
file or symlink), through directory fds. A path is taken as written: a symlink on the way is
followed only where a method says so, and then inside the image's root.
"""

from __future__ import annotations

import os
import stat
from types import TracebackType

from berth import fs
from berth.storage import MergedView, copy_into
from berth.storage import _lower_stat as lower_stat
from berth.storage.merged import names


class LayerView:
    """The merged files of `dirs_top_first` (layer directories, the top layer first).
    `shift` is --userns-remap's (uid, gid): owners on disk, less this, are the image's."""

    def __init__(self, dirs_top_first: list[str], shift: tuple[int, int] = (0, 0)) -> None:
        self.dirs = dirs_top_first
        self.shift = shift
        self._merged: MergedView | None = None  # opened on first use

    @property
    def _view(self) -> MergedView:
        if self._merged is None:
            self._merged = MergedView(self.dirs)
        return self._merged

    def close(self) -> None:
        if self._merged is not None:
            self._merged.close()
            self._merged = None

    def __enter__(self) -> LayerView:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_merged", None) is not None:
            self.close()

    def lstat(self, rel: str) -> os.stat_result | None:
        """The entry at `rel` (no symlink followed), or None where the image has none."""
        node = self._view.lookup(rel)
        if node is None:
            return None
        node.close()
        return node.st

    def lower_stat(self, rel: str) -> os.stat_result | None:
        """As `lstat`, as the kernel would show it below a container's upper directory."""
        return lower_stat(rel, self.dirs)

    def readlink(self, rel: str) -> str:
        node = self._view.lookup(rel)
        if node is None:
            raise FileNotFoundError(rel)
        try:
            return self._view.readlink(node)
        finally:
            node.close()

    def children(self, rel: str) -> list[str]:
        node = self._view.lookup(rel)
        if node is None:
            return []
        try:
            return names(node) if node.is_dir else []
        finally:
            node.close()

    def paths(self) -> list[str]:
        return sorted(rel for rel, _ in self._view.entries())

    def open(self, rel: str) -> int:
        """A read-only fd of the file at `rel`."""
        node = self._view.lookup(rel)
        if node is None:
            raise FileNotFoundError(rel)
        try:
            return self._view.open(node)
        finally:
            node.close()

    def read_file(self, rel: str, limit: int) -> bytes | None:
        """At most `limit` bytes of a regular file, symlinks followed inside the image's root
        only (one to a host path reads the image's own file or nothing); None where there is
        no regular file."""
        with MergedView(self.dirs) as view:
            node = view.resolve(rel)
            if node is None:
                return None
            try:
                if not stat.S_ISREG(node.st.st_mode):
                    return None
                fd = view.open(node)
            finally:
                node.close()
        with os.fdopen(fd, "rb") as f:
            return f.read(limit)

    def materialize(self, rel: str, dest: str) -> None:
        """Write `rel` to `dest`, a new name in a directory of berth's own: through directory
        fds with O_NOFOLLOW|O_EXCL only (berth.fs)."""
        node = self._view.lookup(rel)
        if node is None:
            raise FileNotFoundError(rel)
        parent = fs.open_dir(os.path.dirname(dest))
        name = os.path.basename(dest)
        try:
            st = node.st
            if node.is_dir:
                os.mkdir(name, 0o700, dir_fd=parent)
                fd = fs.mkdir_at(parent, name)
                try:
                    copy_into(self._view, node, fd)
                    os.fchmod(fd, stat.S_IMODE(st.st_mode))
                finally:
                    os.close(fd)
            elif stat.S_ISLNK(st.st_mode):
                fs.symlink_at(self._view.readlink(node), parent, name)
            elif stat.S_ISREG(st.st_mode):
                src = self._view.open(node)
                try:
                    out = fs.create_at(parent, name, 0o600)
                    try:
                        fs.copy_fd(src, out)
                        os.fchmod(out, stat.S_IMODE(st.st_mode))
                    finally:
                        os.close(out)
                finally:
                    os.close(src)
        finally:
            node.close()
            os.close(parent)


__all__ = ["LayerView"]
