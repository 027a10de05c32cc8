"""Campaign 4 of issue 17: the Engine API fuzzed with Docker's own contract.

schemathesis generates requests from Docker's v1.50 definition (specs/v1.50.yaml, Apache 2.0,
LICENSE beside it), valid ones and invalid ones, for every route that is not swarm mode's, and
sends them to a private berthd. Every answer must be: not a 500, not a hang (the status line
within HANG_S; the body of a route that does not stream within HANG_S too), every 4xx with
Docker's `{"message": ...}` body, and the daemon still up afterwards.

Nothing may leave the machine, whatever name or URL the generator makes up (a pull of
`example.com/x`, a build's `remote`, an import's `fromSrc`): the daemon runs in a network
namespace of its own with only a loopback device, so no registry, DNS server or git host is
reachable from it, and with `--docker-hub false`. The test reaches it through its unix socket,
which is a path, not a network address.

Short form (CI): SHORT_EXAMPLES requests per route, derandomized (the same requests every run).
Long form: BERTH_CAMPAIGN_LONG=1 (or BERTH_FUZZ_EXAMPLES=N) sends LONG_EXAMPLES random ones.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.campaigns.conftest import long_form
from tests.integration import conftest as integration

schemathesis = pytest.importorskip("schemathesis")
requests = pytest.importorskip("requests")
hypothesis = pytest.importorskip("hypothesis")

pytestmark = pytest.mark.root

SPEC = Path(__file__).parent / "specs" / "v1.50.yaml"
# swarm mode's routes (berth is never in a swarm: they answer dockerd's 503, tested elsewhere)
SWARM_TAGS = {"Swarm", "Node", "Service", "Task", "Secret", "Config"}
SHORT_EXAMPLES = 20
LONG_EXAMPLES = 300
HANG_S = 20.0  # an answer that takes longer is a hang
STREAM_S = 0.5  # how long a stream that has begun is read before the client leaves
# routes whose 200 is a stream that may last (as dockerd's): reading stops after STREAM_S
STREAMS = {
    ("GET", "/events"),
    ("GET", "/containers/{id}/logs"),
    ("GET", "/containers/{id}/stats"),
    ("POST", "/containers/{id}/attach"),
    ("GET", "/containers/{id}/attach/ws"),
    ("POST", "/containers/{id}/wait"),
    ("POST", "/exec/{id}/start"),
}
# objects made before the fuzzing, so that a path parameter sometimes names one that exists
SEED = {"id": "fuzzc", "name": "fuzzv"}
SEED_BY_ROUTE = {"/networks/": {"id": "fuzzn"}, "/images/": {"name": "busybox"}}

# Failures found in code this campaign's owner does not own (berth.api.containers, execs,
# archive, berth.containers): (method, path, a piece of the failure) -> reason. A route whose
# only failures are known ones is reported as an expected failure with the reason; any other
# failure still fails it.
KNOWN: dict[tuple[str, str, str], str] = {
    ("POST", "/containers/{id}/start", "failed to create task for container"): (
        "berth.containers: a config the runtime refuses (User that the image's passwd lacks) "
        "answers 500 on start; dockerd maps such runtime errors to 400 "
        "(daemon/start.go translateContainerdStartErr)"
    ),
    ("POST", "/containers/{id}/restart", "failed to create task for container"): (
        "berth.containers: as start, for restart"
    ),
}


def _examples() -> int:
    if n := os.environ.get("BERTH_FUZZ_EXAMPLES"):
        return int(n)
    return LONG_EXAMPLES if long_form() else SHORT_EXAMPLES


def _operations() -> list[Any]:
    schema = schemathesis.openapi.from_path(str(SPEC))
    ops = [r.ok() for r in schema.get_all_operations()]
    return [op for op in ops if not SWARM_TAGS & set(op.tags or [])]


# image and plugin tarballs: arbitrary bytes, as for the routes that take octet-streams
schemathesis.serializer.alias("application/x-tar", "application/octet-stream")
OPERATIONS = _operations() if SPEC.exists() else []


def _params() -> list[Any]:
    return [pytest.param(op, id=f"{op.method.upper()} {op.path}") for op in OPERATIONS]


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.path)
        self.sock = s


@dataclass
class Outcome:
    status: int | None
    body: bytes
    problem: str | None  # None: the answer keeps the contract


def send(
    sock: str, method: str, target: str, headers: dict[str, str], body: bytes | None, stream: bool
) -> Outcome:
    """One request over the daemon's socket, judged by the campaign's rules."""
    conn = _UnixConnection(sock, HANG_S)
    try:
        start = time.monotonic()
        try:
            conn.request(method, target, body=body, headers=headers)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon may answer before it has read a body it refuses
        try:
            resp = conn.getresponse()
        except TimeoutError:
            return Outcome(None, b"", f"hang: no status line within {HANG_S:.0f} s")
        except (http.client.HTTPException, OSError) as e:
            return Outcome(None, b"", f"no answer: {type(e).__name__}: {e}")
        status = resp.status
        if stream and (status < 300 or status == 101):
            # a stream that has begun: read a little of it and leave
            if conn.sock is not None:
                conn.sock.settimeout(STREAM_S)
            data = b""
            with contextlib.suppress(TimeoutError, OSError, http.client.HTTPException):
                while time.monotonic() - start < HANG_S:
                    chunk = resp.read1(65536) if status != 101 else resp.fp.read1(65536)
                    if not chunk:
                        break
                    data += chunk[:4096]
            return Outcome(status, data, None)
        try:
            data = resp.read() if method != "HEAD" else b""
        except TimeoutError:
            return Outcome(
                status, b"", f"hang: the body of a {status} did not end within {HANG_S:.0f} s"
            )
        except (http.client.HTTPException, OSError) as e:
            return Outcome(status, b"", f"broken body: {type(e).__name__}: {e}")
        if status == 500:
            return Outcome(status, data, "status 500")
        if 400 <= status < 500 and method != "HEAD":
            try:
                msg = json.loads(data)["message"]
                if not isinstance(msg, str):
                    raise TypeError(msg)
            except (ValueError, KeyError, TypeError):
                return Outcome(status, data, f'a {status} without Docker\'s {{"message": ...}}')
        return Outcome(status, data, None)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def fuzz_daemon(
    tmp_path_factory: pytest.TempPathFactory, rootfs_tar: Path
) -> Iterator[integration.Daemon]:
    """A private berthd in a network namespace that has only a loopback device, with a
    container, a volume and a network to aim at."""
    real = integration.BIN
    wrap = tmp_path_factory.mktemp("netns-bin")
    (wrap / "berth").symlink_to(real / "berth")
    (wrap / "berthd").write_text(
        "#!/bin/sh\n"
        "# berthd in a network namespace of its own, with only loopback: nothing it is told\n"
        "# to fetch can leave the machine\n"
        'exec unshare --net -- sh -c \'ip link set lo up && exec "$0" "$@"\' '
        f'{real / "berthd"} "$@"\n'
    )
    (wrap / "berthd").chmod(0o755)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(integration, "BIN", wrap)
        with integration.running_daemon(tmp_path_factory.mktemp("berthd"), rootfs_tar) as d:
            d.ok("volume", "create", SEED["name"])
            d.ok("network", "create", "fuzzn")
            # a container that stops at once on SIGTERM, so a generated `stop` does not wait
            d.ok(
                "run",
                "-d",
                "--name",
                SEED["id"],
                "busybox",
                "sh",
                "-c",
                "trap 'exit 0' TERM; while :; do sleep 1; done",
            )
            yield d


# Dockerfile instructions a generated build may hold: all but RUN (no command of the
# generator's runs) and with busybox or scratch as the base (nothing to pull)
_INSTRUCTIONS = [
    "ENV",
    "LABEL",
    "WORKDIR",
    "COPY",
    "ADD",
    "USER",
    "EXPOSE",
    "ARG",
    "CMD",
    "ENTRYPOINT",
    "HEALTHCHECK",
    "ONBUILD",
    "STOPSIGNAL",
    "SHELL",
    "VOLUME",
    "MAINTAINER",
    "FROM",
    "COPY --from=0",
    "ADD --chmod=7777",
    "COPY --chown=a:b",
]


def _deeper(op: Any, method: str, path: str) -> list[Any]:
    """Strategies that get past the first check of a route: a container's config with an
    image that exists, a build context that is a tarball with a Dockerfile in it."""
    import io
    import tarfile

    from hypothesis import strategies as st

    def with_image(case: Any) -> Any:
        if isinstance(case.body, dict):
            case.body["Image"] = "busybox"
            case.body.setdefault("Cmd", ["true"])  # the imported busybox has no CMD
        return case

    def context(dockerfile: str, files: list[tuple[str, bytes]]) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, data in [("Dockerfile", dockerfile.encode(errors="replace")), *files]:
                info = tarfile.TarInfo(name or "x")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    def with_context(case: Any, ctx: bytes) -> Any:
        case.body = ctx
        case.media_type = "application/x-tar"
        case.query = {k: v for k, v in (case.query or {}).items() if k not in ("remote", "pull")}
        return case

    if (method, path) in (("POST", "/images/load"), ("POST", "/images/create")):
        # an image tarball (docker save's and OCI's layouts) whose index files are generated
        json_value = st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(
                    st.sampled_from(
                        [
                            "Config",
                            "RepoTags",
                            "Layers",
                            "manifests",
                            "mediaType",
                            "digest",
                            "size",
                            "schemaVersion",
                            "annotations",
                            "x",
                        ]
                    ),
                    inner,
                    max_size=4,
                )
            ),
            max_leaves=12,
        )
        index = st.sampled_from(["manifest.json", "index.json", "oci-layout", "repositories"])
        files = st.lists(
            st.tuples(index, json_value.map(lambda v: json.dumps(v).encode())),
            min_size=1,
            max_size=3,
        )
        ctxs = st.builds(context, st.just(""), files)

        def as_tarball(case: Any, tar: bytes) -> Any:
            case = with_context(case, tar)
            if path == "/images/create":  # an import: fromSrc=- reads the body
                case.query = {
                    **{k: v for k, v in (case.query or {}).items() if k != "fromImage"},
                    "fromSrc": "-",
                }
            return case

        return [st.builds(as_tarball, op.as_strategy(), ctxs)]
    if (method, path) in (("POST", "/containers/{id}/attach"), ("POST", "/exec/{id}/start")):
        # the docker CLI's hijack: the connection is taken over after a 101
        def upgraded(case: Any) -> Any:
            case.headers = {**(case.headers or {}), "Connection": "Upgrade", "Upgrade": "tcp"}
            return case

        seeded = (
            op.as_strategy(path_parameters={"id": SEED["id"]})
            if path.startswith("/containers/")
            else op.as_strategy()
        )
        return [seeded.map(upgraded), op.as_strategy().map(upgraded)]
    if (method, path) == ("POST", "/containers/create"):
        return [
            op.as_strategy().map(with_image),
            op.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE).map(with_image),
        ]
    if (method, path) == ("POST", "/build"):
        line = st.tuples(st.sampled_from(_INSTRUCTIONS), st.text(max_size=40)).map(" ".join)
        dockerfile = st.tuples(
            st.sampled_from(["FROM busybox", "FROM scratch", ""]), st.lists(line, max_size=6)
        ).map(lambda t: "\n".join([t[0], *t[1]]))
        files = st.lists(
            st.tuples(st.text(min_size=1, max_size=20), st.binary(max_size=64)), max_size=3
        )
        ctxs = st.builds(context, dockerfile, files)
        return [st.builds(with_context, op.as_strategy(), ctxs)]
    return []


def _seed_for(path: str) -> dict[str, str]:
    seed = dict(SEED)
    for prefix, values in SEED_BY_ROUTE.items():
        if path.startswith(prefix):
            seed.update(values)
    return seed


# --- what the fuzzing found, each as it was sent -------------------------------------------


def _call(
    d: integration.Daemon,
    method: str,
    target: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Outcome:
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    return send(str(d.sock), method, target, hdrs, body, stream=False)


def _message(out: Outcome) -> str:
    msg = json.loads(out.body)["message"]
    assert isinstance(msg, str)
    return msg


@pytest.mark.parametrize(
    ("target", "body"),
    [
        ("/v1.50/auth", b"-4865"),
        ("/v1.50/volumes/create", b"[{}, []]"),
        ("/v1.50/networks/fuzzn/disconnect", b"0.0"),
        ("/v1.50/networks/fuzzn/connect", b"[]"),
        ("/v1.50/networks/create", b'"x"'),
        ("/v1.50/containers/create", b"405192742"),
    ],
)
def test_a_json_body_that_is_not_an_object_is_a_400(
    fuzz_daemon: integration.Daemon, target: str, body: bytes
) -> None:
    out = _call(fuzz_daemon, "POST", target, body)
    assert (out.status, out.problem) == (400, None), out
    assert "an object is expected" in _message(out)


@pytest.mark.parametrize(
    ("target", "body", "field"),
    [
        ("/v1.50/volumes/create", {"Name": "v1", "Labels": ["a"]}, "Labels"),
        ("/v1.50/volumes/create", {"Name": 5}, "Name"),
        ("/v1.50/volumes/create", {"DriverOpts": {"o": 1}}, "DriverOpts"),
        ("/v1.50/networks/create", {"Name": "n1", "ConfigFrom": []}, "ConfigFrom"),
        (
            "/v1.50/networks/fuzzn/connect",
            {"Container": "fuzzc", "EndpointConfig": 1},
            "EndpointConfig",
        ),
        ("/v1.50/networks/fuzzn/disconnect", {"Container": ["fuzzc"]}, "Container"),
    ],
)
def test_a_field_of_the_wrong_type_is_a_400(
    fuzz_daemon: integration.Daemon, target: str, body: dict[str, Any], field: str
) -> None:
    out = _call(fuzz_daemon, "POST", target, json.dumps(body).encode())
    assert (out.status, out.problem) == (400, None), out
    assert f"invalid {field}" in _message(out)


@pytest.mark.parametrize(
    "target",
    [
        "/v1.50/containers/fuzzc/top?ps_args=%00%11",
        "/v1.50/volumes/a%00b",
        "/v1.50/images/json?filters=%7B%22reference%22%3A%5B%22a%00%22%5D%7D",
    ],
)
def test_a_nul_byte_in_the_path_or_query_is_a_400(
    fuzz_daemon: integration.Daemon, target: str
) -> None:
    out = _call(fuzz_daemon, "GET", target)
    assert (out.status, out.problem) == (400, None), out
    assert "NUL byte" in _message(out)


@pytest.mark.parametrize("server", ["\r(=[\u00bd", "https://[zz/v2/", "a b:5000", "x.y[1]"])
def test_a_login_to_an_address_that_is_no_host_is_a_400(
    fuzz_daemon: integration.Daemon, server: str
) -> None:
    body = {"username": "u", "password": "p", "serveraddress": server}
    out = _call(fuzz_daemon, "POST", "/v1.50/auth", json.dumps(body).encode())
    assert (out.status, out.problem) == (400, None), out
    assert "invalid registry address" in _message(out)


def test_a_websocket_route_without_its_upgrade_is_a_400_with_docker_s_body(
    fuzz_daemon: integration.Daemon,
) -> None:
    out = _call(fuzz_daemon, "GET", "/v1.50/containers/fuzzc/attach/ws?stdout=false")
    assert (out.status, out.problem) == (400, None), out
    assert "WebSocket" in _message(out)


# --- the server's bounds on a request ------------------------------------------------------


def _raw(d: integration.Daemon, request: bytes) -> bytes:
    """`request` sent as it is; what comes back until the daemon closes or HANG_S."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(HANG_S)
        s.connect(str(d.sock))
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(request)
        data = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := s.recv(65536):
                data += chunk
        return data


def _status(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1])


def test_headers_as_large_as_dockerd_takes_are_taken(fuzz_daemon: integration.Daemon) -> None:
    from berth.api.app import MAX_HEADER_BYTES

    big = "a" * (MAX_HEADER_BYTES - 4096)
    out = _call(fuzz_daemon, "GET", "/v1.50/_ping", headers={"X-Registry-Auth": big})
    assert out.status == 200, out
    out = _call(
        fuzz_daemon,
        "GET",
        "/v1.50/images/json?filters=" + "%7B%7D" + "&x=" + "b" * (MAX_HEADER_BYTES // 2),
    )
    assert out.status == 200, out


@pytest.mark.parametrize("where", ["field", "line", "count"])
def test_headers_above_the_bound_are_a_4xx_and_the_daemon_stays_up(
    fuzz_daemon: integration.Daemon, where: str
) -> None:
    from berth.api.app import MAX_HEADER_BYTES

    over = b"a" * (MAX_HEADER_BYTES + 1)
    if where == "field":
        req = b"GET /_ping HTTP/1.1\r\nHost: x\r\nX-Big: " + over + b"\r\n\r\n"
    elif where == "line":
        req = b"GET /_ping?x=" + over + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    else:
        req = (
            b"GET /_ping HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-H%d: v\r\n" % i for i in range(1000))
            + b"\r\n"
        )
    reply = _raw(fuzz_daemon, req)
    assert 400 <= _status(reply) < 500, reply[:300]
    assert b"Got more than" in reply or b"Too many" in reply, reply[:300]
    assert fuzz_daemon.berth("version").returncode == 0


@pytest.mark.parametrize("chunked", [False, True])
def test_a_json_body_above_the_bound_is_a_413_and_the_daemon_stays_up(
    fuzz_daemon: integration.Daemon, chunked: bool
) -> None:
    from berth.api.wire import MAX_JSON_BODY

    body = b'{"Name": "' + b"v" * MAX_JSON_BODY + b'"}'
    head = (
        b"POST /v1.50/volumes/create HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\n"
    )
    if chunked:
        step = 1 << 20
        payload = (
            b"".join(
                b"%x\r\n%s\r\n" % (len(body[i : i + step]), body[i : i + step])
                for i in range(0, len(body), step)
            )
            + b"0\r\n\r\n"
        )
        req = head + b"Transfer-Encoding: chunked\r\n\r\n" + payload
    else:
        req = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    reply = _raw(fuzz_daemon, req)
    assert _status(reply) == 413, reply[:300]
    assert b'"message": "request body too large' in reply, reply[:300]
    assert fuzz_daemon.berth("version").returncode == 0
    assert "v" * 100 not in fuzz_daemon.ok("volume", "ls", "-q")


# --- the fuzzing (last: it changes or removes the objects the tests above use) ------------


@pytest.mark.parametrize("op", _params())
def test_route_keeps_the_contract(fuzz_daemon: integration.Daemon, op: Any) -> None:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    method, path = op.method.upper(), op.path
    stream = (method, path) in STREAMS
    modes = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
    strategies = [op.as_strategy(generation_mode=m) for m in modes]
    strategies += _deeper(op, method, path)
    names = {p.name for p in op.path_parameters} if op.path_parameters else set()
    if names:
        seed = {k: v for k, v in _seed_for(path).items() if k in names}
        if seed.keys() == names:
            strategies.append(op.as_strategy(path_parameters=seed))
    failures: list[str] = []
    sent = 0
    statuses: dict[int | None, int] = {}
    log_at = fuzz_daemon.log.stat().st_size

    @settings(
        max_examples=_examples(),
        deadline=None,
        database=None,
        phases=[Phase.generate],
        derandomize=not long_form(),
        suppress_health_check=list(HealthCheck),
    )
    @given(case=st.one_of(strategies))
    def run(case: Any) -> None:
        nonlocal sent
        kwargs = case.as_transport_kwargs(base_url="http://localhost/v1.50")
        kwargs.pop("cookies", None)
        try:
            prepared = requests.Request(**kwargs).prepare()
        except (ValueError, requests.exceptions.RequestException):
            return  # a request no HTTP client can send
        body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
        headers = {
            k: v for k, v in prepared.headers.items() if k.lower() != "connection" or v == "Upgrade"
        }
        try:
            out = send(str(fuzz_daemon.sock), method, prepared.path_url, headers, body, stream)
        except (ValueError, UnicodeError):
            return  # http.client refuses to send it (a header with a newline, say)
        sent += 1
        statuses[out.status] = statuses.get(out.status, 0) + 1
        if os.environ.get("BERTH_FUZZ_VERBOSE"):
            print(method, path, out.status, out.body[:150])
        if out.problem:
            failures.append(
                f"{out.problem}: {method} {prepared.path_url[:300]} "
                f"body={body[:300] if body else b''!r} -> {out.body[:400]!r}"
            )
        assert fuzz_daemon.proc is not None
        if fuzz_daemon.proc.poll() is not None:
            raise AssertionError(
                f"berthd died after {method} {prepared.path_url[:300]} "
                f"body={body[:300] if body else b''!r}"
            )

    run()
    assert fuzz_daemon.berth("version").returncode == 0, "berthd stopped answering"
    # a handler that failed after its answer had begun (a stream) shows only in the log
    with open(fuzz_daemon.log, "rb") as f:
        f.seek(log_at)
        logged = f.read().decode(errors="replace")
    for tb in logged.split("Traceback (most recent call last):")[1:]:
        lines = []
        for line in tb.splitlines():
            if re.match(r"\d{4}-\d\d-\d\d ", line):
                break
            if line.strip() and not set(line.strip()) <= {"^", "~"}:
                lines.append(line)
        failures.append("a traceback in berthd's log:\n" + "\n".join(lines[-14:]))
    known = {
        reason
        for (m, p, piece), reason in KNOWN.items()
        if (m, p) == (method, path)
        for f in failures
        if piece in f
    }
    failures = [
        f
        for f in failures
        if not any((m, p) == (method, path) and piece in f for m, p, piece in KNOWN)
    ]
    assert not failures, (
        f"{len(failures)} of {sent} requests broke the contract "
        f"(statuses {statuses}):\n" + "\n".join(failures[:10])
    )
    if known:
        pytest.xfail("; ".join(sorted(known)))
