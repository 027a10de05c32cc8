// Events as a live feed, and the system's disk usage.

import { DiskUsage, EventRow, get, stream } from "../api";
import { bytes, h, table } from "../dom";
import { Cleanup, notify } from "../notify";

const MAX_EVENTS = 500;

export function eventsPage(root: HTMLElement): Cleanup {
  const filter = h("select", { id: "event-type" }, ...["all", "container", "image", "network", "volume"].map((t) => h("option", { value: t }, t)));
  const tbody = h("tbody", { id: "events" });
  root.append(h("h1", {}, "Events"), h("div", { class: "toolbar" }, "Type ", filter),
    h("table", { class: "list" }, h("thead", {}, h("tr", {}, ["Time", "Type", "Action", "Object"].map((x) => h("th", {}, x)))), tbody));
  const es = stream<EventRow>("/api/events", (ev) => {
    const row = h("tr", { "data-type": ev.type, class: filter.value === "all" || filter.value === ev.type ? "" : "hidden" },
      h("td", {}, new Date(ev.time * 1000).toLocaleTimeString()), h("td", {}, ev.type), h("td", {}, ev.action),
      h("td", {}, ev.type === "container" ? h("a", { href: `#/containers/${ev.id}` }, ev.name || ev.id.slice(0, 12)) : (ev.name || ev.id.slice(0, 19))));
    tbody.prepend(row);
    while (tbody.childElementCount > MAX_EVENTS) tbody.lastElementChild?.remove();
  });
  filter.addEventListener("change", () => {
    for (const tr of tbody.querySelectorAll("tr")) tr.classList.toggle("hidden", filter.value !== "all" && tr.getAttribute("data-type") !== filter.value);
  });
  return () => es.close();
}

export function systemPage(root: HTMLElement): void {
  const body = h("div", { id: "df" });
  root.append(h("h1", {}, "Disk usage"), body);
  void get<DiskUsage>("/api/df").then((d) => {
    body.append(table(["Type", "Total", "Active", "Size"], [
      ["Images", d.images.count, d.images.active, bytes(d.images.size)],
      ["Containers", d.containers.count, d.containers.active, bytes(d.containers.size)],
      ["Local volumes", d.volumes.count, d.volumes.active, bytes(d.volumes.size)],
    ].map((r) => r.map(String)), { class: "list" }));
  }, (e: Error) => notify(`disk usage: ${e.message}`, true));
}
