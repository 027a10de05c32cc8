"""A build's file sources: the context (a tarball kept as it came, with an index) and other
file trees (a stage's or an image's, as a directory).

Imports `fs`, `errors`, `images` (a stage's layers, read through images.LayerView). The
context is not unpacked: writing thousands of small files costs more than a whole cached
rebuild, so the tar is spooled to one file while an index of its entries (kind, mode, size,
mtime, link, data offset, sha256 of the content) is made in the same pass. COPY reads the
bytes it needs straight from the spool. Names are cleaned as they are indexed: nothing can name
a path outside the context, and a symlink is only ever followed by `resolve`, inside the root.
"""

from __future__ import annotations

import copy
import errno
import hashlib
import io
import os
import posixpath
import stat
import tarfile
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from berth import fs
from berth.errors import InvalidArgument
from berth.images import LayerView, decompressed


@dataclass(slots=True)
class Entry:
    kind: str  # "f" file, "d" directory, "l" symlink
    mode: int  # permission bits
    size: int = 0
    mtime: int = 0
    link: str = ""
    offset: int = -1  # where a file's bytes start in the spool
    digest: str = ""  # sha256 hex of a file's bytes


class Tree(Protocol):
    def get(self, rel: str) -> Entry | None: ...
    def children(self, rel: str) -> list[str]: ...
    def paths(self) -> list[str]: ...
    def open(self, rel: str) -> BinaryIO: ...
    def digest(self, rel: str) -> str: ...
    def materialize(self, rel: str, dest: str) -> None: ...


def _clean(name: str) -> str:
    parts = []
    for p in name.replace("\\", "/").split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            raise InvalidArgument(f"invalid build context: {name!r} leaves the context")
        parts.append(p)
    return "/".join(parts)


class _Tee(io.RawIOBase):
    def __init__(self, src: BinaryIO, out: BinaryIO) -> None:
        self.src, self.out = src, out

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        data = self.src.read(len(b))
        n = len(data)
        b[:n] = data
        if n:
            self.out.write(data)
        return n


class TarContext:
    """The context tarball as it came, and its index."""

    def __init__(self, spool: str) -> None:
        self.spool = spool
        self.entries: dict[str, Entry] = {"": Entry("d", 0o755)}
        self._kids: dict[str, set[str]] = {"": set()}
        self._f: BinaryIO | None = None

    @classmethod
    def ingest(cls, src: BinaryIO, spool: str) -> TarContext:
        ctx = cls(spool)
        stream = decompressed(src)
        with open(spool, "wb") as out:
            tee = io.BufferedReader(_Tee(stream, out), 1 << 20)  # type: ignore[type-var]
            try:
                with tarfile.open(fileobj=tee, mode="r|") as tf:
                    end = 0  # where the last member's data ends
                    while True:
                        try:
                            m = tf.next()
                        except tarfile.ReadError as e:
                            # the docker CLI's tar of a Dockerfile from stdin or from outside
                            # the context (moby's ReplaceFileTarWrapper) ends right after the
                            # last file's data, with no padding and no end blocks; Go's reader
                            # (dockerd's) takes that end as the archive's
                            while tee.read(1 << 20):
                                pass
                            if end and str(e) == "unexpected end of data" and out.tell() == end:
                                break
                            raise
                        if m is None:
                            break
                        ctx._add(tf, m)
                        end = m.offset_data + (m.size if m.isreg() else 0)
                    # read to the end, so that the spool holds every byte
                    while tee.read(1 << 20):
                        pass
            except tarfile.ReadError as e:
                if "empty file" not in str(e):
                    raise InvalidArgument(f"invalid build context: {e}") from None
            except tarfile.TarError as e:
                raise InvalidArgument(f"invalid build context: {e}") from None
        return ctx

    def _add(self, tf: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        rel = _clean(m.name)
        if not rel:
            return
        mode = m.mode & 0o7777
        if m.isdir():
            e = Entry("d", mode, mtime=int(m.mtime))
        elif m.issym():
            e = Entry("l", 0o777, mtime=int(m.mtime), link=m.linkname)
        elif m.islnk():
            target = self.entries.get(_clean(m.linkname))
            if target is None or target.kind != "f":
                raise InvalidArgument(
                    f"invalid build context: hard link {m.name} to "
                    f"{m.linkname}, which it does not hold"
                )
            e = Entry(
                "f", mode, target.size, int(m.mtime), offset=target.offset, digest=target.digest
            )
        elif m.isreg():
            h = hashlib.sha256()
            f = tf.extractfile(m)
            assert f is not None
            while chunk := f.read(1 << 20):
                h.update(chunk)
            e = Entry("f", mode, m.size, int(m.mtime), offset=m.offset_data, digest=h.hexdigest())
        else:
            return  # devices and fifos have no place in a context
        # parents that the tar does not list are directories
        parent = posixpath.dirname(rel)
        chain = []
        while parent and parent not in self.entries:
            chain.append(parent)
            parent = posixpath.dirname(parent)
        for p in reversed(chain):
            self.entries[p] = Entry("d", 0o755)
            self._kids.setdefault(posixpath.dirname(p), set()).add(posixpath.basename(p))
            self._kids.setdefault(p, set())
        pe = self.entries.get(posixpath.dirname(rel))
        if pe is not None and pe.kind != "d":
            raise InvalidArgument(
                f"invalid build context: {m.name} is inside a "
                f"{'symlink' if pe.kind == 'l' else 'file'}"
            )
        self.entries[rel] = e
        self._kids.setdefault(posixpath.dirname(rel), set()).add(posixpath.basename(rel))
        if e.kind == "d":
            self._kids.setdefault(rel, set())

    def get(self, rel: str) -> Entry | None:
        return self.entries.get(rel)

    def remove(self, rel: str) -> None:
        """Leave `rel` (and what is below it) out of the context, as if it had not come."""
        if not rel or rel not in self.entries:
            return
        todo = [rel]
        while todo:
            p = todo.pop()
            self.entries.pop(p, None)
            todo += [f"{p}/{n}" for n in self._kids.pop(p, ())]
        self._kids.get(posixpath.dirname(rel), set()).discard(posixpath.basename(rel))

    def children(self, rel: str) -> list[str]:
        return sorted(self._kids.get(rel, ()))

    def paths(self) -> list[str]:
        return sorted(p for p in self.entries if p)

    def open(self, rel: str) -> BinaryIO:
        e = self.entries[rel]
        f = open(self.spool, "rb")  # noqa: SIM115 - the caller closes it
        f.seek(e.offset)
        return f

    def digest(self, rel: str) -> str:
        return self.entries[rel].digest

    def read(self, rel: str) -> bytes:
        e = self.entries[rel]
        with self.open(rel) as f:
            return f.read(e.size)

    def materialize(self, rel: str, dest: str) -> None:
        """Write `rel` (a file, or a directory and what is below it) to `dest` on disk."""
        e = self.entries[rel]
        if e.kind == "f":
            with self.open(rel) as src, open(dest, "wb") as out:
                left = e.size
                while left:
                    chunk = src.read(min(left, 1 << 20))
                    if not chunk:
                        break
                    out.write(chunk)
                    left -= len(chunk)
            os.chmod(dest, e.mode)
        elif e.kind == "l":
            os.symlink(e.link, dest)
        else:
            os.mkdir(dest)
            for n in self.children(rel):
                self.materialize(f"{rel}/{n}" if rel else n, os.path.join(dest, n))
            os.chmod(dest, e.mode)
        if e.kind != "l":
            os.utime(dest, (e.mtime, e.mtime))


class DirTree:
    """A file tree on disk (a stage's files, for COPY --from)."""

    def __init__(self, root: str) -> None:
        self.root = root

    def _p(self, rel: str) -> str:
        return os.path.join(self.root, rel) if rel else self.root

    def get(self, rel: str) -> Entry | None:
        try:
            st = os.lstat(self._p(rel))
        except OSError:
            return None
        if stat.S_ISDIR(st.st_mode):
            return Entry("d", stat.S_IMODE(st.st_mode), mtime=int(st.st_mtime))
        if stat.S_ISLNK(st.st_mode):
            return Entry("l", 0o777, mtime=int(st.st_mtime), link=os.readlink(self._p(rel)))
        if stat.S_ISREG(st.st_mode):
            return Entry("f", stat.S_IMODE(st.st_mode), st.st_size, int(st.st_mtime))
        return None

    def children(self, rel: str) -> list[str]:
        return sorted(os.listdir(self._p(rel)))

    def paths(self) -> list[str]:
        out = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            rd = os.path.relpath(dirpath, self.root)
            for n in dirnames + filenames:
                out.append(n if rd == "." else f"{rd}/{n}")
        return sorted(out)

    def open(self, rel: str) -> BinaryIO:
        return open(self._p(rel), "rb")  # noqa: SIM115 - the caller closes it

    def digest(self, rel: str) -> str:
        return _sha256_of(self.open(rel))

    def materialize(self, rel: str, dest: str) -> None:
        import shutil

        src = self._p(rel)
        if os.path.isdir(src) and not os.path.islink(src):
            shutil.copytree(src, dest, symlinks=True)
        else:
            shutil.copy2(src, dest, follow_symlinks=False)


def _sha256_of(f: BinaryIO) -> str:
    h = hashlib.sha256()
    with f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class _TreeWalker:
    """berth.fs.walk over a Tree: nodes are paths relative to the tree's root."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree

    def lookup(self, parent: str, name: str) -> str | None:
        rel = f"{parent}/{name}" if parent else name
        return rel if self.tree.get(rel) is not None else None

    def readlink(self, node: str) -> str | None:
        e = self.tree.get(node)
        return e.link if e is not None and e.kind == "l" else None

    def is_dir(self, node: str) -> bool:
        return True  # a name under a file is missing, as written

    def close(self, node: str) -> None:
        pass


def resolve(tree: Tree, rel: str, where: str = "") -> str:
    """Follow symlinks in `rel` as if the tree's root were /: the result stays inside. Missing
    names are kept as written. The walk is berth.fs's, the one root-confined resolver."""
    try:
        stack = fs.walk(_TreeWalker(tree), "", rel, missing_ok=True)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise InvalidArgument(f"{where}too many levels of symbolic links: {rel}") from None
        raise
    return "/".join(name for name, _ in stack[1:])


def extract_context(src: BinaryIO, dest: str, *, keep_owners: bool = False) -> None:
    """The build context tarball (any compression), with nothing outside `dest`: names with
    `..` and links that lead out are refused, device nodes are skipped."""
    stream = decompressed(src)
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tf:
            for m in tf:
                try:
                    if m.issym():
                        # a symlink may point anywhere (COPY copies it as it is); only its
                        # own name must stay inside, and nothing is written through it
                        probe = copy.copy(m)
                        probe.type, probe.linkname = tarfile.REGTYPE, ""
                        tarfile.data_filter(probe, dest)
                        checked = m
                    else:
                        checked = tarfile.data_filter(m, dest)
                except tarfile.SpecialFileError:
                    continue
                except tarfile.FilterError as e:
                    raise InvalidArgument(f"invalid build context: {e}") from None
                keep = checked.replace(
                    mode=m.mode & 0o7777,
                    uid=m.uid if keep_owners else 0,
                    gid=m.gid if keep_owners else 0,
                    uname="",
                    gname="",
                    deep=False,
                )
                tf.extract(keep, dest, set_attrs=True, numeric_owner=True, filter="fully_trusted")
    except tarfile.ReadError as e:
        if "empty file" in str(e):
            return
        raise InvalidArgument(f"invalid build context: {e}") from None
    except tarfile.TarError as e:
        raise InvalidArgument(f"invalid build context: {e}") from None


__all__ = ["Entry", "Tree", "TarContext", "DirTree", "LayersTree", "resolve", "extract_context"]


class LayersTree:
    """An image's or a stage's files, read from its layer directories as overlayfs would
    merge them (images.LayerView), without mounting or copying. A path is taken as written: a
    symlink on the way is not followed here, only by `resolve`, inside the root."""

    def __init__(self, view: LayerView) -> None:
        self.view = view

    def close(self) -> None:
        self.view.close()

    def get(self, rel: str) -> Entry | None:
        if not rel:
            return Entry("d", 0o755)
        st = self.view.lstat(rel)
        if st is None:
            return None
        if stat.S_ISDIR(st.st_mode):
            return Entry("d", stat.S_IMODE(st.st_mode), mtime=int(st.st_mtime))
        if stat.S_ISLNK(st.st_mode):
            return Entry("l", 0o777, mtime=int(st.st_mtime), link=self.view.readlink(rel))
        if stat.S_ISREG(st.st_mode):
            return Entry("f", stat.S_IMODE(st.st_mode), st.st_size, int(st.st_mtime))
        return None

    def children(self, rel: str) -> list[str]:
        return self.view.children(rel)

    def paths(self) -> list[str]:
        return self.view.paths()

    def open(self, rel: str) -> BinaryIO:
        return os.fdopen(self.view.open(rel), "rb")

    def digest(self, rel: str) -> str:
        return _sha256_of(self.open(rel))

    def materialize(self, rel: str, dest: str) -> None:
        """Write `rel` to `dest`, a new name in a directory of berth's own (see
        LayerView.materialize)."""
        self.view.materialize(rel, dest)
