// Images: the list with sizes and what uses them, remove, prune, and each image's layers
// with the Dockerfile step that made each (its history).

import { HistoryRow, ImageRow, del, get, post, postLines } from "../api";
import { ago, bytes, clear, h, shortId, table } from "../dom";
import { notify } from "../notify";

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
  const ref = h("input", { type: "search", id: "pull-ref", placeholder: "registry.example:5000/name:tag", autocomplete: "off" });
  const progress = h("div", { id: "pull-progress" });
  const pullBtn = h("button", { class: "btn", id: "pull", onclick: () => void pull() }, "Pull");
  // a login for the registry, for this pull only: berthd uses it for the pull and keeps it
  // nowhere; the password leaves the page once the pull is done
  const user = h("input", { type: "text", id: "pull-user", placeholder: "user (registry login)", autocomplete: "off", spellcheck: "false" });
  const password = h("input", { type: "password", id: "pull-password", placeholder: "password", autocomplete: "new-password" });
  root.append(h("h1", {}, "Images"),
    h("div", { class: "toolbar" }, ref, pullBtn, prune),
    h("div", { class: "toolbar pull-login" }, h("span", { class: "sub" }, "Registry login for the pull (optional):"), user, password),
    progress, body, detail);

  // a pull, with a line per layer: its status and a bar of its bytes
  interface PullMessage { status?: string; id?: string; progressDetail?: { current?: number; total?: number }; error?: string }
  const pull = async () => {
    const name = ref.value.trim();
    if (!name) return;
    pullBtn.disabled = true;
    clear(progress);
    const lines = new Map<string, HTMLElement>();
    const overall = h("div", { class: "pull-status", id: "pull-status" }, `pulling ${name}…`);
    progress.append(overall);
    try {
      await postLines<PullMessage>(`/api/images/pull?ref=${encodeURIComponent(name)}`, (m) => {
        if (m.error) { overall.textContent = `error: ${m.error}`; overall.classList.add("error"); return; }
        if (!m.id || !m.progressDetail && !/^(Pulling fs layer|Waiting|Download complete|Pull complete|Already exists|Verifying Checksum|Extracting|Downloading)/.test(m.status ?? "")) {
          overall.textContent = m.status ?? ""; return;
        }
        let el = lines.get(m.id);
        if (!el) { el = h("div", { class: "layer", "data-layer": m.id }); lines.set(m.id, el); progress.append(el); }
        const cur = m.progressDetail?.current ?? 0, total = m.progressDetail?.total ?? 0;
        clear(el);
        el.setAttribute("data-status", m.status ?? "");
        el.append(h("code", {}, m.id), " ", m.status ?? "",
          total > 0 ? h("progress", { max: total, value: cur }) : "", total > 0 ? ` ${bytes(cur)} / ${bytes(total)}` : "");
      }, user.value.trim() ? { username: user.value.trim(), password: password.value } : undefined);
      if (!overall.classList.contains("error")) overall.setAttribute("data-done", "1");
    } catch (e) {
      overall.textContent = `error: ${(e as Error).message}`;
      overall.classList.add("error");
    }
    password.value = "";
    pullBtn.disabled = false;
    void load();
  };

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
