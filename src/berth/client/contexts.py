"""Contexts in the docker CLI's own store, so that `docker context` and `berth context` read and
write the same ones, and where a command's daemon is found, in the docker CLI's order.

The store is `$DOCKER_CONFIG/contexts` (default `~/.docker/contexts`): a context's
`meta/<sha256 of its name>/meta.json` holds `{"Name", "Metadata": {"Description"},
"Endpoints": {"docker": {"Host", "SkipTLSVerify"}}}` and its TLS files are
`tls/<sha256>/docker/{ca,cert,key}.pem`; `currentContext` in `config.json` names the one in
use. `default` is no file: it is -H / DOCKER_HOST and the TLS flags and variables.

Order of a command's daemon (the docker CLI's `resolveContextName`): `--context`; `-H` or
BERTH_HOST / DOCKER_HOST (the default context); DOCKER_CONTEXT; `currentContext`; `default`.
`--context` with `-H` is an error. A unix-socket command reads config.json alone (as docker
does); hashlib comes only when a named context is used.
"""

from __future__ import annotations

import os

from berth import jsonc as json
from berth.client.transport import ConflictingOptions, ConnectionFailed, InvalidHost, parse_host
from berth.errors import NotFound

TYPE_CHECKING = False  # not typing's: importing typing costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any

DEFAULT = "default"
DEFAULT_DESCRIPTION = "Current DOCKER_HOST based configuration"
NAME_PATTERN = "^[a-zA-Z0-9][a-zA-Z0-9_.+-]+$"
TLS_FILES = ("ca.pem", "cert.pem", "key.pem")


def config_dir() -> str:
    return os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")


def store_id(name: str) -> str:
    import hashlib

    return hashlib.sha256(name.encode()).hexdigest()


def meta_dir(name: str) -> str:
    return os.path.join(config_dir(), "contexts", "meta", store_id(name))


def tls_dir(name: str) -> str:
    return os.path.join(config_dir(), "contexts", "tls", store_id(name))


def current_name() -> str:
    """config.json's currentContext ("" if none; a file that is not JSON counts as none, as
    for the docker CLI, which warns and goes on)."""
    try:
        with open(os.path.join(config_dir(), "config.json"), "rb") as f:
            data = f.read()
    except OSError:
        return ""
    if b"currentContext" not in data:
        return ""
    try:
        doc = json.loads(data)
    except ValueError:
        return ""
    cur = doc.get("currentContext") if isinstance(doc, dict) else None
    return cur if isinstance(cur, str) else ""


class TLS:
    """TLS settings of a tcp:// endpoint: PEM files ("" for none) and whether the daemon's
    certificate is checked (against `ca`, and its name against the host's). A plain class:
    `dataclasses` costs ~8 ms of CLI start-up."""

    __slots__ = ("ca", "cert", "key", "skip_verify")

    def __init__(
        self, ca: str = "", cert: str = "", key: str = "", skip_verify: bool = False
    ) -> None:
        self.ca = ca
        self.cert = cert
        self.key = key
        self.skip_verify = skip_verify

    def context(self) -> Any:
        """An ssl.SSLContext for the client side (imports ssl)."""
        import ssl

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # as docker's tlsconfig
        try:
            if self.skip_verify:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            elif self.ca:
                ctx.load_verify_locations(cafile=self.ca)
            else:
                ctx.load_default_certs()
            if self.cert or self.key:
                ctx.load_cert_chain(self.cert, self.key or None)
        except (OSError, ValueError) as e:
            raise ConnectionFailed(f"could not load TLS material: {e}") from None
        return ctx


class Context:
    """One context: its name, description, docker endpoint and TLS files. A plain class, as
    the rest of the client."""

    __slots__ = ("name", "meta", "host", "skip_verify", "files", "meta_path", "tls_path")

    def __init__(
        self,
        name: str,
        meta: dict[str, Any],
        host: str,
        skip_verify: bool,
        files: dict[str, str],
        meta_path: str = "",
        tls_path: str = "",
    ) -> None:
        self.name = name
        self.meta = meta  # the whole meta.json, kept as read
        self.host = host
        self.skip_verify = skip_verify
        self.files = files  # ca.pem / cert.pem / key.pem -> path
        self.meta_path = meta_path  # "" for default: it lives in memory
        self.tls_path = tls_path

    @property
    def description(self) -> str:
        md = self.meta.get("Metadata")
        d = md.get("Description") if isinstance(md, dict) else None
        return d if isinstance(d, str) else ""

    def tls(self) -> TLS | None:
        """The docker CLI's rule: TLS when there are TLS files or SkipTLSVerify is set."""
        if not self.host.startswith("tcp://") or not (self.files or self.skip_verify):
            return None
        return TLS(
            self.files.get("ca.pem", ""),
            self.files.get("cert.pem", ""),
            self.files.get("key.pem", ""),
            self.skip_verify,
        )


def load(name: str) -> Context:
    path = meta_dir(name)
    file = os.path.join(path, "meta.json")
    try:
        with open(file, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise NotFound(
            f'context "{name}": context not found: open {file}: no such file or directory'
        ) from None
    except OSError as e:
        raise NotFound(f'context "{name}": {e}') from None
    return _parse(file, data, name)


def _parse(file: str, data: bytes, name: str | None = None) -> Context:
    try:
        meta = json.loads(data)
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
    except ValueError as e:
        prefix = f'context "{name}": ' if name else ""
        raise InvalidHost(f"{prefix}parsing {file}: {e}") from None
    cname = str(meta.get("Name", name or ""))
    eps = meta.get("Endpoints")
    eps = eps if isinstance(eps, dict) else {}
    ep = eps.get("docker")
    ep = ep if isinstance(ep, dict) else {}
    tdir = tls_dir(cname)
    files = {}
    for fname in TLS_FILES:
        p = os.path.join(tdir, "docker", fname)
        if os.path.exists(p):
            files[fname] = p
    return Context(
        cname,
        meta,
        str(ep.get("Host") or ""),
        bool(ep.get("SkipTLSVerify")),
        files,
        os.path.dirname(file),
        tdir,
    )


def load_all() -> tuple[list[Context], list[str]]:
    """Every stored context (unsorted), and the errors of those that could not be read."""
    root = os.path.join(config_dir(), "contexts", "meta")
    out: list[Context] = []
    errors: list[str] = []
    try:
        entries = sorted(os.listdir(root))
    except OSError:
        return out, errors
    for ent in entries:
        file = os.path.join(root, ent, "meta.json")
        try:
            with open(file, "rb") as f:
                data = f.read()
        except OSError:
            continue
        try:
            out.append(_parse(file, data))
        except InvalidHost as e:
            errors.append(f"failed to read metadata: {e}")
    return out, errors


def default_context(
    host: str | None = None,
    tls: bool = False,
    tlsverify: bool | None = None,
    ca: str | None = None,
    cert: str | None = None,
    key: str | None = None,
) -> Context:
    """`default`: -H or BERTH_HOST / DOCKER_HOST, and TLS from the flags and DOCKER_TLS,
    DOCKER_TLS_VERIFY (any value turns them on, as for the docker CLI), DOCKER_CERT_PATH (else
    the config directory) for ca.pem, cert.pem and key.pem."""
    verify = tlsverify if tlsverify is not None else bool(os.environ.get("DOCKER_TLS_VERIFY"))
    use_tls = tls or bool(os.environ.get("DOCKER_TLS")) or tlsverify is not None or verify
    env_host = os.environ.get("BERTH_HOST") or os.environ.get("DOCKER_HOST") or ""
    h = parse_host(host or env_host, use_tls)
    files: dict[str, str] = {}
    if use_tls:
        base = os.environ.get("DOCKER_CERT_PATH") or config_dir()
        for fname, given in zip(TLS_FILES, (ca, cert, key), strict=True):
            path = given if given is not None else os.path.join(base, fname)
            if not path:
                continue
            if not os.path.exists(path):
                if given is None and fname != "ca.pem":
                    continue  # as docker: a missing default cert or key is no error
                raise InvalidHost(f"open {path}: no such file or directory")
            files[fname] = path
    meta = {
        "Name": DEFAULT,
        "Metadata": {},
        "Endpoints": {"docker": {"Host": h, "SkipTLSVerify": use_tls and not verify}},
    }
    return Context(DEFAULT, meta, h, use_tls and not verify, files)


def resolve_name(host: str | None, context: str | None) -> str:
    if host and context:
        raise ConflictingOptions("conflicting options: cannot specify both --host and --context")
    if context:
        return context
    if host or os.environ.get("BERTH_HOST") or os.environ.get("DOCKER_HOST"):
        return DEFAULT
    return os.environ.get("DOCKER_CONTEXT") or current_name() or DEFAULT


def resolve(
    host: str | None = None,
    context: str | None = None,
    tls: bool = False,
    tlsverify: bool | None = None,
    ca: str | None = None,
    cert: str | None = None,
    key: str | None = None,
) -> Context:
    """The context a command talks to. InvalidHost or NotFound if it cannot be had."""
    name = resolve_name(host, context)
    if name == DEFAULT:
        return default_context(host, tls, tlsverify, ca, cert, key)
    c = load(name)
    c.host = parse_host(c.host)
    return c


__all__ = [
    "Context",
    "DEFAULT",
    "load",
    "load_all",
    "resolve",
    "resolve_name",
    "default_context",
    "current_name",
    "config_dir",
    "meta_dir",
    "tls_dir",
]
