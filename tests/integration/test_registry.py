"""Pull, push, login and logout against real registries on this machine: the CNCF registry in
plain HTTP, TLS (a CA of the test's making, on the test daemon's bridge address so that it is not
an insecure-by-default loopback), token auth and htpasswd; skopeo and the docker CLI on the other
end; and a fake registry for the faults (wrong digests, dropped connections, odd media types)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Daemon, running_daemon
from .registries import CA, FakeRegistry, Registry, TokenServer, hand_image, running

pytestmark = [pytest.mark.root, pytest.mark.registry]


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with running(Registry(tmp_path_factory.mktemp("plain-registry"))) as r:
        yield r


@pytest.fixture(scope="module")
def rd(
    tmp_path_factory: pytest.TempPathFactory, rootfs_tar: Path, plain: Registry
) -> Iterator[Daemon]:
    """A daemon of this module's own: certificates in a directory of its own, the plain
    registry as its Docker Hub mirror, and a docker config of its own for the CLI."""
    base = tmp_path_factory.mktemp("berthd-registry")
    (base / "certs").mkdir()
    with running_daemon(
        base / "d",
        rootfs_tar,
        "--certs-dir",
        str(base / "certs"),
        "--registry-mirror",
        f"http://{plain.addr}",
    ) as d:
        d.env["DOCKER_CONFIG"] = str(base / "docker-config")
        d.certs = base / "certs"  # type: ignore[attr-defined]
        yield d


def layers_and_ingest(d: Daemon) -> tuple[set[str], list[str]]:
    layers = {p.name for p in (d.data_root / "storage" / "layers").iterdir()}
    return layers, os.listdir(d.data_root / "content" / "ingest")


def test_push_then_pull_back_by_tag_and_digest(rd: Daemon, plain: Registry) -> None:
    ref = f"{plain.addr}/tests/busybox:1"
    rd.ok("tag", "busybox", ref)
    out = rd.ok("push", ref)
    assert f"The push refers to repository [{plain.addr}/tests/busybox]" in out
    assert ": Pushed" in out
    digest = out.split("digest: ")[1].split()[0]
    # the registry holds what berth says it pushed
    assert rd.ok("push", ref).count("Layer already exists") == 1
    image_id = rd.inspect(ref)["Id"]
    rd.ok("rmi", ref)
    out = rd.ok("pull", ref)
    assert "Pull complete" not in out  # the layer is busybox's own: already here
    assert f"Digest: {digest}" in out and out.strip().endswith(f"{ref}")
    assert f"Status: Downloaded newer image for {ref}" in out
    assert "Image is up to date" in rd.ok("pull", ref)
    info = rd.inspect(ref)
    assert info["Id"] == image_id
    assert info["RepoDigests"] == [f"{plain.addr}/tests/busybox@{digest}"]
    assert digest in rd.ok("images", "--digests", f"{plain.addr}/tests/busybox")
    # by digest
    rd.ok("rmi", ref)
    out = rd.ok("pull", f"{plain.addr}/tests/busybox@{digest}")
    assert rd.ok("run", "--rm", f"{plain.addr}/tests/busybox@{digest}", "echo", "hi") == "hi\n"
    rd.ok("rmi", f"{plain.addr}/tests/busybox@{digest}")


def test_pull_everything_from_an_empty_daemon_and_all_tags(
    rd: Daemon, plain: Registry, tmp_path: Path, rootfs_tar: Path
) -> None:
    rd.ok("tag", "busybox", f"{plain.addr}/tests/multi:a")
    rd.ok("tag", "busybox", f"{plain.addr}/tests/multi:b")
    out = rd.ok("push", "-a", f"{plain.addr}/tests/multi")
    assert "a: digest:" in out and "b: digest:" in out
    with running_daemon(tmp_path / "empty", rootfs_tar) as fresh:
        fresh.ok("rmi", "busybox")
        assert fresh.ok("images", "-q") == ""
        out = fresh.ok("pull", "-a", f"{plain.addr}/tests/multi")
        assert out.count("Pull complete") == 1, out  # one layer, downloaded once for two tags
        tags = fresh.ok("images", "--format", "{{.Tag}}").split()
        assert sorted(tags) == ["a", "b"]
        assert fresh.ok("run", "--rm", f"{plain.addr}/tests/multi:b", "cat", "/etc/hostname") != ""


def test_mirror_serves_docker_hub_names(rd: Daemon, plain: Registry) -> None:
    rd.ok("tag", "busybox", f"{plain.addr}/library/mirrored:7")
    rd.ok("push", f"{plain.addr}/library/mirrored:7")
    out = rd.ok("pull", "mirrored:7")
    assert "Status: Downloaded newer image for mirrored:7" in out
    assert out.strip().endswith("docker.io/library/mirrored:7")
    assert "mirrored:7" in rd.inspect("mirrored:7")["RepoTags"]
    # not on the mirror: the daemon (with --docker-hub=false) goes nowhere else
    r = rd.berth("pull", "not-on-the-mirror:1")
    assert r.returncode == 1 and "not found" in r.stderr


def test_run_pulls_a_missing_image(rd: Daemon, plain: Registry) -> None:
    ref = f"{plain.addr}/tests/runme:1"
    rd.ok("tag", "busybox", ref)
    rd.ok("push", ref)
    rd.ok("rmi", ref)
    r = rd.berth("run", "--rm", ref, "echo", "ran")
    assert r.returncode == 0 and r.stdout == "ran\n", r.stderr
    assert f"Unable to find image '{ref}' locally" in r.stderr
    r = rd.berth("run", "--rm", "--pull", "never", f"{plain.addr}/tests/nothing:1", "true")
    assert r.returncode == 125 and "No such image" in r.stderr
    r = rd.berth("run", "--rm", "--pull", "always", ref, "echo", "again")
    assert r.stdout == "again\n" and "Image is up to date" in r.stderr
    r = rd.berth("run", "--rm", f"{plain.addr}/tests/nothing:1", "true")
    assert r.returncode == 125
    assert f"manifest for {plain.addr}/tests/nothing:1 not found" in r.stderr


def test_docker_cli_pulls_and_pushes_through_berthd(rd: Daemon, plain: Registry) -> None:
    if not shutil.which("docker"):
        pytest.skip("needs the docker CLI")
    ref = f"{plain.addr}/dockercli/busybox:2"

    def docker(*a: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", *a], env=rd.env, capture_output=True, text=True, timeout=120
        )

    assert docker("tag", "busybox", ref).returncode == 0
    r = docker("push", ref)
    assert r.returncode == 0, r.stderr
    assert "2: digest: sha256:" in r.stdout
    assert docker("rmi", ref).returncode == 0
    r = docker("pull", ref)
    assert r.returncode == 0, r.stderr
    assert f"Status: Downloaded newer image for {ref}" in r.stdout
    r = docker("pull", f"{plain.addr}/dockercli/none:1")
    assert r.returncode == 1 and "not found" in r.stderr
    import docker as dockerpy

    client = dockerpy.DockerClient(base_url=rd.host)
    try:
        img = client.images.pull(f"{plain.addr}/dockercli/busybox", tag="2")
        assert ref in img.tags
        lines = list(
            client.api.push(f"{plain.addr}/dockercli/busybox", tag="2", stream=True, decode=True)
        )
        assert any("aux" in m and m["aux"]["Tag"] == "2" for m in lines)
    finally:
        client.close()


def test_skopeo_on_the_other_end(rd: Daemon, plain: Registry, tmp_path: Path) -> None:
    if not shutil.which("skopeo"):
        pytest.skip("needs Debian's skopeo package (scripts/test.sh installs it)")
    sk = ["skopeo", "--insecure-policy"]
    # skopeo puts an image (from berth's own save) into the registry; berth pulls it
    archive = tmp_path / "bb.tar"
    rd.ok("save", "-o", str(archive), "busybox")
    subprocess.run(
        [
            *sk,
            "copy",
            "--dest-tls-verify=false",
            f"docker-archive:{archive}",
            f"docker://{plain.addr}/skopeo/in:1",
        ],
        check=True,
        capture_output=True,
    )
    out = rd.ok("pull", f"{plain.addr}/skopeo/in:1")
    assert "Digest: sha256:" in out
    assert rd.ok("run", "--rm", f"{plain.addr}/skopeo/in:1", "echo", "skopeo") == "skopeo\n"
    # berth pushes; skopeo inspects what landed and copies it out
    ref = f"{plain.addr}/skopeo/out:1"
    rd.ok("tag", "busybox", ref)
    pushed = rd.ok("push", ref).split("digest: ")[1].split()[0]
    info = json.loads(
        subprocess.run(
            [*sk, "inspect", "--tls-verify=false", f"docker://{ref}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    assert info["Digest"] == pushed
    assert info["Layers"] and info["Os"] == "linux"
    subprocess.run(
        [*sk, "copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{tmp_path / 'oci'}:x"],
        check=True,
        capture_output=True,
    )
    index = json.loads((tmp_path / "oci" / "index.json").read_text())
    assert index["manifests"]


def test_tls_registry_needs_its_ca(rd: Daemon, tmp_path: Path) -> None:
    ca = CA.make()
    gateway = rd.bip.split("/")[0]  # a host address on the daemon's own bridge: not loopback
    with running(Registry(tmp_path / "reg", host=gateway, tls=ca)) as reg:
        ref = f"{reg.addr}/tls/busybox:1"
        rd.ok("tag", "busybox", ref)
        r = rd.berth("push", ref)
        assert r.returncode == 1 and "certificate" in r.stderr, r.stderr
        d = rd.certs / reg.addr  # type: ignore[attr-defined]
        d.mkdir()
        (d / "ca.crt").write_bytes(ca.cert_pem)
        try:
            assert "Pushed" in rd.ok("push", ref)
            rd.ok("rmi", ref)
            assert "Downloaded newer image" in rd.ok("pull", ref)
            rd.ok("rmi", ref)
        finally:
            shutil.rmtree(d)


def _cli_env(d: Daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cfg = tmp_path / "docker-config"
    monkeypatch.setitem(d.env, "DOCKER_CONFIG", str(cfg))
    return cfg / "config.json"


def test_token_auth_login_push_pull(
    rd: Daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = TokenServer({"alice": "s3cret"})
    tokens.start()
    try:
        with running(Registry(tmp_path / "reg", token=tokens)) as reg:
            config = _cli_env(rd, tmp_path, monkeypatch)
            ref = f"{reg.addr}/alice/busybox:1"
            rd.ok("tag", "busybox", ref)
            r = rd.berth("push", ref)
            assert r.returncode == 1 and "unauthorized" in r.stderr.lower(), r.stderr
            r = rd.berth("login", "-u", "alice", "--password-stdin", reg.addr, input=b"wrong\n")
            assert r.returncode == 1 and b"incorrect username or password" in r.stderr
            assert not config.exists()
            r = rd.berth("login", "-u", "alice", "--password-stdin", reg.addr, input=b"s3cret\n")
            assert r.returncode == 0 and b"Login Succeeded" in r.stdout, r.stderr
            assert reg.addr in json.loads(config.read_text())["auths"]
            assert "Pushed" in rd.ok("push", ref)
            rd.ok("rmi", ref)
            assert "Downloaded newer image" in rd.ok("pull", ref)
            before = len(tokens.requests)
            rd.ok("pull", ref)
            assert len(tokens.requests) == before, "a token for the same scope is reused"
            assert rd.ok("logout", reg.addr).startswith(
                f"Removing login credentials for {reg.addr}"
            )
            assert reg.addr not in json.loads(config.read_text()).get("auths", {})
            rd.ok("rmi", ref)
            r = rd.berth("pull", ref)
            assert r.returncode == 1 and "unauthorized" in r.stderr.lower(), r.stderr
    finally:
        tokens.stop()


def test_basic_auth_and_a_credential_helper(
    rd: Daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running(Registry(tmp_path / "reg", htpasswd={"bob": "hunter2"})) as reg:
        config = _cli_env(rd, tmp_path, monkeypatch)
        # a credential helper that keeps what it is given in a file, as docker-credential-*
        bindir = tmp_path / "bin"
        bindir.mkdir()
        store = tmp_path / "helper-store.json"
        helper = bindir / "docker-credential-berthtest"
        helper.write_text(f"""#!{shutil.which("python3")}
import json, sys
path = {str(store)!r}
try:
    db = json.load(open(path))
except FileNotFoundError:
    db = {{}}
op, data = sys.argv[1], sys.stdin.read().strip()
if op == "store":
    d = json.loads(data); db[d["ServerURL"]] = d; json.dump(db, open(path, "w"))
elif op == "get":
    if data not in db:
        print("credentials not found in native keychain"); sys.exit(1)
    print(json.dumps(db[data]))
elif op == "erase":
    db.pop(data, None); json.dump(db, open(path, "w"))
""")
        helper.chmod(0o755)
        monkeypatch.setitem(rd.env, "PATH", f"{bindir}:{rd.env['PATH']}")
        config.parent.mkdir(parents=True)
        config.write_text(json.dumps({"credsStore": "berthtest"}))
        ref = f"{reg.addr}/bob/busybox:1"
        rd.ok("tag", "busybox", ref)
        r = rd.berth("login", "-u", "bob", "--password-stdin", reg.addr, input=b"nope\n")
        assert r.returncode == 1
        r = rd.berth("login", "-u", "bob", "--password-stdin", reg.addr, input=b"hunter2\n")
        assert r.returncode == 0, r.stderr
        assert json.loads(store.read_text())[reg.addr]["Secret"] == "hunter2"
        assert "auth" not in json.dumps(json.loads(config.read_text()).get("auths", {}))
        assert "Pushed" in rd.ok("push", ref)
        rd.ok("rmi", ref)
        assert "Downloaded newer image" in rd.ok("pull", ref)
        rd.ok("logout", reg.addr)
        assert reg.addr not in json.loads(store.read_text())
        rd.ok("rmi", ref)


# --- faults, against a registry that misbehaves on purpose ----------------------------------------
@pytest.fixture
def fake() -> Iterator[FakeRegistry]:
    f = FakeRegistry().start()
    try:
        yield f
    finally:
        f.stop()


BIG = os.urandom(3 << 20)


def _with_busybox_base(
    rd: Daemon, files: dict[str, bytes], comp: str = "gzip", **kw: object
) -> object:
    """An image over the busybox layer (taken from berth itself), so that it runs."""
    info = rd.inspect("busybox")
    layer = (
        rd.data_root / "content" / "blobs" / "sha256" / info["RootFS"]["Layers"][0].split(":")[1]
    ).read_bytes()
    return hand_image([(files, comp)], base_tars=[layer], **kw)  # type: ignore[arg-type]


def test_zstd_and_uncompressed_layers(rd: Daemon, fake: FakeRegistry) -> None:
    info = rd.inspect("busybox")
    base = (
        rd.data_root / "content" / "blobs" / "sha256" / info["RootFS"]["Layers"][0].split(":")[1]
    ).read_bytes()
    img = hand_image(
        [({"zst.txt": b"zstd layer\n"}, "zstd"), ({"raw.txt": b"plain layer\n"}, "none")],
        base_tars=[base],
    )
    fake.add("odd/layers", "1", img)
    ref = f"{fake.addr}/odd/layers:1"
    rd.ok("pull", ref)
    assert rd.ok("run", "--rm", ref, "cat", "/zst.txt", "/raw.txt") == "zstd layer\nplain layer\n"
    assert rd.inspect(ref)["Id"] == img.image_id
    rd.ok("rmi", ref)


def test_a_wrong_digest_keeps_nothing(rd: Daemon, fake: FakeRegistry) -> None:
    img = hand_image([({"big": BIG}, "gzip")])
    fake.add("liar/img", "1", img)
    blob = img.layer_digests[0]
    fake.lie[blob] = fake.blobs[blob][:-10] + b"0123456789"
    before = layers_and_ingest(rd)
    r = rd.berth("pull", f"{fake.addr}/liar/img:1")
    assert r.returncode == 1
    assert f"verification failed for digest {blob}" in r.stderr, r.stderr
    assert layers_and_ingest(rd) == before
    assert rd.berth("image", "inspect", f"{fake.addr}/liar/img:1").returncode == 1
    # two layers at once: when one fails, the other stops too and leaves nothing staged
    two = hand_image([({"big": BIG}, "gzip"), ({"small": b"s"}, "gzip")])
    fake.add("liar/two", "1", two)
    fake.lie[two.layer_digests[1]] = b"not the layer"
    fake.slow = 0.002
    r = rd.berth("pull", f"{fake.addr}/liar/two:1")
    assert r.returncode == 1 and "verification failed" in r.stderr, r.stderr
    assert layers_and_ingest(rd) == before
    fake.slow = 0
    # a manifest that is not what its digest says
    fake.lie.clear()
    fake.manifests[("liar/img", img.digest)] = (img.media_type, img.manifest + b" ")
    r = rd.berth("pull", f"{fake.addr}/liar/img@{img.digest}")
    assert r.returncode == 1 and "verification failed" in r.stderr, r.stderr


def test_a_dropped_download_resumes(rd: Daemon, fake: FakeRegistry) -> None:
    img = _with_busybox_base(rd, {"big": BIG})
    fake.add("flaky/img", "1", img)  # type: ignore[arg-type]
    blob = img.layer_digests[-1]  # type: ignore[attr-defined]
    fake.drop_once.add(blob)
    out = rd.ok("pull", f"{fake.addr}/flaky/img:1")
    assert "Pull complete" in out
    assert fake.gets[blob] == 2 and fake.ranges and fake.ranges[0] != "bytes=0-"
    assert rd.ok("run", "--rm", f"{fake.addr}/flaky/img:1", "wc", "-c", "/big").split()[0] == str(
        len(BIG)
    )
    rd.ok("rmi", f"{fake.addr}/flaky/img:1")


def test_a_registry_that_goes_away_keeps_nothing_and_harms_nothing(
    rd: Daemon, fake: FakeRegistry
) -> None:
    img = _with_busybox_base(rd, {"big": BIG})
    fake.add("gone/img", "1", img)  # type: ignore[arg-type]
    fake.drop_always.add(img.layer_digests[-1])  # type: ignore[attr-defined]
    before = layers_and_ingest(rd)
    r = rd.berth("pull", f"{fake.addr}/gone/img:1", timeout=120)
    assert r.returncode == 1 and "retries" in r.stderr, r.stderr
    assert layers_and_ingest(rd) == before
    # busybox, whose layer this image shares, is untouched
    assert rd.ok("run", "--rm", "busybox", "echo", "fine") == "fine\n"


def test_unknown_media_type_and_missing_platform(rd: Daemon, fake: FakeRegistry) -> None:
    img = hand_image([({"a": b"a"}, "gzip")])
    fake.blobs.update(img.blobs)
    fake.manifests[("odd/type", "1")] = (
        "application/vnd.example.thing+json",
        json.dumps(
            {"schemaVersion": 2, "mediaType": "application/vnd.example.thing+json"}
        ).encode(),
    )
    r = rd.berth("pull", f"{fake.addr}/odd/type:1")
    assert r.returncode == 1 and "unsupported manifest media type" in r.stderr, r.stderr
    arm = hand_image([({"arch": b"arm64\n"}, "gzip")], arch="arm64")
    ppc = hand_image([({"arch": b"ppc64le\n"}, "gzip")], arch="ppc64le")
    fake.add_index(
        "multi/arch",
        "1",
        [
            (arm, {"os": "linux", "architecture": "arm64", "variant": "v8"}),
            (ppc, {"os": "linux", "architecture": "ppc64le"}),
        ],
    )
    r = rd.berth("pull", f"{fake.addr}/multi/arch:1")
    assert r.returncode == 1
    assert "no matching manifest for linux/amd64 in the manifest list entries" in r.stderr
    rd.ok("pull", "--platform", "linux/arm64", f"{fake.addr}/multi/arch:1")
    assert rd.inspect(f"{fake.addr}/multi/arch:1")["Architecture"] == "arm64"
    rd.ok("rmi", f"{fake.addr}/multi/arch:1")
    r = rd.berth("pull", "--platform", "linux/s390x", f"{fake.addr}/multi/arch:1")
    assert r.returncode == 1 and "linux/s390x" in r.stderr


def test_two_pulls_at_once_download_each_blob_once(rd: Daemon, fake: FakeRegistry) -> None:
    img = _with_busybox_base(rd, {"big": BIG})
    fake.add("shared/img", "1", img)  # type: ignore[arg-type]
    fake.add("shared/img", "2", img)  # type: ignore[arg-type]
    fake.slow = 0.005
    results: list[subprocess.CompletedProcess[str]] = []
    threads = [
        threading.Thread(
            target=lambda t=t: results.append(rd.berth("pull", f"{fake.addr}/shared/img:{t}"))
        )
        for t in ("1", "2")
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    assert fake.gets[img.layer_digests[-1]] == 1  # type: ignore[attr-defined]
    rd.ok("rmi", f"{fake.addr}/shared/img:1", f"{fake.addr}/shared/img:2")


def test_bad_references_and_credentials(
    rd: Daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = rd.berth("pull", "lower/UPPER")
    assert r.returncode == 1 and "must be lowercase" in r.stderr
    r = rd.berth("push", "no-such/image:1")
    assert r.returncode == 1 and "does not exist locally" in r.stderr
    r = rd.berth("pull", "-a", "busybox:1")
    assert r.returncode == 1 and "tag can't be used with --all-tags" in r.stderr
    config = _cli_env(rd, tmp_path, monkeypatch)
    config.parent.mkdir(parents=True)
    config.write_text("{not json")
    r = rd.berth("pull", "127.0.0.1:1/x:1")
    assert r.returncode == 1 and "config.json" in r.stderr
    assert config.read_text() == "{not json"


def test_build_pulls_its_base_image(rd: Daemon, plain: Registry, tmp_path: Path) -> None:
    base = f"{plain.addr}/tests/base:1"
    rd.ok("tag", "busybox", base)
    rd.ok("push", base)
    rd.ok("rmi", base)
    (tmp_path / "Dockerfile").write_text(f"FROM {base}\nRUN echo on-pulled > /x\n")
    r = rd.berth("build", "-t", "frompulled:1", str(tmp_path), timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Pulling from tests/base" in r.stdout
    assert rd.ok("run", "--rm", "frompulled:1", "cat", "/x") == "on-pulled\n"
    r = rd.berth("build", "--pull", "-t", "frompulled:2", str(tmp_path), timeout=120)
    assert r.returncode == 0 and "Image is up to date" in r.stdout, r.stdout + r.stderr
    rd.ok("rmi", "frompulled:1", "frompulled:2", base)


def test_daemon_json_sets_mirrors_and_insecure_registries(
    tmp_path: Path, rootfs_tar: Path, plain: Registry
) -> None:
    base = tmp_path / "d"
    base.mkdir()
    (base / "daemon.json").write_text(
        json.dumps(
            {
                "registry-mirrors": [f"http://{plain.addr}"],
                "insecure-registries": ["myregistry.test:5000", "10.99.0.0/16"],
            }
        )
    )
    with running_daemon(base, rootfs_tar) as d:
        info = json.loads(d.ok("info", "--format", "{{json .RegistryConfig}}"))
        assert info["Mirrors"] == [f"http://{plain.addr}"]
        assert "10.99.0.0/16" in info["InsecureRegistryCIDRs"]
        assert info["IndexConfigs"]["myregistry.test:5000"]["Secure"] is False
        # a key given both ways is refused, as dockerd refuses it
        r = subprocess.run(
            [
                str(Path(sys.executable).parent / "berthd"),
                "--config-file",
                str(base / "daemon.json"),
                "--registry-mirror",
                "http://x",
                "--data-root",
                str(tmp_path / "unused"),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert r.returncode != 0 and "both as a flag and in the configuration file" in r.stderr


def test_distribution_inspect_through_docker_py(rd: Daemon, fake: FakeRegistry) -> None:
    """GET /distribution/{name}/json (docker-py's get_registry_data, compose): the manifest's
    descriptor and platforms, for a single manifest and an index, with nothing pulled."""
    import docker as dockerpy

    one = hand_image([({"a": b"a"}, "gzip")])
    fake.add("dist/one", "1", one)
    arm = hand_image([({"arch": b"arm64\n"}, "gzip")], arch="arm64")
    ppc = hand_image([({"arch": b"ppc64le\n"}, "gzip")], arch="ppc64le")
    fake.add_index(
        "dist/multi",
        "1",
        [
            (arm, {"os": "linux", "architecture": "arm64", "variant": "v8"}),
            (ppc, {"os": "linux", "architecture": "ppc64le"}),
        ],
    )
    before = layers_and_ingest(rd)
    client = dockerpy.DockerClient(base_url=rd.host)
    try:
        data = client.images.get_registry_data(f"{fake.addr}/dist/one:1")
        assert data.id == one.digest
        assert data.attrs["Descriptor"] == {
            "mediaType": one.media_type,
            "digest": one.digest,
            "size": len(one.manifest),
        }
        assert data.attrs["Platforms"] == [{"architecture": "amd64", "os": "linux"}]
        assert data.has_platform("linux/amd64") and not data.has_platform("linux/arm64")
        multi = client.images.get_registry_data(f"{fake.addr}/dist/multi:1")
        assert multi.attrs["Platforms"] == [
            {"architecture": "arm64", "os": "linux", "variant": "v8"},
            {"architecture": "ppc64le", "os": "linux"},
        ]
        assert multi.has_platform("linux/ppc64le")
        with pytest.raises(dockerpy.errors.NotFound):
            client.images.get_registry_data(f"{fake.addr}/dist/none:1")
    finally:
        client.close()
    assert layers_and_ingest(rd) == before


def test_search(rd: Daemon, fake: FakeRegistry) -> None:
    """GET /images/search against the registry named in the term (its v1 search), filters
    applied by the daemon; `berth search` prints what `docker search` prints; Docker Hub is
    refused with a clear error where the daemon may not reach it."""
    fake.search = [
        {
            "name": "tools/busybox",
            "description": "A tiny box\nwith tools " + "x" * 60,
            "star_count": 12,
            "is_official": True,
            "is_automated": False,
        },
        {
            "name": "tools/busy-app",
            "description": "an app",
            "star_count": 3,
            "is_official": False,
            "is_automated": True,
        },
        {
            "name": "other/thing",
            "description": "",
            "star_count": 0,
            "is_official": False,
            "is_automated": False,
        },
    ]
    term = f"{fake.addr}/busy"
    from .test_docker_cli import docker

    for args in (
        ["search", term],
        ["search", "--no-trunc", term],
        ["search", "--limit", "1", term],
        ["search", "-f", "is-official=true", term],
        ["search", "-f", "stars=5", "--format", "{{.Name}}: {{.StarCount}}", term],
    ):
        mine = rd.ok(*args)
        theirs = docker(rd, *args)
        assert theirs.returncode == 0, theirs.stderr
        assert mine == theirs.stdout, args
    assert rd.ok("search", "--format", "{{.Name}}", term).split() == [
        "tools/busybox",
        "tools/busy-app",
    ]
    r = rd.berth("search", "-f", "stars=x", term)
    assert r.returncode == 1 and "invalid filter" in r.stderr
    r = rd.berth("search", "busybox")
    assert r.returncode == 1 and "--docker-hub=false" in r.stderr, r.stderr
