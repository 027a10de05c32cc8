// berth's dashboard: a hash router over its pages. Each page renders into #main and hands
// back what stops its live streams when the page goes.

import "./app.css";
import { h, clear } from "./dom";
import { containersPage } from "./pages/containers";
import { containerPage } from "./pages/container";
import { imagesPage } from "./pages/images";
import { networksPage, volumesPage } from "./pages/netvol";
import { eventsPage, systemPage } from "./pages/system";
import { projectsPage } from "./pages/projects";

export type Cleanup = () => void;
type Page = (root: HTMLElement, arg: string) => Cleanup | void;

const routes: [RegExp, Page, string][] = [
  [/^#\/containers\/([0-9a-zA-Z_.-]+)$/, containerPage, "containers"],
  [/^#\/(?:containers)?$/, containersPage, "containers"],
  [/^#\/images$/, imagesPage, "images"],
  [/^#\/networks$/, networksPage, "networks"],
  [/^#\/volumes$/, volumesPage, "volumes"],
  [/^#\/projects$/, projectsPage, "projects"],
  [/^#\/events$/, eventsPage, "events"],
  [/^#\/system$/, systemPage, "system"],
];

let cleanup: Cleanup | void;

function route(): void {
  cleanup?.();
  cleanup = undefined;
  const main = document.getElementById("main")!;
  clear(main);
  const hash = location.hash || "#/";
  for (const [re, page, nav] of routes) {
    const m = re.exec(hash);
    if (!m) continue;
    for (const a of document.querySelectorAll("nav a")) {
      a.classList.toggle("active", a.getAttribute("data-nav") === nav);
    }
    cleanup = page(main, m[1] ? decodeURIComponent(m[1]) : "");
    return;
  }
  main.appendChild(h("p", {}, "No such page. ", h("a", { href: "#/" }, "Containers")));
}

window.addEventListener("hashchange", route);
route();

// a message at the top of the page, gone after a while
export function notify(text: string, error = false): void {
  const box = document.getElementById("toast")!;
  const el = h("div", { class: error ? "toast error" : "toast" }, text);
  box.appendChild(el);
  setTimeout(() => el.remove(), error ? 8000 : 3000);
}
