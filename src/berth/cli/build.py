"""`build`, `commit` and `diff`.

`build` sends the context as the docker CLI does for the classic builder: a tar stream of the
context directory, filtered by `.dockerignore` (or `<Dockerfile>.dockerignore`), with files
owned by root; a Dockerfile from stdin (`-f -`) or from outside the context is added under a
name of its own.
"""

from __future__ import annotations

import base64
import io
import json
import os
import secrets
import stat
import sys
import tarfile
import threading
import time
from typing import Any, BinaryIO

from berth import dockerignore
from berth.cli.main import CommandFailed
from berth.client import Client
from berth.cmdline import Options, UsageError, boolean, string, strings
from berth.errors import BerthError


class BuildOptions(Options):
    tag = strings("tag", "t", help='Name and optionally a tag in the "name:tag" format')
    file = string("file", "f", help='Name of the Dockerfile (Default is "PATH/Dockerfile")')
    build_arg = strings("build-arg", help="Set build-time variables")
    label = strings("label", help="Set metadata for an image")
    target = string("target", help="Set the target build stage to build.")
    no_cache = boolean("no-cache", help="Do not use cache when building the image")
    pull = boolean("pull", help="Always attempt to pull a newer version of the image")
    quiet = boolean("quiet", "q", help="Suppress the build output and print image ID on success")
    iidfile = string("iidfile", help="Write the image ID to the file")
    progress = string(
        "progress",
        default="auto",
        help='Set type of progress output ("auto", "quiet", "plain", "tty", '
        '"rawjson"). Use plain to show container output',
    )
    cache_from = strings("cache-from", help="Images to consider as cache sources")
    network = string(
        "network", help="Set the networking mode for the RUN instructions during build"
    )
    platform = string("platform", help="Set platform if server is multi-platform capable")
    rm = string(
        "rm", default="true", help="Remove intermediate containers after a successful build"
    )
    force_rm = boolean("force-rm", help="Always remove intermediate containers")
    secret = strings(
        "secret", help='Secret to expose to the build (format: "id=mysecret[,src=/local/secret]")'
    )
    shm_size = string("shm-size", help='Size of "/dev/shm"')
    add_host = strings("add-host", help='Add a custom host-to-IP mapping ("host:ip")')
    allow = strings(
        "allow",
        help='Allow extra privileged entitlement (e.g., "network.host", "security.insecure")',
    )


def _tar_context(
    root: str,
    matcher: dockerignore.Matcher,
    keep: set[str],
    extra: list[tuple[str, bytes]],
    out: BinaryIO,
    replace: dict[str, bytes] | None = None,
) -> None:
    """The context as a tar stream, owned by root (TarInfo made from lstat directly: tarfile's
    gettarinfo looks up user and group names for every file). `replace`: files of the
    context sent with other contents (the .dockerignore that lists a Dockerfile from
    outside); those the context lacks (that Dockerfile, a .dockerignore) are added, mode
    0600, as the docker CLI does."""
    replace = dict(replace or {})
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:

        def walk(path: str, rel_dir: str) -> None:
            with os.scandir(path) as it:
                ents = sorted(it, key=lambda e: e.name)
            for ent in ents:
                rel = f"{rel_dir}/{ent.name}" if rel_dir else ent.name
                excluded = rel not in keep and matcher and matcher.excluded(rel)
                st = ent.stat(follow_symlinks=False)
                is_dir = stat.S_ISDIR(st.st_mode)
                if excluded and not (
                    is_dir
                    and (
                        matcher.may_have_inclusions() or any(k.startswith(rel + "/") for k in keep)
                    )
                ):
                    continue
                ti = tarfile.TarInfo(rel)
                ti.mode = stat.S_IMODE(st.st_mode)
                ti.mtime = int(st.st_mtime)
                if stat.S_ISREG(st.st_mode) and rel in replace and not excluded:
                    data = replace.pop(rel)
                    ti.size = len(data)
                    tf.addfile(ti, io.BytesIO(data))
                elif stat.S_ISREG(st.st_mode):
                    ti.size = st.st_size
                    if not excluded:
                        try:
                            with open(ent.path, "rb") as f:
                                tf.addfile(ti, f)
                        except PermissionError:
                            raise BerthError(
                                f"error checking context: can't stat '{ent.path}'"
                            ) from None
                elif is_dir:
                    ti.type = tarfile.DIRTYPE
                    if not excluded:
                        tf.addfile(ti)
                    walk(ent.path, rel)
                elif stat.S_ISLNK(st.st_mode) and not excluded:
                    ti.type = tarfile.SYMTYPE
                    ti.linkname = os.readlink(ent.path)
                    tf.addfile(ti)

        if root:
            walk(root, "")
        now = int(time.time())
        for name, data, mode in [(n, d, 0o644) for n, d in extra] + [
            (n, d, 0o600) for n, d in replace.items()
        ]:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = mode
            ti.mtime = now
            tf.addfile(ti, io.BytesIO(data))


class _PipeReader:
    """The tar, made by a thread while the client sends it."""

    def __init__(self, make: Any) -> None:
        r, w = os.pipe()
        self.r = os.fdopen(r, "rb")
        self.error: BaseException | None = None

        def run() -> None:
            try:
                with os.fdopen(w, "wb") as wf:
                    make(wf)
            except BaseException as e:  # noqa: BLE001 - reported by the reader
                self.error = e

        self.t = threading.Thread(target=run, daemon=True)
        self.t.start()

    def read(self, n: int = -1) -> bytes:
        return self.r.read(n)

    def close(self) -> None:
        self.r.close()
        self.t.join()


def _registry_config() -> str:
    from berth.cli import registry

    doc = registry.load_config()
    out = {}
    for key in doc.get("auths") or {}:
        creds = registry.get_credentials(key)
        if creds:
            out[key] = creds
    return base64.urlsafe_b64encode(json.dumps(out).encode()).decode()


def _secrets(specs: list[str]) -> str:
    out = {}
    for spec in specs:
        kv = {k: v for k, _, v in (p.partition("=") for p in spec.split(","))}
        sid = kv.get("id", "")
        if not sid:
            raise UsageError(f"invalid secret {spec!r}: id= is required")
        if kv.get("env"):
            data = os.environ.get(kv["env"], "").encode()
        else:
            src = kv.get("src") or kv.get("source") or ""
            if not src:
                data = os.environ.get(sid, "").encode()
            else:
                try:
                    with open(src, "rb") as f:
                        data = f.read()
                except OSError as e:
                    raise UsageError(f"failed to read secret {sid}: {e}") from None
        out[sid] = base64.b64encode(data).decode()
    return base64.b64encode(json.dumps(out).encode()).decode()


def _add_host(spec: str) -> str:
    """`--add-host name:ip` (or `name=ip`, as docker 25 also takes) in the API's form."""
    name, sep, ip = spec.partition("=")
    if not sep:
        name, sep, ip = spec.partition(":")
    if not sep or not name or not ip:
        raise UsageError(
            f'invalid argument {spec!r} for "--add-host" flag: bad format for add-host: {spec!r}'
        )
    return f"{name}:{ip}"


def cmd_build(c: Client, opts: BuildOptions, args: list[str]) -> int:
    if len(args) != 1:
        raise UsageError('"build" requires exactly 1 argument.')
    src = args[0]
    if opts.progress not in ("auto", "plain", "tty", "quiet", "rawjson"):
        raise UsageError(f"invalid progress mode {opts.progress!r}: auto, plain, tty or quiet")
    extra: list[tuple[str, bytes]] = []
    dockerfile = opts.file
    stdin_body: BinaryIO | None = None
    root = ""
    if src == "-":
        if dockerfile == "-":
            raise UsageError(
                "invalid argument: can't use stdin for both build context and dockerfile"
            )
        data = sys.stdin.buffer.read()
        if data[257:262] == b"ustar" or data[:2] == b"\x1f\x8b" or data[:4] == b"\x28\xb5\x2f\xfd":
            stdin_body = io.BytesIO(data)
        else:
            extra.append(("Dockerfile", data))
            dockerfile = "Dockerfile"
    elif src.startswith(("http://", "https://", "git@", "git://")):
        raise UsageError("building from a URL is not supported: clone it and build the directory")
    else:
        root = os.path.abspath(src)
        if not os.path.isdir(root):
            raise UsageError(f'unable to prepare context: path "{src}" not found')
    keep: set[str] = set()
    outside: bytes | None = None  # a Dockerfile from stdin or from outside the context
    if dockerfile == "-":
        outside = sys.stdin.buffer.read()
    elif root:
        path = os.path.abspath(dockerfile) if dockerfile else os.path.join(root, "Dockerfile")
        if not os.path.exists(path):
            raise UsageError(
                f"unable to prepare context: unable to evaluate symlinks in "
                f"Dockerfile path: lstat {path}: no such file or directory"
            )
        rel = os.path.relpath(path, root)
        if rel.startswith("../"):
            with open(path, "rb") as f:
                outside = f.read()
        else:
            dockerfile = rel
    matcher = (
        dockerignore.load(root, os.path.join(root, dockerfile))
        if root
        else dockerignore.Matcher([])
    )
    replace: dict[str, bytes] = {}
    if root:
        # as the docker CLI (TrimBuildFilesFromExcludes): .dockerignore and the Dockerfile
        # are sent even where .dockerignore excludes them, for the daemon reads them; it
        # then leaves them out of what COPY sees
        keep.add(".dockerignore")
        if outside is None:
            keep.add(dockerfile)
    if outside is not None:
        # as the docker CLI (AddDockerfileToBuildContext): the Dockerfile under a name of
        # its own, listed in the .dockerignore sent (made if there is none), so that the
        # daemon takes both out of the context once it has read them
        dockerfile = f".dockerfile.{secrets.token_hex(10)}"
        replace[dockerfile] = outside
        try:
            with open(os.path.join(root, ".dockerignore"), "rb") as f:
                ignore = f.read()
        except OSError:
            ignore = b".dockerignore"
        replace[".dockerignore"] = ignore + f"\n{dockerfile}\n".encode()
    buildargs: dict[str, str | None] = {}
    for a in opts.build_arg:
        k, eq, v = a.partition("=")
        buildargs[k] = v if eq else os.environ.get(k)
    labels = {}
    for a in opts.label:
        k, _, v = a.partition("=")
        labels[k] = v
    query: list[tuple[str, Any]] = [("t", t) for t in opts.tag]
    query += [
        ("dockerfile", dockerfile or "Dockerfile"),
        ("buildargs", json.dumps(buildargs)),
        ("labels", json.dumps(labels)),
        ("target", opts.target or None),
        ("nocache", "1" if opts.no_cache else None),
        ("pull", "1" if opts.pull else None),
        ("q", "1" if opts.quiet else None),
        ("cachefrom", json.dumps(opts.cache_from) if opts.cache_from else None),
        ("networkmode", opts.network or None),
        ("platform", opts.platform or None),
        ("rm", "0" if opts.rm in ("false", "0") else "1"),
        ("forcerm", "1" if opts.force_rm else None),
        ("version", "1"),
    ]
    # `--allow network.host`: BuildKit's entitlement, sent as a repeated `allow` parameter;
    # the daemon grants it only if berthd was started with --allow-insecure-entitlement
    query += [("allow", a) for a in opts.allow]
    # as the docker CLI: one `extrahosts` per --add-host (name:ip, or name=ip)
    query += [("extrahosts", _add_host(h)) for h in opts.add_host]
    headers = {"Content-Type": "application/x-tar", "X-Registry-Config": _registry_config()}
    if opts.secret:
        headers["X-Berth-Build-Secrets"] = _secrets(opts.secret)
    body: Any = (
        stdin_body
        if stdin_body is not None
        else _PipeReader(lambda out: _tar_context(root, matcher, keep, extra, out, replace))
    )
    try:
        r = c.build(body, [(k, v) for k, v in query if v is not None], headers)
    finally:
        if isinstance(body, _PipeReader):
            body.close()
            if body.error and not isinstance(body.error, BrokenPipeError):
                raise body.error
    image_id = ""
    from berth.cli.registry import Progress

    progress = Progress(sys.stdout)
    for msg in r.iter_json():
        if msg.get("error") or msg.get("errorDetail"):
            text = msg.get("error") or msg["errorDetail"].get("message", "")
            sys.stdout.flush()
            code = (msg.get("errorDetail") or {}).get("code") or 1
            raise BuildFailed(text, int(code))
        if "aux" in msg:
            image_id = msg["aux"].get("ID", "")
            continue
        if opts.quiet:
            continue
        progress.show(msg)
    if opts.quiet and image_id:
        sys.stdout.write(image_id + "\n")
    if opts.iidfile and image_id:
        with open(opts.iidfile, "w") as f:
            f.write(image_id)
    return 0


class BuildFailed(CommandFailed):
    pass


class CommitOptions(Options):
    author = string(
        "author", "a", help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")'
    )
    change = strings("change", "c", help="Apply Dockerfile instruction to the created image")
    message = string("message", "m", help="Commit message")
    pause = string("pause", "p", default="true", help="Pause container during commit")


def cmd_commit(c: Client, opts: CommitOptions, args: list[str]) -> int:
    if len(args) not in (1, 2):
        raise UsageError('"commit" requires at least 1 and at most 2 arguments.')
    repo, tag = "", ""
    if len(args) == 2:
        repo = args[1]
        if repo.rfind(":") > repo.rfind("/"):
            repo, tag = repo.rsplit(":", 1)
    res = c.commit(
        args[0],
        repo=repo,
        tag=tag,
        comment=opts.message,
        author=opts.author,
        pause=opts.pause not in ("false", "0"),
        changes=opts.change,
    )
    sys.stdout.write(res["Id"] + "\n")
    return 0


def cmd_diff(c: Client, opts: Options, args: list[str]) -> int:
    if len(args) != 1:
        raise UsageError('"diff" requires exactly 1 argument.')
    for ch in c.container_changes(args[0]):
        sys.stdout.write(f"{'CAD'[ch['Kind']]} {ch['Path']}\n")
    return 0


__all__ = ["cmd_build", "cmd_commit", "cmd_diff", "BuildOptions", "CommitOptions", "BuildFailed"]
