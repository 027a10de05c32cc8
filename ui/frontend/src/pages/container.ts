// One container: its inspect as a readable page, environment (secrets masked by berthd),
// mounts, networks, live CPU and memory graphs, logs that follow with search and download,
// processes, and a terminal over exec.

import uPlot from "uplot";
import { Terminal } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import { ApiError, ContainerDetail, LogLine, StatsPoint, get, logsUrl, stream, terminalUrl } from "../api";
import { bytes, clear, h, table } from "../dom";
import { linkHandler } from "../links";
import { Cleanup, notify } from "../notify";
import { actionButtons, onActionClick, stateBadge } from "./containers";

const TABS = ["overview", "env", "mounts", "networks", "stats", "logs", "processes", "terminal"] as const;
type Tab = typeof TABS[number];
const MAX_LOG_LINES = 5000;
const GRAPH_POINTS = 120;

export function containerPage(root: HTMLElement, id: string): Cleanup {
  let stop: Cleanup | undefined;
  let detail: ContainerDetail | undefined;
  const head = h("div", { class: "head" });
  const tabs = h("div", { class: "tabs" });
  const pane = h("div", { class: "pane", id: "pane" });
  root.append(h("p", {}, h("a", { href: "#/containers" }, "← Containers")), head, tabs, pane);
  onActionClick(head, () => void load().then(() => show(current)));
  let current: Tab = "overview";

  const show = (tab: Tab) => {
    stop?.();
    stop = undefined;
    current = tab;
    for (const b of tabs.querySelectorAll("button")) b.classList.toggle("active", b.getAttribute("data-tab") === tab);
    clear(pane);
    if (!detail) return;
    stop = renderTab(tab, detail, pane) ?? undefined;
  };
  for (const t of TABS) tabs.append(h("button", { class: "tab", "data-tab": t, onclick: () => show(t) }, t));

  const load = async () => {
    try {
      detail = await get<ContainerDetail>(`/api/containers/${encodeURIComponent(id)}`);
    } catch (e) {
      if (detail && (e as ApiError).status === 404) { location.hash = "#/containers"; return; }   // removed here
      clear(head);
      head.append(h("h1", {}, id), h("p", { class: "error" }, (e as Error).message));
      return;
    }
    clear(head);
    head.append(h("h1", {}, detail.name, " ", stateBadge(detail.state, detail.health)),
      h("div", { class: "sub" }, detail.image, " · ", detail.status),
      actionButtons(detail));
    if (!stop) show(current);
  };
  void load();
  return () => stop?.();
}

function renderTab(tab: Tab, d: ContainerDetail, pane: HTMLElement): Cleanup | void {
  switch (tab) {
    case "overview":
      pane.append(table(["Field", "Value"], d.general.map(([k, v]) => [k, v]), { class: "kv" }));
      if (d.health) {
        pane.append(h("h2", {}, `Health: ${d.health}`, d.failingStreak ? ` (failing ${d.failingStreak} in a row)` : ""),
          table(["Probe started", "Exit code", "Output"], d.healthLog.map((p) => [p.start.slice(0, 19).replace("T", " "), String(p.exitCode), h("code", {}, p.output)]), { id: "health-log" }));
      }
      if (d.labels.length) pane.append(h("h2", {}, "Labels"), table(["Label", "Value"], d.labels, { class: "kv" }));
      return;
    case "env":
      pane.append(table(["Variable", "Value"], d.env.map((e) => [e.name, e.masked ? h("span", { class: "masked", title: "hidden: the name says it is a secret" }, e.value) : e.value]), { class: "kv", id: "env" }));
      return;
    case "mounts":
      pane.append(d.mounts.length ? table(["Type", "Source", "Destination", "Mode"], d.mounts.map((m) => [m.type, m.source, m.destination, m.rw ? "rw" : "ro"]), { id: "mounts" }) : h("p", { class: "empty" }, "No mounts."));
      return;
    case "networks":
      pane.append(d.networks.length ? table(["Network", "Address", "Gateway", "MAC", "Aliases"], d.networks.map((n) => [n.name, n.ip ? `${n.ip}/${n.prefix}` : "", n.gateway, n.mac, n.aliases.join(", ")]), { id: "networks" }) : h("p", { class: "empty" }, "No networks."));
      return;
    case "stats":
      return statsTab(d, pane);
    case "logs":
      return logsTab(d, pane);
    case "processes":
      void processesTab(d, pane);
      return;
    case "terminal":
      return terminalTab(d, pane);
  }
}

function statsTab(d: ContainerDetail, pane: HTMLElement): Cleanup {
  const now = h("div", { class: "figures", id: "stats-now" }, "waiting for the first sample…");
  const boxes = ["cpu", "mem", "net", "io"].map((k) => h("div", { class: "chart", id: `${k}-chart` }));
  pane.append(now, h("h2", {}, "CPU (% of one core)"), boxes[0], h("h2", {}, "Memory"), boxes[1],
    h("h2", {}, "Network (bytes/s: in, out)"), boxes[2], h("h2", {}, "Block I/O (bytes/s: read, written)"), boxes[3]);
  // the time axis, then each graph's series; network and I/O are rates between two samples
  const t: number[] = [], cpu: number[] = [], mem: number[] = [];
  const rx: number[] = [], tx: number[] = [], br: number[] = [], bw: number[] = [];
  const width = Math.max(300, pane.clientWidth - 20);
  const perSec = (v: number) => `${bytes(v)}/s`;
  const opts = (labels: string[], colors: string[], fmt: (v: number) => string, floor: number): uPlot.Options => ({
    width, height: 160, legend: { show: false },
    series: [{}, ...labels.map((label, i) => ({ label, stroke: colors[i], fill: colors[i] + "22", width: 2 }))],
    axes: [{}, { values: (_u: uPlot, vals: number[]) => vals.map(fmt), size: 80 }],
    scales: { y: { range: (_u: uPlot, _min: number, max: number) => [0, Math.max(max * 1.2, floor)] } },
  });
  const plots = [
    new uPlot(opts(["CPU"], ["#2a7ae2"], (v) => `${v.toFixed(1)}%`, 1), [t, cpu], boxes[0]),
    new uPlot(opts(["Memory"], ["#2e9e5b"], bytes, 1e6), [t, mem], boxes[1]),
    new uPlot(opts(["in", "out"], ["#8e44ad", "#e67e22"], perSec, 1000), [t, rx, tx], boxes[2]),
    new uPlot(opts(["read", "written"], ["#16a085", "#c0392b"], perSec, 1000), [t, br, bw], boxes[3]),
  ];
  let prev: StatsPoint | undefined;
  const rate = (a: number, b: number | undefined, dt: number) => (b === undefined || dt <= 0 || a < b ? 0 : (a - b) / dt);
  const es = stream<StatsPoint>(`/api/containers/${encodeURIComponent(d.id)}/stats`, (p) => {
    const dt = prev ? p.t - prev.t : 0;
    t.push(p.t); cpu.push(p.cpu); mem.push(p.mem);
    rx.push(rate(p.rx, prev?.rx, dt)); tx.push(rate(p.tx, prev?.tx, dt));
    br.push(rate(p.blkRead, prev?.blkRead, dt)); bw.push(rate(p.blkWrite, prev?.blkWrite, dt));
    prev = p;
    if (t.length > GRAPH_POINTS) for (const a of [t, cpu, mem, rx, tx, br, bw]) a.shift();
    plots[0].setData([t, cpu]);
    plots[1].setData([t, mem]);
    plots[2].setData([t, rx, tx]);
    plots[3].setData([t, br, bw]);
    now.textContent = p.running
      ? `CPU ${p.cpu.toFixed(2)}% · memory ${bytes(p.mem)}${p.memLimit ? " / " + bytes(p.memLimit) : ""} · PIDs ${p.pids} · net ${bytes(p.rx)} in / ${bytes(p.tx)} out · block ${bytes(p.blkRead)} read / ${bytes(p.blkWrite)} written`
      : "not running";
    pane.setAttribute("data-samples", String(t.length));
  });
  return () => { es.close(); for (const p of plots) p.destroy(); };
}

function logsTab(d: ContainerDetail, pane: HTMLElement): Cleanup {
  const search = h("input", { type: "search", id: "log-search", placeholder: "Search the log…", autocomplete: "off" });
  const follow = h("input", { type: "checkbox", id: "log-follow", checked: true });
  const box = h("div", { class: "logs", id: "logs" });
  const download = h("a", { class: "btn", id: "log-download", href: logsUrl(d.id), download: `${d.name}.log` }, "Download");
  pane.append(h("div", { class: "toolbar" }, search, h("label", {}, follow, " follow"), download), box);
  const lines: LogLine[] = [];
  const lineEl = (l: LogLine) => h("div", { class: `line ${l.s}` }, h("span", { class: "ts" }, l.t.slice(11, 23)), " ", l.l);
  const matches = (l: LogLine) => !search.value || l.l.toLowerCase().includes(search.value.toLowerCase());
  const redraw = () => {
    clear(box);
    box.append(...lines.filter(matches).map(lineEl));
    if (follow.checked) box.scrollTop = box.scrollHeight;
  };
  search.addEventListener("input", redraw);
  const es = stream<LogLine>(`/api/containers/${encodeURIComponent(d.id)}/logs?tail=500`, (l) => {
    lines.push(l);
    if (lines.length > MAX_LOG_LINES) { lines.shift(); box.firstChild?.remove(); }
    if (matches(l)) box.append(lineEl(l));
    if (follow.checked) box.scrollTop = box.scrollHeight;
  });
  return () => es.close();
}

async function processesTab(d: ContainerDetail, pane: HTMLElement): Promise<void> {
  if (!d.running) { pane.append(h("p", { class: "empty" }, "Not running.")); return; }
  try {
    const top = await get<{ titles: string[]; processes: string[][] }>(`/api/containers/${encodeURIComponent(d.id)}/top`);
    pane.append(table(top.titles, top.processes, { id: "processes" }));
  } catch (e) {
    notify(`processes: ${(e as Error).message}`, true);
  }
}

function terminalTab(d: ContainerDetail, pane: HTMLElement): Cleanup | void {
  if (!d.running) { pane.append(h("p", { class: "empty" }, "Start the container to open a terminal.")); return; }
  let stop: Cleanup | undefined;
  const holder = h("div", {});
  const open = (mode: "terminal" | "attach") => {
    stop?.();
    clear(holder);
    for (const b of bar.querySelectorAll("button")) b.classList.toggle("active", b.getAttribute("data-mode") === mode);
    stop = openTerminal(d, holder, mode);
  };
  const bar = h("div", { class: "toolbar" },
    h("button", { class: "btn", "data-mode": "terminal", onclick: () => open("terminal") }, "Shell (exec)"),
    h("button", { class: "btn", "data-mode": "attach", onclick: () => open("attach") }, "Attach to its console"),
    h("span", { class: "sub" }, d.tty ? "" : "(no tty: the console shows its output, without a prompt)"));
  pane.append(bar, holder);
  open("terminal");
  return () => stop?.();
}

function openTerminal(d: ContainerDetail, holder: HTMLElement, mode: "terminal" | "attach"): Cleanup {
  const box = h("div", { class: "terminal", id: "terminal", "data-mode": mode });
  holder.append(box);
  const term = new Terminal({ cursorBlink: true, fontSize: 14, scrollback: 5000, convertEol: mode === "attach" && !d.tty, linkHandler });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(box);
  fit.fit();
  const ws = new WebSocket(terminalUrl(d.id, term.rows, term.cols, mode));
  ws.binaryType = "arraybuffer";
  const enc = new TextEncoder();
  ws.onmessage = (ev: MessageEvent<ArrayBuffer | string>) => {
    term.write(typeof ev.data === "string" ? ev.data : new Uint8Array(ev.data));
  };
  ws.onclose = () => { term.write("\r\n[session closed]\r\n"); box.setAttribute("data-closed", "1"); };
  ws.onopen = () => {
    box.setAttribute("data-open", "1");
    term.focus();
    // a console attached to shows nothing until the process writes: a newline asks a shell for its prompt
    if (mode === "attach" && d.tty) ws.send(enc.encode("\r"));
  };
  const input = term.onData((s) => { if (ws.readyState === WebSocket.OPEN) ws.send(enc.encode(s)); });
  const resize = term.onResize(({ rows, cols }) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ resize: [rows, cols] }));
  });
  const onWin = () => fit.fit();
  window.addEventListener("resize", onWin);
  // for tests and the curious: what the terminal shows, as text
  (window as unknown as { berthTerminalText: () => string }).berthTerminalText = () => {
    const b = term.buffer.active;
    const out: string[] = [];
    for (let i = 0; i < b.length; i++) out.push(b.getLine(i)?.translateToString(true) ?? "");
    return out.join("\n");
  };
  // for tests: a link activated as a click on it would be, through the terminal's own handler
  (window as unknown as { berthTerminalLink: (uri: string) => void }).berthTerminalLink = (uri) => {
    term.options.linkHandler?.activate(new MouseEvent("click"), uri, { start: { x: 1, y: 1 }, end: { x: 1, y: 1 } });
  };
  return () => { window.removeEventListener("resize", onWin); input.dispose(); resize.dispose(); ws.close(); term.dispose(); };
}
