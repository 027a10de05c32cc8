"""The steps that write their layer directly, with no container: COPY, ADD and WORKDIR.

Imports `images`, `errors`. A COPY or ADD layer is a tar of the copied files (from the context,
a stage, an image, a heredoc, a URL or a local archive), with the parent directories the image
lacks; its cache key hashes a manifest of what is copied (content and metadata, not mtimes).
The image's own files (the destination's parents, /etc/passwd for --chown) are read from its
layers without mounting them (`_RootView`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import functools
import hashlib
import json
import os
import posixpath
import re
import secrets
import shutil
import stat
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from berth.builder._base import StepContext
from berth.builder.context import DirTree, LayersTree, Tree, extract_context, resolve
from berth.builder.state import NETWORK_HOST, BuildError, State
from berth.builder.syntax import Instruction, Stage
from berth.images import Layer

if TYPE_CHECKING:
    from berth.builder.build import Builder

# a file of the layer and where its bytes come from: a path, an opener, or None (no data)
_Source = Any
_File = tuple[tarfile.TarInfo, _Source]


class FileSteps(StepContext):
    async def _workdir(
        self,
        ins: Instruction,
        state: State,
        stage_args: dict[str, str],
        path: str,
        set_wd: Callable[[State], None],
    ) -> AsyncIterator[Any]:
        shown = f"WORKDIR {path}"
        key, said, hit = self._consult(state, shown, {}, "", None)
        for m in said:
            yield m
        if hit:
            return
        new = State(state.image_id, json.loads(json.dumps(state.config)), list(state.layers))
        set_wd(new)
        view = _RootView(self.b, state.layers)
        layer = None
        if view.lookup(path) is None:
            entries = view.parents_for(path, include_self=True)
            layer = await asyncio.to_thread(self._layer_of_entries, entries, state)
        new = await self._commit_config(new, shown, layer)
        self.cache.remember(key, state.parent_key, new.image_id or "", shown, {}, None)
        yield self.say(f" ---> {new.image_id[7:19] if new.image_id else ''}\n")
        yield new

    def _layer_of_entries(
        self,
        entries: list[tarfile.TarInfo],
        state: State,
        files: list[tuple[tarfile.TarInfo, Any]] = (),  # type: ignore[assignment]
    ) -> Layer:
        buf = _SpoolPipe()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
            for ti in entries:
                tf.addfile(ti)
            for ti, src in files:
                if src is not None and ti.isreg():
                    with src() if callable(src) else open(src, "rb") as f:
                        tf.addfile(ti, f)
                else:
                    tf.addfile(ti)
        buf.seek(0)
        try:
            parent = state.layers[-1] if state.layers else None
            return self.b.images.add_layer(buf, parent)  # type: ignore[arg-type]
        finally:
            buf.close()

    async def _copy(
        self, ins: Instruction, state: State, stage_args: dict[str, str], stage: Stage
    ) -> AsyncIterator[Any]:
        where = f"{self.filename}:{ins.line}"
        env = self._env(state, stage_args)
        words = [self.lexer.word(a, env) for a in ins.args]
        heredoc_files = []
        if ins.heredocs:
            names = {n for n, _ in ins.heredocs}
            for n, content in ins.heredocs:
                heredoc_files.append((n, content))
            words = [w for w in words if w.lstrip("<-") not in names]
        if len(words) + len(heredoc_files) < 2 and not (heredoc_files and words):
            raise BuildError(
                f"{where}: {ins.cmd} requires at least two arguments, but only "
                f"{len(words)} provided"
            )
        dest, srcs = words[-1], words[:-1]
        from_ref = self.lexer.word(ins.flags["from"], env) if ins.flags.get("from") else ""
        chown = self.lexer.word(ins.flags.get("chown", ""), env)
        chmod = ins.flags.get("chmod", "")
        if chmod and not re.fullmatch(r"[0-7]{3,4}", chmod):
            raise BuildError(f"{where}: invalid chmod parameter: {chmod}")
        workdir = state.cfg.get("WorkingDir") or "/"
        dest_is_dir = dest.endswith(("/", "/.")) or dest in (".", "..")
        dest_abs = posixpath.normpath(
            dest if dest.startswith("/") else posixpath.join(workdir, dest)
        )
        view = _RootView(self.b, state.layers)
        uid, gid = view.owner(chown, where) if chown else (0, 0)
        mode = int(chmod, 8) if chmod else None
        plan = await asyncio.to_thread(
            self._copy_plan,
            ins,
            srcs,
            heredoc_files,
            from_ref,
            where,
            dest_abs,
            dest_is_dir,
            view,
            uid,
            gid,
            mode,
        )
        entries, files, manifest = plan
        shown = (
            f"{ins.cmd} "
            + " ".join(
                f"--{k}={v}"
                for k, v in sorted(ins.flags.items())
                if k in ("from", "chown", "chmod", "link")
            )
            + (" " if any(k in ins.flags for k in ("from", "chown", "chmod", "link")) else "")
            + " ".join(srcs + [dest])
        )
        files_hash = hashlib.sha256(json.dumps(sorted(manifest.items())).encode()).hexdigest()
        key, said, hit = self._consult(state, shown, {}, files_hash, manifest)
        for m in said:
            yield m
        if hit:
            return
        layer = await asyncio.to_thread(self._layer_of_entries, entries, state, files)
        new = await self._commit_config(
            state,
            shown,
            layer,
            created_by=(
                f"/bin/sh -c #(nop) {ins.cmd} {'dir' if len(files) != 1 else 'file'}:"
                f"{files_hash[:64]} in {dest_abs} "
            ),
        )
        self.cache.remember(key, state.parent_key, new.image_id or "", shown, {}, manifest)
        yield self.say(f" ---> {new.image_id[7:19] if new.image_id else ''}\n")
        yield new

    def _copy_plan(
        self,
        ins: Instruction,
        srcs: list[str],
        heredocs: list[tuple[str, str]],
        from_ref: str,
        where: str,
        dest: str,
        dest_is_dir: bool,
        view: _RootView,
        uid: int,
        gid: int,
        mode: int | None,
    ) -> tuple[list[tarfile.TarInfo], list[_File], dict[str, str]]:
        """The tar entries of a COPY/ADD layer, and the manifest its cache key hashes."""
        tree: Tree = self.ctx
        if from_ref:
            tree = LayersTree(self._source_view(from_ref))
        matches, urls = _match_sources(ins.cmd, srcs, tree, where)
        multiple = len(matches) + len(urls) + len(heredocs) > 1
        if len(matches) == 1 and not urls and not heredocs:
            e = tree.get(resolve(tree, matches[0], f"{where}: "))
            if e is not None and e.kind == "d":
                dest_is_dir = True  # a directory's contents go into the destination directory
        if multiple and not dest_is_dir:
            raise BuildError(
                f"{where}: When using {ins.cmd} with more than one source file, the "
                "destination must be a directory and end with a /"
            )
        to_dir = dest_is_dir or view.is_dir(dest)
        # as Docker: directories the copy creates belong to --chown's owner
        entries = view.parents_for(
            dest if to_dir else posixpath.dirname(dest), include_self=to_dir, owner=(uid, gid)
        )
        plan = _Plan(uid, gid, mode)
        for rel in matches:
            self._plan_source(plan, ins, tree, rel, from_ref, where, dest, to_dir)
        for n, content in heredocs:
            path = os.path.join(self.tmp, f"heredoc-{secrets.token_hex(4)}")
            with open(path, "w") as f:
                f.write(content)
            os.chmod(path, 0o644)
            target = posixpath.join(dest, n) if to_dir else dest
            t = DirTree(self.tmp)
            plan.add(t, os.path.basename(path), target, f"<<{n}")
        for url in urls:
            path, name, mtime = self._download(url, where)
            target = posixpath.join(dest, name) if to_dir else dest
            os.chmod(path, 0o600)
            plan.add(DirTree(self.tmp), os.path.basename(path), target, url)
            plan.files[-1][0].mtime = mtime
        return entries, plan.files, plan.manifest

    def _plan_source(
        self,
        plan: _Plan,
        ins: Instruction,
        tree: Tree,
        rel: str,
        from_ref: str,
        where: str,
        dest: str,
        to_dir: bool,
    ) -> None:
        """One source the instruction names: a directory's contents, a local archive's
        (ADD), or the file or symlink itself."""
        named = posixpath.basename(rel)
        # as Docker: a source named in the instruction is followed if it is a symlink,
        # inside the root
        real = resolve(tree, rel, f"{where}: ")
        e = tree.get(real)
        if e is None:
            raise BuildError(
                f"{where}: COPY failed: file not found in build context or "
                f"excluded by .dockerignore: stat {rel}: file does not exist"
            )
        label = rel or "."
        if e.kind == "d":
            for sub in _walk(tree, real):
                inner = sub[len(real) + 1 :] if real else sub
                plan.add(tree, sub, posixpath.join(dest, inner), f"{label}/{inner}")
            if not tree.children(real):
                plan.manifest[label] = "d:empty"
        elif ins.cmd == "ADD" and not from_ref and self._is_archive(tree, real):
            plan.manifest[label] = f"a:{tree.digest(real)}"
            local = os.path.join(self.tmp, "archive-" + secrets.token_hex(4))
            tree.materialize(real, local)
            plan.files += _archive_entries(
                local, dest, os.path.join(self.tmp, "unpacked-" + secrets.token_hex(4))
            )
        else:
            target = posixpath.join(dest, named) if to_dir else dest
            plan.add(tree, real, target, label)

    @staticmethod
    def _is_archive(tree: Tree, rel: str) -> bool:
        e = tree.get(rel)
        if e is None or e.kind != "f":
            return False
        with tree.open(rel) as f:
            head = f.read(min(512, e.size))
        if (
            head[:2] == b"\x1f\x8b"
            or head[:3] == b"BZh"
            or head[:6] == b"\xfd7zXZ\x00"
            or head[:4] == b"\x28\xb5\x2f\xfd"
        ):
            return True
        return len(head) >= 262 and head[257:262] == b"ustar"

    def _download(self, url: str, where: str) -> tuple[str, str, int]:
        import email.utils
        import urllib.request

        path = os.path.join(self.tmp, f"url-{secrets.token_hex(4)}")
        # berthd fetches from the host's own network namespace: the host's own services are
        # for a build granted network.host only, as a RUN step's host network is
        host_ok = NETWORK_HOST in self.opts.allow and NETWORK_HOST in self.b.entitlements

        def check(u: str) -> None:
            if not host_ok:
                _refuse_the_host(u, where)

        check(url)
        opener = urllib.request.build_opener(_CheckedRedirects(check))
        try:
            with opener.open(url, timeout=60) as r, open(path, "wb") as f:
                shutil.copyfileobj(r, f, 1 << 20)
                lm = r.headers.get("Last-Modified")
        except OSError as e:
            raise BuildError(f"{where}: ADD failed: {url}: {e}") from None
        name = posixpath.basename(url.split("?", 1)[0].rstrip("/")) or "download"
        mtime = int(time.time())
        if lm:
            with contextlib.suppress(TypeError, ValueError):
                mtime = int(email.utils.parsedate_to_datetime(lm).timestamp())
        return path, name, mtime


def _refuse_the_host(url: str, where: str) -> None:
    """An ADD URL (or a redirect's) may not lead to this host itself: its loopback, its own
    addresses (a bridge's gateway too), link-local ones (cloud metadata) or the unspecified
    address. The name is resolved here; the fetch resolves it again, so a name whose answer
    changes in between is not covered (the build then reaches what a RUN step could)."""
    import ipaddress
    import socket
    from urllib.parse import urlsplit

    u = urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise BuildError(f"{where}: ADD failed: {url}: not an http(s) URL")
    try:
        infos = socket.getaddrinfo(u.hostname, u.port or 80, proto=socket.IPPROTO_TCP)
    except OSError as e:
        raise BuildError(f"{where}: ADD failed: {url}: {e}") from None
    for family, _, _, _, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if (
            ip.is_loopback
            or ip.is_link_local
            or ip.is_unspecified
            or ip.is_multicast
            or _is_own_address(family, str(sockaddr[0]))
        ):
            raise BuildError(
                f"{where}: ADD failed: {url}: {ip} is this host's own address: "
                f"a build reaches the host only with the {NETWORK_HOST} "
                f"entitlement (`berth build --allow {NETWORK_HOST}`, with the "
                f"daemon's consent)"
            )


def _is_own_address(family: int, addr: str) -> bool:
    """Whether `addr` is one of this host's: a socket can be bound to it."""
    import socket

    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.bind((addr, 0))
        except OSError:
            return False
    return True


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Each redirect's target is checked as the first URL was."""

    def __init__(self, check: Callable[[str], None]) -> None:
        self.check = check

    def redirect_request(
        self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> Any:
        self.check(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _match_sources(
    cmd: str, srcs: list[str], tree: Tree, where: str
) -> tuple[list[str], list[str]]:
    """The names (relative to the tree's root) the sources match, wildcards expanded, and
    ADD's URLs."""
    matches: list[str] = []
    urls: list[str] = []
    for s in srcs:
        if cmd == "ADD" and re.match(r"^https?://", s):
            urls.append(s)
            continue
        norm = posixpath.normpath(s)
        if norm == ".." or norm.startswith("../"):
            raise BuildError(
                f"{where}: COPY failed: forbidden path outside the build context: {s} ()"
            )
        rel = posixpath.normpath("/" + s).lstrip("/")
        if any(ch in rel for ch in "*?["):
            found = [
                p
                for p in tree.paths()
                if p.count("/") == rel.count("/") and fnmatch.fnmatchcase(p, rel)
            ]
            if not found:
                raise BuildError(f"{where}: COPY failed: no source files were specified")
            matches += found
        else:
            if tree.get(rel) is None:
                raise BuildError(
                    f"{where}: COPY failed: file not found in build context or "
                    f"excluded by .dockerignore: stat {s}: file does not exist"
                )
            matches.append(rel)
    return matches, urls


class _Plan:
    """The files of a COPY/ADD layer as they are added, and its manifest (what the cache
    key hashes: each file's kind, mode and content digest, or a symlink's target)."""

    def __init__(self, uid: int, gid: int, mode: int | None) -> None:
        self.uid, self.gid, self.mode = uid, gid, mode
        self.files: list[_File] = []
        self.manifest: dict[str, str] = {}

    def add(self, t: Tree, rel: str, target: str, label: str) -> None:
        e = t.get(rel)
        if e is None:
            return
        ti = tarfile.TarInfo(target.lstrip("/"))
        ti.uid, ti.gid = self.uid, self.gid
        ti.mtime = e.mtime
        ti.mode = self.mode if self.mode is not None else e.mode
        opener: Callable[[], Any] | None = None
        if e.kind == "d":
            ti.type = tarfile.DIRTYPE
            self.manifest[label] = f"d:{e.mode:o}"
        elif e.kind == "l":
            ti.type = tarfile.SYMTYPE
            ti.linkname = e.link
            ti.mode = 0o777
            self.manifest[label] = f"l:{e.link}"
        else:
            ti.size = e.size
            self.manifest[label] = f"f:{e.mode:o}:{t.digest(rel)}"
            opener = functools.partial(t.open, rel)
        self.files.append((ti, opener))


def _walk(t: Tree, rel: str) -> list[str]:
    out = []
    for n in t.children(rel):
        sub = f"{rel}/{n}" if rel else n
        out.append(sub)
        e = t.get(sub)
        if e is not None and e.kind == "d":
            out += _walk(t, sub)
    return out


class _SpoolPipe(tempfile.SpooledTemporaryFile):  # type: ignore[type-arg]
    def __init__(self) -> None:
        super().__init__(max_size=16 << 20)


def _archive_entries(src: str, dest: str, scratch: str) -> list[tuple[tarfile.TarInfo, str | None]]:
    """ADD of a local archive: its entries under `dest` (extracted safely first)."""
    os.makedirs(scratch)
    with open(src, "rb") as f:
        extract_context(f, scratch, keep_owners=True)  # as Docker: an archive's owners stay
    out: list[tuple[tarfile.TarInfo, str | None]] = []
    for dirpath, dirnames, filenames in os.walk(scratch):
        dirnames.sort()
        rd = os.path.relpath(dirpath, scratch)
        for n in sorted(dirnames + filenames):
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            rel = n if rd == "." else f"{rd}/{n}"
            ti = tarfile.TarInfo(posixpath.join(dest, rel).lstrip("/"))
            ti.mode = stat.S_IMODE(st.st_mode)
            ti.mtime = int(st.st_mtime)
            ti.uid, ti.gid = st.st_uid, st.st_gid
            if stat.S_ISDIR(st.st_mode):
                ti.type = tarfile.DIRTYPE
                out.append((ti, None))
            elif stat.S_ISLNK(st.st_mode):
                ti.type = tarfile.SYMTYPE
                ti.linkname = os.readlink(p)
                out.append((ti, None))
            elif stat.S_ISREG(st.st_mode):
                ti.size = st.st_size
                out.append((ti, p))
    return out


class _RootView:
    """Looks up paths in an image's layers without mounting them."""

    def __init__(self, b: Builder, layers: list[str]) -> None:
        self.view = b.images.layer_view(layers)
        self.shift = self.view.shift  # owners on disk, less this, are the image's

    def lookup(self, path: str) -> os.stat_result | None:
        rel = path.strip("/")
        if not rel:
            return os.stat("/")
        return self.view.lower_stat(rel)

    def is_dir(self, path: str) -> bool:
        st = self.lookup(path)
        return st is not None and stat.S_ISDIR(st.st_mode)

    def parents_for(
        self, path: str, include_self: bool, owner: tuple[int, int] = (0, 0)
    ) -> list[tarfile.TarInfo]:
        """Directory entries for `path`'s parents (and itself): as the image has them, or
        root's 0755 where it has none."""
        out = []
        parts = [p for p in path.strip("/").split("/") if p]
        upto = len(parts) if include_self else len(parts) - 0
        for k in range(1, upto + 1):
            rel = "/".join(parts[:k])
            st = self.lookup(rel)
            ti = tarfile.TarInfo(rel)
            ti.type = tarfile.DIRTYPE
            if st is not None and stat.S_ISDIR(st.st_mode):
                ti.mode = stat.S_IMODE(st.st_mode)
                ti.uid = max(st.st_uid - self.shift[0], 0)
                ti.gid = max(st.st_gid - self.shift[1], 0)
                ti.mtime = int(st.st_mtime)
            elif st is not None:
                break  # a file or a symlink there: leave it to the layer's writer
            else:
                ti.mode, ti.mtime = 0o755, int(time.time())
                ti.uid, ti.gid = owner
            out.append(ti)
        return out

    def _read(self, path: str) -> list[list[str]]:
        """/etc/passwd or /etc/group as the image has it: followed inside the image's root
        only (a symlink there to the host's file reads the image's own or nothing), and
        bounded."""
        data = self.view.read_file(path, 4 << 20)
        if data is None:
            return []
        text = data.decode(errors="replace")
        return [line.split(":") for line in text.splitlines() if line.strip()]

    def owner(self, spec: str, where: str) -> tuple[int, int]:
        user, _, group = spec.partition(":")
        if user.isdigit():
            uid = int(user)
            gid = uid if not group else -1
        else:
            for e in self._read("etc/passwd"):
                if e[0] == user and len(e) > 3:
                    uid, gid = int(e[2]), int(e[3]) if not group else -1
                    break
            else:
                raise BuildError(
                    f"{where}: unable to convert uid/gid chown string to host "
                    f"mapping: can't find uid for user {user}: no such user: {user}"
                )
        if group:
            if group.isdigit():
                gid = int(group)
            else:
                for e in self._read("etc/group"):
                    if e[0] == group and len(e) > 2:
                        gid = int(e[2])
                        break
                else:
                    raise BuildError(
                        f"{where}: unable to convert uid/gid chown string to host "
                        f"mapping: can't find gid for group {group}: no such group: "
                        f"{group}"
                    )
        return uid, gid


__all__ = ["FileSteps"]
