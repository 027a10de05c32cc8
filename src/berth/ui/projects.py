"""Compose projects as the dashboard shows them: the containers that carry Docker Compose's
labels (`com.docker.compose.project`, `.service`, `.container-number`), grouped by project and
service, with start, stop and restart of a whole project, its down (containers and networks),
and the logs of all its services interleaved.

Compose itself is a client of the API (DESIGN.md): the dashboard reads only the labels it
leaves on containers, so it sees projects made by `berth compose` and by Docker Compose alike.
Taking a project down needs no compose file: what to remove carries the project's label (and
the record `berth compose up` left goes too). Its scale and up (`scaling`) work from the
containers it has, or from that record for a service that has none, as berthd has no compose
file.

Imports the containers and networks services.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import web

from berth.containers import ContainerService
from berth.containers.templates import ProjectTemplate
from berth.containers.views import ContainerView
from berth.errors import NotFound
from berth.networks import NetworkService

from .data import container_row
from .streams import KEEPALIVE, LOG_TAIL_MAX, Feed, sse

PROJECT = "com.docker.compose.project"
SERVICE = "com.docker.compose.service"
NUMBER = "com.docker.compose.container-number"
WORKING_DIR = "com.docker.compose.project.working_dir"
CONFIG_FILES = "com.docker.compose.project.config_files"


def labels_of(v: ContainerView) -> dict[str, str]:
    return {str(k): str(val) for k, val in (v.record.config.labels or {}).items()}


def number_of(v: ContainerView) -> int:
    try:
        return int(labels_of(v).get(NUMBER, "0"))
    except ValueError:
        return 0


def projects(
    views: list[ContainerView], records: dict[str, ProjectTemplate] | None = None
) -> list[dict[str, Any]]:
    """The projects by their containers' labels, with the services of `berth compose up`'s
    records (`containers.templates`) that have no container (scaled to 0, say): a project
    whose every container is gone but whose record stays shows too."""
    records = records or {}
    by: dict[str, dict[str, list[ContainerView]]] = {}
    meta: dict[str, dict[str, str]] = {}
    for pname, precord in records.items():
        for svc in precord.services:
            by.setdefault(pname, {}).setdefault(svc, [])
        meta.setdefault(pname, {"workingDir": "", "configFiles": ""})
    for v in views:
        labels = labels_of(v)
        found = labels.get(PROJECT)
        if not found:
            continue
        name = found
        by.setdefault(name, {}).setdefault(labels.get(SERVICE, ""), []).append(v)
        if not meta.get(name, {}).get("workingDir"):
            meta[name] = {
                "workingDir": labels.get(WORKING_DIR, ""),
                "configFiles": labels.get(CONFIG_FILES, ""),
            }
    out = []
    for name in sorted(by):
        rec = records.get(name)
        services = []
        for svc, vs in sorted(by[name].items()):
            tmpl = rec.services.get(svc) if rec else None
            services.append(
                {
                    "name": svc,
                    "containers": [container_row(v) for v in sorted(vs, key=number_of)],
                    "recorded": tmpl is not None,
                    "needsCompose": tmpl.needs_compose if tmpl else "",
                }
            )
        every = [v for vs in by[name].values() for v in vs]
        out.append(
            {
                "name": name,
                **meta[name],
                "services": services,
                "recorded": rec is not None,
                "running": sum(1 for v in every if v.record.state.running),
                "total": len(every),
            }
        )
    return out


def members(containers: ContainerService, name: str) -> list[ContainerView]:
    """The project's containers; NotFound if it has none."""
    found = project_members(containers, name)
    if not found:
        raise NotFound(f"no such project: {name}")
    return found


def project_members(containers: ContainerService, name: str) -> list[ContainerView]:
    """The project's containers, by service and number: none if `berth compose up`'s record
    of it stays, NotFound if there is not that either."""
    found = [v for v in containers.list(all_=True) if labels_of(v).get(PROJECT) == name]
    if not found and containers.templates.get(name) is None:
        raise NotFound(f"no such project: {name}")
    return sorted(found, key=lambda v: (labels_of(v).get(SERVICE, ""), number_of(v)))


async def action(containers: ContainerService, name: str, verb: str) -> list[str]:
    """`verb` on each container of the project (those it does not apply to are left as they
    are: start skips the running, stop the stopped); the names it acted on."""
    done = []
    for v in members(containers, name):
        st = v.record.state
        if verb == "start" and st.running:
            continue
        if verb == "stop" and not st.running:
            continue
        if verb == "start":
            await containers.start(v.record.id)
        elif verb == "stop":
            await containers.stop(v.record.id)
        else:
            await containers.restart(v.record.id)
        done.append(v.record.name.lstrip("/"))
    return done


async def down(
    containers: ContainerService, networks: NetworkService | None, name: str
) -> dict[str, list[str]]:
    """As `compose down` without its file: the project's containers removed (stopped first),
    then its networks (those that carry its label); its volumes are kept, as `down` without
    `-v` keeps them."""
    removed = []
    for v in project_members(containers, name):
        await containers.remove(v.record.id, force=True)
        removed.append(v.record.name.lstrip("/"))
    await asyncio.to_thread(containers.templates.remove, name)  # as compose down does
    nets = []
    if networks is not None:
        for view in networks.list({"label": [f"{PROJECT}={name}"]}):
            rec = view.record
            await asyncio.to_thread(networks.remove, rec.id, containers.network_users(rec.name))
            nets.append(rec.name)
    return {"containers": removed, "networks": nets}


def logs_feed(containers: ContainerService, name: str, asked: str = "100") -> Feed:
    """The logs of every container of the project, interleaved: the last lines of each in the
    order of their timestamps, then each new line as it comes, named by its container."""
    views = members(containers, name)
    tail = str(min(int(asked), LOG_TAIL_MAX)) if asked.isdigit() else "100"

    async def gen() -> Feed:
        q: asyncio.Queue[tuple[str, str, int, bytes] | None] = asyncio.Queue(maxsize=1024)

        async def one(v: ContainerView) -> None:
            cname = v.record.name.lstrip("/")
            svc = labels_of(v).get(SERVICE, cname)
            async for stream, data in containers.logs(
                v.record.id, follow=True, tail="0", timestamps=True
            ):
                await q.put((cname, svc, stream, data))

        tasks: list[asyncio.Task[None]] = []
        try:
            first: list[tuple[str, str, int, bytes]] = []
            for v in views:
                cname, svc = v.record.name.lstrip("/"), labels_of(v).get(SERVICE, "")
                async for stream, data in containers.logs(
                    v.record.id, follow=False, tail=tail, timestamps=True
                ):
                    first.append((cname, svc, stream, data))
            first.sort(key=lambda x: x[3].split(b" ", 1)[0])
            for item in first:
                yield "", _line(*item)
            tasks = [asyncio.ensure_future(one(v)) for v in views if v.record.state.running]
            while True:
                try:
                    got = await asyncio.wait_for(q.get(), KEEPALIVE)
                except TimeoutError:
                    yield "", None
                    continue
                if got is not None:
                    yield "", _line(*got)
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(BaseException):
                    await t

    return gen()


async def logs(request: web.Request, containers: ContainerService) -> web.StreamResponse:
    feed = logs_feed(containers, request.match_info["name"], request.query.get("tail", "100"))
    return await sse(request, feed)


def _line(name: str, svc: str, stream: int, data: bytes) -> dict[str, str]:
    ts, _sp, line = data.decode("utf-8", "replace").partition(" ")
    return {
        "c": name,
        "svc": svc,
        "s": "err" if stream == 2 else "out",
        "t": ts,
        "l": line.rstrip("\n"),
    }


__all__ = [
    "projects",
    "members",
    "project_members",
    "action",
    "down",
    "logs",
    "logs_feed",
    "labels_of",
    "number_of",
]
