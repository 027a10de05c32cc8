"""Health checks: the image's HEALTHCHECK or `--health-*`, run as execs in the container, with
Docker's states (starting, healthy, unhealthy), failing streak, start period and log of the
last five probes in `State.Health`.

Imports `containers` (the service), `containers.execs`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from berth.containers.execs import ExecConfig, ExecService, ExecStartError
from berth.containers.record import Health, HealthProbe, HealthStatus
from berth.containers.settings import HealthConfig
from berth.containers.status import ContainerStatus
from berth.errors import BerthError
from berth.images import rfc3339

if TYPE_CHECKING:
    from berth.containers import ContainerService

log = logging.getLogger(__name__)

SECOND = 1_000_000_000
MAX_LOG = 5
MAX_OUTPUT = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthCheck:
    """The check a container runs: its command and timings (nanoseconds), Docker's defaults
    where neither the container nor its image set them."""

    cmd: tuple[str, ...]
    interval: int = 30 * SECOND
    timeout: int = 30 * SECOND
    retries: int = 3
    start_period: int = 0
    start_interval: int = 5 * SECOND


def effective(own: HealthConfig | None, image: HealthConfig | None) -> HealthCheck | None:
    """The health check of a container: its own (Config.Healthcheck) fields over the image's;
    None for none."""
    own, image = own or HealthConfig(), image or HealthConfig()
    test = own.test or image.test or ()
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD-SHELL":
        cmd: tuple[str, ...] = ("/bin/sh", "-c", " ".join(test[1:]))
    elif test[0] == "CMD":
        cmd = test[1:]
    else:
        cmd = test
    d = HealthCheck(cmd=cmd)
    return HealthCheck(
        cmd=cmd,
        interval=own.interval or image.interval or d.interval,
        timeout=own.timeout or image.timeout or d.timeout,
        retries=own.retries or image.retries or d.retries,
        start_period=own.start_period or image.start_period or d.start_period,
        start_interval=own.start_interval or image.start_interval or d.start_interval,
    )


def next_interval(hc: HealthCheck, since_start: float, status: str | None) -> float:
    """Seconds to the next probe, as dockerd 25+: StartInterval while in the start period and
    still `starting` (the health `status`), Interval otherwise."""
    if since_start < hc.start_period / SECOND and status == "starting":
        return hc.start_interval / SECOND
    return hc.interval / SECOND


class HealthChecker:
    def __init__(self, containers: ContainerService, execs: ExecService) -> None:
        self.containers = containers
        self.execs = execs
        containers.on_start.append(self.started)

    def started(self, cid: str) -> None:
        rec = self.containers.store.records.get(cid)
        if rec is None:
            return
        image_hc: HealthConfig | None = None
        try:
            doc = self.containers.images.get(rec.image).spec.config.other.get("Healthcheck")
            if isinstance(doc, dict) and doc:
                image_hc = HealthConfig.from_doc(doc)
        except BerthError:
            pass
        hc = effective(rec.config.healthcheck, image_hc)
        if hc is None:
            rec.state.health = None
            return
        rec.state.health = Health()
        self.containers.store.spawn(self._run(cid, rec.state.started_at, hc))

    async def _run(self, cid: str, started_at: str, hc: HealthCheck) -> None:
        begun = time.monotonic()
        while True:
            rec = self.containers.store.records.get(cid)
            health = rec.state.health if rec is not None else None
            await asyncio.sleep(
                next_interval(hc, time.monotonic() - begun, health.status if health else None)
            )
            rec = self.containers.store.records.get(cid)
            status = rec.state.status if rec is not None else None
            if (
                rec is None
                or status is None
                or not status.is_running
                or rec.state.started_at != started_at
            ):
                return  # a later start has checks of its own
            if status is ContainerStatus.PAUSED:
                continue
            result = await self._probe(cid, hc)
            health = rec.state.health
            if health is None:
                return
            health.log = [*health.log, result][-MAX_LOG:]
            in_start = time.monotonic() - begun < hc.start_period / SECOND
            old = health.status
            if result.exit_code == 0:
                health.status, health.failing_streak = HealthStatus.HEALTHY, 0
            elif not in_start or old is not HealthStatus.STARTING:
                health.failing_streak += 1
                if health.failing_streak >= hc.retries:
                    health.status = HealthStatus.UNHEALTHY
            if health.status != old:
                self.containers.store.event(rec, f"health_status: {health.status.value}")
            self.containers.store.save(rec)

    async def _probe(self, cid: str, hc: HealthCheck) -> HealthProbe:
        start = time.time()
        eid = self.execs.create(cid, ExecConfig(cmd=hc.cmd, attach_stdout=True, attach_stderr=True))
        att = self.execs.attach(eid)
        output = b""
        code: int = -1
        try:
            await self.execs.start(eid)

            async def collect() -> None:
                nonlocal output
                async for _, data in att.output():
                    if len(output) < MAX_OUTPUT:
                        output += data[: MAX_OUTPUT - len(output)]

            try:
                await asyncio.wait_for(collect(), hc.timeout / SECOND)
                code = await self.execs.wait(eid, 5) or 0
            except TimeoutError:
                pid = self.execs.get(eid).pid
                with contextlib.suppress(ProcessLookupError):
                    if pid:
                        os.kill(pid, signal.SIGKILL)
                output = (f"Health check exceeded timeout ({hc.timeout / SECOND:g}s)").encode()
                code = -1
        except ExecStartError as e:
            output, code = str(e).encode(), 1
        except BerthError as e:
            output, code = str(e).encode(), -1
        finally:
            att.close()
            self.execs.execs.pop(eid, None)
            rec = self.containers.store.records.get(cid)
            if rec is not None and eid in (rec.exec_ids or []):
                rec.exec_ids.remove(eid)
        return HealthProbe(
            start=rfc3339(start),
            end=rfc3339(time.time()),
            exit_code=code,
            output=output.decode("utf-8", "replace"),
        )


__all__ = ["HealthChecker", "effective", "next_interval"]
