// A new container from a form: an image of the local ones, its name, command, environment,
// published ports, volumes (named or host directories), restart policy and network; created
// (and started) by berthd through the same typed request as the Engine API's create. What
// berthd refuses is shown above the button, as it said it.

import { ImageRow, NetworkRow, get, post } from "../api";
import { clear, h } from "../dom";
import { notify } from "../notify";

interface Created { id: string; name: string; warnings: string[]; started: boolean }

export function createPage(root: HTMLElement): void {
  const image = h("select", { id: "create-image", required: true });
  const name = h("input", { type: "text", id: "create-name", placeholder: "a name berthd picks if empty", autocomplete: "off" });
  const command = h("input", { type: "text", id: "create-command", placeholder: "the image's if empty, e.g. sh -c 'echo hi; sleep 60'", autocomplete: "off" });
  const env = h("textarea", { id: "create-env", rows: 3, placeholder: "NAME=value, one a line", spellcheck: "false" });
  const ports = h("div", { id: "create-ports", class: "rows" });
  const volumes = h("div", { id: "create-volumes", class: "rows" });
  const restart = h("select", { id: "create-restart" },
    ...["no", "always", "unless-stopped", "on-failure"].map((s) => h("option", { value: s }, s)));
  const retries = h("input", { type: "number", id: "create-retries", min: 0, max: 1000, value: 0, class: "short", title: "retries (on-failure)" });
  const network = h("select", { id: "create-network" }, h("option", { value: "bridge" }, "bridge"));
  const tty = h("input", { type: "checkbox", id: "create-tty" });
  const interactive = h("input", { type: "checkbox", id: "create-interactive" });
  const start = h("input", { type: "checkbox", id: "create-start", checked: true });
  const error = h("div", { id: "create-error", class: "form-error", role: "alert", hidden: true });
  const submit = h("button", { type: "submit", class: "btn primary", id: "create-submit" }, "Create");

  const portRow = () => h("div", { class: "row port-row" },
    h("input", { type: "text", class: "host-ip", placeholder: "host address (all)", autocomplete: "off" }),
    h("input", { type: "text", class: "host-port", placeholder: "host port (any)", autocomplete: "off", size: 8 }),
    "→",
    h("input", { type: "text", class: "ctr-port", placeholder: "container port", autocomplete: "off", size: 8 }),
    h("select", { class: "proto" }, ...["tcp", "udp", "sctp"].map((p) => h("option", { value: p }, p))),
    h("button", { type: "button", class: "btn", onclick: (ev: Event) => (ev.target as HTMLElement).parentElement?.remove() }, "✕"));
  const volumeRow = () => h("div", { class: "row volume-row" },
    h("input", { type: "text", class: "source", placeholder: "volume name or /host/path (empty: anonymous)", autocomplete: "off", size: 34 }),
    "→",
    h("input", { type: "text", class: "target", placeholder: "/path/in/container", autocomplete: "off" }),
    h("label", {}, h("input", { type: "checkbox", class: "ro" }), " read-only"),
    h("button", { type: "button", class: "btn", onclick: (ev: Event) => (ev.target as HTMLElement).parentElement?.remove() }, "✕"));
  const addPort = h("button", { type: "button", class: "btn", id: "create-add-port", onclick: () => ports.append(portRow()) }, "Add port");
  const addVolume = h("button", { type: "button", class: "btn", id: "create-add-volume", onclick: () => volumes.append(volumeRow()) }, "Add volume");

  const field = (label: string, ...input: (Node | string)[]) => h("label", { class: "field" }, h("span", {}, label), ...input);
  const form = h("form", { id: "create-form", class: "create-form" },
    field("Image", image),
    field("Name", name),
    field("Command", command),
    field("Environment", env),
    h("div", { class: "field" }, h("span", {}, "Published ports"), ports, addPort),
    h("div", { class: "field" }, h("span", {}, "Volumes"), volumes, addVolume),
    field("Restart policy", h("div", { class: "inline" }, restart, " retries (on-failure) ", retries)),
    field("Network", network),
    h("div", { class: "field checks" }, h("span", {}, "Options"),
      h("label", {}, tty, " TTY"), h("label", {}, interactive, " keep stdin open"), h("label", {}, start, " start it")),
    error,
    h("div", { class: "toolbar" }, submit, h("a", { class: "btn", href: "#/containers" }, "Cancel")));
  root.append(h("h1", {}, "New container"), form);

  const text = (row: Element, sel: string) => (row.querySelector(sel) as HTMLInputElement).value.trim();
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    error.hidden = true;
    const body = {
      image: image.value,
      name: name.value.trim(),
      command: command.value,
      env: env.value.split("\n").map((l) => l.trim()).filter((l) => l),
      ports: [...ports.querySelectorAll(".port-row")].map((r) => ({
        hostIp: text(r, ".host-ip"), hostPort: text(r, ".host-port"), port: text(r, ".ctr-port"),
        proto: (r.querySelector(".proto") as HTMLSelectElement).value })),
      volumes: [...volumes.querySelectorAll(".volume-row")].map((r) => ({
        source: text(r, ".source"), target: text(r, ".target"), readOnly: (r.querySelector(".ro") as HTMLInputElement).checked })),
      restart: restart.value,
      maxRetries: restart.value === "on-failure" ? Number(retries.value) || 0 : 0,
      network: network.value,
      tty: tty.checked,
      interactive: interactive.checked,
      start: start.checked,
    };
    submit.disabled = true;
    post<Created>("/api/containers", body).then((c) => {
      notify(`${c.started ? "created and started" : "created"}: ${c.name}`);
      for (const w of c.warnings) notify(`warning: ${w}`, true);
      location.hash = `#/containers/${encodeURIComponent(c.id)}`;
    }).catch((e: Error) => {
      error.textContent = e.message;
      error.hidden = false;
    }).finally(() => { submit.disabled = false; });
  });

  // the choices: the local images (a tag each, as the images page lists them) and the networks
  void get<ImageRow[]>("/api/images").then((rows) => {
    clear(image);
    const tags = rows.flatMap((r) => r.tags).sort();
    for (const t of tags) image.append(h("option", { value: t }, t));
    if (!tags.length) image.append(h("option", { value: "" }, "no local images: pull one first"));
    image.setAttribute("data-loaded", "1");
  }).catch((e: Error) => notify(`images: ${e.message}`, true));
  void get<NetworkRow[]>("/api/networks").then((rows) => {
    clear(network);
    const names = rows.map((n) => n.name).sort((a, b) => (a === "bridge" ? -1 : b === "bridge" ? 1 : a.localeCompare(b)));
    for (const n of names) network.append(h("option", { value: n }, n));
    network.setAttribute("data-loaded", "1");
  }).catch((e: Error) => notify(`networks: ${e.message}`, true));
}
