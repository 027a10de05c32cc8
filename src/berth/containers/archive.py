"""`docker cp` on the daemon's side: stat a path in a container, archive it, extract a tar into it.

Part of the container service (see `berth.containers`). Every lookup goes by directory fd
from the container's root with O_NOFOLLOW (`berth.fs`), never through a host path string, so a
container that swaps a path component for a symlink while a copy runs (Docker's CVE-2018-15664)
leads the copy into its own root or nowhere:

- a running container: its root is its init's `/proc/PID/root`, opened once; its volumes,
  binds and tmpfs are there as the container sees them (they are mounted in its namespace).
- a stopped one: the merged view of its writable layer over the image's layers
  (`storage.MergedView`), with its volumes and binds opened at their destinations. A write goes
  into the volume mounted at its path, else into the writable (upper) layer: a directory that
  is only in the image's layers is made there first with its owner and mode (overlayfs's own
  copy-up of a directory), a whiteout is replaced and the new directory made opaque, so what
  the container sees when it starts is what was copied.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from berth import fs, storage
from berth.errors import BerthError, Forbidden, InvalidArgument, NotFound
from berth.storage import merged as merged_view
from berth.storage.archive import clean_name
from berth.storage.merged import is_whiteout

if TYPE_CHECKING:
    from berth.containers import ContainerService

log = logging.getLogger(__name__)

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_OPAQUE = "trusted.overlay.opaque"

# Go's os.FileMode bits, as X-Docker-Container-Path-Stat carries them
MODE_DIR = 1 << 31
MODE_SYMLINK = 1 << 27
MODE_DEVICE = 1 << 26
MODE_NAMED_PIPE = 1 << 25
MODE_SOCKET = 1 << 24
MODE_SETUID = 1 << 23
MODE_SETGID = 1 << 22
MODE_CHAR_DEVICE = 1 << 21
MODE_STICKY = 1 << 20


def go_mode(st_mode: int) -> int:
    """A stat mode as Go's os.FileMode."""
    m = st_mode & 0o777
    fmt = stat.S_IFMT(st_mode)
    m |= {stat.S_IFDIR: MODE_DIR, stat.S_IFLNK: MODE_SYMLINK, stat.S_IFIFO: MODE_NAMED_PIPE,
          stat.S_IFSOCK: MODE_SOCKET, stat.S_IFBLK: MODE_DEVICE,
          stat.S_IFCHR: MODE_DEVICE | MODE_CHAR_DEVICE}.get(fmt, 0)
    if st_mode & stat.S_ISUID:
        m |= MODE_SETUID
    if st_mode & stat.S_ISGID:
        m |= MODE_SETGID
    if st_mode & stat.S_ISVTX:
        m |= MODE_STICKY
    return m


@dataclass(frozen=True, slots=True)
class PathStat:
    name: str
    size: int
    mode: int          # Go's os.FileMode
    mtime: float       # seconds since the epoch
    link_target: str   # a symlink's target resolved inside the container; "" otherwise

    @property
    def is_dir(self) -> bool:
        return bool(self.mode & MODE_DIR)


# --- the trees a copy walks ----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Mount:
    parts: tuple[str, ...]
    source: str        # the volume's or bind's host directory (berth's own or the user's)
    rw: bool


class _Tree:
    """A container's files as its processes see them. Nodes are what `walker` makes."""

    walker: Any
    root: Any

    def stat(self, node: Any) -> os.stat_result:
        raise NotImplementedError

    def names(self, node: Any) -> list[str]:
        raise NotImplementedError

    def open_read(self, node: Any) -> int:
        raise NotImplementedError

    def readlink(self, node: Any) -> str:
        raise NotImplementedError

    def dir_for_write(self, parts: list[str], *, replace: bool = False) -> int:
        """A directory fd (O_RDONLY) at `parts`, its missing directories made (0755, root)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def _reopen(fd: int, flags: int) -> int:
    """A real open file from an O_PATH fd: the same inode, no path looked up again."""
    return os.open(f"/proc/self/fd/{fd}", flags | os.O_CLOEXEC)


class _LiveTree(_Tree):
    """A running container, from its init's /proc/PID/root."""

    def __init__(self, root_fd: int, shift: tuple[int, int]) -> None:
        self.walker = fs.FD_WALKER
        self.root = root_fd
        self.shift = shift

    def stat(self, node: int) -> os.stat_result:
        return os.fstat(node)

    def names(self, node: int) -> list[str]:
        fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=node)
        try:
            return sorted(os.listdir(fd))
        finally:
            os.close(fd)

    def open_read(self, node: int) -> int:
        if not stat.S_ISREG(os.fstat(node).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        return _reopen(node, os.O_RDONLY)

    def readlink(self, node: int) -> str:
        return os.readlink("", dir_fd=node)

    def dir_for_write(self, parts: list[str], *, replace: bool = False) -> int:
        fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=self.root)
        try:
            for i, p in enumerate(parts):
                if replace and i == len(parts) - 1:
                    _remove_non_dir(fd, p)
                nfd = fs.mkdir_at(fd, p, 0o755)   # O_NOFOLLOW: a symlink here fails (ELOOP)
                os.close(fd)
                fd = nfd
            return fd
        except BaseException:
            os.close(fd)
            raise

    def close(self) -> None:
        os.close(self.root)


class _SNode:
    """A node of a stopped container: in the merged layers, or (below a volume's or bind's
    destination) an fd of the host directory mounted there."""

    __slots__ = ("merged", "fd", "parts")

    def __init__(self, parts: tuple[str, ...], merged: merged_view.Node | None = None,
                 fd: int | None = None) -> None:
        self.parts = parts
        self.merged = merged
        self.fd = fd


class _StoppedWalker:
    def __init__(self, mounts: dict[tuple[str, ...], _Mount]) -> None:
        self.mounts = mounts

    def lookup(self, parent: _SNode, name: str) -> _SNode | None:
        parts = (*parent.parts, name)
        m = self.mounts.get(parts)
        if m is not None:
            try:
                return _SNode(parts, fd=fs.open_dir(m.source))
            except OSError:
                return None
        if parent.fd is not None:
            fd = fs.FD_WALKER.lookup(parent.fd, name)
            return None if fd is None else _SNode(parts, fd=fd)
        assert parent.merged is not None
        node = merged_view.child(parent.merged, name)
        return None if node is None else _SNode(parts, merged=node)

    def readlink(self, node: _SNode) -> str | None:
        if node.fd is not None:
            return fs.FD_WALKER.readlink(node.fd)
        assert node.merged is not None
        return merged_view.WALKER.readlink(node.merged)

    def is_dir(self, node: _SNode) -> bool:
        if node.fd is not None:
            return fs.FD_WALKER.is_dir(node.fd)
        assert node.merged is not None
        return node.merged.is_dir

    def close(self, node: _SNode) -> None:
        if node.fd is not None:
            os.close(node.fd)
            node.fd = None
        if node.merged is not None:
            node.merged.close()


class _StoppedTree(_Tree):
    def __init__(self, upper: str, lowers: list[str], mounts: list[_Mount],
                 shift: tuple[int, int]) -> None:
        self.mounts = {m.parts: m for m in mounts}
        self.walker = _StoppedWalker(self.mounts)
        self.shift = shift
        self.view = storage.MergedView([upper, *lowers])
        self.lowers = storage.MergedView(lowers) if lowers else None
        self.upper_fd = fs.open_dir(upper)
        self.root = _SNode((), merged=self.view.root)

    def stat(self, node: _SNode) -> os.stat_result:
        if node.fd is not None:
            return os.fstat(node.fd)
        assert node.merged is not None
        return node.merged.st

    def names(self, node: _SNode) -> list[str]:
        if node.fd is not None:
            fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=node.fd)
            try:
                return sorted(os.listdir(fd))
            finally:
                os.close(fd)
        assert node.merged is not None
        return merged_view.names(node.merged)

    def open_read(self, node: _SNode) -> int:
        if node.fd is not None:
            if not stat.S_ISREG(os.fstat(node.fd).st_mode):
                raise OSError(errno.EINVAL, "not a regular file")
            return _reopen(node.fd, os.O_RDONLY)
        assert node.merged is not None
        return storage.MergedView.open(node.merged)

    def readlink(self, node: _SNode) -> str:
        r: str | None = self.walker.readlink(node)
        if r is None:
            raise OSError(errno.EINVAL, "not a symlink")
        return r

    def dir_for_write(self, parts: list[str], *, replace: bool = False) -> int:
        fd = os.dup(self.upper_fd)
        in_upper = True          # else in a volume or bind: plain directories
        lower_shows = self.lowers is not None
        try:
            for i, p in enumerate(parts):
                last = i == len(parts) - 1
                m = self.mounts.get(tuple(parts[:i + 1]))
                if m is not None:
                    nfd = fs.open_dir(m.source)
                    os.close(fd)
                    fd, in_upper = nfd, False
                    continue
                if not in_upper:
                    if replace and last:
                        _remove_non_dir(fd, p)
                    nfd = fs.mkdir_at(fd, p, 0o755)
                    os.close(fd)
                    fd = nfd
                    continue
                try:
                    st: os.stat_result | None = os.stat(p, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    st = None
                if st is not None and stat.S_ISDIR(st.st_mode):
                    nfd = os.open(p, _DIR, dir_fd=fd)
                    if _opaque(nfd):
                        lower_shows = False
                    os.close(fd)
                    fd = nfd
                    continue
                opaque = False
                if st is not None:
                    if not is_whiteout(st) and not (replace and last):
                        raise NotADirectoryError(errno.ENOTDIR, "not a directory",
                                                 "/" + "/".join(parts[:i + 1]))
                    os.unlink(p, dir_fd=fd)   # a whiteout, or what the tar replaces
                    opaque = True
                lower = None
                if lower_shows and not opaque and self.lowers is not None:
                    lower = self.lowers.lookup("/".join(parts[:i + 1]))
                try:
                    if lower is not None and not lower.is_dir:
                        if not (replace and last):
                            raise NotADirectoryError(errno.ENOTDIR, "not a directory",
                                                     "/" + "/".join(parts[:i + 1]))
                        opaque = True
                    nfd = fs.mkdir_at(fd, p, 0o755)
                    try:
                        if lower is not None and lower.is_dir:
                            # copy-up: the image's directory, with its owner and mode
                            os.fchown(nfd, lower.st.st_uid, lower.st.st_gid)
                            os.fchmod(nfd, stat.S_IMODE(lower.st.st_mode))
                        else:
                            os.fchown(nfd, *self.shift)
                        if opaque:
                            os.setxattr(nfd, _OPAQUE, b"y")
                            lower_shows = False
                    except BaseException:
                        os.close(nfd)
                        raise
                finally:
                    if lower is not None:
                        lower.close()
                os.close(fd)
                fd = nfd
            return fd
        except BaseException:
            os.close(fd)
            raise

    def close(self) -> None:
        os.close(self.upper_fd)
        if self.lowers is not None:
            self.lowers.close()
        self.view.close()


def _opaque(fd: int) -> bool:
    try:
        return os.getxattr(fd, _OPAQUE) == b"y"
    except OSError:
        return False


def _remove_non_dir(dfd: int, name: str) -> None:
    """Make room for a directory: anything but a directory at `name` goes."""
    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=dfd)


def _remove(dfd: int, name: str) -> None:
    """Remove `name` in `dfd`, a directory with all it holds; nothing is followed."""
    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=dfd)
        return
    sub = os.open(name, _DIR, dir_fd=dfd)
    try:
        for child in os.listdir(sub):
            _remove(sub, child)
    finally:
        os.close(sub)
    os.rmdir(name, dir_fd=dfd)


# --- the service ---------------------------------------------------------------------------
class ArchiveService:
    """`HEAD`, `GET` and `PUT /containers/{id}/archive` over the container service."""

    def __init__(self, containers: ContainerService) -> None:
        self.containers = containers

    @contextmanager
    def _tree(self, doc: dict[str, Any]) -> Iterator[_Tree]:
        shift = self.containers.driver.shift
        state = doc.get("State") or {}
        pid = int(state.get("Pid") or 0)
        tree: _Tree
        if state.get("Running") and pid > 0:
            tree = _LiveTree(self._live_root(doc["Id"], pid), shift)
        else:
            cid = doc["Id"]
            upper = self.containers.driver.upper(cid)
            lowers: list[str] = []
            if self.containers.driver.name == "overlay2":
                lowers = [self.containers.images.layer_store.get(c).path
                          for c in reversed(doc["_berth"]["layers"])]
            mounts = [_Mount(tuple(fs.components(m["Destination"])), m["Source"],
                             bool(m.get("RW", True)))
                      for m in doc.get("Mounts") or [] if m.get("Type") in ("volume", "bind")
                      and m.get("Source")]
            try:
                tree = _StoppedTree(upper, lowers, mounts, shift)
            except FileNotFoundError:
                raise NotFound(f"container {cid[:12]} has no filesystem") from None
        try:
            yield tree
        finally:
            tree.close()

    def _live_root(self, cid: str, pid: int) -> int:
        """The container's root, from its init: checked to be in a mount namespace of its own
        and not the host's root, so a pid that a host process took over is never used."""
        try:
            pfd = os.open(f"/proc/{pid}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(f"container {cid[:12]} is not running") from None
        try:
            root = os.open("root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=pfd)
            try:
                ns = os.stat("ns/mnt", dir_fd=pfd)
                mine = os.stat("/proc/self/ns/mnt")
                rst, host = os.fstat(root), os.stat("/")
                if (ns.st_ino == mine.st_ino and ns.st_dev == mine.st_dev) or \
                        (rst.st_ino == host.st_ino and rst.st_dev == host.st_dev):
                    raise NotFound(f"container {cid[:12]} is not running")
                state = self.containers.resolve(cid).get("State") or {}
                if not state.get("Running") or state.get("Pid") != pid:
                    raise NotFound(f"container {cid[:12]} is not running")
            except BaseException:
                os.close(root)
                raise
            return root
        except FileNotFoundError:
            raise NotFound(f"container {cid[:12]} is not running") from None
        finally:
            os.close(pfd)

    # --- stat ---------------------------------------------------------------------------
    def stat(self, ref: str, path: str) -> PathStat:
        doc = self.containers.resolve(ref)
        with self._tree(doc) as tree:
            node = self._resolve(tree, doc, path)
            try:
                return self._stat(tree, node, path)
            finally:
                tree.walker.close(node)

    @staticmethod
    def _follow_last(path: str) -> bool:
        return path.endswith(("/", "/.")) or path in ("", ".")

    def _resolve(self, tree: _Tree, doc: dict[str, Any], path: str) -> Any:
        """The node `path` names: symlinks followed but in its last place (unless it ends in
        `/` or `/.`), as Docker resolves a copy's source."""
        try:
            stack = fs.walk(tree.walker, tree.root, path, follow=self._follow_last(path))
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"Could not find the file {path} in container "
                           f"{doc['Name'].lstrip('/')}") from None
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise InvalidArgument(f"{path}: too many levels of symbolic links") from None
            raise
        if len(stack) == 1:
            return _dup_root(tree)
        node = stack.pop()[1]
        fs.close_stack(tree.walker, stack)
        return node

    def _stat(self, tree: _Tree, node: Any, path: str) -> PathStat:
        st = tree.stat(node)
        link = ""
        if stat.S_ISLNK(st.st_mode):
            try:
                stack = fs.walk(tree.walker, tree.root, path, follow=True, missing_ok=True)
                link = "/" + "/".join(name for name, _ in stack[1:])
                fs.close_stack(tree.walker, stack)
            except OSError:
                link = tree.readlink(node)
        return PathStat(name=_base(path), size=st.st_size, mode=go_mode(st.st_mode),
                        mtime=st.st_mtime, link_target=link)

    # --- archive (GET) ------------------------------------------------------------------
    def archive(self, ref: str, path: str, out: BinaryIO,
                on_stat: Callable[[PathStat], None] | None = None) -> PathStat:
        """Write a tar of `path` to `out` (its entries under the path's base name; a path that
        ends in `/.` gives the directory's content): the path's stat, also handed to `on_stat`
        before the first byte (the tar is of the very entry that was stat'ed: it is held open
        from the walk on)."""
        doc = self.containers.resolve(ref)
        with self._tree(doc) as tree:
            node = self._resolve(tree, doc, path)
            try:
                ps = self._stat(tree, node, path)
                if on_stat is not None:
                    on_stat(ps)
                base = _base(path)
                self._write_tar(tree, node, "." if base == "/" else base, out)
            finally:
                tree.walker.close(node)
        return ps

    def _write_tar(self, tree: _Tree, node: Any, arc: str, out: BinaryIO) -> None:
        shift = self.containers.driver.shift
        links: dict[tuple[int, int], str] = {}
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
            def add(n: Any, name: str) -> None:
                st = tree.stat(n)
                ti = storage.tar_header(name, st, links, lambda: tree.readlink(n), shift)
                if ti is None:
                    return   # a socket has no place in a tar
                if ti.isdir():
                    tf.addfile(ti)
                    for child_name in tree.names(n):
                        c = tree.walker.lookup(n, child_name)
                        if c is None:
                            continue   # gone meanwhile
                        try:
                            add(c, child_name if name == "." else f"{name}/{child_name}")
                        finally:
                            tree.walker.close(c)
                    return
                if ti.isreg():
                    fd = tree.open_read(n)
                    with os.fdopen(fd, "rb") as f:
                        ti.size = os.fstat(fd).st_size
                        tf.addfile(ti, _Exactly(f, ti.size))
                    return
                tf.addfile(ti)
            add(node, arc)

    # --- extract (PUT) ------------------------------------------------------------------
    def extract(self, ref: str, path: str, src: BinaryIO, *, no_overwrite_dir_non_dir: bool =
                False, copy_uid_gid: bool = False) -> None:
        """Extract the tar `src` into the directory `path` of the container."""
        doc = self.containers.resolve(ref)
        name = doc["Name"].lstrip("/")
        with self._tree(doc) as tree:
            try:
                stack = fs.walk(tree.walker, tree.root, path, follow=True)
            except (FileNotFoundError, NotADirectoryError):
                raise NotFound(f"Could not find the file {path} in container {name}") from None
            try:
                if not tree.walker.is_dir(stack[-1][1]):
                    raise InvalidArgument("extraction point is not a directory")
                dest = [n for n, _ in stack[1:]]
            finally:
                fs.close_stack(tree.walker, stack)
            self._check_writable(doc, dest)
            ex = _Extract(tree, dest, self.containers.driver.shift, no_overwrite_dir_non_dir,
                          copy_uid_gid)
            try:
                with tarfile.open(fileobj=src, mode="r|*", errorlevel=2) as tf:
                    for m in tf:
                        ex.add(tf, m)
                ex.finish()
            except (tarfile.TarError, EOFError, UnicodeError) as e:
                raise InvalidArgument(f"invalid tar archive: {e}") from e
            except BerthError:
                raise
            except OSError as e:
                if e.errno == errno.EROFS:
                    raise Forbidden("container rootfs is marked read-only") from None
                if e.errno in (errno.ELOOP, errno.ENOTDIR, errno.EXDEV):
                    raise InvalidArgument(f"cannot extract {e.filename or ''}: {e.strerror} "
                                          "(a symlink is never followed)") from None
                raise
        log.info("copied into %s:%s", doc["Id"][:12], path, extra={"container": doc["Id"]})

    @staticmethod
    def _check_writable(doc: dict[str, Any], dest: list[str]) -> None:
        best: dict[str, Any] | None = None
        best_len = -1
        for m in doc.get("Mounts") or []:
            parts = fs.components(m["Destination"])
            if dest[:len(parts)] == parts and len(parts) > best_len:
                best, best_len = m, len(parts)
        if best is not None:
            if not best.get("RW", True):
                raise Forbidden("mounted volume is marked read-only")
            return
        if (doc.get("HostConfig") or {}).get("ReadonlyRootfs"):
            raise Forbidden("container rootfs is marked read-only")


class _Exactly:
    """A file read as `size` bytes: zeros past a file that shrank meanwhile, so the tar
    stays well-formed whatever the container does to it."""

    def __init__(self, f: Any, size: int) -> None:
        self.f = f
        self.left = size

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        n = self.left if n < 0 else min(n, self.left)
        data = self.f.read(n)
        if len(data) < n:
            data += b"\0" * (n - len(data))
        self.left -= len(data)
        return data  # type: ignore[no-any-return]


class _Extract:
    """One PUT's extraction: entries land below `dest` through `tree.dir_for_write`, whose
    every step is O_NOFOLLOW, and are created with O_EXCL|O_NOFOLLOW (`berth.fs`)."""

    def __init__(self, tree: _Tree, dest: list[str], shift: tuple[int, int],
                 no_overwrite: bool, copy_ids: bool) -> None:
        self.tree = tree
        self.dest = dest
        self.shift = shift
        self.no_overwrite = no_overwrite
        self.copy_ids = copy_ids
        self.dir_times: list[tuple[list[str], int]] = []

    def _existing(self, parts: list[str]) -> os.stat_result | None:
        try:
            stack = fs.walk(self.tree.walker, self.tree.root, "/".join(parts), follow=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            return self.tree.stat(stack[-1][1]) if len(stack) > 1 else None
        finally:
            fs.close_stack(self.tree.walker, stack)

    def add(self, tf: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        rel = clean_name(m.name)   # InvalidArgument for a name that climbs out
        if not rel:
            if m.isdir():
                return   # the root entry "./"
            raise InvalidArgument(f"invalid tar entry {m.name!r}")
        if m.ischr() or m.isblk():
            raise InvalidArgument(f"invalid tar entry {m.name!r}: device nodes are not "
                                  "copied into a container")
        if not (m.isdir() or m.isreg() or m.issym() or m.islnk() or m.isfifo()):
            return
        parts = self.dest + rel
        have = self._existing(parts)
        if have is not None and self.no_overwrite:
            if stat.S_ISDIR(have.st_mode) and not m.isdir():
                raise InvalidArgument(f"cannot overwrite directory \"/{'/'.join(parts)}\" "
                                      f"with non-directory \"{m.name}\"")
            if not stat.S_ISDIR(have.st_mode) and m.isdir():
                raise InvalidArgument(f"cannot overwrite non-directory \"/{'/'.join(parts)}\" "
                                      f"with directory \"{m.name}\"")
        if m.isdir():
            fd = self.tree.dir_for_write(parts, replace=True)
            try:
                self._meta_fd(fd, m)
            finally:
                os.close(fd)
            self.dir_times.append((parts, int(m.mtime)))
            return
        name = parts[-1]
        pfd = self.tree.dir_for_write(parts[:-1])
        try:
            _remove(pfd, name)
            if m.isreg():
                fd = fs.create_at(pfd, name, 0o600)
                try:
                    f = tf.extractfile(m)
                    assert f is not None
                    while chunk := f.read(1 << 20):
                        view = memoryview(chunk)
                        while view:
                            view = view[os.write(fd, view):]
                    self._meta_fd(fd, m)
                finally:
                    os.close(fd)
            elif m.issym():
                fs.symlink_at(m.linkname, pfd, name)
                fs.chown_at(pfd, name, *self._owner(m))
                os.utime(name, ns=(int(m.mtime * 1e9),) * 2, dir_fd=pfd, follow_symlinks=False)
            elif m.islnk():
                target = clean_name(m.linkname)
                if not target:
                    raise InvalidArgument(f"invalid hard link {m.name!r} -> {m.linkname!r}")
                tparts = self.dest + target
                tfd = self.tree.dir_for_write(tparts[:-1])
                try:
                    tst = os.stat(tparts[-1], dir_fd=tfd, follow_symlinks=False)
                    if stat.S_ISDIR(tst.st_mode):
                        raise InvalidArgument(f"invalid hard link to a directory: {m.name!r}")
                    os.link(tparts[-1], name, src_dir_fd=tfd, dst_dir_fd=pfd,
                            follow_symlinks=False)
                except FileNotFoundError:
                    raise InvalidArgument(f"invalid hard link {m.name!r}: target "
                                          f"{m.linkname!r} is not in the archive") from None
                finally:
                    os.close(tfd)
            else:   # a fifo
                os.mkfifo(name, 0o600, dir_fd=pfd)
                fd = os.open(name, fs.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
                try:
                    self._meta_fd(fd, m)
                finally:
                    os.close(fd)
        finally:
            os.close(pfd)

    def _owner(self, m: tarfile.TarInfo) -> tuple[int, int]:
        uid, gid = (m.uid, m.gid) if self.copy_ids else (0, 0)
        return uid + self.shift[0], gid + self.shift[1]

    def _meta_fd(self, fd: int, m: tarfile.TarInfo) -> None:
        """Owner, mode and times of the entry open as `fd` (chmod after chown: chown clears
        the setuid and setgid bits)."""
        path = f"/proc/self/fd/{fd}"
        os.chown(path, *self._owner(m))
        os.chmod(path, stat.S_IMODE(m.mode))
        for key, value in m.pax_headers.items():
            if key.startswith("SCHILY.xattr.") and not key.startswith("SCHILY.xattr.trusted."):
                try:
                    os.setxattr(path, key[len("SCHILY.xattr."):],
                                value.encode("utf-8", "surrogateescape"))
                except OSError:
                    pass   # an xattr the filesystem refuses is not fatal, as in Docker
        if not m.isdir():
            os.utime(path, ns=(int(m.mtime * 1e9),) * 2)

    def finish(self) -> None:
        for parts, mtime in reversed(self.dir_times):
            try:
                fd = self.tree.dir_for_write(parts)
            except OSError:
                continue
            try:
                os.utime(f"/proc/self/fd/{fd}", (mtime, mtime))
            finally:
                os.close(fd)


def _dup_root(tree: _Tree) -> Any:
    """A node of the root that the caller closes like any other."""
    if isinstance(tree, _LiveTree):
        return os.open(".", fs.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=tree.root)
    assert isinstance(tree, _StoppedTree)
    mounted = tree.mounts.get(())
    if mounted is not None:
        return _SNode((), fd=fs.open_dir(mounted.source))
    return _SNode((), merged=tree.view._root_copy())


def _base(path: str) -> str:
    """The name a copy of `path` has (Go's filepath.Base of the path with its trailing `/.`
    kept): `.` for a directory's content, `/` for the root."""
    if path.endswith("/.") or path == ".":
        return "."
    parts = fs.components(path)
    return parts[-1] if parts else "/"


__all__ = ["ArchiveService", "PathStat", "go_mode"]
