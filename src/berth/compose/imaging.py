"""The images a project's services run: found, pulled or built through the Engine API, with
the progress events of each; and the contents of secrets and configs.

Imports `errors` and the compose modules below it.
"""

from __future__ import annotations

from berth.compose.base import ComposeError, ContextTar, Progress, UpOptions
from berth.compose.engine import Engine
from berth.compose.model import FileObject, Project, Service

# `uname -m` and Go's GOARCH names for the daemon's architecture
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "i386": "386"}


class Images:
    """Image IDs by reference, remembered for one orchestrator's run."""

    def __init__(
        self, project: Project, engine: Engine, progress: Progress, context_tar: ContextTar | None
    ) -> None:
        self.project = project
        self.engine = engine
        self.progress = progress
        self.context_tar = context_tar
        self._ids: dict[str, str] = {}
        self._platform = ""

    def image_id(self, svc: Service, opts: UpOptions) -> str:
        """The image the service runs, built or pulled if it must be; its ID."""
        ref = svc.image_name(self.project.name)
        if ref in self._ids:
            return self._ids[ref]
        if svc.platform:
            self._check_platform(svc.name, "platform", svc.platform)
        info = self.engine.image(ref)
        policy = opts.pull or svc.pull_policy or "missing"
        if (
            svc.build is not None
            and not opts.no_build
            and (opts.build or info is None or policy == "build")
        ):
            self.build(svc)
            info = self.engine.image(ref)
        elif policy == "always" or (info is None and policy in ("missing", "if_not_present")):
            self.pull(svc)
            info = self.engine.image(ref)
        if info is None:
            raise ComposeError(f"service {svc.name!r}: no such image: {ref}")
        self._ids[ref] = info.id
        return info.id

    def pull(self, svc: Service) -> None:
        self.pull_ref(svc.image_name(self.project.name), f"service {svc.name!r}")

    def pull_ref(self, ref: str, who: str = "") -> None:
        self.progress("Image", ref, "Pulling")
        for msg in self.engine.pull(ref):
            if msg.get("error"):
                self.progress("Image", ref, "Error")
                raise ComposeError(f"{who or 'image'}: pull {ref}: {msg['error']}")
            if msg.get("id") and msg.get("status"):
                detail = msg.get("progressDetail") or {}
                state = str(msg["status"])
                if detail.get("total"):
                    state += f" {detail.get('current', 0)}/{detail['total']}"
                self.progress("Layer", str(msg["id"]), state)
        self.progress("Image", ref, "Pulled")

    def daemon_platform(self) -> str:
        """`os/arch` of the daemon, as /version reports it."""
        if not self._platform:
            v = self.engine.version()
            arch = str(v.get("Arch") or "")
            self._platform = f"{v.get('Os') or 'linux'}/{_ARCH.get(arch, arch)}"
        return self._platform

    def check_buildable(self, svc: Service) -> None:
        """Refuses, before anything is sent, what berth's builder cannot do: another platform
        than the daemon's, and ssh forwarding (BuildKit's `RUN --mount=type=ssh`)."""
        b = svc.build
        assert b is not None
        if b.ssh:
            raise ComposeError(
                f"service {svc.name!r}: build.ssh {b.ssh[0]!r}: berth's builder does not "
                "forward ssh agents or keys (RUN --mount=type=ssh is not supported); remove "
                "build.ssh, or use build.secrets to hand a key to the build"
            )
        for p in b.platforms:
            self._check_platform(svc.name, "build.platforms", p)

    def _check_platform(self, service: str, key: str, platform: str) -> None:
        """`os/arch[/variant]` must be the daemon's: berth neither builds nor runs others."""
        host = self.daemon_platform()
        if platform.lower().split("/")[:2] != host.split("/"):
            raise ComposeError(
                f"service {service!r}: {key} {platform!r}: berth builds and "
                f"runs the daemon's platform only ({host})"
            )

    def build(self, svc: Service) -> str:
        assert svc.build is not None
        if self.context_tar is None:
            raise ComposeError("building is not available here")
        self.check_buildable(svc)
        ref = svc.image_name(self.project.name)
        self.progress("Image", ref, "Building")
        b = svc.build
        tar, dockerfile = self.context_tar(b.context, b.dockerfile, b.dockerfile_inline)
        import json

        query: dict[str, object] = {"t": ref, "dockerfile": dockerfile, "rm": True}
        if b.args:
            query["buildargs"] = json.dumps(b.args)
        if b.target:
            query["target"] = b.target
        if b.labels:
            query["labels"] = json.dumps(b.labels)
        if b.cache_from:
            query["cachefrom"] = json.dumps(list(b.cache_from))
        if b.network:
            query["networkmode"] = b.network
        if b.extra_hosts:
            query["extrahosts"] = ",".join(f"{k}:{v}" for k, v in b.extra_hosts.items())
        if b.shm_size:
            query["shmsize"] = b.shm_size
        if b.no_cache:
            query["nocache"] = True
        if b.pull:
            query["pull"] = True
        headers = {}
        if b.secrets:
            import base64

            data = {
                key: base64.b64encode(self.file_object(self.project.secrets[key])).decode()
                for key in b.secrets
            }
            headers["X-Berth-Build-Secrets"] = base64.b64encode(json.dumps(data).encode()).decode()
        for msg in self.engine.build(tar, query, headers):
            if msg.get("error"):
                self.progress("Image", ref, "Error")
                raise ComposeError(f"service {svc.name!r} failed to build: {msg['error']}")
        for extra in b.tags:
            name, _, tag = (
                extra.rpartition(":") if ":" in extra.rsplit("/", 1)[-1] else (extra, "", "latest")
            )
            self.engine.tag(ref, name or extra, tag)
        self.progress("Image", ref, "Built")
        self._ids.pop(ref, None)
        return ref

    def file_object(self, obj: FileObject) -> bytes:
        """A secret's or config's contents: its file, its content, or its variable."""
        if obj.file:
            try:
                with open(obj.file, "rb") as f:
                    return f.read(1 << 20)
            except OSError as e:
                raise ComposeError(f"secret {obj.key}: {e.strerror}: {obj.file}") from None
        if obj.content is not None:
            return obj.content.encode()
        return self.project.env.get(obj.environment, "").encode()
