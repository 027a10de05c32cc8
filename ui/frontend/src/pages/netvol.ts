// Networks (which containers are on each, with their addresses) and volumes (size, who
// mounts them), each with remove.

import { NetworkRow, VolumeRow, del, get } from "../api";
import { ago, bytes, clear, h, table } from "../dom";
import { notify } from "../main";

async function remove(kind: string, path: string, name: string, after: () => void): Promise<void> {
  if (!confirm(`Remove ${kind} ${name}?`)) return;
  try {
    await del(path);
    notify(`removed ${kind} ${name}`);
  } catch (e) { notify(`remove ${name}: ${(e as Error).message}`, true); }
  after();
}

export function networksPage(root: HTMLElement): void {
  const body = h("div", { id: "networks" });
  root.append(h("h1", {}, "Networks"), body);
  const load = async () => {
    let rows: NetworkRow[];
    try { rows = await get<NetworkRow[]>("/api/networks"); } catch (e) { notify((e as Error).message, true); return; }
    clear(body);
    body.append(table(["Name", "Driver", "Subnets", "Containers", ""], rows.map((n) => [
      n.name, n.driver + (n.internal ? " (internal)" : ""), n.subnets.join(", "),
      n.containers.length ? h("ul", { class: "plain" }, n.containers.map((c) => h("li", {},
        h("a", { href: `#/containers/${c.id}` }, c.name), ` ${c.ip}/${c.prefix}`, c.ip6 ? ` ${c.ip6}` : ""))) : "—",
      n.builtin ? "" : h("button", { class: "btn danger", "data-action": "remove", onclick: () => void remove("network", `/api/networks/${encodeURIComponent(n.id)}`, n.name, load) }, "Remove"),
    ]), { class: "list" }));
  };
  void load();
}

export function volumesPage(root: HTMLElement): void {
  const body = h("div", { id: "volumes" });
  root.append(h("h1", {}, "Volumes"), body);
  const load = async () => {
    let rows: VolumeRow[];
    try { rows = await get<VolumeRow[]>("/api/volumes"); } catch (e) { notify((e as Error).message, true); return; }
    clear(body);
    body.append(rows.length ? table(["Name", "Driver", "Size", "Used by", "Created", ""], rows.map((v) => [
      v.name + (v.anonymous ? " (anonymous)" : ""), v.driver, bytes(v.size),
      v.usedBy.length ? v.usedBy.join(", ") : "—", ago(v.created),
      h("button", { class: "btn danger", "data-action": "remove", onclick: () => void remove("volume", `/api/volumes/${encodeURIComponent(v.name)}`, v.name, load) }, "Remove"),
    ]), { class: "list" }) : h("p", { class: "empty" }, "No volumes."));
  };
  void load();
}
