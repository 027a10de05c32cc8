"""The builder's routes: `POST /build` (the classic builder's API and stream), build-cache
prune, `POST /commit` and `GET /containers/{id}/changes`.

Imports the build service, `reference` and `errors`.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import logging
from typing import Any

from aiohttp import web

from berth import reference
from berth.builder import Builder, check_entitlements
from berth.builder import Options as BuildOptions
from berth.errors import BerthError, InvalidArgument, NotFound

from .wire import SyncReader, error_message, json_response, qbool, read_json, stream_response

log = logging.getLogger(__name__)


def _json_query(request: web.Request, name: str, default: Any) -> Any:
    raw = request.query.get(name)
    if not raw:
        return default
    try:
        return json.loads(raw)
    except ValueError:
        raise InvalidArgument(f"invalid {name}: not JSON") from None


def _registry_config(request: web.Request) -> dict[str, Any]:
    """X-Registry-Config: base64url JSON of the credentials per registry."""
    auth: Any = {}
    hdr = request.headers.get("X-Registry-Config")
    if hdr:
        try:
            auth = json.loads(base64.urlsafe_b64decode(hdr + "=" * (-len(hdr) % 4)))
        except ValueError:
            raise InvalidArgument("invalid X-Registry-Config header") from None
    return auth if isinstance(auth, dict) else {}


def _secrets(request: web.Request) -> dict[str, bytes]:
    """X-Berth-Build-Secrets (berth's own header): base64 JSON of id -> base64 value."""
    hdr = request.headers.get("X-Berth-Build-Secrets")
    if not hdr:
        return {}
    try:
        return {k: base64.b64decode(v) for k, v in json.loads(base64.b64decode(hdr)).items()}
    except ValueError:
        raise InvalidArgument("invalid X-Berth-Build-Secrets header") from None


def _allow(request: web.Request) -> list[str]:
    """`allow`: the entitlements the build asks for (berth's own parameter; the classic
    builder's API has none). Either repeated (allow=network.host&allow=...) or one JSON list
    (allow=["network.host"]); both forms may be mixed."""
    allow: list[str] = []
    for raw in request.query.getall("allow", []):
        if raw.lstrip().startswith("["):
            try:
                names = json.loads(raw)
            except ValueError:
                raise InvalidArgument("invalid allow: not a JSON list") from None
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise InvalidArgument("invalid allow: not a JSON list of names")
            allow += names
        elif raw:
            allow.append(raw)
    return allow


def _extra_hosts(request: web.Request) -> list[str]:
    """`extrahosts`: repeated, one `name:ip` each (the docker CLI's --add-host, docker-py's
    extra_hosts); a comma-separated list is taken as well. The ip may be `host-gateway`."""
    out: list[str] = []
    for raw in request.query.getall("extrahosts", []):
        for h in raw.split(","):
            h = h.strip()
            if not h:
                continue
            name, sep, ip = h.partition(":")
            if not sep or not name or not ip:
                raise InvalidArgument(
                    f"invalid IP address in add-host: {ip!r}"
                    if sep
                    else f"bad format for add-host: {h!r}"
                )
            if ip != "host-gateway":
                try:
                    ipaddress.ip_address(ip.strip("[]"))
                except ValueError:
                    raise InvalidArgument(f"invalid IP address in add-host: {ip!r}") from None
            out.append(f"{name}:{ip.strip('[]')}")
    return out


def build_options(request: web.Request) -> BuildOptions:
    """The build's options from its query and headers; InvalidArgument for what berth does
    not build (BuildKit's session API, a remote context) or cannot read."""
    q = request.query
    if q.get("version", "1") == "2":
        raise InvalidArgument(
            "BuildKit (version=2) is not supported: berth builds with the "
            "classic builder's API (DOCKER_BUILDKIT=0)"
        )
    if q.get("remote"):
        raise InvalidArgument(
            "building from a remote context is not supported: send the context as a tar stream"
        )
    registry_auth = _registry_config(request)
    secrets = _secrets(request)
    opts = BuildOptions(
        allow=check_entitlements(_allow(request)),
        tags=q.getall("t", []),
        dockerfile=q.get("dockerfile", "") or "Dockerfile",
        buildargs=_json_query(request, "buildargs", {}),
        labels=_json_query(request, "labels", {}),
        target=q.get("target", ""),
        nocache=qbool(request, "nocache"),
        pull=qbool(request, "pull"),
        quiet=qbool(request, "q"),
        cachefrom=_json_query(request, "cachefrom", []),
        network=q.get("networkmode", ""),
        platform=q.get("platform", ""),
        rm=q.get("rm", "1") not in ("0", "false", "False"),
        forcerm=qbool(request, "forcerm"),
        secrets=secrets,
        registry_auth=registry_auth,
        extra_hosts=_extra_hosts(request),
    )
    for t in opts.tags:
        if reference.parse(t).digest:
            raise InvalidArgument(f"invalid tag {t!r}: a tag cannot hold a digest")
    return opts


class BuildHandlers:
    def __init__(self, builder: Builder | None) -> None:
        self._builder = builder

    def _b(self) -> Builder:
        if self._builder is None:
            raise NotFound("this daemon has no builder")
        return self._builder

    async def build(self, request: web.Request) -> web.StreamResponse:
        b = self._b()
        opts = build_options(request)
        reader = SyncReader(request, asyncio.get_running_loop())
        resp = stream_response()
        await resp.prepare(request)
        try:
            await self._stream(resp, b, reader, opts)
        except BerthError as e:
            await resp.write(error_message(e.message, code=getattr(e, "code", 1)))
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as e:  # noqa: BLE001 - the stream has begun: the error goes in it
            log.exception("build failed")
            await resp.write(error_message(str(e) or type(e).__name__))
        await resp.write_eof()
        return resp

    @staticmethod
    async def _stream(
        resp: web.StreamResponse, b: Builder, reader: SyncReader, opts: BuildOptions
    ) -> None:
        """The builder's messages; with `q`, only the image ID at the end."""
        image_id = ""
        async for m in b.build(reader, opts):  # type: ignore[arg-type]
            if "aux" in m:
                image_id = m["aux"].get("ID", "")
            if opts.quiet and "stream" in m and not m["stream"].startswith("sha256:"):
                continue
            await resp.write(json.dumps(m).encode() + b"\r\n")
        if opts.quiet and image_id:
            await resp.write(json.dumps({"stream": image_id + "\n"}).encode() + b"\r\n")

    async def prune(self, request: web.Request) -> web.StreamResponse:
        return json_response(await asyncio.to_thread(self._b().prune))

    async def commit(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        body = await read_json(request)
        image_id = await self._b().commit(
            q.get("container", ""),
            repo=q.get("repo", ""),
            tag=q.get("tag", ""),
            comment=q.get("comment", ""),
            author=q.get("author", ""),
            changes=q.getall("changes", []),
            config=body if isinstance(body, dict) else None,
            pause=q.get("pause", "1") not in ("0", "false", "False"),
        )
        return json_response({"Id": image_id}, 201)

    async def changes(self, request: web.Request) -> web.StreamResponse:
        return json_response(
            await asyncio.to_thread(self._b().changes, request.match_info["id"]) or None
        )


__all__ = ["BuildHandlers", "build_options"]
