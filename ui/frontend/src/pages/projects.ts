// Compose projects, from the labels compose leaves on containers: services and their
// containers, up / start / stop / restart of a whole project, the scale of each service, the
// logs of all its services interleaved, and down (its containers and networks go, as with
// compose down). berthd has no compose file: up starts what the project has (in depends_on
// order) and scale copies a service's own container; a service with none is made from the
// record `berth compose up` left with berthd. A changed file needs `berth compose up`.

import { ContainerRow, get, post, stream } from "../api";
import { Live } from "../live";
import { clear, h } from "../dom";
import { Cleanup, notify } from "../notify";
import { changesTheList, stateBadge } from "./containers";

interface Project {
  name: string; workingDir: string; configFiles: string; running: number; total: number;
  recorded: boolean;
  services: { name: string; containers: ContainerRow[]; recorded: boolean; needsCompose: string }[];
}
interface ProjectLine { c: string; svc: string; s: "out" | "err"; t: string; l: string }

export function projectsPage(root: HTMLElement): Cleanup {
  const body = h("div", { id: "projects" });
  const logs = h("div", { id: "project-logs" });
  root.append(h("h1", {}, "Compose projects"), body, logs);
  let es: Live | undefined;

  const showLogs = (name: string) => {
    es?.close();
    clear(logs);
    const box = h("div", { class: "logs", id: "project-log-lines" });
    logs.append(h("h2", {}, `Logs of ${name} (all services)`), box);
    es = stream<ProjectLine>(`/api/projects/${encodeURIComponent(name)}/logs?tail=100`, (l) => {
      box.append(h("div", { class: `line ${l.s}`, "data-container": l.c },
        h("span", { class: "ts" }, l.t.slice(11, 23)), " ", h("span", { class: "svc" }, l.c), " ", l.l));
      while (box.childElementCount > 5000) box.firstElementChild?.remove();
      box.scrollTop = box.scrollHeight;
    });
  };

  const act = async (name: string, verb: string) => {
    if (verb === "down" && !confirm(`Take ${name} down? Its containers and networks are removed; its volumes are kept.`)) return;
    try {
      const r = await post<{ containers: string[] }>(`/api/projects/${encodeURIComponent(name)}/${verb}`);
      notify(`${verb} ${name}: ${r.containers.length} container(s)`);
    } catch (e) { notify(`${verb} ${name}: ${(e as Error).message}`, true); }
    void load();
  };

  const scale = async (name: string, svc: string, input: HTMLInputElement) => {
    const n = Number(input.value);
    typed.delete(`${name}/${svc}`);
    if (!Number.isInteger(n) || n < 0) { notify(`scale ${svc}: not a number of replicas`, true); return; }
    try {
      const r = await post<{ created: string[]; removed: string[] }>(
        `/api/projects/${encodeURIComponent(name)}/services/${encodeURIComponent(svc)}/scale?replicas=${n}`);
      notify(`scale ${svc} to ${n}: ${r.created.length} created, ${r.removed.length} removed`);
    } catch (e) { notify(`scale ${svc}: ${(e as Error).message}`, true); }
    void load();
  };

  // what was typed in a replicas box outlives the list's redraws (each container event)
  const typed = new Map<string, string>();
  // a service with no container is made from berth compose up's record of it, if berthd has
  // one (and the service needs nothing but a create: no hooks, no files copied in)
  const scaler = (name: string, s: Project["services"][number]) => {
    const svc = s.name, count = s.containers.length;
    const key = `${name}/${svc}`;
    const stuck = count === 0 && (!s.recorded || s.needsCompose !== "");
    const why = !s.recorded ? "no container to copy and no record of berth compose up: run it" : `only berth compose up can make it (${s.needsCompose})`;
    const input = h("input", { type: "number", min: 0, max: 100, value: typed.get(key) ?? count, class: "replicas", "aria-label": `replicas of ${svc}`,
      oninput: () => typed.set(key, input.value) });
    return h("span", { class: "scale", "data-service": svc }, svc, " ", input,
      h("button", { class: "btn", "data-action": "scale", disabled: stuck, title: stuck ? why : "as many containers of this service", onclick: () => void scale(name, svc, input) }, "Scale"));
  };

  const load = async () => {
    let rows: Project[];
    try { rows = await get<Project[]>("/api/projects"); } catch (e) { notify((e as Error).message, true); return; }
    clear(body);
    if (!rows.length) {
      body.append(h("p", { class: "empty" }, "No compose projects (containers with com.docker.compose.project labels)."));
      return;
    }
    for (const p of rows) {
      body.append(h("section", { class: "project", "data-project": p.name },
        h("h2", {}, p.name, " ", h("span", { class: "sub" }, `${p.running} of ${p.total} running`, p.workingDir ? ` · ${p.workingDir}` : "",
          p.recorded ? h("span", { class: "recorded", title: "berth compose up left its services' create requests with berthd: up and scale can make containers of a service that has none" }, " · recorded") : "")),
        h("span", { class: "actions" },
          h("button", { class: "btn", "data-action": "up", title: "start all its containers, each service after those it depends on (and make those of a recorded service that has none)", onclick: () => void act(p.name, "up") }, "Up"),
          ...["start", "stop", "restart"].map((v) => h("button", { class: "btn", "data-action": v, onclick: () => void act(p.name, v) }, v[0].toUpperCase() + v.slice(1))),
          h("button", { class: "btn", "data-action": "logs", onclick: () => showLogs(p.name) }, "Logs"),
          h("button", { class: "btn danger", "data-action": "down", title: "remove its containers and networks (as compose down)", onclick: () => void act(p.name, "down") }, "Down")),
        h("div", { class: "scales" }, p.services.map((s) => scaler(p.name, s))),
        h("table", { class: "list" },
          h("thead", {}, h("tr", {}, ["Service", "Container", "State", "Status"].map((x) => h("th", {}, x)))),
          h("tbody", {}, p.services.flatMap((s) => s.containers.map((c) => h("tr", { "data-name": c.name },
            h("td", {}, s.name), h("td", {}, h("a", { href: `#/containers/${c.id}` }, c.name)),
            h("td", {}, stateBadge(c.state, c.health)), h("td", {}, c.status))))))));
    }
  };
  void load();
  let pending: number | undefined;
  const events = stream<{ type: string; action: string }>("/api/events", (ev) => {
    if (!changesTheList(ev)) return;
    clearTimeout(pending);
    pending = window.setTimeout(() => void load(), 300);
  });
  return () => { es?.close(); events.close(); clearTimeout(pending); };
}
