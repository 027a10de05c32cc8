// The containers page: state, image, ports, uptime; the lifecycle actions; filter and search.
// The list follows berthd's events: it is fetched again when a container changes.

import { ContainerRow, del, get, post, stream } from "../api";
import { Child, clear, h, shortId } from "../dom";
import { notify, Cleanup } from "../notify";

export async function containerAction(id: string, action: string, name: string): Promise<boolean> {
  try {
    if (action === "remove") {
      if (!confirm(`Remove container ${name}? It is stopped first if it runs.`)) return false;
      await del(`/api/containers/${encodeURIComponent(id)}?force=1`);
    } else {
      await post(`/api/containers/${encodeURIComponent(id)}/${action}`);
    }
    notify(`${action}: ${name}`);
    return true;
  } catch (e) {
    notify(`${action} ${name}: ${(e as Error).message}`, true);
    return false;
  }
}

// the actions that apply to a container in its state, as buttons; a click is handled by
// `onActionClick` on an ancestor (one listener for a whole list)
export function actionButtons(c: { id: string; name: string; running: boolean; paused: boolean }): HTMLElement {
  const btn = (action: string, label: string, cls = "") =>
    h("button", { class: `btn ${cls}`, "data-action": action, "data-id": c.id, "data-name": c.name, title: `${label} ${c.name}` }, label);
  const out = h("span", { class: "actions" });
  if (c.paused) out.append(btn("unpause", "Unpause"));
  else if (c.running) out.append(btn("stop", "Stop"), btn("kill", "Kill"), btn("pause", "Pause"));
  else out.append(btn("start", "Start"));
  out.append(btn("restart", "Restart"), btn("remove", "Remove", "danger"));
  return out;
}

export function onActionClick(el: HTMLElement, after: () => void): void {
  el.addEventListener("click", (ev) => {
    const b = (ev.target as HTMLElement).closest("button[data-action]") as HTMLButtonElement | null;
    const id = b?.getAttribute("data-id");
    if (!b || !id || b.disabled) return;
    b.disabled = true;
    void containerAction(id, b.getAttribute("data-action")!, b.getAttribute("data-name") ?? id).then(after);
  });
}

// a container event that changes what the list shows (not an exec's, nor a health probe's
// run, which come every few seconds from a container with a health check)
export function changesTheList(ev: { type: string; action: string }): boolean {
  return ev.type === "container" && !ev.action.startsWith("exec_");
}

export function stateBadge(state: string, health = ""): HTMLElement {
  return h("span", { class: `badge state-${state}` }, state, health ? ` (${health})` : "");
}

function portLinks(c: ContainerRow): Child[] {
  return c.ports.map((p) => {
    const text = `${p.hostIp || "0.0.0.0"}:${p.hostPort}→${p.port}/${p.proto}`;
    if (p.proto !== "tcp") return h("span", { class: "port" }, text);
    const host = !p.hostIp || p.hostIp === "0.0.0.0" || p.hostIp === "::" ? location.hostname : p.hostIp;
    return h("a", { class: "port", href: `http://${host}:${p.hostPort}/`, target: "_blank", rel: "noopener noreferrer" }, text);
  });
}

export function containersPage(root: HTMLElement): Cleanup {
  let rows: ContainerRow[] = [];
  const search = h("input", { type: "search", id: "search", placeholder: "Search name, image, ID…", autocomplete: "off" });
  const stateSel = h("select", { id: "state-filter" },
    ...["all", "running", "paused", "exited", "created", "restarting", "dead"].map((s) => h("option", { value: s }, s)));
  const count = h("span", { class: "count" });
  const body = h("div", { id: "containers" });
  root.append(
    h("h1", {}, "Containers"),
    h("div", { class: "toolbar" }, search, stateSel, count,
      h("a", { class: "btn primary", id: "new-container", href: "#/create" }, "New container")),
    body);

  const draw = () => {
    const q = search.value.trim().toLowerCase();
    const st = stateSel.value;
    const shown = rows.filter((c) => (st === "all" || c.state === st) &&
      (!q || c.name.toLowerCase().includes(q) || c.image.toLowerCase().includes(q) || c.id.startsWith(q)));
    count.textContent = `${shown.length} of ${rows.length}`;
    clear(body);
    if (!shown.length) {
      body.append(h("p", { class: "empty" }, rows.length ? "No container matches." : "No containers."));
      return;
    }
    const tbody = h("tbody", {}, shown.map((c) => h("tr", { "data-id": c.id, "data-name": c.name },
      h("td", {}, h("a", { href: `#/containers/${c.id}`, class: "cname" }, c.name), h("div", { class: "sub" }, shortId(c.id))),
      h("td", {}, c.image),
      h("td", {}, stateBadge(c.state, c.health)),
      h("td", { class: "status" }, c.status),
      h("td", {}, portLinks(c)),
      h("td", {}, actionButtons(c)))));
    body.append(h("table", { class: "list" },
      h("thead", {}, h("tr", {}, ["Name", "Image", "State", "Status / uptime", "Ports", "Actions"].map((x) => h("th", {}, x)))),
      tbody));
  };

  let pending: number | undefined;
  async function refresh(): Promise<void> {
    try {
      rows = await get<ContainerRow[]>("/api/containers");
      draw();
      // when the list was drawn, in ms since the navigation began (bench/ui.py reads it)
      root.setAttribute("data-loaded-ms", performance.now().toFixed(1));
    } catch (e) {
      notify(`containers: ${(e as Error).message}`, true);
    }
  }
  onActionClick(body, () => void refresh());
  search.addEventListener("input", draw);
  stateSel.addEventListener("change", draw);
  void refresh();
  // the list follows the daemon's container events (one fetch per burst)
  const es = stream<{ type: string; action: string }>("/api/events", (ev) => {
    if (!changesTheList(ev)) return;
    clearTimeout(pending);
    pending = window.setTimeout(() => void refresh(), 250);
  });
  // "Up 5 minutes" ages: a fetch a minute keeps it true
  const timer = window.setInterval(() => void refresh(), 60000);
  return () => { es.close(); clearTimeout(pending); clearInterval(timer); };
}
