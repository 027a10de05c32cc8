"""`pull`, `push`, `login`, `logout`: credentials as the docker CLI keeps them, progress as it
shows it.

Imported only by those commands (and by `run`/`create` when they must pull). Credentials live in
`$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`), Docker's own file and format:
`auths` entries with base64 `user:password`, or a credential helper named by `credsStore`
(every registry) or `credHelpers` (one registry): `docker-credential-NAME get|store|erase`.
The CLI sends the credentials for a registry with each pull and push (X-Registry-Auth), as the
docker CLI does; the daemon keeps none.
"""

from __future__ import annotations

import base64
import getpass
import json
import os
import subprocess
import sys
from typing import Any

from berth.client import Client
from berth.cmdline import Options, UsageError, boolean, integer, string, strings
from berth.errors import BerthError

HUB_KEY = "https://index.docker.io/v1/"


def config_path() -> str:
    d = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return os.path.join(d, "config.json")


def load_config() -> dict[str, Any]:
    try:
        with open(config_path()) as f:
            doc = json.load(f)
    except FileNotFoundError:
        return {}
    except ValueError as e:
        raise BerthError(f"loading config file {config_path()}: {e}") from None
    if not isinstance(doc, dict):
        raise BerthError(f"loading config file {config_path()}: not a JSON object")
    return doc


def save_config(doc: dict[str, Any]) -> None:
    path = config_path()
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent="\t")
        f.write("\n")
    os.replace(tmp, path)


def server_key(domain_or_url: str) -> str:
    """The key Docker files a registry's credentials under: the hub's URL, else host[:port]."""
    s = domain_or_url.strip()
    if "://" in s:
        s = s.split("://", 1)[1]
    s = s.rstrip("/").split("/", 1)[0]
    if s in ("", "docker.io", "index.docker.io", "registry-1.docker.io"):
        return HUB_KEY
    return s


def _helper(doc: dict[str, Any], key: str) -> str:
    helpers = doc.get("credHelpers") or {}
    return str(helpers.get(key) or doc.get("credsStore") or "")


def _run_helper(name: str, action: str, data: str) -> str:
    try:
        r = subprocess.run(
            [f"docker-credential-{name}", action],
            input=data,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except FileNotFoundError:
        raise BerthError(
            f'error getting credentials - err: exec: "docker-credential-{name}": '
            "executable file not found in $PATH"
        ) from None
    if r.returncode != 0:
        msg = (r.stdout + r.stderr).strip()
        if "credentials not found" in msg:
            return ""
        raise BerthError(f"credential helper docker-credential-{name} {action}: {msg}")
    return r.stdout


def get_credentials(key: str) -> dict[str, str]:
    """{username, password | identitytoken, serveraddress} for a registry, or {}."""
    doc = load_config()
    helper = _helper(doc, key)
    if helper:
        raw = _run_helper(helper, "get", key)
        if not raw.strip():
            return {}
        d = json.loads(raw)
        if d.get("Username") == "<token>":
            return {"identitytoken": d.get("Secret", ""), "serveraddress": key}
        return {
            "username": d.get("Username", ""),
            "password": d.get("Secret", ""),
            "serveraddress": key,
        }
    entry = (doc.get("auths") or {}).get(key)
    if not entry and key != HUB_KEY:
        for k, v in (doc.get("auths") or {}).items():
            if server_key(k) == key:
                entry = v
                break
    if not entry:
        return {}
    out = {"serveraddress": key}
    if entry.get("auth"):
        user, _, pw = base64.b64decode(entry["auth"]).decode().partition(":")
        out.update(username=user, password=pw)
    if entry.get("identitytoken"):
        out["identitytoken"] = entry["identitytoken"]
    return out


def store_credentials(key: str, username: str, password: str) -> None:
    doc = load_config()
    helper = _helper(doc, key)
    if helper:
        _run_helper(
            helper,
            "store",
            json.dumps({"ServerURL": key, "Username": username, "Secret": password}),
        )
        doc.setdefault("auths", {})[key] = {}
    else:
        doc.setdefault("auths", {})[key] = {
            "auth": base64.b64encode(f"{username}:{password}".encode()).decode()
        }
    save_config(doc)


def erase_credentials(key: str) -> bool:
    doc = load_config()
    auths = doc.get("auths") or {}
    found = key in auths
    helper = _helper(doc, key)
    if helper:
        _run_helper(helper, "erase", key)
        found = True
    auths.pop(key, None)
    if found:
        save_config(doc)
    return found


def auth_header(image: str) -> dict[str, str]:
    """X-Registry-Auth for the registry an image name points at (empty credentials if none)."""
    from berth import reference

    try:
        domain = reference.parse(image).domain
    except BerthError:
        domain = "docker.io"
    creds = get_credentials(server_key(domain))
    raw = json.dumps(creds or {}).encode()
    return {"X-Registry-Auth": base64.urlsafe_b64encode(raw).decode()}


# --- progress --------------------------------------------------------------------------------
class Progress:
    """Docker's JSON message display: on a terminal one line per layer, rewritten in place; else
    each status once, without the bars."""

    def __init__(self, stream: Any = None, quiet: bool = False) -> None:
        self.out = stream or sys.stdout
        self.tty = self.out.isatty()
        self.quiet = quiet
        self.lines: dict[str, int] = {}  # id → its line, counted from the first

    def show(self, msg: dict[str, Any]) -> None:
        if msg.get("error") or msg.get("errorDetail"):
            raise BerthError(msg.get("error") or msg["errorDetail"].get("message", ""))
        if self.quiet or "aux" in msg:
            return
        status = msg.get("status", "")
        if msg.get("stream"):
            self.out.write(msg["stream"])
            return
        ident = msg.get("id")
        text = f"{ident}: {status}" if ident else status
        if msg.get("progress"):
            if not self.tty:
                return
            text += " " + msg["progress"]
        if not self.tty or not ident:
            self.out.write(text + "\n")
            if not ident:
                self.lines.clear()
        elif ident not in self.lines:
            self.lines[ident] = len(self.lines)
            self.out.write(text + "\x1b[K\n")
        else:
            up = len(self.lines) - self.lines[ident]
            self.out.write(f"\x1b[{up}A\r{text}\x1b[K\x1b[{up}B\r")
        self.out.flush()


def stream_messages(r: Any, progress: Progress) -> None:
    for msg in r.iter_json():
        progress.show(msg)


# --- commands --------------------------------------------------------------------------------


class PullOptions(Options):
    all_tags = boolean("all-tags", "a", help="Download all tagged images in the repository")
    platform = string("platform", help="Set platform if server is multi-platform capable")
    quiet = boolean("quiet", "q", help="Suppress verbose output")
    disable_content_trust = boolean("disable-content-trust", help="Skip image verification")


def split_name(image: str) -> tuple[str, str]:
    if "@" in image:
        name, digest = image.split("@", 1)
        return name, digest
    if image.rfind(":") > image.rfind("/"):
        name, tag = image.rsplit(":", 1)
        return name, tag
    return image, ""


def pull(
    c: Client,
    image: str,
    *,
    all_tags: bool = False,
    platform: str = "",
    quiet: bool = False,
    out: Any = None,
) -> str:
    from berth import reference

    ref = reference.parse(image, default_tag=not all_tags)
    name, tag = split_name(image)
    if all_tags and tag:
        raise UsageError("tag can't be used with --all-tags/-a")
    stream = out or sys.stdout
    if not tag and not all_tags:
        tag = "latest"
        if not quiet:
            stream.write("Using default tag: latest\n")
    r = c.pull_image(name, tag, platform=platform, auth=auth_header(image))
    stream_messages(r, Progress(stream, quiet))
    return str(ref) if not all_tags else ref.repository


def cmd_pull(c: Client, opts: PullOptions, args: list[str]) -> int:
    if len(args) != 1:
        raise UsageError('"pull" requires exactly 1 argument.')
    full = pull(c, args[0], all_tags=opts.all_tags, platform=opts.platform, quiet=opts.quiet)
    sys.stdout.write(full + "\n")
    return 0


class PushOptions(Options):
    all_tags = boolean("all-tags", "a", help="Push all tags of an image to the repository")
    quiet = boolean("quiet", "q", help="Suppress verbose output")
    platform = string(
        "platform",
        help="Push a platform-specific manifest as a single-platform image to the "
        "registry. Image index won't be pushed, meaning that other manifests, "
        "including attestations won't be preserved. 'os[/arch[/variant]]': "
        "Explicit platform (eg. linux/amd64)",
    )
    disable_content_trust = boolean("disable-content-trust", help="Skip image signing")


def cmd_push(c: Client, opts: PushOptions, args: list[str]) -> int:
    from berth import reference

    if len(args) != 1:
        raise UsageError('"push" requires exactly 1 argument.')
    image = args[0]
    ref = reference.parse(image, default_tag=not opts.all_tags)
    name, tag = split_name(image)
    if opts.all_tags and tag:
        raise UsageError("tag can't be used with --all-tags/-a")
    if not tag and not opts.all_tags:
        tag = "latest"
        sys.stdout.write("Using default tag: latest\n")
    r = c.push_image(name, tag, auth=auth_header(image))
    stream_messages(r, Progress(sys.stdout, opts.quiet))
    if opts.quiet:
        sys.stdout.write(f"{ref.familiar}\n")
    return 0


class LoginOptions(Options):
    username = string("username", "u", help="Username")
    password = string("password", "p", help="Password or Personal Access Token (PAT)")
    password_stdin = boolean(
        "password-stdin", help="Take the Password or Personal Access Token (PAT) from stdin"
    )


def cmd_login(c: Client, opts: LoginOptions, args: list[str]) -> int:
    if len(args) > 1:
        raise UsageError('"login" requires at most 1 argument.')
    key = server_key(args[0] if args else "docker.io")
    user, pw = opts.username, opts.password
    if opts.password_stdin:
        if pw:
            raise UsageError("--password and --password-stdin are mutually exclusive")
        if not user:
            raise UsageError("Must provide --username with --password-stdin")
        pw = sys.stdin.read().rstrip("\r\n")
    elif pw:
        sys.stderr.write(
            "WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n"
        )
    if not user:
        if not sys.stdin.isatty():
            raise BerthError("Cannot perform an interactive login from a non TTY device")
        user = input("Username: ").strip()
    if not pw:
        if not sys.stdin.isatty():
            raise BerthError("Cannot perform an interactive login from a non TTY device")
        pw = getpass.getpass("Password: ")
    if not user:
        raise BerthError("Error: Non-null Username Required")
    if not pw:
        raise BerthError("Error: Password Required")
    res = c.auth(user, pw, key)
    if res.get("IdentityToken"):
        store_credentials(key, "<token>", res["IdentityToken"])
    else:
        store_credentials(key, user, pw)
    sys.stdout.write(f"{res.get('Status') or 'Login Succeeded'}\n")
    return 0


def cmd_logout(c: Client, opts: Options, args: list[str]) -> int:
    if len(args) > 1:
        raise UsageError('"logout" requires at most 1 argument.')
    key = server_key(args[0] if args else "docker.io")
    if erase_credentials(key):
        sys.stdout.write(f"Removing login credentials for {key}\n")
    else:
        sys.stdout.write(f"Not logged in to {key}\n")
    return 0


class SearchOptions(Options):
    filter = strings("filter", "f", help="Filter output based on conditions provided")
    format = string("format", help="Pretty-print search using a Go template")
    limit = integer("limit", help="Max number of search results")
    no_trunc = boolean("no-trunc", help="Don't truncate output")


def cmd_search(c: Client, opts: SearchOptions, args: list[str]) -> int:
    if len(args) != 1:
        raise UsageError('"search" requires exactly 1 argument.')
    from berth.cli import fmt
    from berth.cli.main import parse_filters

    term = args[0]
    first, slash, _ = term.partition("/")
    server = (
        first if slash and ("." in first or ":" in first or first == "localhost") else "docker.io"
    )
    results = c.search_images(
        term,
        limit=opts.limit,
        filters=parse_filters(opts.filter),
        auth=auth_header(f"{server}/x" if server != "docker.io" else "x"),
    )
    rows = []
    for r in results:
        desc = " ".join(str(r.get("description") or "").split("\n"))
        if not opts.no_trunc and len(desc) > 45:
            desc = desc[:44] + "…"
        rows.append(
            {
                "Name": r["name"],
                "Description": desc,
                "StarCount": str(r["star_count"]),
                "IsOfficial": "[OK]" if r["is_official"] else "",
                "IsAutomated": "[OK]" if r["is_automated"] else "",
            }
        )
    fmt.render(
        rows,
        opts.format,
        [
            ("NAME", "Name"),
            ("DESCRIPTION", "Description"),
            ("STARS", "StarCount"),
            ("OFFICIAL", "IsOfficial"),
        ],
    )
    return 0


__all__ = [
    "cmd_pull",
    "cmd_push",
    "cmd_login",
    "cmd_logout",
    "cmd_search",
    "pull",
    "PullOptions",
    "PushOptions",
    "LoginOptions",
    "SearchOptions",
]
