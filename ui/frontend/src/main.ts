// berth's dashboard: a hash router over its pages. Each page renders into #main and hands
// back what stops its live streams when the page goes.

import { post } from "./api";
import { h, clear } from "./dom";
import { Cleanup } from "./notify";
import { containersPage } from "./pages/containers";
import { forgetSecret, secret } from "./session";
import { createPage } from "./pages/create";
import { imagesPage } from "./pages/images";
import { networksPage, volumesPage } from "./pages/netvol";
import { eventsPage, systemPage } from "./pages/system";
import { projectsPage } from "./pages/projects";

type Page = (root: HTMLElement, arg: string) => Cleanup | void;

// One container's page holds the terminal (xterm.js) and the graphs (uPlot), most of the
// bundle: it loads when first opened, so the containers list does not wait for it.
const containerPage: Page = (root, arg) => {
  let cleanup: Cleanup | void;
  let gone = false;
  void import("./pages/container").then((m) => { if (!gone) cleanup = m.containerPage(root, arg); });
  return () => { gone = true; cleanup?.(); };
};

const routes: [RegExp, Page, string][] = [
  [/^#\/containers\/([0-9a-zA-Z_.-]+)$/, containerPage, "containers"],
  [/^#\/(?:containers)?$/, containersPage, "containers"],
  [/^#\/create$/, createPage, "containers"],
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
  if (!secret()) {
    // the cookie came, but this origin's storage has no session: the token's URL gives one
    main.appendChild(h("p", { id: "no-session" },
      "This browser has no session of the dashboard at this address: open the URL with ?token= that berthd printed."));
    return;
  }
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

// logout: the session ends on the server; the page then shows what to do to come back
document.getElementById("logout")?.addEventListener("click", () => {
  post("/api/logout").catch(() => undefined).finally(() => { cleanup?.(); forgetSecret(); location.replace("/"); });
});

window.addEventListener("hashchange", route);
route();
