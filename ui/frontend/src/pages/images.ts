// Images: the list with sizes and what uses them, remove, prune, and each image's layers
// with the Dockerfile step that made each (its history).

import { HistoryRow, ImageRow, del, get, post } from "../api";
import { ago, bytes, clear, h, shortId, table } from "../dom";
import { notify } from "../main";

export function imagesPage(root: HTMLElement): void {
  const body = h("div", { id: "images" });
  const detail = h("div", { id: "image-detail" });
  const prune = h("button", { class: "btn", id: "prune-images", onclick: async () => {
    if (!confirm("Remove dangling images (untagged, unused)?")) return;
    try {
      const removed = await post<{ ref: string; deleted: boolean }[]>("/api/images/prune");
      notify(`pruned: ${removed.filter((r) => r.deleted).length} image(s) deleted`);
    } catch (e) { notify(`prune: ${(e as Error).message}`, true); }
    void load();
  } }, "Prune dangling");
  root.append(h("h1", {}, "Images"), h("div", { class: "toolbar" }, prune), body, detail);

  // one row per tag, as `berth images` shows them: remove takes the row's tag away (and the
  // image with its last one); an untagged image is one row, removed by its ID
  type Line = { img: ImageRow; ref: string };
  const history = async ({ img, ref }: Line) => {
    clear(detail);
    const name = ref;
    try {
      const rows = await get<HistoryRow[]>(`/api/images/${encodeURIComponent(img.id)}/history`);
      detail.append(h("h2", {}, `Layers of ${name}`),
        table(["Layer", "Created", "Size", "Step (created by)"], rows.map((r) => [
          r.id === "<missing>" ? "<missing>" : shortId(r.id), ago(r.created), bytes(r.size),
          h("code", {}, r.createdBy.replace(/^\/bin\/sh -c #\(nop\)\s*/, ""))]), { id: "history" }));
    } catch (e) { notify(`history: ${(e as Error).message}`, true); }
  };

  const remove = async ({ img, ref }: Line) => {
    const name = ref;
    if (!confirm(`Remove image ${name}?`)) return;
    try {
      await del(`/api/images/${encodeURIComponent(ref === "<none>" ? img.id : ref)}`);
      notify(`removed ${name}`);
    } catch (e) { notify(`remove ${name}: ${(e as Error).message}`, true); }
    void load();
  };

  const load = async () => {
    let rows: ImageRow[];
    try { rows = await get<ImageRow[]>("/api/images"); } catch (e) { notify((e as Error).message, true); return; }
    clear(body);
    const lines: Line[] = rows.flatMap((img) => img.tags.length ? img.tags.map((ref) => ({ img, ref })) : [{ img, ref: "<none>" }]);
    body.append(lines.length ? table(["Repository:tag", "ID", "Created", "Size", "Used by", ""],
      lines.map((r) => [
        r.ref, shortId(r.img.id), ago(r.img.created), bytes(r.img.size),
        r.img.usedBy.length ? h("span", { class: "users" }, r.img.usedBy.flatMap((n, i) => [i ? ", " : "", h("a", { href: `#/containers/${encodeURIComponent(n)}` }, n)])) : "—",
        h("span", { class: "actions" },
          h("button", { class: "btn", "data-action": "layers", onclick: () => void history(r) }, "Layers"),
          h("button", { class: "btn danger", "data-action": "remove", onclick: () => void remove(r) }, "Remove"))]),
      { class: "list" }) : h("p", { class: "empty" }, "No images."));
  };
  void load();
}
