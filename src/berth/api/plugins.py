"""The Engine API's routes for what berth does not have, answered as dockerd answers when it
has none of them: managed plugins (none installed), BuildKit sessions, cluster volumes.

A client that lists or probes gets dockerd's answer (an empty list, `plugin "x" not found`);
one that asks berth to do the thing gets a clear error saying it cannot."""

from __future__ import annotations

from aiohttp import web

from berth.errors import NotFound, NotImplemented_, Unavailable

NOT_A_SWARM_MANAGER = (
    'This node is not a swarm manager. Use "docker swarm init" or '
    '"docker swarm join" to connect this node to swarm and try again.'
)


async def plugin_list(request: web.Request) -> web.StreamResponse:
    return web.json_response([])


async def plugin_missing(request: web.Request) -> web.StreamResponse:
    """Inspect, remove, enable, disable, upgrade, push and set of a plugin: none exists."""
    raise NotFound(f'plugin "{request.match_info["name"]}" not found')


async def plugin_unsupported(request: web.Request) -> web.StreamResponse:
    """Privileges, pull and create: berth has no managed plugins."""
    raise NotImplemented_(
        "berth does not support managed plugins (the local volume driver "
        "and the bridge, host, macvlan and ipvlan networks are built in)"
    )


async def session(request: web.Request) -> web.StreamResponse:
    raise NotImplemented_(
        "berth has no BuildKit: builds go through the classic builder "
        "(POST /build), which the docker CLI uses when BuildKit is absent"
    )


async def volume_update(request: web.Request) -> web.StreamResponse:
    """`PUT /volumes/{name}` updates cluster volumes only, which need a swarm."""
    raise Unavailable(NOT_A_SWARM_MANAGER)


ROUTES = [
    ("GET", "/plugins", plugin_list),
    ("GET", "/plugins/privileges", plugin_unsupported),
    ("POST", "/plugins/pull", plugin_unsupported),
    ("POST", "/plugins/create", plugin_unsupported),
    ("GET", "/plugins/{name:.+}/json", plugin_missing),
    ("DELETE", "/plugins/{name:.+}", plugin_missing),
    *[
        ("POST", f"/plugins/{{name:.+}}/{verb}", plugin_missing)
        for verb in ("enable", "disable", "upgrade", "push", "set")
    ],
    ("POST", "/session", session),
    ("PUT", "/volumes/{name}", volume_update),
]
"""(method, path, handler): what the application adds to its route table."""
