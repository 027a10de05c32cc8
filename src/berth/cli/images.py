"""The image commands that need no registry: images, import, tag, rmi, history, save, load, export, prune."""

from __future__ import annotations

import os
import sys

from berth.cli import fmt
from berth.cli.fmt import _count
from berth.cli.main import err, out, parse_filters
from berth.client import Client
from berth.cmdline import Options, UsageError, boolean, string, strings
from berth.errors import BerthError

TYPE_CHECKING = False  # not typing's: importing typing costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any


class ImportOptions(Options):
    change = strings("change", "c", help="Apply Dockerfile instruction to the created image")
    message = string("message", "m", help="Set commit message for imported image")
    platform = string("platform", help="Set platform if server is multi-platform capable")


def cmd_import(c: Client, opts: ImportOptions, args: list[str]) -> int:
    if not 1 <= len(args) <= 2:
        raise UsageError('"import" requires at least 1 and at most 2 arguments.')
    src = args[0]
    repo = args[1] if len(args) > 1 else ""
    if src == "-":
        r = c.import_image(sys.stdin.buffer, repo=repo, message=opts.message, changes=opts.change)
    else:
        if "://" in src:
            raise BerthError("importing from a URL is not supported yet")
        try:
            fh = open(src, "rb")  # noqa: SIM115 - closed below
        except OSError as e:
            err(f"open {src}: {(e.strerror or str(e)).lower()}")
            return 1
        with fh:
            r = c.import_image(fh, repo=repo, message=opts.message, changes=opts.change)
    for msg in r.iter_json():
        if msg.get("error"):
            raise BerthError(msg["error"])
        if msg.get("status"):
            out(msg["status"])
    return 0


class ImagesOptions(Options):
    all = boolean("all", "a", help="Show all images")
    quiet = boolean("quiet", "q", help="Only show image IDs")
    no_trunc = boolean("no-trunc", help="Don't truncate output")
    digests = boolean("digests", help="Show digests")
    filter = strings("filter", "f", help="Filter output based on conditions provided")
    format = string("format", help="Format output using a custom template")
    tree = boolean("tree", help="List multi-platform images as a tree (EXPERIMENTAL)")


def cmd_images(c: Client, opts: ImagesOptions, args: list[str]) -> int:
    filters = opts.filter + ([f"reference={args[0]}"] if args else [])
    rows = []
    for im in c.images(all=opts.all, filters=parse_filters(filters)):
        iid = im["Id"] if opts.no_trunc else im["Id"].split(":", 1)[-1][:12]
        digests = dict(d.split("@", 1) for d in im.get("RepoDigests") or [] if "@" in d)
        tags = im.get("RepoTags") or []
        if not tags:  # as Docker: an image known only by digest shows its repository
            tags = [f"{r}:<none>" for r in digests] or ["<none>:<none>"]
        for t in tags:
            repo, _, tag = t.rpartition(":") if t.rfind(":") > t.rfind("/") else (t, "", "<none>")
            rows.append(
                fmt.Row(
                    {
                        "Repository": repo,
                        "Tag": tag,
                        "ID": iid,
                        "CreatedSince": fmt.ago(im["Created"]),
                        "CreatedAt": fmt.ts(im["Created"]),
                        "Size": fmt.size(im["Size"]),
                        "Digest": digests.get(repo, "<none>"),
                        "Containers": _count(im.get("Containers")),
                        "VirtualSize": fmt.size4(im.get("VirtualSize", im["Size"])),
                        "SharedSize": _count(im.get("SharedSize"), fmt.size),
                        "UniqueSize": _count(
                            None if im.get("SharedSize", -1) < 0 else im["Size"] - im["SharedSize"],
                            fmt.size,
                        ),
                    },
                    None,
                    "*formatter.imageContext",
                    has_labels=False,
                )
            )
    if opts.quiet:
        seen = set()
        for r in rows:
            if r["ID"] not in seen:
                seen.add(r["ID"])
                out(r["ID"])
        return 0
    cols = [("REPOSITORY", "Repository"), ("TAG", "Tag")]
    cols += [("DIGEST", "Digest")] if opts.digests else []
    cols += [("IMAGE ID", "ID"), ("CREATED", "CreatedSince"), ("SIZE", "Size")]
    fmt.render(rows, opts.format, cols)
    return 0


def cmd_tag(c: Client, opts: Options, args: list[str]) -> int:
    if len(args) != 2:
        raise UsageError('"tag" requires exactly 2 arguments.')
    target = args[1]
    repo, tag = target, ""
    if target.rfind(":") > target.rfind("/"):
        repo, tag = target.rsplit(":", 1)
    c.tag_image(args[0], repo, tag)
    return 0


class RmiOptions(Options):
    force = boolean("force", "f", help="Force removal of the image")
    no_prune = boolean("no-prune", help="Do not delete untagged parents")


def cmd_rmi(c: Client, opts: RmiOptions, args: list[str]) -> int:
    if not args:
        raise UsageError('"rmi" requires at least 1 argument.')
    rc = 0
    for name in args:
        try:
            for item in c.remove_image(name, force=opts.force, no_prune=opts.no_prune):
                for k, v in item.items():
                    out(f"{k}: {v}")
        except BerthError as e:
            err(f"Error response from daemon: {e}")
            rc = 1
    return rc


class HistoryOptions(Options):
    quiet = boolean("quiet", "q", help="Only show image IDs")
    no_trunc = boolean("no-trunc", help="Don't truncate output")
    human = boolean(
        "human", "H", default=True, help="Print sizes and dates in human readable format"
    )
    format = string("format", help="Format output using a custom template")


def cmd_history(c: Client, opts: HistoryOptions, args: list[str]) -> int:
    if len(args) != 1:
        raise UsageError('"history" requires exactly 1 argument.')
    rows = []
    for h in c.image_history(args[0]):
        hid = h["Id"]
        if hid != "<missing>" and not opts.no_trunc:
            hid = hid.split(":", 1)[-1][:12]
        by = h.get("CreatedBy") or ""
        rows.append(
            fmt.Row(
                {
                    "ID": hid,
                    "CreatedSince": fmt.ago(h["Created"]),
                    "CreatedAt": fmt.rfc3339(h["Created"]),
                    "CreatedBy": by if opts.no_trunc else fmt.trunc(by, 45),
                    "Size": fmt.size(h["Size"]),
                    "Comment": h.get("Comment", ""),
                },
                None,
                "*image.historyContext",
                has_labels=False,
            )
        )
    if opts.quiet:
        for r in rows:
            out(r["ID"])
        return 0
    fmt.render(
        rows,
        opts.format,
        [
            ("IMAGE", "ID"),
            ("CREATED", "CreatedSince"),
            ("CREATED BY", "CreatedBy"),
            ("SIZE", "Size"),
            ("COMMENT", "Comment"),
        ],
    )
    return 0


class SaveOptions(Options):
    output = string("output", "o", help="Write to a file, instead of STDOUT")
    platform = string(
        "platform",
        help="Save only the given platform variant. Formatted as "
        '"os[/arch[/variant]]" (e.g., "linux/amd64")',
    )


def cmd_save(c: Client, opts: SaveOptions, args: list[str]) -> int:
    if not args:
        raise UsageError('"save" requires at least 1 argument.')
    if not opts.output and sys.stdout.isatty():
        raise BerthError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    r = c.save_images(args)
    _copy_to(r, opts.output)
    return 0


class ExportOptions(Options):
    output = string("output", "o", help="Write to a file, instead of STDOUT")


def cmd_export(c: Client, opts: ExportOptions, args: list[str]) -> int:
    if len(args) != 1:
        raise UsageError('"export" requires exactly 1 argument.')
    if not opts.output and sys.stdout.isatty():
        raise BerthError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    r = c.export_container(args[0])
    _copy_to(r, opts.output)
    return 0


def _copy_to(r: Any, path: str) -> None:
    if path:
        tmp = path + ".berth-tmp"
        with open(tmp, "wb") as f:
            for piece in r.iter_raw():
                f.write(piece)
        os.replace(tmp, path)
    else:
        for piece in r.iter_raw():
            sys.stdout.buffer.write(piece)
        sys.stdout.buffer.flush()


class LoadOptions(Options):
    input = string("input", "i", help="Read from tar archive file, instead of STDIN")
    quiet = boolean("quiet", "q", help="Suppress the load output")


def cmd_load(c: Client, opts: LoadOptions, args: list[str]) -> int:
    if opts.input:
        fh = open(opts.input, "rb")  # noqa: SIM115
    else:
        if sys.stdin.isatty():
            raise BerthError("requested load from stdin, but stdin is empty")
        fh = sys.stdin.buffer  # type: ignore[assignment]
    with fh:
        r = c.load_images(fh, quiet=opts.quiet)
    for msg in r.iter_json():
        if msg.get("error"):
            err(msg["error"])  # from the stream, as the docker CLI prints it
            return 1
        if msg.get("stream"):
            sys.stdout.write(msg["stream"])
    return 0


class ImagePruneOptions(Options):
    all = boolean("all", "a", help="Remove all unused images, not just dangling ones")
    force = boolean("force", "f", help="Do not prompt for confirmation")
    filter = strings("filter", help='Provide filter values (e.g. "until=<timestamp>")')


def cmd_image_prune(c: Client, opts: ImagePruneOptions, args: list[str]) -> int:
    filters = opts.filter + (["dangling=false"] if opts.all else [])
    res = c.prune_images(parse_filters(filters))
    for item in res.get("ImagesDeleted") or []:
        for k, v in item.items():
            out(f"{k}: {v}")
    out(f"Total reclaimed space: {fmt.size(res.get('SpaceReclaimed', 0))}")
    return 0
