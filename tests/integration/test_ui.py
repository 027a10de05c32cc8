"""The dashboard in a real browser: Debian's Chromium, headless, driven by Selenium through
every page and action the dashboard has, against a private berthd started with `--ui`.

Screenshots of each page are kept as artefacts in a directory printed at the start (and
under $BERTH_UI_SHOTS if set). The browser talks only to 127.0.0.1: every other host name
resolves to nothing, there is no proxy, and its background services are off."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import BIN, Daemon, running_daemon
from .registries import FakeRegistry, hand_image

pytestmark = pytest.mark.root

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

selenium = pytest.importorskip("selenium", reason="selenium is in the test extra")
from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.actions.action_builder import ActionBuilder  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def ui_daemon(tmp_path_factory: pytest.TempPathFactory, rootfs_tar: Path) -> Iterator[Daemon]:
    with running_daemon(
        tmp_path_factory.mktemp("berthd-ui"), rootfs_tar, "--ui", "127.0.0.1:0"
    ) as d:
        yield d


def ui_url(d: Daemon) -> str:
    return (d.exec_root / "ui-url").read_text().strip()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = (
        Path(os.environ["BERTH_UI_SHOTS"])
        if os.environ.get("BERTH_UI_SHOTS")
        else tmp_path_factory.mktemp("ui-screenshots")
    )
    out.mkdir(parents=True, exist_ok=True)
    print(f"\ndashboard screenshots: {out}")
    return out


def make_browser(*, insecure_certs: bool = False) -> webdriver.Chrome:
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip("needs Debian's chromium and chromium-driver (scripts/test.sh installs them)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,860",
        "--no-first-run",
        "--no-default-browser-check",
        # nothing but loopback: no name resolves, no proxy, no background traffic
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--no-proxy-server",
        "--disable-background-networking",
        "--disable-sync",
        "--disable-component-update",
        "--disable-domain-reliability",
        "--disable-client-side-phishing-detection",
        "--disable-default-apps",
        "--disable-extensions",
        "--metrics-recording-only",
        "--disable-features=OptimizationHints,MediaRouter,Translate",
    ):
        opts.add_argument(a)
    opts.accept_insecure_certs = insecure_certs
    # Chromium's profile and its temporary files (it leaves an org.chromium.Chromium.* directory
    # in $TMPDIR behind each run) in a directory of the browser's own, removed when it quits
    tmp = tempfile.mkdtemp(prefix="berth-ui-chromium-")
    opts.add_argument(f"--user-data-dir={tmp}/profile")
    # the driver is Debian's: selenium-manager must not look for (or download) one
    service = Service(CHROMEDRIVER, env={**os.environ, "TMPDIR": tmp})
    try:
        drv = webdriver.Chrome(service=service, options=opts)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    quit_browser = drv.quit

    def quit_and_clean() -> None:
        try:
            quit_browser()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    drv.quit = quit_and_clean  # type: ignore[method-assign]
    drv.set_page_load_timeout(30)
    return drv


@pytest.fixture(scope="module")
def browser(ui_daemon: Daemon) -> Iterator[webdriver.Chrome]:
    drv = make_browser()
    try:
        yield drv
    finally:
        drv.quit()


def wait(
    drv: webdriver.Chrome, cond: Callable[[], Any], timeout: float = 20, what: str = ""
) -> Any:
    # the pages draw again when the daemon's events come: an element found may go stale
    return WebDriverWait(
        drv, timeout, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)
    ).until(lambda _d: cond(), message=what)


def css(drv: webdriver.Chrome, sel: str) -> WebElement:
    return wait(
        drv,
        lambda: (drv.find_elements(By.CSS_SELECTOR, sel) or [None])[0],
        what=f"no element {sel}",
    )


def row(drv: webdriver.Chrome, name: str) -> WebElement:
    return css(drv, f'#containers tr[data-name="{name}"]')


def state_of(drv: webdriver.Chrome, name: str) -> str:
    els = drv.find_elements(By.CSS_SELECTOR, f'#containers tr[data-name="{name}"] .badge')
    return str(els[0].text.split()[0]) if els else ""


def click_action(drv: webdriver.Chrome, name: str, action: str) -> None:
    def click() -> bool:
        for b in row(drv, name).find_elements(By.CSS_SELECTOR, f'button[data-action="{action}"]'):
            if b.is_enabled():
                b.click()
                return True
        return False

    wait(drv, click, what=f"{action} of {name} not enabled")


def go(drv: webdriver.Chrome, d: Daemon, hash_: str) -> None:
    base = ui_url(d).split("/?")[0]
    if drv.get_cookie("berth_ui") is None:  # a test run alone: the token's exchange first
        drv.get(ui_url(d))
    drv.get(f"{base}/{hash_}")
    drv.execute_script("window.confirm = () => true")  # the dialogs of remove and prune


def shot(drv: webdriver.Chrome, shots: Path, name: str) -> None:
    drv.save_screenshot(str(shots / f"{name}.png"))


def test_no_way_in_without_the_token(ui_daemon: Daemon) -> None:
    base = ui_url(ui_daemon).split("/?")[0]
    for path in ("/", "/api/containers"):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(base + path, timeout=10)
        assert e.value.code == 401
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(base + "/?token=wrong", timeout=10)
    assert e.value.code == 403


def test_login_and_containers_page(
    ui_daemon: Daemon, browser: webdriver.Chrome, shots: Path
) -> None:
    d, drv = ui_daemon, browser
    d.ok("run", "-d", "--name", "web", "-p", "127.0.0.1::80", "busybox", "sleep", "1000")
    d.ok("create", "--name", "idle", "busybox", "true")
    drv.get(ui_url(d))
    # the token is traded for a cookie the page's scripts cannot read, and leaves the URL
    wait(drv, lambda: "token=" not in drv.current_url, what="the token stayed in the URL")
    cookie = drv.get_cookie("berth_ui")
    assert cookie and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert drv.execute_script("return document.cookie") == ""
    # the session's secret is in this origin's storage, not in the page; the cookie alone
    # (what another port of this host is sent too) opens no API route
    secret = drv.execute_script("return localStorage.getItem('berth-session')")
    assert secret and secret not in drv.page_source
    got = drv.execute_async_script(
        "const done = arguments[0]; Promise.all(['/api/containers', '/api/df'].map(p => "
        "fetch(p).then(r => r.status))).then(done)"
    )
    assert got == [403, 403]
    # (the list is drawn again on each container event: every look goes through `wait`)
    wait(
        drv,
        lambda: state_of(drv, "web") == "running" and state_of(drv, "idle") == "created",
        what="the list does not show both containers' states",
    )
    wait(drv, lambda: "→80/tcp" in row(drv, "web").text, what="no published port")
    shot(drv, shots, "containers")
    # search and the state filter
    search = css(drv, "#search")
    search.send_keys("idl")
    wait(drv, lambda: not drv.find_elements(By.CSS_SELECTOR, '#containers tr[data-name="web"]'))
    wait(drv, lambda: row(drv, "idle"))
    search.clear()
    search.send_keys(" ")
    css(drv, '#state-filter option[value="running"]').click()
    wait(drv, lambda: not drv.find_elements(By.CSS_SELECTOR, '#containers tr[data-name="idle"]'))
    css(drv, '#state-filter option[value="all"]').click()
    # a browser whose storage lost the secret (the cookie kept) is told how to come back
    drv.execute_script("localStorage.removeItem('berth-session')")
    drv.get(ui_url(d).split("/?")[0] + "/")
    assert "open the URL with ?token=" in css(drv, "#no-session").text
    drv.get(ui_url(d))
    wait(drv, lambda: state_of(drv, "web") == "running", what="no way back in")


def test_lifecycle_actions(ui_daemon: Daemon, browser: webdriver.Chrome) -> None:
    d, drv = ui_daemon, browser
    # it ends on SIGTERM (a `sleep` as PID 1 would not, and stop would wait 10 s for it)
    d.ok(
        "run",
        "-d",
        "--name",
        "life",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 0' TERM; while true; do sleep 0.1; done",
    )
    go(drv, d, "#/containers")
    for action, want in (
        ("stop", "exited"),
        ("start", "running"),
        ("pause", "paused"),
        ("unpause", "running"),
        ("restart", "running"),
        ("kill", "exited"),
    ):
        before = d.inspect("life")["State"]["StartedAt"]
        click_action(drv, "life", action)
        if action == "restart":
            wait(
                drv,
                lambda b=before: d.inspect("life")["State"]["StartedAt"] != b,
                what="restart did not start it again",
            )
        wait(drv, lambda w=want: state_of(drv, "life") == w, what=f"{action}: not {want}")
        assert d.inspect("life")["State"]["Status"] == want
    click_action(drv, "life", "remove")
    wait(drv, lambda: not drv.find_elements(By.CSS_SELECTOR, '#containers tr[data-name="life"]'))
    assert d.berth("inspect", "life").returncode != 0


def test_container_page(ui_daemon: Daemon, browser: webdriver.Chrome, shots: Path) -> None:
    d, drv = ui_daemon, browser
    d.ok("volume", "create", "data")
    cid = d.ok(
        "run",
        "-d",
        "--name",
        "app",
        "-e",
        "DB_PASSWORD=hunter2",
        "-e",
        "MODE=fast",
        "-v",
        "data:/data",
        "busybox",
        "sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo line-$i; echo warn-$i >&2; sleep 0.2; done",
    ).strip()
    go(drv, d, f"#/containers/{cid}")
    wait(drv, lambda: "app" in css(drv, ".head h1").text)
    assert cid in css(drv, "table.kv").text
    shot(drv, shots, "container-overview")
    css(drv, 'button[data-tab="env"]').click()
    env = css(drv, "#env").text
    assert "MODE fast" in env and "DB_PASSWORD" in env
    assert "hunter2" not in drv.page_source
    css(drv, 'button[data-tab="mounts"]').click()
    assert "/data" in css(drv, "#mounts").text and "data" in css(drv, "#mounts").text
    css(drv, 'button[data-tab="networks"]').click()
    ip = d.inspect("app")["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
    assert ip and ip in css(drv, "#networks").text
    # live graphs: samples keep coming
    css(drv, 'button[data-tab="stats"]').click()
    wait(
        drv,
        lambda: int(css(drv, "#pane").get_attribute("data-samples") or 0) >= 3,
        what="no stats samples",
    )
    assert "memory" in css(drv, "#stats-now").text
    for chart in ("cpu", "mem", "net", "io"):
        assert drv.find_elements(By.CSS_SELECTOR, f"#{chart}-chart canvas"), chart
    shot(drv, shots, "container-stats")
    # logs follow live, search narrows them, the download holds them
    css(drv, 'button[data-tab="logs"]').click()
    wait(drv, lambda: "line-5" in css(drv, "#logs").text, what="no log lines")
    seen = len(drv.find_elements(By.CSS_SELECTOR, "#logs .line"))
    wait(
        drv,
        lambda: len(drv.find_elements(By.CSS_SELECTOR, "#logs .line")) > seen + 4,
        what="the log does not follow",
    )
    assert drv.find_elements(By.CSS_SELECTOR, "#logs .line.err")
    css(drv, "#log-search").send_keys("warn-")
    wait(
        drv,
        lambda: all("warn-" in x.text for x in drv.find_elements(By.CSS_SELECTOR, "#logs .line")),
    )
    shot(drv, shots, "container-logs")
    href = css(drv, "#log-download").get_attribute("href")
    got = drv.execute_async_script(
        "const done = arguments[1]; fetch(arguments[0]).then(r => r.text().then(t => "
        "done([r.status, r.headers.get('content-disposition'), t.length, t.includes('line-3')])))",
        href,
    )
    assert got[0] == 200 and "attachment" in got[1] and got[3]
    css(drv, 'button[data-tab="processes"]').click()
    assert "sleep" in css(drv, "#processes").text or "sh" in css(drv, "#processes").text
    # a terminal over exec, with a pty, that resizes
    css(drv, 'button[data-tab="terminal"]').click()
    wait(
        drv,
        lambda: css(drv, "#terminal").get_attribute("data-open") == "1",
        what="the terminal's WebSocket did not open",
    )
    term_text = "return window.berthTerminalText()"
    wait(drv, lambda: "#" in drv.execute_script(term_text), what="no prompt")
    ActionChains(drv).send_keys("echo out-$((6*7))\n").perform()
    wait(drv, lambda: "out-42" in drv.execute_script(term_text), what="no echo")
    # a link the container writes (OSC 8) opens only if it is http(s), with noopener
    opened = drv.execute_script(
        "const got = window.berthOpened = []; window.open = (...a) => { got.push(a); return null; };"
        "window.confirm = () => true;"
        "for (const u of arguments[0]) window.berthTerminalLink(u); return got.splice(0);",
        [
            "javascript:alert(document.domain)",
            "JavaScript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "file:///etc/passwd",
            "vbscript:x",
            "not a url",
            "https://example.test/a?b=1",
            "http://127.0.0.1:9/x",
        ],
    )
    assert opened == [
        ["https://example.test/a?b=1", "_blank", "noopener,noreferrer"],
        ["http://127.0.0.1:9/x", "_blank", "noopener,noreferrer"],
    ]
    # and as the user meets them: links the shell prints, clicked (the command line spells
    # the words with octal escapes, so only the output says OKLINK and JSLINK)
    ActionChains(drv).send_keys(
        "printf '\\033]8;;http://127.0.0.1:9/ok\\033\\\\\\117KLINK\\033]8;;\\033\\\\ "
        "\\033]8;;javascript:alert(1)\\033\\\\\\112SLINK\\033]8;;\\033\\\\\\n'\n"
    ).perform()
    wait(drv, lambda: "OKLINK JSLINK" in drv.execute_script(term_text), what="no links")

    def click_word(word: str) -> None:
        # the word's place on the screen, from xterm's DOM rows: drawn at the next animation
        # frame after the buffer has the text, and a row may be several text nodes (one a run
        # of cells alike), so the row's whole text is searched and the word's second letter
        # found in its node
        find = (
            "for (const row of document.querySelectorAll('#terminal .xterm-rows > div')) {"
            "  const at = row.textContent.indexOf(arguments[0]);"
            "  if (at < 0) continue;"
            "  const walker = document.createTreeWalker(row, NodeFilter.SHOW_TEXT);"
            "  let seen = 0;"
            "  for (let n = walker.nextNode(); n; n = walker.nextNode()) {"
            "    const len = n.textContent.length;"
            "    if (at + 1 < seen + len) {"
            "      const r = document.createRange();"
            "      r.setStart(n, at + 1 - seen); r.setEnd(n, at + 2 - seen);"
            "      const b = r.getBoundingClientRect();"
            "      return [Math.round(b.x + b.width / 2), Math.round(b.y + b.height / 2)];"
            "    }"
            "    seen += len;"
            "  }"
            "} return null;"
        )
        x, y = wait(drv, lambda: drv.execute_script(find, word), what=f"{word} not drawn")
        actions = ActionBuilder(drv)
        actions.pointer_action.move_to_location(x - 2, y).pause(0.3)
        actions.pointer_action.move_to_location(x, y).pause(0.5).click()
        actions.perform()

    click_word("JSLINK")
    click_word("OKLINK")
    wait(drv, lambda: drv.execute_script("return window.berthOpened.length"), what="not opened")
    assert drv.execute_script("return window.berthOpened") == [
        ["http://127.0.0.1:9/ok", "_blank", "noopener,noreferrer"]
    ]

    def sizes() -> list[tuple[int, int]]:
        text = drv.execute_script(term_text).replace("\n", "")
        return [(int(a), int(b)) for a, b in re.findall(r"size-(\d+)x(\d+)-end", text)]

    ask = "echo size-$(stty size | tr ' ' x)-end\n"
    ActionChains(drv).send_keys(ask).perform()
    first = wait(drv, sizes, what="no pty size")[-1]
    drv.set_window_size(900, 600)
    before = [len(sizes())]
    ActionChains(drv).send_keys(ask).perform()

    def resized() -> bool:
        # the resize travels to the pty (xterm's fit, then the socket) while the shell may
        # already answer the question: ask again until the answer changes
        got = sizes()
        if len(got) <= before[0]:
            return False  # not answered yet
        if got[-1] != first:
            return True
        before[0] = len(got)
        ActionChains(drv).send_keys(ask).perform()
        return False

    wait(drv, resized, what=f"the pty was not resized from {first}")
    shot(drv, shots, "container-terminal")
    drv.set_window_size(1280, 860)
    ActionChains(drv).send_keys("exit\n").perform()
    wait(drv, lambda: css(drv, "#terminal").get_attribute("data-closed") == "1")


def test_health(ui_daemon: Daemon, browser: webdriver.Chrome) -> None:
    d, drv = ui_daemon, browser
    cid = d.ok(
        "run",
        "-d",
        "--name",
        "checked",
        "--health-cmd",
        "echo probe-ok",
        "--health-interval",
        "1s",
        "busybox",
        "sleep",
        "1000",
    ).strip()
    go(drv, d, "#/containers")
    wait(
        drv,
        lambda: "healthy" in row(drv, "checked").find_element(By.CSS_SELECTOR, ".badge").text,
        what="the list does not show the health",
    )
    go(drv, d, f"#/containers/{cid}")
    wait(drv, lambda: "probe-ok" in css(drv, "#health-log").text)
    # removed from its own page, it goes back to the list
    css(drv, '.head button[data-action="remove"]').click()
    wait(drv, lambda: drv.current_url.endswith("#/containers"), what="stayed on a gone page")
    assert d.berth("inspect", "checked").returncode != 0


def test_attach_to_the_console(ui_daemon: Daemon, browser: webdriver.Chrome, shots: Path) -> None:
    d, drv = ui_daemon, browser
    cid = d.ok("run", "-dit", "--name", "console", "busybox", "sh").strip()
    go(drv, d, f"#/containers/{cid}")
    css(drv, 'button[data-tab="terminal"]').click()
    css(drv, 'button[data-mode="attach"]').click()
    wait(
        drv,
        lambda: css(drv, '#terminal[data-mode="attach"]').get_attribute("data-open") == "1",
        what="the console's WebSocket did not open",
    )
    term_text = "return window.berthTerminalText()"
    wait(drv, lambda: "#" in drv.execute_script(term_text), what="no prompt")
    ActionChains(drv).send_keys("echo attached-$((2*3)) $$\n").perform()
    # the container's own shell answers: PID 1
    wait(drv, lambda: "attached-6 1" in drv.execute_script(term_text), what="no answer")
    shot(drv, shots, "container-console")
    # leaving the page detaches: the container goes on
    go(drv, d, "#/containers")
    time.sleep(0.5)
    assert d.inspect("console")["State"]["Status"] == "running"
    d.ok("rm", "-f", "console")


def test_images_page(ui_daemon: Daemon, browser: webdriver.Chrome, shots: Path) -> None:
    d, drv = ui_daemon, browser
    d.ok("tag", "busybox", "spare:1")
    go(drv, d, "#/images")
    images = css(drv, "#images")
    wait(drv, lambda: "spare:1" in images.text)
    # the layers, with the step that made each
    tr = next(
        r for r in images.find_elements(By.CSS_SELECTOR, "tbody tr") if "busybox:latest" in r.text
    )
    assert "web" in tr.text  # what uses it, by name (the earlier tests' containers)
    tr.find_element(By.CSS_SELECTOR, 'button[data-action="layers"]').click()
    assert css(drv, "#history tbody tr")
    shot(drv, shots, "images")
    tr = next(
        r for r in images.find_elements(By.CSS_SELECTOR, "tbody tr") if r.text.startswith("spare:1")
    )
    tr.find_element(By.CSS_SELECTOR, 'button[data-action="remove"]').click()
    wait(drv, lambda: "spare:1" not in css(drv, "#images").text)
    assert "spare" not in d.ok("images")
    # prune: the dangling image an untagged commit left goes
    d.ok("run", "--name", "dangler", "busybox", "touch", "/x")
    dangling = d.ok("commit", "dangler").strip()
    d.ok("rm", "dangler")
    css(drv, "#prune-images").click()
    wait(
        drv,
        lambda: d.berth("image", "inspect", dangling).returncode != 0,
        what="prune left the dangling image",
    )


def test_pull_with_layer_progress(
    ui_daemon: Daemon, browser: webdriver.Chrome, shots: Path
) -> None:
    d, drv = ui_daemon, browser
    fake = FakeRegistry(slow=0.05).start()  # on 127.0.0.1; paced, so progress shows
    try:
        img = hand_image(
            [({"a.bin": os.urandom(1 << 20)}, "gzip"), ({"b.bin": os.urandom(1 << 20)}, "gzip")]
        )
        fake.add("ui/pulled", "1", img)
        ref = f"{fake.addr}/ui/pulled:1"
        go(drv, d, "#/images")
        css(drv, "#pull-ref").send_keys(ref)
        css(drv, "#pull").click()
        wait(
            drv,
            lambda: css(drv, "#pull-status").get_attribute("data-done") == "1",
            timeout=60,
            what="the pull did not finish",
        )
        layers = {
            e.get_attribute("data-layer"): e.get_attribute("data-status")
            for e in drv.find_elements(By.CSS_SELECTOR, "#pull-progress .layer")
        }
        assert len(layers) == 2 and set(layers.values()) == {"Pull complete"}, layers
        shot(drv, shots, "pull")
        wait(
            drv,
            lambda: (
                "localhost" in css(drv, "#images").text or fake.addr in css(drv, "#images").text
            ),
        )
        assert d.inspect(ref)["Id"] == img.image_id
        # an error comes back to the page
        css(drv, "#pull-ref").clear()
        css(drv, "#pull-ref").send_keys(f"{fake.addr}/ui/missing:1")
        css(drv, "#pull").click()
        wait(drv, lambda: "error" in css(drv, "#pull-status").text)
        d.ok("rmi", ref)
    finally:
        fake.stop()


def test_networks_volumes_page(ui_daemon: Daemon, browser: webdriver.Chrome, shots: Path) -> None:
    d, drv = ui_daemon, browser
    d.ok("network", "create", "uinet")
    d.ok("run", "-d", "--name", "onnet", "--network", "uinet", "busybox", "sleep", "1000")
    ip = d.inspect("onnet")["NetworkSettings"]["Networks"]["uinet"]["IPAddress"]
    go(drv, d, "#/networks")
    nets = css(drv, "#networks")
    wait(drv, lambda: "uinet" in nets.text and f"onnet {ip}/" in nets.text)
    shot(drv, shots, "networks")
    d.ok("rm", "-f", "onnet")
    go(drv, d, "#/networks")
    tr = wait(
        drv,
        lambda: next(
            (
                r
                for r in css(drv, "#networks").find_elements(By.CSS_SELECTOR, "tbody tr")
                if r.text.startswith("uinet")
            ),
            None,
        ),
    )
    tr.find_element(By.CSS_SELECTOR, 'button[data-action="remove"]').click()
    wait(drv, lambda: "uinet" not in css(drv, "#networks").text)
    assert "uinet" not in d.ok("network", "ls")
    d.ok("volume", "create", "scratch")
    d.ok(
        "run",
        "--rm",
        "-v",
        "scratch:/d",
        "busybox",
        "sh",
        "-c",
        "mkdir /d/sub && echo hello-volume > /d/sub/a.txt && ln -s /etc/passwd /d/evil",
    )
    go(drv, d, "#/volumes")
    vols = css(drv, "#volumes")
    wait(drv, lambda: "scratch" in vols.text)
    # browse it, read-only: a directory opens, a file shows, a symlink is only named
    tr = next(
        r for r in vols.find_elements(By.CSS_SELECTOR, "tbody tr") if r.text.startswith("scratch")
    )
    tr.find_element(By.CSS_SELECTOR, 'button[data-action="browse"]').click()
    assert "evil → /etc/passwd" in css(drv, "#browse").text
    css(drv, "#browse a.dir").click()
    wait(drv, lambda: css(drv, "#browse-path").text == "/sub")
    css(drv, "#browse a.file").click()
    wait(drv, lambda: css(drv, "#file-preview").text.strip() == "hello-volume")
    shot(drv, shots, "volumes")
    tr = next(
        r for r in vols.find_elements(By.CSS_SELECTOR, "tbody tr") if r.text.startswith("scratch")
    )
    tr.find_element(By.CSS_SELECTOR, 'button[data-action="remove"]').click()
    wait(drv, lambda: "scratch" not in css(drv, "#volumes").text)
    assert "scratch" not in d.ok("volume", "ls")


def test_compose_projects(ui_daemon: Daemon, browser: webdriver.Chrome, shots: Path) -> None:
    d, drv = ui_daemon, browser
    d.ok("network", "create", "--label", "com.docker.compose.project=shop", "shop_default")
    for svc, n in (("web", 1), ("web", 2), ("db", 1)):
        d.ok(
            "run",
            "-d",
            "--name",
            f"shop-{svc}-{n}",
            "--network",
            "shop_default",
            "--label",
            "com.docker.compose.project=shop",
            "--label",
            f"com.docker.compose.service={svc}",
            "--label",
            f"com.docker.compose.container-number={n}",
            "busybox",
            "sh",
            "-c",
            f"trap 'exit 0' TERM; while true; do echo {svc}-{n}-says-hi; sleep 0.3; done",
        )
    go(drv, d, "#/projects")
    wait(drv, lambda: "3 of 3 running" in css(drv, 'section[data-project="shop"]').text)
    # (the list is drawn again on each container event: every look goes through `wait`)
    wait(
        drv,
        lambda: (
            [
                r.get_attribute("data-name")
                for r in drv.find_elements(By.CSS_SELECTOR, 'section[data-project="shop"] tbody tr')
            ]
            == ["shop-db-1", "shop-web-1", "shop-web-2"]
        ),
        what="services not in order",
    )
    css(drv, 'section[data-project="shop"] button[data-action="logs"]').click()
    wait(
        drv,
        lambda: (
            {
                e.get_attribute("data-container")
                for e in drv.find_elements(By.CSS_SELECTOR, "#project-log-lines .line")
            }
            >= {"shop-db-1", "shop-web-1", "shop-web-2"}
        ),
        what="the project's logs are not interleaved",
    )
    shot(drv, shots, "projects")

    def project_click(action: str) -> bool:
        css(drv, f'section[data-project="shop"] button[data-action="{action}"]').click()
        return True

    wait(drv, lambda: project_click("stop"))
    wait(
        drv,
        lambda: "0 of 3 running" in css(drv, 'section[data-project="shop"]').text,
        what="stop did not stop the project",
    )
    assert all(
        d.inspect(f"shop-{x}")["State"]["Status"] == "exited" for x in ("web-1", "web-2", "db-1")
    )
    wait(drv, lambda: project_click("start"))
    wait(
        drv,
        lambda: "3 of 3 running" in css(drv, 'section[data-project="shop"]').text,
        what="start did not start the project",
    )
    # down: its containers and its network go, as with compose down
    wait(drv, lambda: project_click("down"))
    wait(
        drv,
        lambda: not drv.find_elements(By.CSS_SELECTOR, 'section[data-project="shop"]'),
        what="down left the project",
    )
    assert d.ok("ps", "-aq", "--filter", "label=com.docker.compose.project=shop") == ""
    assert "shop_default" not in d.ok("network", "ls")


def test_events_and_disk_usage(ui_daemon: Daemon, browser: webdriver.Chrome, shots: Path) -> None:
    d, drv = ui_daemon, browser
    go(drv, d, "#/events")
    css(drv, "#events")
    d.ok("run", "--name", "evt", "busybox", "true")
    wait(
        drv,
        lambda: "evt" in css(drv, "#events").text and "die" in css(drv, "#events").text,
        what="the events feed did not show the run",
    )
    css(drv, '#event-type option[value="image"]').click()
    wait(
        drv,
        lambda: (
            not any(
                r.is_displayed() and "evt" in r.text
                for r in drv.find_elements(By.CSS_SELECTOR, "#events tr")
            )
        ),
    )
    shot(drv, shots, "events")
    go(drv, d, "#/system")
    df = css(drv, "#df")
    wait(drv, lambda: "Images" in df.text and "Containers" in df.text)
    shot(drv, shots, "disk-usage")
    info = json.loads(d.ok("system", "df", "--format", "{{json .}}").splitlines()[0])
    assert info


def test_dashboard_over_tls(tmp_path: Path, rootfs_tar: Path, shots: Path) -> None:
    """With TLS (berthd's --tls files), the dashboard speaks only HTTPS and its cookie is
    Secure. The test's CA is not the browser's, so certificate errors are let pass here:
    what is tested is berthd's side."""
    from .registries import CA

    ca = CA.make()
    cert, key = ca.issue("127.0.0.1")
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    with running_daemon(
        tmp_path / "berthd",
        rootfs_tar,
        "--tlsverify=false",
        "--tlscacert",
        str(tmp_path / "ca.pem"),
        "--tlscert",
        str(tmp_path / "cert.pem"),
        "--tlskey",
        str(tmp_path / "key.pem"),
        "--ui",
        "127.0.0.1:0",
    ) as d:
        url = ui_url(d)
        assert url.startswith("https://127.0.0.1:")
        with pytest.raises((OSError, http.client.HTTPException)):  # no plain HTTP
            urllib.request.urlopen(url.replace("https://", "http://"), timeout=10)
        d.ok("create", "--name", "tls-one", "busybox", "true")
        drv = make_browser(insecure_certs=True)
        try:
            drv.get(url)
            assert row(drv, "tls-one")
            cookie = drv.get_cookie("berth_ui")
            assert cookie and cookie["secure"] and cookie["httpOnly"]
            drv.execute_script("window.confirm = () => true")
            click_action(drv, "tls-one", "remove")
            wait(
                drv,
                lambda: d.berth("inspect", "tls-one").returncode != 0,
                what="remove over TLS did nothing",
            )
            shot(drv, shots, "tls")
        finally:
            drv.quit()


def test_compose_scale_and_up(
    ui_daemon: Daemon, browser: webdriver.Chrome, shots: Path, tmp_path: Path
) -> None:
    """On a project `berth compose up` made: scale a service up (containers made as compose
    makes them, which compose then counts as its own) and down (the highest numbers go),
    then up the stopped project: each service after those it depends on."""
    d, drv = ui_daemon, browser
    loop = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.3; done"]
    (tmp_path / "compose.yaml").write_text(
        json.dumps(  # JSON is YAML
            {
                "services": {
                    "db": {
                        "image": "busybox",
                        "command": loop,
                        "healthcheck": {"test": ["CMD", "true"], "interval": "1s"},
                    },
                    "web": {
                        "image": "busybox",
                        "command": loop,
                        "depends_on": {"db": {"condition": "service_healthy"}},
                        "volumes": ["/cache", "data:/data"],
                    },
                },
                "volumes": {"data": {}},
            }
        )
    )

    def compose(*args: str) -> str:
        r = subprocess.run(
            [str(BIN / "berth"), "compose", "-p", "cart", *args],
            cwd=tmp_path,
            env={**d.env, "XDG_CACHE_HOME": str(tmp_path / ".cache")},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, f"compose {' '.join(args)}: {r.stdout}\n{r.stderr}"
        return r.stdout

    try:
        compose("up", "-d")
        go(drv, d, "#/projects")
        sel = 'section[data-project="cart"]'
        wait(drv, lambda: "2 of 2 running" in css(drv, sel).text)

        def scale_to(n: int) -> bool:
            box = css(drv, f'{sel} .scale[data-service="web"]')
            inp = box.find_element(By.CSS_SELECTOR, "input")
            drv.execute_script("arguments[0].value = arguments[1]", inp, str(n))
            box.find_element(By.CSS_SELECTOR, 'button[data-action="scale"]').click()
            return True

        wait(drv, lambda: scale_to(3))
        wait(drv, lambda: "4 of 4 running" in css(drv, sel).text, what="scale up did nothing")
        shot(drv, shots, "projects-scaled")
        one, three = d.inspect("cart-web-1"), d.inspect("cart-web-3")
        labels = three["Config"]["Labels"]
        assert labels["com.docker.compose.container-number"] == "3"
        for k in ("project", "service", "config-hash", "depends_on"):
            assert (
                labels[f"com.docker.compose.{k}"]
                == one["Config"]["Labels"][f"com.docker.compose.{k}"]
            )
        assert three["Config"]["Cmd"] == one["Config"]["Cmd"]
        assert three["Config"]["Hostname"] != one["Config"]["Hostname"]
        aliases = three["NetworkSettings"]["Networks"]["cart_default"]["Aliases"]
        assert "web" in aliases and "cart-web-3" in aliases and "cart-web-1" not in aliases
        vols = {m["Destination"]: m["Name"] for m in three["Mounts"]}
        old = {m["Destination"]: m["Name"] for m in one["Mounts"]}
        assert vols["/data"] == old["/data"] == "cart_data" and vols["/cache"] != old["/cache"]
        # compose counts them as the service's own
        assert sorted(compose("ps", "-q", "web").split()) == sorted(
            d.inspect(f"cart-web-{n}")["Id"] for n in (1, 2, 3)
        )
        # down to 1: the highest numbers go
        wait(drv, lambda: scale_to(1))
        wait(drv, lambda: "2 of 2 running" in css(drv, sel).text, what="scale down did nothing")
        names = d.ok(
            "ps",
            "-a",
            "--format",
            "{{.Names}}",
            "--filter",
            "label=com.docker.compose.project=cart",
        )
        assert sorted(names.split()) == ["cart-db-1", "cart-web-1"]
        # up of the stopped project: db first, and web once db is healthy
        compose("stop", "-t", "2")
        wait(drv, lambda: "0 of 2 running" in css(drv, sel).text)
        wait(drv, lambda: css(drv, f'{sel} button[data-action="up"]').click() or True)
        wait(drv, lambda: "2 of 2 running" in css(drv, sel).text, what="up did not start it")
        db, web = d.inspect("cart-db-1"), d.inspect("cart-web-1")
        assert db["State"]["Health"]["Status"] == "healthy"
        assert db["State"]["StartedAt"] < web["State"]["StartedAt"]
    finally:
        subprocess.run(
            [str(BIN / "berth"), "compose", "-p", "cart", "down", "-v", "-t", "1"],
            cwd=tmp_path,
            env={**d.env, "XDG_CACHE_HOME": str(tmp_path / ".cache")},
            capture_output=True,
            timeout=120,
        )
        for c in d.ok("ps", "-aq", "--filter", "label=com.docker.compose.project=cart").split():
            d.berth("rm", "-f", "-v", c)


def test_logout(ui_daemon: Daemon, browser: webdriver.Chrome) -> None:
    """Log out ends the session on the server: the page shows the way back in, and the old
    cookie, kept by hand, opens nothing."""
    d, drv = ui_daemon, browser
    go(drv, d, "#/containers")
    cookie = drv.get_cookie("berth_ui")
    assert cookie
    css(drv, "#logout").click()
    wait(
        drv,
        lambda: "open the URL with ?token=" in drv.find_element(By.TAG_NAME, "body").text,
        what="logout did not end the session",
    )
    assert drv.get_cookie("berth_ui") is None
    assert drv.execute_script("return localStorage.getItem('berth-session')") is None
    base = ui_url(d).split("/?")[0]
    req = urllib.request.Request(
        base + "/api/containers", headers={"Cookie": f"berth_ui={cookie['value']}"}
    )
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 401


def test_screenshots_kept(shots: Path) -> None:
    """The artefacts: a png per page the tests drove (in $BERTH_UI_SHOTS's directory if set)."""
    names = {p.stem for p in shots.glob("*.png")}
    if not names:
        pytest.skip("no page test ran")
    assert all((shots / f"{n}.png").stat().st_size > 1000 for n in names)
