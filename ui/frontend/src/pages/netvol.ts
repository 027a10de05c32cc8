// Networks (which containers are on each, with their addresses) and volumes (size, who
// mounts them), each with remove.

import { NetworkRow, VolumeRow, del, get } from "../api";
import { ago, bytes, clear, h, table } from "../dom";
import { notify } from "../notify";

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

interface DirEntry { name: string; type: string; size: number; mode: string; mtime: number; target: string }
interface DirListing { path: string; entries: DirEntry[]; truncated: boolean }
interface FileView { path: string; size: number; shown: number; binary: boolean; text: string }

// a volume's files, read-only: directories open, a file shows its first bytes
async function browse(box: HTMLElement, vol: string, path: string): Promise<void> {
  const base = `/api/volumes/${encodeURIComponent(vol)}`;
  let ls: DirListing;
  try { ls = await get<DirListing>(`${base}/files?path=${encodeURIComponent(path)}`); } catch (e) { notify((e as Error).message, true); return; }
  clear(box);
  const preview = h("pre", { class: "preview", id: "file-preview" });
  const join = (n: string) => (ls.path === "/" ? "" : ls.path) + "/" + n;
  const up = ls.path === "/" ? null : ls.path.replace(/\/[^/]*$/, "") || "/";
  box.append(h("h2", {}, `Files of ${vol}: `, h("code", { id: "browse-path" }, ls.path)),
    table(["Name", "Mode", "Size", "Modified"], [
      ...(up ? [[h("a", { href: "#", onclick: (ev: Event) => { ev.preventDefault(); void browse(box, vol, up); } }, ".."), "", "", ""]] : []),
      ...ls.entries.map((e) => [
        e.type === "dir" ? h("a", { href: "#", class: "dir", onclick: (ev: Event) => { ev.preventDefault(); void browse(box, vol, join(e.name)); } }, e.name + "/")
          : e.type === "file" ? h("a", { href: "#", class: "file", onclick: async (ev: Event) => {
            ev.preventDefault();
            try {
              const f = await get<FileView>(`${base}/file?path=${encodeURIComponent(join(e.name))}`);
              preview.textContent = f.binary ? `(binary, ${bytes(f.size)})` : f.text + (f.shown < f.size ? `\n… (${bytes(f.size)} in all)` : "");
            } catch (err) { notify((err as Error).message, true); }
          } }, e.name)
          : e.type === "link" ? `${e.name} → ${e.target}` : e.name,
        e.mode, e.type === "dir" ? "" : bytes(e.size), ago(e.mtime)])], { class: "list", id: "browse" }),
    ls.truncated ? h("p", { class: "sub" }, "(only the first entries are shown)") : "", preview);
}

export function volumesPage(root: HTMLElement): void {
  const body = h("div", { id: "volumes" });
  const files = h("div", { id: "volume-files" });
  root.append(h("h1", {}, "Volumes"), body, files);
  const load = async () => {
    let rows: VolumeRow[];
    try { rows = await get<VolumeRow[]>("/api/volumes"); } catch (e) { notify((e as Error).message, true); return; }
    clear(body);
    body.append(rows.length ? table(["Name", "Driver", "Size", "Used by", "Created", ""], rows.map((v) => [
      v.name + (v.anonymous ? " (anonymous)" : ""), v.driver, bytes(v.size),
      v.usedBy.length ? v.usedBy.join(", ") : "—", ago(v.created),
      h("span", { class: "actions" },
        h("button", { class: "btn", "data-action": "browse", onclick: () => void browse(files, v.name, "/") }, "Browse"),
        h("button", { class: "btn danger", "data-action": "remove", onclick: () => void remove("volume", `/api/volumes/${encodeURIComponent(v.name)}`, v.name, load) }, "Remove")),
    ]), { class: "list" }) : h("p", { class: "empty" }, "No volumes."));
  };
  void load();
}
