"""`berth cp`: copy files between a container and the local filesystem, with docker cp's
semantics (a source ending in `/.` copies a directory's content; an existing destination
directory receives the source under its own name; `-` is a tar on stdin or stdout).

Imported only by that command.
"""

from __future__ import annotations

import base64
import io
import json
import os
import stat
import sys
import tarfile
from typing import Any

from berth.client import Client
from berth.cmdline import Options, UsageError, boolean


class CpOptions(Options):
    archive = boolean("archive", "a", help="Archive mode (copy all uid/gid information)")
    follow_link = boolean("follow-link", "L", help="Always follow symbol link in SRC_PATH")
    quiet = boolean(
        "quiet",
        "q",
        help="Suppress progress output during copy. Progress output is automatically "
        "suppressed if no terminal is attached",
    )


MODE_DIR = 1 << 31
MODE_SYMLINK = 1 << 27


class _Local(Exception):
    """An error of the local side, printed as it is."""


def _split(arg: str) -> tuple[str, str]:
    """(container, path) of `CONTAINER:PATH`; ("", arg) for a local path (one that starts
    with `/` or `.`, or has no colon)."""
    if arg.startswith(("/", ".")) or ":" not in arg:
        return "", arg
    name, _, path = arg.partition(":")
    return name, path


def cmd_cp(c: Client, opts: CpOptions, args: list[str]) -> int:
    if len(args) != 2:
        raise UsageError('"cp" requires exactly 2 arguments.')
    (sc, sp), (dc, dp) = _split(args[0]), _split(args[1])
    if sc and dc:
        raise UsageError("copying between containers is not supported")
    if not sc and not dc:
        raise UsageError("must specify at least one container source")
    if (sc and not sp) or (dc and not dp):
        raise UsageError("filesystem path cannot be empty")
    try:
        if sc:
            n = _from_container(c, sc, sp, dp, opts)
            where = dp
        else:
            n = _to_container(c, sp, dc, dp, opts)
            where = args[1]
    except _Local as e:
        sys.stderr.write(f"{e}\n")
        return 1
    if not opts.quiet and where != "-" and sys.stderr.isatty():
        from berth.units import human_size

        sys.stderr.write(f"Successfully copied {human_size(n)} to {where}\n")
    return 0


def _stat(c: Client, container: str, path: str) -> dict[str, Any] | None:
    """The container path's stat (X-Docker-Container-Path-Stat); None if it does not exist."""
    r = c.stat_path(container, path)
    if r.status == 404:
        # no such path, or no such container: the container's inspect says which
        c.inspect_container(container)
        return None
    if r.status >= 400:
        # a HEAD has no body to carry the daemon's message: a GET does
        c.get_archive(container, path).close()
    return _decode(r.headers.get("x-docker-container-path-stat", ""))


def _decode(header: str) -> dict[str, Any]:
    try:
        return json.loads(base64.b64decode(header)) if header else {}
    except ValueError:
        return {}


# --- container -> local -------------------------------------------------------------------
def _from_container(c: Client, container: str, src: str, dst: str, opts: CpOptions) -> int:
    rebase = ""
    if opts.follow_link:
        st = _stat(c, container, src)
        if st and st.get("mode", 0) & MODE_SYMLINK and st.get("linkTarget"):
            rebase = os.path.basename(src.rstrip("/")) or ""
            src = st["linkTarget"]
    r = c.get_archive(container, src)
    st = _decode(r.headers.get("x-docker-container-path-stat", ""))
    if dst == "-":
        n = 0
        for piece in r.iter_raw():
            sys.stdout.buffer.write(piece)
            n += len(piece)
        sys.stdout.buffer.flush()
        return n
    src_is_dir = bool(st.get("mode", 0) & MODE_DIR)
    root = st.get("name") or os.path.basename(src.rstrip("/")) or "."
    contents = src.endswith("/.") or root == "."
    new_root = rebase or root
    if os.path.isdir(dst):
        if contents and src_is_dir:
            into, new_root = dst, "."
        else:
            into = dst
    elif os.path.lexists(dst):
        if src_is_dir:
            raise _Local(f"cannot copy directory to non-directory: {dst}")
        into, new_root = os.path.dirname(dst) or ".", os.path.basename(dst)
    else:
        parent = os.path.dirname(dst.rstrip("/")) or "."
        if dst.endswith("/") and not src_is_dir:
            raise _Local(f"no such directory: {dst}")
        if not os.path.isdir(parent):
            raise _Local(f"no such directory: {parent}")
        if contents and src_is_dir:
            os.mkdir(dst.rstrip("/"))
            into, new_root = dst, "."
        else:
            into, new_root = parent, os.path.basename(dst.rstrip("/"))
    return _extract_local(_Stream(r.iter_raw()), into, root, new_root, opts.archive)


class _Stream(io.RawIOBase):
    def __init__(self, it: Any) -> None:
        self.it = it
        self.buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self.buf:
            try:
                self.buf = next(self.it)
            except StopIteration:
                return 0
        n = min(len(b), len(self.buf))
        b[:n] = self.buf[:n]
        self.buf = self.buf[n:]
        return n


class _TarNoChown(tarfile.TarFile):
    def chown(self, tarinfo: tarfile.TarInfo, targetpath: Any, numeric_owner: bool) -> None:
        pass  # without -a, the files are the user's own, as the docker CLI makes them


def _extract_local(src: Any, into: str, root: str, new_root: str, keep_ids: bool) -> int:
    """Extract the daemon's tar into `into`, its `root` entry renamed `new_root`; through
    tarfile's "tar" filter: nothing lands outside `into`, nothing is written through a link."""
    cls = tarfile.TarFile if keep_ids else _TarNoChown
    n = 0
    with cls.open(fileobj=src, mode="r|") as tf:
        for m in tf:
            name = m.name.rstrip("/")
            if root != "." and new_root != root:
                if name == root:
                    m.name = new_root
                elif name.startswith(root + "/"):
                    m.name = new_root + name[len(root) :]
            elif root == "." and new_root != ".":
                m.name = new_root if name in (".", "") else f"{new_root}/{name.removeprefix('./')}"
            n += m.size
            if _inside(m, into):
                tf.extract(m, into, set_attrs=True, numeric_owner=True, filter="fully_trusted")
    return n


def _inside(m: tarfile.TarInfo, into: str) -> bool:
    """Whether `m` lands inside `into` without going through a link that leads out (a
    container's symlinks are copied as they are, absolute ones too, but never written
    through); False for device nodes, which are not copied."""
    name = m.name
    if name.startswith("/") or ".." in name.split("/"):
        raise _Local(f"refusing to extract {name!r}: outside the destination")
    if m.ischr() or m.isblk():
        return False
    top = os.path.realpath(into)
    path = os.path.join(into, name.rstrip("/"))
    where = (
        os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
        if m.issym()
        else os.path.realpath(path)
    )
    ok = os.path.commonpath([top, where]) == top
    if ok and m.islnk():
        link = os.path.realpath(os.path.join(into, m.linkname))
        ok = not m.linkname.startswith("/") and os.path.commonpath([top, link]) == top
    if not ok:
        raise _Local(f"refusing to extract {name!r}: outside the destination")
    return True


# --- local -> container -------------------------------------------------------------------
def _to_container(c: Client, src: str, container: str, dst: str, opts: CpOptions) -> int:
    if src == "-":
        c.put_archive(container, dst, sys.stdin.buffer, copy_uid_gid=opts.archive)
        return 0
    follow = opts.follow_link
    try:
        lst = os.stat(src) if follow else os.lstat(src)
    except OSError as e:
        raise _Local(
            f"{'stat' if follow else 'lstat'} {src}: {(e.strerror or '').lower()}"
        ) from None
    src_is_dir = stat.S_ISDIR(lst.st_mode)
    contents = src_is_dir and (src.endswith("/.") or src == ".")
    name = os.path.basename(os.path.normpath(src)) if not contents else "."
    st = _stat(c, container, dst)
    if st is not None and st.get("mode", 0) & MODE_SYMLINK and st.get("linkTarget"):
        # a destination that is a symlink is the path it leads to (resolved by the daemon,
        # inside the container), as the docker CLI takes it
        dst = st["linkTarget"]
        st = _stat(c, container, dst)
    if st is not None and st.get("mode", 0) & MODE_DIR:
        put_path, arc = dst, name
    elif st is not None:
        if src_is_dir:
            raise _Local(f"cannot copy directory to non-directory: {container}:{dst}")
        put_path, arc = os.path.dirname(dst.rstrip("/")) or "/", os.path.basename(dst)
    else:
        if dst.endswith("/") and not src_is_dir:
            raise _Local(f"no such directory: {container}:{dst}")
        put_path = os.path.dirname(dst.rstrip("/")) or "/"
        arc = os.path.basename(dst.rstrip("/"))
    buf = _Pipe()
    total = [0]
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            with tarfile.open(
                fileobj=buf,
                mode="w|",  # type: ignore[call-overload]
                format=tarfile.PAX_FORMAT,
            ) as tf:
                if contents and arc == ".":
                    tf.add(src, arcname=".", recursive=False)
                    for child in sorted(os.listdir(src)):
                        tf.add(os.path.join(src, child), arcname=child)
                else:
                    tf.add(os.path.realpath(src) if follow else src, arcname=arc)
                total[0] = buf.total
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)
        finally:
            buf.close_write()

    import threading

    t = threading.Thread(target=produce, daemon=True)
    t.start()
    try:
        c.put_archive(container, put_path, buf, copy_uid_gid=opts.archive)  # type: ignore[arg-type]
    finally:
        buf.close_read()
        t.join()
    if errors and not isinstance(errors[0], BrokenPipeError):
        raise _Local(str(errors[0]))
    return total[0]


class _Pipe:
    """A bounded pipe between the tar-writing thread and the request's body."""

    def __init__(self) -> None:
        import threading

        self.cv = threading.Condition()
        self.chunks: list[bytes] = []
        self.size = 0
        self.done = False
        self.gone = False
        self.total = 0

    def write(self, data: bytes) -> int:
        with self.cv:
            while self.size > 4 << 20 and not self.gone:
                self.cv.wait()
            if self.gone:
                raise BrokenPipeError("the request has ended")
            self.chunks.append(bytes(data))
            self.size += len(data)
            self.total += len(data)
            self.cv.notify_all()
        return len(data)

    def tell(self) -> int:
        return self.total

    def close_write(self) -> None:
        with self.cv:
            self.done = True
            self.cv.notify_all()

    def close_read(self) -> None:
        with self.cv:
            self.gone = True
            self.cv.notify_all()

    def read(self, n: int = -1) -> bytes:
        with self.cv:
            while not self.chunks and not self.done:
                self.cv.wait()
            if not self.chunks:
                return b""
            data = b"".join(self.chunks)
            self.chunks, self.size = [], 0
            self.cv.notify_all()
            return data


__all__ = ["CpOptions", "cmd_cp"]
