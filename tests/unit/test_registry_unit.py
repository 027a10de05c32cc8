"""The registry client's pure parts: challenges, the X-Registry-Auth header, which registries are
secure, platforms, and the CLI's credential file."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from berth.errors import InvalidArgument, Unavailable
from berth.images.distribution import parse_platform, progress_bar
from berth.images.manifests import parse_index
from berth.registry import RegistryClient, RegistryOptions, normalize_server
from berth.registry.auth import AuthConfig, TokenCache, parse_challenges


def test_challenges() -> None:
    ch = parse_challenges(
        'Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push"'
    )
    assert len(ch) == 1 and ch[0].scheme == "bearer"
    assert ch[0].params == {
        "realm": "https://auth.example/token",
        "service": "reg",
        "scope": "repository:a/b:pull,push",
    }
    ch = parse_challenges('Basic realm="my realm"')
    assert ch[0].scheme == "basic" and ch[0].params["realm"] == "my realm"


def test_registry_auth_header() -> None:
    raw = json.dumps({"username": "u", "password": "p:w", "serveraddress": "h:5000"}).encode()
    enc = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    a = AuthConfig.from_header(enc)
    assert (a.username, a.password, a.serveraddress) == ("u", "p:w", "h:5000")
    assert AuthConfig.from_header("").anonymous
    a = AuthConfig.from_dict({"auth": base64.b64encode(b"x:y").decode()})
    assert (a.username, a.password) == ("x", "y")
    with pytest.raises(InvalidArgument):
        AuthConfig.from_header("!!!not base64")


def test_token_cache_expires() -> None:
    c = TokenCache()
    c.put(("r", "s", "x", "u"), "tok", 300)
    assert c.get(("r", "s", "x", "u")) == "tok"
    c.put(("r", "s", "y", "u"), "old", 300, issued_at=1.0)
    assert c.get(("r", "s", "y", "u")) is None


def test_secure_and_insecure_registries() -> None:
    o = RegistryOptions(insecure=["myreg:5000", "10.1.0.0/16"])
    assert not o.is_secure("127.0.0.1:5000") and not o.is_secure("localhost:5000")
    assert not o.is_secure("[::1]:5000")
    assert not o.is_secure("myreg:5000") and o.is_secure("myreg:5001")
    assert not o.is_secure("10.1.2.3:443") and o.is_secure("10.2.0.1")
    assert o.is_secure("registry.example.com")
    c = RegistryClient(o)
    eps = c.endpoints("127.0.0.1:5000")
    assert [e.base for e in eps] == ["https://127.0.0.1:5000", "http://127.0.0.1:5000"]
    assert [e.base for e in c.endpoints("docker.io")] == ["https://registry-1.docker.io"]
    c = RegistryClient(RegistryOptions(mirrors=["http://127.0.0.1:9"], docker_hub=False))
    assert [e.base for e in c.endpoints("docker.io")] == ["http://127.0.0.1:9"]
    with pytest.raises(Unavailable):
        c.endpoints("docker.io", push=True)
    with pytest.raises(Unavailable):
        RegistryClient(RegistryOptions(docker_hub=False)).endpoints("docker.io")


def test_server_names() -> None:
    assert normalize_server("https://index.docker.io/v1/") == "docker.io"
    assert normalize_server("https://reg:5000/v2/") == "reg:5000"
    assert normalize_server("reg:5000") == "reg:5000"


def test_platforms() -> None:
    assert parse_platform("linux/arm64/v8") == ("linux", "arm64", "")
    assert parse_platform("linux/arm/v7") == ("linux", "arm", "v7")
    assert parse_platform("linux/x86_64") == ("linux", "amd64", "")
    with pytest.raises(InvalidArgument):
        parse_platform("a/b/c/d")
    d1, d2, d3 = ("sha256:" + c * 64 for c in "123")
    index = parse_index(
        {
            "manifests": [
                {"digest": d1, "platform": {"os": "linux", "architecture": "arm", "variant": "v6"}},
                {"digest": d2, "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
                {
                    "digest": d3,
                    "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
                },
            ]
        },
        "index",
    )
    assert getattr(index.select("linux", "arm", "v7"), "digest", None) == d2
    assert getattr(index.select("linux", "arm64", ""), "digest", None) == d3
    assert index.select("linux", "amd64", "") is None


def test_progress_bar() -> None:
    bar = progress_bar(50, 100)
    assert bar.startswith("[" + "=" * 25 + ">") and bar.endswith("/100B")


def test_cli_credentials_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from berth.cli import registry as cr

    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert cr.get_credentials("h:5000") == {}
    cr.store_credentials("h:5000", "me", "pw")
    doc = json.loads((tmp_path / "config.json").read_text())
    assert doc["auths"]["h:5000"]["auth"] == base64.b64encode(b"me:pw").decode()
    assert cr.get_credentials("h:5000")["password"] == "pw"
    assert cr.server_key("docker.io") == cr.HUB_KEY == cr.server_key("index.docker.io")
    assert cr.server_key("https://h:5000/v2/") == "h:5000"
    assert cr.erase_credentials("h:5000")
    assert cr.get_credentials("h:5000") == {}
    assert (tmp_path / "config.json").stat().st_mode & 0o777 == 0o600


def test_origin_is_scheme_host_and_port() -> None:
    from berth.registry import origin

    assert origin("https://Reg.example/v2/x") == origin("https://reg.example:443/v2/y")
    assert origin("http://reg.example/") == ("http", "reg.example", 80)
    assert origin("https://reg.example/") != origin("http://reg.example:443/")
    assert origin("https://reg.example:5000/") != origin("https://reg.example/")
    assert origin("https://user:pw@[::1]:5000/") == ("https", "::1", 5000)
