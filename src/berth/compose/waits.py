"""Waiting on containers: depends_on's conditions (healthy, completed successfully) before a
service starts, and `up --wait`'s running-and-healthy.

Imports the compose modules below it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from berth.compose import labels as L
from berth.compose.base import ComposeError, Progress
from berth.compose.engine import ContainerSummary, Engine
from berth.compose.model import Condition, Project, Service

# the project's containers of some services
Containers = Callable[[list[str]], list[ContainerSummary]]


class Waiter:
    def __init__(
        self,
        project: Project,
        engine: Engine,
        progress: Progress,
        containers: Containers,
        poll: float,
    ) -> None:
        self.project = project
        self.engine = engine
        self.progress = progress
        self.containers = containers
        self.poll = poll

    def dependencies(self, svc: Service, started: list[str]) -> None:
        """Returns once the conditions of svc's depends_on (among `started`) hold."""
        for dep in svc.depends_on:
            if dep.service not in self.project.services or dep.service not in started:
                continue
            if dep.condition is Condition.STARTED:
                continue
            for c in self.containers([dep.service]):
                if dep.condition is Condition.HEALTHY:
                    self.healthy(c)
                else:
                    self.completed(dep.service, c)

    def healthy(self, c: ContainerSummary, deadline: float = 0.0) -> None:
        self.progress("Container", c.name, "Waiting")
        while True:
            st = self.engine.inspect(c.id)
            if st.health == "healthy":
                self.progress("Container", c.name, "Healthy")
                return
            if st.health == "unhealthy":
                self.progress("Container", c.name, "Error")
                raise ComposeError(f"dependency failed to start: container {c.name} is unhealthy")
            if not st.health:
                raise ComposeError(f"container {c.name} has no healthcheck configured")
            if not st.running:
                self.progress("Container", c.name, "Error")
                raise ComposeError(
                    f"dependency failed to start: container {c.name} exited ({st.exit_code})"
                )
            if deadline and time.monotonic() > deadline:
                raise ComposeError(f"container {c.name} is not healthy in time: {st.health}")
            time.sleep(self.poll)

    def completed(self, service: str, c: ContainerSummary) -> None:
        self.progress("Container", c.name, "Waiting")
        while True:
            st = self.engine.inspect(c.id)
            if not st.running and st.status in ("exited", "dead"):
                if st.exit_code != 0:
                    self.progress("Container", c.name, "Error")
                    raise ComposeError(
                        f'service "{service}" didn\'t complete successfully: exit {st.exit_code}'
                    )
                self.progress("Container", c.name, "Exited")
                return
            time.sleep(self.poll)

    def running(self, services: list[str], timeout: float) -> None:
        """`up --wait`: every container running, and healthy where it has a health check."""
        deadline = time.monotonic() + timeout if timeout else 0.0
        for c in self.containers(services):
            svc = self.project.services[c.label(L.SERVICE)]
            while True:
                st = self.engine.inspect(c.id)
                if st.health == "healthy" or (st.running and not st.health):
                    self.progress("Container", c.name, "Healthy" if st.health else "Running")
                    break
                if st.health == "unhealthy":
                    raise ComposeError(f"container {c.name} is unhealthy")
                if not st.running and st.status in ("exited", "dead"):
                    if any(
                        d.condition is Condition.COMPLETED and d.service == svc.name
                        for s in self.project.services.values()
                        for d in s.depends_on
                    ):
                        if st.exit_code == 0:
                            break
                    raise ComposeError(f"container {c.name} exited ({st.exit_code})")
                if deadline and time.monotonic() > deadline:
                    raise ComposeError(
                        f"container {c.name} is not running and healthy after {timeout:g}s"
                    )
                time.sleep(self.poll)
