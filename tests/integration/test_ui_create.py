"""The dashboard's new-container form and a pull's registry login, in Debian's headless
Chromium against a private berthd with `--ui` (the fixtures and helpers of test_ui.py).

A container made from the form is checked through the Engine API as `berth inspect` sees it;
a pull from a registry behind htpasswd (Debian's docker-registry on 127.0.0.1) fails without
the login and with a wrong one, works with the right one, and leaves the password nowhere in
berthd's roots nor its log."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from .conftest import BIN, Daemon, running_daemon
from .registries import Registry, running
from .test_ui import css, go, make_browser, shot, wait

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def ui_daemon(tmp_path_factory: pytest.TempPathFactory, rootfs_tar: Path) -> Iterator[Daemon]:
    with running_daemon(
        tmp_path_factory.mktemp("berthd-ui-create"), rootfs_tar, "--ui", "127.0.0.1:0"
    ) as d:
        yield d


@pytest.fixture(scope="module")
def browser(ui_daemon: Daemon) -> Iterator[webdriver.Chrome]:
    drv = make_browser()
    try:
        yield drv
    finally:
        drv.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = (
        Path(os.environ["BERTH_UI_SHOTS"])
        if os.environ.get("BERTH_UI_SHOTS")
        else tmp_path_factory.mktemp("ui-screenshots")
    )
    out.mkdir(parents=True, exist_ok=True)
    return out


def fill(drv: webdriver.Chrome, sel: str, text: str) -> None:
    el = css(drv, sel)
    el.clear()
    el.send_keys(text)


def test_create_a_container_from_the_form(
    ui_daemon: Daemon, browser: webdriver.Chrome, shots: Path, tmp_path: Path
) -> None:
    d, drv = ui_daemon, browser
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("from the host\n")
    d.ok("network", "create", "uinet")
    try:
        go(drv, d, "#/containers")
        css(drv, "#new-container").click()
        wait(drv, lambda: css(drv, "#create-image").get_attribute("data-loaded") == "1")
        wait(drv, lambda: css(drv, "#create-network").get_attribute("data-loaded") == "1")
        Select(css(drv, "#create-image")).select_by_value("busybox:latest")
        fill(drv, "#create-name", "formed")
        fill(drv, "#create-command", "sh -c 'echo made-$GREETING; exec sleep 1000'")
        fill(drv, "#create-env", "GREETING=hi\nOTHER=two words")
        css(drv, "#create-add-port").click()
        row = css(drv, "#create-ports .port-row")
        row.find_element(By.CSS_SELECTOR, ".host-ip").send_keys("127.0.0.1")
        row.find_element(By.CSS_SELECTOR, ".ctr-port").send_keys("80")
        css(drv, "#create-add-volume").click()
        css(drv, "#create-add-volume").click()
        named, bound = drv.find_elements(By.CSS_SELECTOR, "#create-volumes .volume-row")
        named.find_element(By.CSS_SELECTOR, ".source").send_keys("formvol")
        named.find_element(By.CSS_SELECTOR, ".target").send_keys("/data")
        bound.find_element(By.CSS_SELECTOR, ".source").send_keys(str(site))
        bound.find_element(By.CSS_SELECTOR, ".target").send_keys("/site")
        bound.find_element(By.CSS_SELECTOR, ".ro").click()
        Select(css(drv, "#create-restart")).select_by_value("unless-stopped")
        Select(css(drv, "#create-network")).select_by_value("uinet")
        shot(drv, shots, "create-form")
        css(drv, "#create-submit").click()
        # it opens the new container's page
        wait(drv, lambda: "#/containers/" in drv.current_url, what="the form did not create it")
        c = d.inspect("formed")
        assert drv.current_url.endswith(c["Id"])
        assert c["State"]["Running"]
        assert c["Config"]["Image"] == "busybox:latest"
        assert c["Config"]["Cmd"] == ["sh", "-c", "echo made-$GREETING; exec sleep 1000"]
        assert {"GREETING=hi", "OTHER=two words"} <= set(c["Config"]["Env"])
        bind = c["HostConfig"]["PortBindings"]["80/tcp"][0]
        assert bind["HostIp"] == "127.0.0.1"
        assert c["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"].isdigit()
        assert c["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
        assert list(c["NetworkSettings"]["Networks"]) == ["uinet"]
        mounts = {m["Destination"]: m for m in c["Mounts"]}
        assert mounts["/data"]["Type"] == "volume" and mounts["/data"]["Name"] == "formvol"
        assert mounts["/site"]["Type"] == "bind" and mounts["/site"]["RW"] is False
        assert d.ok("exec", "formed", "cat", "/site/index.html") == "from the host\n"
        assert d.berth("exec", "formed", "touch", "/site/x").returncode != 0
        wait(drv, lambda: "made-hi" in d.ok("logs", "formed"))

        # what berthd refuses is shown on the form, as it said it
        go(drv, d, "#/create")
        wait(drv, lambda: css(drv, "#create-image").get_attribute("data-loaded") == "1")
        Select(css(drv, "#create-image")).select_by_value("busybox:latest")
        fill(drv, "#create-name", "formed")
        css(drv, "#create-submit").click()
        err = css(drv, "#create-error")
        # the image has no CMD: berthd says so
        wait(drv, lambda: err.is_displayed() and "no command specified" in err.text, what=err.text)
        fill(drv, "#create-command", "sleep 1000")
        css(drv, "#create-submit").click()
        wait(drv, lambda: err.is_displayed() and "already in use" in err.text, what=err.text)
        # a host path that tries to bring a part of its own is refused before berthd's create
        fill(drv, "#create-name", "formed2")
        css(drv, "#create-add-volume").click()
        row = css(drv, "#create-volumes .volume-row")
        row.find_element(By.CSS_SELECTOR, ".source").send_keys("/:/host")
        row.find_element(By.CSS_SELECTOR, ".target").send_keys("/x")
        css(drv, "#create-submit").click()
        wait(drv, lambda: "may not hold ':'" in css(drv, "#create-error").text)
        shot(drv, shots, "create-error")
        assert d.berth("inspect", "formed2").returncode != 0
        # made but not started: a port already published on the same host port
        port = c["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"]
        row.find_element(By.CSS_SELECTOR, "button").click()  # the bad volume's row goes
        css(drv, "#create-add-port").click()
        prow = css(drv, "#create-ports .port-row")
        prow.find_element(By.CSS_SELECTOR, ".host-ip").send_keys("127.0.0.1")
        prow.find_element(By.CSS_SELECTOR, ".host-port").send_keys(port)
        prow.find_element(By.CSS_SELECTOR, ".ctr-port").send_keys("80")
        css(drv, "#create-submit").click()
        wait(drv, lambda: "created formed2, but it did not start" in css(drv, "#create-error").text)
        assert d.inspect("formed2")["State"]["Status"] == "created"
    finally:
        for name in ("formed", "formed2"):
            d.berth("rm", "-f", name)
        d.berth("volume", "rm", "formvol")
        d.berth("network", "rm", "uinet")


def test_pull_with_a_registry_login(
    ui_daemon: Daemon, browser: webdriver.Chrome, shots: Path, tmp_path: Path
) -> None:
    d, drv = ui_daemon, browser
    password = "s3cret-" + os.urandom(6).hex()
    with running(Registry(tmp_path / "open")) as plain:
        d.ok("tag", "busybox", f"{plain.addr}/ui/locked:1")
        d.ok("push", f"{plain.addr}/ui/locked:1")
        d.ok("rmi", f"{plain.addr}/ui/locked:1")
    # the same storage behind basic auth
    (tmp_path / "auth").mkdir()
    (tmp_path / "auth" / "data").symlink_to(tmp_path / "open" / "data")
    with running(Registry(tmp_path / "auth", htpasswd={"bob": password})) as reg:
        ref = f"{reg.addr}/ui/locked:1"
        go(drv, d, "#/images")

        def pull(user: str, pw: str) -> str:
            fill(drv, "#pull-ref", ref)
            fill(drv, "#pull-user", user)
            fill(drv, "#pull-password", pw)
            css(drv, "#pull").click()
            wait(
                drv,
                lambda: (
                    css(drv, "#pull-status").get_attribute("data-done") == "1"
                    or "error" in css(drv, "#pull-status").text
                ),
                timeout=60,
            )
            return str(css(drv, "#pull-status").text)

        assert "error" in pull("", "")
        assert "error" in pull("bob", "wrong")
        assert "error" not in pull("bob", password)
        shot(drv, shots, "pull-login")
        assert css(drv, "#pull-password").get_attribute("value") == ""  # gone from the page
        assert ref in d.inspect(ref)["RepoTags"]
        d.ok("rmi", ref)
        # nothing was kept: the next pull without the login is refused again
        assert "error" in pull("", "")
    # the password is nowhere in berthd's roots nor its log
    for root in (d.data_root, d.exec_root, d.log):
        for path in [root] if root.is_file() else root.rglob("*"):
            if path.is_file() and not path.is_symlink() and path.stat().st_size < 64 << 20:
                assert password.encode() not in path.read_bytes(), path


def test_compose_up_and_scale_from_none_with_the_record(
    ui_daemon: Daemon, browser: webdriver.Chrome, shots: Path, tmp_path: Path
) -> None:
    """`berth compose up` leaves each service's create request with berthd; the dashboard
    makes a service's containers from it when none is left (scale from 0, up of a service
    whose containers were removed), containers compose then counts as its own. Down (the
    page's or compose's) removes the record."""
    d, drv = ui_daemon, browser
    loop = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.3; done"]
    (tmp_path / "compose.yaml").write_text(
        json.dumps(
            {
                "services": {
                    "db": {"image": "busybox", "command": loop},
                    "web": {
                        "image": "busybox",
                        "command": loop,
                        "depends_on": ["db"],
                        "environment": {"FROM_FILE": "${FROM_SHELL}"},
                        "networks": ["default", "back"],
                    },
                },
                "networks": {"back": {}},
            }
        )
    )
    env = {**d.env, "XDG_CACHE_HOME": str(tmp_path / ".cache"), "FROM_SHELL": "shell-value"}

    def compose(*args: str) -> str:
        r = subprocess.run(
            [str(BIN / "berth"), "compose", "-p", "rec", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, f"compose {' '.join(args)}: {r.stdout}\n{r.stderr}"
        return r.stdout

    record = d.data_root / "compose" / "rec.json"
    sel = 'section[data-project="rec"]'

    def scale_to(svc: str, n: int) -> bool:
        box = css(drv, f'{sel} .scale[data-service="{svc}"]')
        inp = box.find_element(By.CSS_SELECTOR, "input")
        drv.execute_script("arguments[0].value = arguments[1]", inp, str(n))
        box.find_element(By.CSS_SELECTOR, 'button[data-action="scale"]').click()
        return True

    def names() -> list[str]:
        out = d.ok(
            "ps", "-a", "--format", "{{.Names}}", "--filter", "label=com.docker.compose.project=rec"
        )
        return sorted(out.split())

    try:
        compose("up", "-d")
        assert record.exists() and record.stat().st_mode & 0o777 == 0o600
        go(drv, d, "#/projects")
        wait(drv, lambda: "2 of 2 running" in css(drv, sel).text)
        assert "recorded" in css(drv, f"{sel} h2").text
        # web to 0, then back to 2: from the record, as compose made web-1
        wait(drv, lambda: scale_to("web", 0))
        wait(drv, lambda: names() == ["rec-db-1"], what="scale to 0 left containers")
        wait(drv, lambda: "1 of 1 running" in css(drv, sel).text)
        wait(drv, lambda: scale_to("web", 2))
        wait(drv, lambda: "3 of 3 running" in css(drv, sel).text, what="scale from 0 did nothing")
        shot(drv, shots, "projects-from-record")
        two = d.inspect("rec-web-2")
        labels = two["Config"]["Labels"]
        assert labels["com.docker.compose.container-number"] == "2"
        # the environment as compose resolved it from the shell that ran it
        assert "FROM_FILE=shell-value" in two["Config"]["Env"]
        nets = two["NetworkSettings"]["Networks"]
        assert sorted(nets) == ["rec_back", "rec_default"]
        for n in nets.values():
            assert "web" in n["Aliases"] and "rec-web-2" in n["Aliases"]
            assert "rec-web-1" not in n["Aliases"]
        # compose counts them as its own, up to date: its up recreates nothing
        ids = {d.inspect(f"rec-web-{n}")["Id"] for n in (1, 2)}
        assert set(compose("ps", "-q", "web").split()) == ids
        compose("up", "-d", "--scale", "web=2")
        assert {d.inspect(f"rec-web-{n}")["Id"] for n in (1, 2)} == ids
        # db's container removed by hand: Up makes it again from the record, and starts it
        # before web
        d.ok("rm", "-f", "rec-db-1")
        compose("stop", "-t", "1")
        wait(drv, lambda: "0 of 2 running" in css(drv, sel).text)
        wait(drv, lambda: css(drv, f'{sel} button[data-action="up"]').click() or True)
        wait(drv, lambda: "3 of 3 running" in css(drv, sel).text, what="up did not make db")
        db = d.inspect("rec-db-1")
        assert db["State"]["StartedAt"] < d.inspect("rec-web-1")["State"]["StartedAt"]
        # the page's down removes the record, as compose down does
        wait(drv, lambda: css(drv, f'{sel} button[data-action="down"]').click() or True)
        wait(drv, lambda: not record.exists(), what="down left the record")
        wait(drv, lambda: names() == [])
        compose("up", "-d")
        assert record.exists()
        compose("down", "-t", "1")
        assert not record.exists()
    finally:
        subprocess.run(
            [str(BIN / "berth"), "compose", "-p", "rec", "down", "-v", "-t", "1"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            timeout=120,
        )
        for c in d.ok("ps", "-aq", "--filter", "label=com.docker.compose.project=rec").split():
            d.berth("rm", "-f", "-v", c)


def event_row(drv: webdriver.Chrome, action: str, name: str) -> bool:
    """The events page has a row of `action` on the container `name`."""
    return any(
        [c.text for c in r.find_elements(By.CSS_SELECTOR, "td")][2:] == [action, name]
        for r in drv.find_elements(By.CSS_SELECTOR, "#events tr")
    )


def test_many_tabs_share_one_live_socket(
    ui_daemon: Daemon, browser: webdriver.Chrome, shots: Path
) -> None:
    """Ten tabs with live views (events, a container's graphs) and an eleventh still loads
    its list and follows: all of the browser's views go over the one WebSocket its shared
    worker holds, where a Server-Sent Events stream each took one of the six connections a
    browser opens to one host, and the fifth or sixth tab stalled."""
    d, drv = ui_daemon, browser
    d.ok("run", "-d", "--name", "tabbed", "busybox", "sh", "-c", "while true; do sleep 0.5; done")
    first = drv.current_window_handle
    opened = []
    try:
        go(drv, d, "#/events")
        base = drv.current_url.split("#")[0]
        for i in range(10):
            drv.switch_to.new_window("tab")
            opened.append(drv.current_window_handle)
            drv.get(base + ("#/events" if i % 2 else "#/containers/tabbed"))
            if not i % 2:  # the graphs: a live view of their own
                css(drv, 'button[data-tab="stats"]').click()
        # the eleventh: its list draws, and the container's graphs get samples
        drv.switch_to.new_window("tab")
        opened.append(drv.current_window_handle)
        drv.get(base + "#/containers")
        wait(
            drv,
            lambda: css(drv, "#main").get_attribute("data-loaded-ms"),
            timeout=20,
            what="the list did not load with ten tabs open",
        )
        drv.get(base + "#/containers/tabbed")
        css(drv, 'button[data-tab="stats"]').click()
        wait(
            drv,
            lambda: int(css(drv, "#pane").get_attribute("data-samples") or 0) >= 3,
            timeout=20,
            what="no stats samples with ten tabs open",
        )
        # the first tab's events feed still follows
        drv.switch_to.window(first)
        d.ok("kill", "tabbed")
        wait(drv, lambda: event_row(drv, "kill", "tabbed"), what="the first tab missed it")
        shot(drv, shots, "many-tabs")
        # the others closed (the worker lets their views go when their locks are freed): the
        # first tab's view goes on over the same socket
        while opened:
            drv.switch_to.window(opened.pop())
            drv.close()
        drv.switch_to.window(first)
        time.sleep(1)
        d.ok("rename", "tabbed", "tabbed-renamed")
        wait(
            drv,
            lambda: event_row(drv, "rename", "tabbed-renamed"),
            what="the first tab lost its view",
        )
    finally:
        for h in opened:
            drv.switch_to.window(h)
            drv.close()
        drv.switch_to.window(first)
        d.berth("rm", "-f", "tabbed")
        d.berth("rm", "-f", "tabbed-renamed")
