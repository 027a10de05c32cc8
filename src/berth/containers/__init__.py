"""The container service and its typed records.

- `record`: `ContainerRecord`, the service's truth, and its versioned stored form (older
  Docker-shaped documents load too); `status`: `ContainerStatus` with its transitions;
  its typed parts: `settings` (`ContainerConfig`, Docker's Config), `hostconfig`
  (`HostConfig`), `ports` (`Port`, `PortBinding`, `PortMap`). Docker's JSON of them is made
  and read at the API edge (`berth.api.containers_wire`).
- `service`: `ContainerService`, the verbs (create, start, stop, kill, wait, remove, rename,
  prune, restore), holding its parts, each handed the shared `store.ContainerStore`:
  `networking` (networks, endpoints, /etc files, links), `mounts`, `output` (logs, attach),
  `resources` (the cgroup: pause, update, top, stats), `ipc` (shared namespaces),
  `restarts` (restart policies), `bundle` (the OCI bundle of a start), `monitors` (the shims'
  channels and exits), `views` (typed views for inspect and ps; the API makes their JSON).
- `create`: what create decides from a request (`CreateRequest`, typed); `config`: the
  service's configuration.
- beside the service: `execs`, `health`, `archive` (`docker cp`), `buildrunner` (build steps).

Imports `images`, `storage`, `metadata`, `cgroups`, `networks`, `volumes`, `errors`, and of the
shim only `shim.protocol`: the runtime is reached only as processes (see `service`).
"""

from __future__ import annotations

from berth.containers.config import Config, parse_signal
from berth.containers.service import ContainerService

__all__ = ["Config", "ContainerService", "parse_signal"]
