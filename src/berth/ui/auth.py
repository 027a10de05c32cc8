"""The dashboard's gate: the start-up token, the session it is exchanged for, the session's
secret that every request but the page and the bundle must show, and the headers every
answer carries.

As Jupyter does, berthd makes a random token at start and prints a URL with it
(`http://127.0.0.1:PORT/?token=...`). Opening that URL once trades the token for a session:
an HttpOnly, SameSite=Strict cookie, and a secret of that session's own. Cookies do not
isolate by port (RFC 6265 8.5): a page of another service on the same host (another local
user's dev server) is sent the cookie too, and could use it. So the cookie alone opens only
the page (`/`) and the bundle (`/static/`), which hold nothing secret; everything else (every
`/api` route, reads included) also wants the session's secret, in the `X-CSRF-Token` header
(or, for a GET that cannot have headers, EventSource, WebSocket, the log's download, in
`?csrf=`). The secret is given once, by the answer to the token's URL: a small page that
stores it in the origin's own localStorage (per scheme, host and port, unlike cookies) and
goes on to `/` at once, which also takes the token out of the URL, the history and any
Referer. No answer that carries the token or the secret is cached.

Also: a Host header check (only the address the dashboard was bound to, and `localhost`
for a loopback one), which turns away DNS rebinding, and an Origin check on actions.

Imports nothing of berth's.
"""

from __future__ import annotations

import hmac
import html
import ipaddress
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

COOKIE = "berth_ui"
CSRF_HEADER = "X-CSRF-Token"
SESSION_TTL = 12 * 3600.0  # a session lasts a working day
MAX_SESSIONS = 64  # the oldest goes when more are opened

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# what every answer says to the browser: no framing (click-jacking), no sniffing, no Referer
# (the URL of the first page held the token), scripts and styles only from the dashboard
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'self'"
    ),
}
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

# the answer to the token's URL: the session's secret for login.js to keep in localStorage
# (the CSP allows no inline script), which then goes on to the page
LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="referrer" content="no-referrer">
<meta name="berth-session" content="{secret}"><title>berth</title>
<script type="module" src="/static/login.js"></script></head>
<body><noscript>The dashboard needs JavaScript.</noscript></body></html>
"""


@dataclass(slots=True)
class Session:
    csrf: str
    created: float = field(default_factory=time.monotonic)


SESSION = web.RequestKey("session", Session)  # a request's session, once the gate let it in


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Gate:
    """The token, the sessions it opened, and the middleware that checks both."""

    def __init__(
        self, host: str, port: int, *, token: str | None = None, secure: bool = False
    ) -> None:
        self.token = token or secrets.token_urlsafe(32)
        self.sessions: dict[str, Session] = {}
        self.secure = secure
        self.port = port
        h = f"[{host}]" if ":" in host else host
        # the Host a browser may name: on loopback, only loopback names (a page of another
        # site whose name was rebound to 127.0.0.1 names its own); on another address (with
        # TLS, whose certificate names the host) any, as the address has many names
        self.hosts: set[str] | None = None
        if is_loopback(host):
            self.hosts = {f"{h}:{port}", f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"}
        self.scheme = "https" if secure else "http"
        shown = (
            h if self.hosts is not None or host not in ("0.0.0.0", "::") else socket.gethostname()
        )
        self.url = f"{self.scheme}://{shown}:{port}/?token={self.token}"

    # --- sessions ---------------------------------------------------------------------------
    def open_session(self) -> tuple[str, Session]:
        now = time.monotonic()
        for sid in [s for s, v in self.sessions.items() if now - v.created > SESSION_TTL]:
            del self.sessions[sid]
        while len(self.sessions) >= MAX_SESSIONS:
            del self.sessions[next(iter(self.sessions))]
        sid = secrets.token_urlsafe(32)
        sess = Session(csrf=secrets.token_urlsafe(32))
        self.sessions[sid] = sess
        return sid, sess

    def session_of(self, request: web.Request) -> Session | None:
        sid = request.cookies.get(COOKIE, "")
        sess = self.sessions.get(sid) if sid else None
        if sess is None or time.monotonic() - sess.created > SESSION_TTL:
            return None
        return sess

    def token_ok(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self.token.encode())

    def login(self, request: web.Request) -> web.StreamResponse:
        """`/?token=...`: a session, its cookie, and the page that keeps its secret in the
        origin's storage and goes on to the URL without the token. A wrong token is a 403,
        and no session."""
        if not self.token_ok(request.query.get("token", "")):
            return web.Response(
                status=403, text="wrong token: open the URL berthd printed\n", headers=NO_STORE
            )
        sid, sess = self.open_session()
        resp = web.Response(
            text=LOGIN_PAGE.format(secret=html.escape(sess.csrf, quote=True)),
            content_type="text/html",
            headers=NO_STORE,
        )
        resp.set_cookie(
            COOKIE,
            sid,
            httponly=True,
            samesite="Strict",
            path="/",
            secure=self.secure,
            max_age=int(SESSION_TTL),
        )
        return resp

    def logout(self, request: web.Request) -> web.StreamResponse:
        """The session ends here, on the server (its cookie no longer opens anything, even if
        a copy of it is kept), and the browser is told to forget the cookie."""
        self.sessions.pop(request.cookies.get(COOKIE, ""), None)
        resp = web.json_response({"ok": True}, headers=NO_STORE)
        resp.del_cookie(COOKIE, path="/", secure=self.secure, httponly=True, samesite="Strict")
        return resp

    # --- checks -----------------------------------------------------------------------------
    def csrf_ok(self, request: web.Request, sess: Session) -> bool:
        """The session's secret: in the header; for a GET (EventSource, WebSocket and a
        download cannot have headers), in `?csrf=` too. Never in an action's query."""
        given = request.headers.get(CSRF_HEADER) or ""
        if not given and request.method in ("GET", "HEAD"):
            given = request.query.get("csrf", "")
        return bool(given) and hmac.compare_digest(given.encode(), sess.csrf.encode())

    @staticmethod
    def cookie_only(request: web.Request) -> bool:
        """The only requests that the cookie opens by itself: a plain GET of the page or of
        the bundle (neither holds a secret nor does anything)."""
        return (
            request.method in ("GET", "HEAD")
            and request.headers.get("Upgrade", "").lower() != "websocket"
            and (request.path == "/" or request.path.startswith("/static/"))
        )

    def host_ok(self, request: web.Request) -> bool:
        return self.hosts is None or request.host in self.hosts

    def origin_ok(self, request: web.Request) -> bool:
        """An action comes from the dashboard's own page: its Origin (which browsers send
        with every cross-site request, and with every WebSocket) is the address asked."""
        origin = request.headers.get("Origin")
        return origin is None or origin == f"{self.scheme}://{request.host}"

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not self.host_ok(request):
            resp: web.StreamResponse = web.Response(status=421, text="unknown host\n")
        elif request.path == "/" and "token" in request.query:
            resp = self.login(request)
        else:
            sess = self.session_of(request)
            action = (
                request.method not in ("GET", "HEAD")
                or request.headers.get("Upgrade", "").lower() == "websocket"
            )
            if sess is None and request.path.startswith("/static/"):
                resp = await handler(request)  # the bundle holds nothing secret
            elif sess is None:
                resp = web.Response(
                    status=401,
                    headers=NO_STORE,
                    content_type="text/plain",
                    text="berth dashboard: open the URL with ?token= that berthd printed "
                    "at start\n",
                )
            elif action and not self.origin_ok(request):
                resp = web.json_response({"message": "CSRF check failed"}, status=403)
            elif not self.cookie_only(request) and not self.csrf_ok(request, sess):
                resp = web.json_response(
                    {
                        "message": "this request lacks the session's secret: open the URL "
                        "with ?token= that berthd printed in this browser again"
                    },
                    status=403,
                    headers=NO_STORE,
                )
            else:
                request[SESSION] = sess
                resp = await handler(request)
        if not resp.prepared:
            for k, v in SECURITY_HEADERS.items():
                resp.headers.setdefault(k, v)
        return resp


__all__ = ["Gate", "Session", "SESSION", "COOKIE", "CSRF_HEADER", "NO_STORE", "is_loopback"]
