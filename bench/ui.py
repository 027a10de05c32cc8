#!/usr/bin/env python3
"""Issue 19's figures for the dashboard (`berthd --ui`), on a private berthd:

- the containers page with 200 containers: the time to its JSON (`GET /api/containers`,
  median of 20), and, where Debian's chromium and chromium-driver are installed, the whole
  page in headless Chromium, from navigation to the list drawn (median of 10); target < 300 ms;
- berthd's CPU while 50 pages watch the live stats of 50 running containers (one SSE stream
  each, a sample a second), over a 20 s window, minus berthd's CPU over the same window with
  nobody watching; target < 5% of one core. Then the same 50 feeds as the page asks for them
  now: all on one `/api/live` WebSocket (what the browser's shared worker holds).

    .venv/bin/python bench/ui.py [--containers 200] [--watched 50] [--window 20] [--bip CIDR]

On this machine (2 cores shared with other work, load average about 7, 2026-12-01): the JSON
of 200 containers in a median 4.3 ms; the whole page in headless Chromium in a median 222 ms
(min 135, max 498); berthd's CPU with 50 stats streams 2.65% of a core (idle 0.05%). The
50 feeds on one /api/live socket: 2.65% of a core, where SSE gave 2.35% in the same run (60
containers, load average about 4.5).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import aiohttp
from _engines import BIN, ROOT, berthd

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def jar() -> aiohttp.CookieJar:
    return aiohttp.CookieJar(unsafe=True)  # the cookie of an IP address (127.0.0.1)


async def login(session: aiohttp.ClientSession, url: str) -> str:
    """The token's exchange: the cookie, and the session's secret (the login's page holds it
    for the browser's storage), which every later request of `session` shows, as the page's
    own do."""
    async with session.get(url, allow_redirects=False) as r:
        assert r.status == 200, r.status
        secret = (await r.text()).split('name="berth-session" content="')[1].split('"')[0]
    session.headers["X-CSRF-Token"] = secret
    return secret


async def json_times(url: str, n: int) -> tuple[list[float], int]:
    base = url.split("/?")[0]
    async with aiohttp.ClientSession(cookie_jar=jar()) as s:
        await login(s, url)
        times, count = [], 0
        for _ in range(n):
            t = time.perf_counter()
            async with s.get(base + "/api/containers") as r:
                count = len(await r.json())
            times.append(time.perf_counter() - t)
    return times, count


def page_times(url: str, n: int) -> list[float] | None:
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--no-proxy-server",
        "--disable-background-networking",
    ):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        drv.get(url)  # the token's exchange, once
        base = url.split("/?")[0]
        out: list[float] = []
        parts: list[list[float]] = []
        for _ in range(n + 1):
            drv.get("about:blank")
            drv.get(base + "/#/containers")
            t0 = time.time()
            while True:
                ms = drv.execute_script(
                    "return document.getElementById('main').getAttribute('data-loaded-ms')"
                )
                if ms:
                    out.append(float(ms) / 1000)
                    parts.append(
                        drv.execute_script(
                            "const n = performance.getEntriesByType('navigation')[0];"
                            "const a = performance.getEntriesByType('resource').find("
                            "  e => e.name.endsWith('/api/containers'));"
                            "return [n.responseEnd, n.domContentLoadedEventEnd,"
                            "        a ? a.startTime : 0, a ? a.responseEnd : 0];"
                        )
                    )
                    break
                if time.time() - t0 > 30:
                    raise SystemExit("the containers page did not load")
                time.sleep(0.02)
        cols = list(zip(*parts[1:], strict=True))
        print(
            "  where the time goes (medians, ms from navigation): page received "
            f"{statistics.median(cols[0]):.0f}, scripts run {statistics.median(cols[1]):.0f},"
            f" list asked {statistics.median(cols[2]):.0f}, list received "
            f"{statistics.median(cols[3]):.0f}"
        )
        return out[1:]  # the first warms the cache
    finally:
        drv.quit()


async def watch_stats(url: str, ids: list[str], seconds: float) -> int:
    """Listen to the stats of `ids` for `seconds`; the number of samples received."""
    base = url.split("/?")[0]
    got = 0
    async with aiohttp.ClientSession(
        cookie_jar=jar(), timeout=aiohttp.ClientTimeout(total=None)
    ) as s:
        await login(s, url)

        async def one(cid: str) -> None:
            nonlocal got
            async with s.get(f"{base}/api/containers/{cid}/stats") as r:
                async for line in r.content:
                    if line.startswith(b"data: "):
                        got += 1

        tasks = [asyncio.ensure_future(one(c)) for c in ids]
        await asyncio.sleep(seconds)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return got


async def watch_live(url: str, ids: list[str], seconds: float) -> int:
    """The same, as the page does it: every feed on one /api/live WebSocket."""
    base = url.split("/?")[0]
    got = 0
    async with aiohttp.ClientSession(
        cookie_jar=jar(), timeout=aiohttp.ClientTimeout(total=None)
    ) as s:
        csrf = await login(s, url)
        ws_url = base.replace("http", "ws", 1) + f"/api/live?csrf={csrf}"
        async with s.ws_connect(ws_url, headers={"Origin": base}) as ws:
            for i, cid in enumerate(ids):
                await ws.send_json({"sub": f"s{i}", "path": f"/api/containers/{cid}/stats"})

            async def count() -> None:
                nonlocal got
                async for msg in ws:
                    if msg.type is aiohttp.WSMsgType.TEXT and '"event": ""' in msg.data:
                        got += 1

            task = asyncio.ensure_future(count())
            await asyncio.sleep(seconds)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--containers", type=int, default=200)
    ap.add_argument("--watched", type=int, default=50)
    ap.add_argument("--window", type=float, default=20.0)
    ap.add_argument("--bip", default="10.197.68.1/24", help="the private berthd's bridge subnet")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    with tempfile.TemporaryDirectory(prefix="berth-bench-ui-") as tmp:
        base = Path(tmp)
        rootfs = base / "busybox.tar"
        subprocess.run(["sh", str(ROOT / "scripts" / "mkrootfs.sh"), str(rootfs)], check=True)
        (base / "b").mkdir()
        with berthd(base / "b", rootfs, ("--ui", "127.0.0.1:0"), name="uibench", bip=a.bip) as env:
            url = (base / "b" / "run" / "ui-url").read_text().strip()
            berth = str(BIN / "berth")
            running = []
            t = time.perf_counter()
            for i in range(a.containers):
                if i < a.watched:
                    r = subprocess.run(
                        [berth, "run", "-d", "--network", "none", "benchbox", "sleep", "3600"],
                        env=env,
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    running.append(r.stdout.strip())
                else:
                    subprocess.run(
                        [berth, "create", "--network", "none", "benchbox", "true"],
                        env=env,
                        capture_output=True,
                        check=True,
                    )
            print(
                f"made {a.containers} containers ({a.watched} running) in "
                f"{time.perf_counter() - t:.1f} s"
            )
            times, count = asyncio.run(json_times(url, 20))
            print(
                f"containers page, JSON of {count} containers: median "
                f"{statistics.median(times) * 1000:.1f} ms (min {min(times) * 1000:.1f}, "
                f"max {max(times) * 1000:.1f})"
            )
            pages = page_times(url, 10)
            if pages is None:
                print("containers page in Chromium: skipped (no chromium/chromium-driver)")
            else:
                print(
                    f"containers page in headless Chromium, navigation to list drawn: median "
                    f"{statistics.median(pages) * 1000:.1f} ms (min {min(pages) * 1000:.1f}, "
                    f"max {max(pages) * 1000:.1f}); target < 300 ms"
                )
            pid = int(env["BENCH_PID"])
            c0 = cpu_seconds(pid)
            time.sleep(a.window)
            idle = (cpu_seconds(pid) - c0) / a.window
            c0 = cpu_seconds(pid)
            samples = asyncio.run(watch_stats(url, running, a.window))
            busy = (cpu_seconds(pid) - c0) / a.window
            print(
                f"berthd CPU with {len(running)} live stats streams: {busy * 100:.2f}% of a "
                f"core ({samples} samples in {a.window:.0f} s), idle {idle * 100:.2f}%, "
                f"the streams' share {(busy - idle) * 100:.2f}%; target < 5%"
            )
            c0 = cpu_seconds(pid)
            samples = asyncio.run(watch_live(url, running, a.window))
            busy = (cpu_seconds(pid) - c0) / a.window
            print(
                f"berthd CPU with {len(running)} live stats feeds on one /api/live socket: "
                f"{busy * 100:.2f}% of a core ({samples} samples in {a.window:.0f} s), "
                f"the feeds' share {(busy - idle) * 100:.2f}%; target < 5%"
            )


if __name__ == "__main__":
    main()
