"""berthd's listeners, as dockerd makes them: `-H` hosts (unix:// and tcp://), TLS with or
without client verification, and dockerd's warnings (and wait) for TCP without it.

dockerd's rules (cmd/dockerd, 28.x):
- `--tlsverify` (any value) turns TLS on; `--tls` alone verifies clients too (TLSVerify takes
  TLS's value when not set); `--tlsverify=false` is TLS without client verification.
- With TLS and no `-H`, the one host is `tcp://localhost:2376`; a tcp:// host without a port
  gets 2375, without an address `localhost`.
- A tcp:// host without client verification: three warnings and a 1 s wait; when TLS was
  not set either way (neither --tls nor --tlsverify, flag or daemon.json) and the address is
  not a loopback one, four more and 15 s more. dockerd 28 still starts after that (the
  deprecation notes say a later release will refuse).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import ssl
from asyncio import sslproto
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from berth.errors import InvalidArgument

log = logging.getLogger("berthd")

DEFAULT_TLS_HOST = "tcp://localhost:2376"
DEFAULT_TCP_PORT = 2375


@dataclass(frozen=True, slots=True)
class TLSSettings:
    verify: bool  # require a client certificate signed by `ca`
    ca: str
    cert: str
    key: str


def normalize_host(host: str, default_unix: str, tls: bool) -> str:
    """A `-H` value as dockerd's opts.ParseHost reads it."""
    h = host.strip()
    if not h:
        return DEFAULT_TLS_HOST if tls else f"unix://{default_unix}"
    proto, sep, addr = h.partition("://")
    if not sep:
        proto, addr = "tcp", h
    if proto == "unix":
        return f"unix://{addr or default_unix}"
    if proto != "tcp":
        raise InvalidArgument(f"invalid bind address ({host}): unsupported proto '{proto}'")
    if "/" in addr:
        raise InvalidArgument(f"invalid bind address ({host}): should not contain a path element")
    if addr.startswith("["):
        end = addr.find("]")
        if end < 0 or (addr[end + 1 :] and not addr[end + 1 :].startswith(":")):
            raise InvalidArgument(f"invalid bind address ({host})")
        name, port = addr[1:end], addr[end + 2 :]
    else:
        name, _, port = addr.rpartition(":") if ":" in addr else (addr, "", "")
    if port and not port.isdigit() or ":" in name and not addr.startswith("["):
        raise InvalidArgument(f"invalid bind address ({host})")
    name = name or "localhost"
    return f"tcp://{f'[{name}]' if ':' in name else name}:{port or DEFAULT_TCP_PORT}"


def split_tcp(host: str) -> tuple[str, int]:
    name, _, port = host[len("tcp://") :].rpartition(":")
    return name.strip("[]"), int(port)


def _is_loopback(name: str) -> bool:
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(name, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def insecure_tcp(host: str, tls: TLSSettings | None, tls_explicit: bool) -> tuple[list[str], float]:
    """dockerd's warnings for a tcp:// host without TLS client verification, and how long it
    waits after them (seconds): 1, or 16 when TLS was not set either way and the address is
    not a loopback one. ([], 0) for a host that needs none."""
    if not host.startswith("tcp://") or (tls is not None and tls.verify):
        return [], 0.0
    warnings = [
        "Binding to IP address without --tlsverify is insecure and gives root access on this "
        "machine to everyone who has access to your network.",
        "Binding to an IP address, even on localhost, can also give access to scripts run in "
        "a browser. Be safe out there!",
        "[DEPRECATION NOTICE] In future versions this will be a hard failure preventing the "
        "daemon from starting! Learn more at: https://docs.docker.com/go/api-security/",
    ]
    wait = 1.0
    if not tls_explicit and not _is_loopback(split_tcp(host)[0]):
        warnings += [
            "Binding to an IP address without --tlsverify is deprecated. Startup is "
            "intentionally being slowed down to show this message",
            "Please consider generating tls certificates with client validation to prevent "
            "exposing unauthenticated root access to your network",
            "You can override this by explicitly specifying '--tls=false' or '--tlsverify=false'",
            "Support for listening on TCP without authentication or explicit intent to run "
            "without authentication will be removed in the next release",
        ]
        wait += 15.0
    return warnings, wait


def api_warnings(hosts: list[str], tls: TLSSettings | None) -> list[str]:
    """What dockerd's /info says of its tcp:// hosts (daemon/info.go, fillAPIInfo)."""
    attack = (
        "\n         Access to the remote API is equivalent to root access on the host. "
        "Refer\n         to the 'Docker daemon attack surface' section in the "
        "documentation for\n         more information: "
        "https://docs.docker.com/go/attack-surface/"
    )
    removal = (
        "In future versions this will be a hard failure preventing the daemon from "
        "starting! Learn more at: https://docs.docker.com/go/api-security/"
    )
    out = []
    for h in hosts:
        if not h.startswith("tcp://"):
            continue
        addr = h[len("tcp://") :]
        if tls is None:
            out.append(
                f"[DEPRECATION NOTICE]: API is accessible on http://{addr} without "
                f"encryption.{attack}\n{removal}"
            )
        elif not tls.verify:
            out.append(
                f"[DEPRECATION NOTICE]: API is accessible on https://{addr} without "
                f"TLS client verification.{attack}\n{removal}"
            )
    return out


def server_context(t: TLSSettings) -> ssl.SSLContext:
    """The TLS of a tcp:// listener, as docker's tlsconfig.Server: TLS 1.2 at least, the
    server's certificate and key, and with `verify` a client certificate signed by the CA
    (that CA alone: no system roots)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(t.cert, t.key)
    except (OSError, ssl.SSLError) as e:
        raise InvalidArgument(
            f"invalid TLS configuration: could not load X509 key pair "
            f'(cert: "{t.cert}", key: "{t.key}"): {e}'
        ) from None
    if t.verify:
        try:
            ctx.load_verify_locations(cafile=t.ca)
        except (OSError, ssl.SSLError) as e:
            raise InvalidArgument(
                f'invalid TLS configuration: could not read CA certificate "{t.ca}": {e}'
            ) from None
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def bind_tcp(host: str) -> socket.socket:
    """A listening socket for a tcp:// host (its first address, as Go's net.Listen)."""
    name, port = split_tcp(host)
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(
            name, port, 0, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
        )[0]
    except (OSError, IndexError) as e:
        raise InvalidArgument(f"listen tcp {name}:{port}: {e}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
    except OSError as e:
        sock.close()
        raise InvalidArgument(f"listen tcp {name}:{port}: bind: {e.strerror or e}") from None
    return sock


class _HalfCloseTLS(sslproto.SSLProtocol):
    """asyncio's TLS server side, but a client's half-close reaches the application protocol,
    which may keep the connection open for its output (Hijacked: attach, exec). asyncio's own
    SSLProtocol shuts the whole connection down as soon as the client is done sending, and
    the output still to come is lost. The end of a client's input comes two ways: a TLS
    close_notify (Go's tls.Conn.CloseWrite: the docker CLI's hijacked streams), or a TCP FIN
    under the TLS (berth's CLI, as a half-closed TCP connection)."""

    _kept_open: bool | None = None  # the app protocol's answer to eof_received

    def _on_handshake_complete(self, handshake_exc: BaseException | None) -> None:
        me: Any = self
        if handshake_exc is not None:
            # as Go's server: the client hears why (asyncio drops OpenSSL's alert), and one
            # that spoke plain HTTP gets an HTTP answer that says so
            with contextlib.suppress(Exception):
                if getattr(handshake_exc, "reason", "") == "HTTP_REQUEST":
                    me._transport.write(
                        b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP "
                        b"request to an HTTPS server.\n"
                    )
                else:
                    me._process_outgoing()
        base: Any = super()
        base._on_handshake_complete(handshake_exc)

    def _call_eof_received(self) -> None:
        me: Any = self  # asyncio's private state, which typeshed does not describe
        if me._app_state is not sslproto.AppProtocolState.STATE_CON_MADE:
            return
        me._app_state = sslproto.AppProtocolState.STATE_EOF
        try:
            self._kept_open = bool(me._app_protocol.eof_received())
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as ex:  # noqa: BLE001 - as asyncio's own
            me._fatal_error(ex, "Error calling eof_received()")

    def _start_shutdown(self) -> None:
        me: Any = self
        if self._kept_open and not getattr(me._app_transport, "_closed", True):
            return  # the client's close_notify: the application still writes; its close()
        me_base: Any = super()
        me_base._start_shutdown()

    def eof_received(self) -> bool | None:  # type: ignore[override] # typeshed says None
        me: Any = self
        wrapped = sslproto.SSLProtocolState.WRAPPED
        if me._state is wrapped and not me._app_reading_paused:
            me._do_read()  # what came before the FIN goes first
            if me._state is wrapped:
                self._call_eof_received()
                if self._kept_open:
                    # no TLS close_notify at close: the peer's side is gone already
                    me._eof_received = True
                    return True
        base: Any = super()
        return base.eof_received()  # type: ignore[no-any-return]


class TLSSite(web.SockSite):
    """A SockSite whose connections go through _HalfCloseTLS."""

    async def start(self) -> None:
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        server = self._runner.server
        ctx = self._ssl_context
        assert server is not None and ctx is not None

        def factory() -> asyncio.BaseProtocol:
            waiter: Any = None
            return _HalfCloseTLS(
                loop, server(), ctx, waiter, server_side=True, ssl_handshake_timeout=60
            )

        self._server = await loop.create_server(factory, sock=self._sock, backlog=self._backlog)


async def warn_insecure(host: str, tls: TLSSettings | None, tls_explicit: bool) -> None:
    warnings, wait = insecure_tcp(host, tls, tls_explicit)
    for i, w in enumerate(warnings):
        log.warning('%s host="%s"', w, host)
        if i == 2:
            await asyncio.sleep(1.0)
    if wait > 1.0:
        await asyncio.sleep(wait - 1.0)


def close_quietly(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()
