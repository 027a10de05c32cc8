"""Registry credentials and the auth handshake: the X-Registry-Auth header, challenges, tokens.

Imports `errors`. A registry answers 401 with `WWW-Authenticate: Bearer realm=...,service=...,
scope=...` (ask a token server) or `Basic realm=...` (send the credentials each time). Tokens are
cached per (realm, service, scope, user) until they expire.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from berth.errors import InvalidArgument

_PARAM_RE = re.compile(r'([a-zA-Z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """What a client hands the daemon for one registry (Docker's types.AuthConfig)."""

    username: str = ""
    password: str = ""
    identitytoken: str = ""  # an OAuth refresh token from an earlier login
    registrytoken: str = ""  # a bearer token to send as it is
    serveraddress: str = ""

    @property
    def anonymous(self) -> bool:
        return not (self.username or self.identitytoken or self.registrytoken)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AuthConfig:
        low = {k.lower(): v for k, v in d.items() if isinstance(v, str)}
        user, pw = low.get("username", ""), low.get("password", "")
        if not user and low.get("auth"):
            try:
                user, _, pw = base64.b64decode(low["auth"]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise InvalidArgument("invalid auth in registry credentials") from None
        return cls(
            username=user,
            password=pw,
            identitytoken=low.get("identitytoken", ""),
            registrytoken=low.get("registrytoken", ""),
            serveraddress=low.get("serveraddress", ""),
        )

    @classmethod
    def from_header(cls, value: str | None) -> AuthConfig:
        """Decode X-Registry-Auth: base64url of a JSON object, padded or not."""
        if not value:
            return cls()
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            d = json.loads(raw or b"{}")
        except (binascii.Error, ValueError):
            raise InvalidArgument("invalid X-Registry-Auth header: not base64url JSON") from None
        if not isinstance(d, dict):
            raise InvalidArgument("invalid X-Registry-Auth header: not a JSON object")
        return cls.from_dict(d)


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # "bearer" or "basic"
    params: dict[str, str] = field(default_factory=dict)


def parse_challenges(header: str) -> list[Challenge]:
    """`Bearer realm="https://auth",service="reg",scope="repository:x:pull"` and friends."""
    out: list[Challenge] = []
    for m in re.finditer(
        r"(?:^|,)\s*([A-Za-z]+)\s+((?:[a-zA-Z_]+\s*=\s*(?:\"(?:[^\"\\]|\\.)*\"|[^,\s]*)\s*,?\s*)*)",
        header,
    ):
        params = {
            k.lower(): (q if q else v).replace('\\"', '"')
            for k, q, v in _PARAM_RE.findall(m.group(2))
        }
        out.append(Challenge(m.group(1).lower(), params))
    if not out and header.strip():
        out.append(Challenge(header.strip().split()[0].lower()))
    return out


@dataclass(slots=True)
class _Token:
    value: str
    expires: float


class TokenCache:
    """Bearer tokens by (realm, service, scope, user), reused until shortly before expiry."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str, str, str], _Token] = {}

    def get(self, key: tuple[str, str, str, str]) -> str | None:
        t = self._tokens.get(key)
        if t is None or t.expires <= time.time():
            self._tokens.pop(key, None)
            return None
        return t.value

    def put(
        self,
        key: tuple[str, str, str, str],
        value: str,
        expires_in: float,
        issued_at: float | None = None,
    ) -> None:
        # a token server's default lifetime is 60 s; keep a margin against clock skew
        start = issued_at if issued_at else time.time()
        self._tokens[key] = _Token(value, start + max(expires_in, 60) - 10)

    def forget(self, key: tuple[str, str, str, str]) -> None:
        self._tokens.pop(key, None)


def basic_header(auth: AuthConfig) -> str:
    return "Basic " + base64.b64encode(f"{auth.username}:{auth.password}".encode()).decode()


__all__ = ["AuthConfig", "Challenge", "parse_challenges", "TokenCache", "basic_header"]
