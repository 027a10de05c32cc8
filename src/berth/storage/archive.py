"""Safe extraction of layer tarballs, and the decompression of what arrives.

Imports `errors`. Every file is created relative to an open directory descriptor and every path
component is opened with O_NOFOLLOW, so nothing a tarball says can write outside the target:
`..` and absolute names are refused or contained, a symlink in a path is never followed, a hard
link can only point inside the layer. Whiteouts become overlayfs whiteouts (a 0/0 character
device for `.wh.NAME`, the `trusted.overlay.opaque` xattr for `.wh..wh..opq`).
"""

from __future__ import annotations

import errno
import io
import os
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from berth.errors import InvalidArgument, System

WHITEOUT_PREFIX = ".wh."
OPAQUE = ".wh..wh..opq"
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class _Tee(io.RawIOBase):
    """Reads from `src`, hands every byte read to `sink` (hashing, storing)."""

    def __init__(self, src: BinaryIO, sink: Callable[[bytes], None]) -> None:
        self.src = src
        self.sink = sink

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        data = self.src.read(len(b))
        if not data:
            return 0
        n = len(data)
        b[:n] = data
        self.sink(data)
        return n


def decompressed(src: BinaryIO) -> BinaryIO:
    """A reader of the uncompressed tar, whatever compression `src` has (gzip, zstd, none)."""
    buf = io.BufferedReader(src, 1 << 20) if not isinstance(src, io.BufferedReader) else src  # type: ignore[type-var]
    head = buf.peek(4)[:4]
    if head.startswith(GZIP_MAGIC):
        from isal import igzip  # ~2x zlib's inflate speed (shared/PEERS.md)

        return igzip.IGzipFile(fileobj=buf, mode="rb")  # type: ignore[no-untyped-call,return-value]
    if head == ZSTD_MAGIC:
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(buf)
    if head.startswith(b"BZh"):
        import bz2

        return bz2.BZ2File(buf)  # type: ignore[return-value]
    if head.startswith(b"\xfd7zX"):
        import lzma

        return lzma.LZMAFile(buf)  # type: ignore[return-value]
    return buf


@dataclass(slots=True)
class UnpackStats:
    size: int = 0  # bytes of file content written
    entries: int = 0


def clean_name(name: str) -> list[str]:
    """The components of a tar entry name inside the layer; refuses names that climb out."""
    parts: list[str] = []
    for p in name.replace("\\", "/").split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if not parts:
                raise InvalidArgument(f"invalid tar entry {name!r}: path escapes the layer")
            parts.pop()
            continue
        parts.append(p)
    return parts


class _Extractor:
    def __init__(self, root: str, shift: tuple[int, int] = (0, 0)) -> None:
        self.root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.dir_times: list[tuple[list[str], int]] = []
        self.stats = UnpackStats()
        self.shift = shift  # --userns-remap: owners as the host sees them

    def close(self) -> None:
        os.close(self.root_fd)

    def _open_dir(self, parts: list[str], create: bool = True) -> int:
        """An fd of the directory at `parts`, never following a symlink."""
        fd = os.dup(self.root_fd)
        try:
            for p in parts:
                try:
                    nfd = os.open(
                        p, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd
                    )
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(p, 0o755, dir_fd=fd)
                    nfd = os.open(
                        p, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd
                    )
                except OSError as e:
                    if e.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise InvalidArgument(
                            f"invalid tar entry: {'/'.join(parts)}: "
                            f"{p} is not a directory (a symlink is never followed)"
                        ) from None
                    raise
                os.close(fd)
                fd = nfd
            return fd
        except BaseException:
            os.close(fd)
            raise

    @staticmethod
    def _remove(name: str, dfd: int, *, keep_dir: bool = False) -> None:
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return
            sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dfd)
            try:
                for child in os.listdir(sub):
                    _Extractor._remove(child, sub)
            finally:
                os.close(sub)
            os.rmdir(name, dir_fd=dfd)
        else:
            os.unlink(name, dir_fd=dfd)

    def add(self, tf: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        parts = clean_name(m.name)
        if not parts:
            return  # the root entry "./"
        self.stats.entries += 1
        name = parts[-1]
        pfd = self._open_dir(parts[:-1])
        try:
            if name == OPAQUE:
                os.setxattr(pfd, "trusted.overlay.opaque", b"y")
                return
            if name.startswith(WHITEOUT_PREFIX):
                target = name[len(WHITEOUT_PREFIX) :]
                self._remove(target, pfd)
                os.mknod(target, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=pfd)
                return
            self._remove(name, pfd, keep_dir=m.isdir())
            if m.isdir():
                try:
                    os.mkdir(name, 0o700, dir_fd=pfd)
                except FileExistsError:
                    pass
                self.dir_times.append((parts, int(m.mtime)))
            elif m.isreg():
                fd = os.open(
                    name,
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                    0o600,
                    dir_fd=pfd,
                )
                try:
                    src = tf.extractfile(m)
                    assert src is not None
                    holes = False
                    while chunk := src.read(1 << 20):
                        if chunk.count(0) == len(chunk):
                            # zeros become a hole: a huge sparse file costs no disk
                            os.lseek(fd, len(chunk), os.SEEK_CUR)
                            holes = True
                        else:
                            os.write(fd, chunk)
                    if holes:
                        os.ftruncate(fd, m.size)
                    self.stats.size += m.size
                finally:
                    os.close(fd)
            elif m.issym():
                os.symlink(m.linkname, name, dir_fd=pfd)
            elif m.islnk():
                tparts = clean_name(m.linkname)
                if not tparts:
                    raise InvalidArgument(f"invalid hard link {m.name!r} -> {m.linkname!r}")
                try:
                    tfd = self._open_dir(tparts[:-1], create=False)
                except FileNotFoundError:
                    raise InvalidArgument(
                        f"invalid hard link {m.name!r}: target {m.linkname!r} is not in the layer"
                    ) from None
                try:
                    tst = os.stat(tparts[-1], dir_fd=tfd, follow_symlinks=False)
                    if stat.S_ISDIR(tst.st_mode):
                        raise InvalidArgument(f"invalid hard link to a directory: {m.name!r}")
                    os.link(tparts[-1], name, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
                except FileNotFoundError:
                    raise InvalidArgument(
                        f"invalid hard link {m.name!r}: target {m.linkname!r} is not in the layer"
                    ) from None
                finally:
                    os.close(tfd)
                return  # a hard link shares the target's metadata
            elif m.ischr() or m.isblk() or m.isfifo():
                kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK if m.isblk() else stat.S_IFIFO
                os.mknod(name, kind | 0o600, os.makedev(m.devmajor, m.devminor), dir_fd=pfd)
            else:
                return  # other entry types carry nothing for a filesystem
            self._apply_metadata(m, name, pfd, self.shift)
        finally:
            os.close(pfd)

    @staticmethod
    def _apply_metadata(
        m: tarfile.TarInfo, name: str, pfd: int, shift: tuple[int, int] = (0, 0)
    ) -> None:
        os.chown(name, m.uid + shift[0], m.gid + shift[1], dir_fd=pfd, follow_symlinks=False)
        if not m.issym():
            # chmod after chown: chown clears setuid/setgid bits
            fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
            try:
                os.chmod(f"/proc/self/fd/{fd}", stat.S_IMODE(m.mode))
                for key, value in m.pax_headers.items():
                    if key.startswith("SCHILY.xattr."):
                        try:
                            os.setxattr(
                                f"/proc/self/fd/{fd}",
                                key[len("SCHILY.xattr.") :],
                                value.encode("utf-8", "surrogateescape"),
                            )
                        except OSError:
                            pass  # an xattr this filesystem refuses is not fatal, as in Docker
            finally:
                os.close(fd)
        os.utime(name, ns=(int(m.mtime * 1e9),) * 2, dir_fd=pfd, follow_symlinks=False)

    def finish(self) -> None:
        for parts, mtime in reversed(self.dir_times):
            pfd = self._open_dir(parts[:-1], create=False)
            try:
                os.utime(parts[-1], (mtime, mtime), dir_fd=pfd, follow_symlinks=False)
            finally:
                os.close(pfd)


def unpack(stream: BinaryIO, target: str, shift: tuple[int, int] = (0, 0)) -> UnpackStats:
    """Extract the (already uncompressed) tar `stream` into `target` safely; owners are moved
    up by `shift` (uid, gid) for a daemon with --userns-remap.

    Raises InvalidArgument for a malformed archive or a hostile entry."""
    ex = _Extractor(target, shift)
    try:
        with tarfile.open(fileobj=stream, mode="r|", errorlevel=2) as tf:
            for m in tf:
                ex.add(tf, m)
        ex.finish()
        return ex.stats
    except (tarfile.TarError, EOFError, UnicodeError) as e:
        raise InvalidArgument(f"invalid tar archive: {e}") from e
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO):
            raise System(f"unpack into {target}: {e}") from e
        raise InvalidArgument(f"invalid tar archive: {e}") from e
    finally:
        ex.close()


def drain(stream: BinaryIO) -> None:
    """Read a stream to its end (so a tee sees the tar's trailing blocks)."""
    while stream.read(1 << 20):
        pass


__all__ = [
    "unpack",
    "decompressed",
    "drain",
    "clean_name",
    "UnpackStats",
    "WHITEOUT_PREFIX",
    "OPAQUE",
    "_Tee",
]
