"""The HTTP layer: the Docker Engine API over aiohttp. Parse a request, call one service,
write the response. Errors from `berth.errors` become Docker's `{"message": ...}` with the
error's status; nothing below this layer knows HTTP.

`app` holds the route table and the middleware, `hijack` the attach/exec stream protocol,
`wire` the helpers every handler shares, and one module per resource holds its handlers
(`containers`, `execs`, `images`, `build`, `networks`, `volumes`, `system`).

Imports the services, `events`, `reference` and `errors`.
"""

from __future__ import annotations

from .app import Api
from .wire import API_VERSION, ENGINE_VERSION, MIN_API_VERSION, frame, parse_filters

__all__ = ["Api", "API_VERSION", "MIN_API_VERSION", "ENGINE_VERSION", "frame", "parse_filters"]
