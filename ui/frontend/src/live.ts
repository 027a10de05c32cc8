// A tab's side of the live views: each goes to the browser's shared worker, which carries
// all the tabs' views over one WebSocket (live-worker.ts); without shared workers, the tab
// keeps a hub of its own (still one socket for all its views).

import { Deliver, Hub } from "./hub";

export interface Live { close(): void }

let port: MessagePort | undefined;
let hub: Hub | undefined;
let said = ""; // the socket's URL the worker (or this tab's hub) was last given
let n = 0;
const views = new Map<string, Deliver>();

function url(csrf: string): string {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  return `${proto}//${location.host}/api/live?${new URLSearchParams({ csrf })}`;
}

// the views go over the socket of the session's secret as it is now: a login in another tab
// makes a new session (and cookie), and the next views go over a socket of the new one
function connect(csrf: string): void {
  const u = url(csrf);
  if (u === said) return;
  said = u;
  if (typeof SharedWorker === "undefined") { hub = new Hub(u); return; }
  if (port) { port.postMessage({ hello: u }); return; }
  const worker = new SharedWorker("/static/live-worker.js", { type: "module", name: "berth-live" });
  port = worker.port;
  port.onmessage = (ev: MessageEvent<{ sub: string; event: string; data: unknown }>) => {
    const deliver = views.get(ev.data.sub);
    if (!deliver) return;
    if (ev.data.event === "end" || ev.data.event === "error") views.delete(ev.data.sub);
    deliver(ev.data.event, ev.data.data);
  };
  port.start();
  port.postMessage({ hello: u });
  // the tab holds a lock of its own name while it lives: the worker learns that the tab is
  // gone when the lock is let go (live-worker.ts); its name goes once the lock is held
  const p = port;
  const tab = `berth-tab-${crypto.randomUUID()}`;
  void navigator.locks?.request(tab, () => {
    p.postMessage({ tab });
    return new Promise<void>(() => undefined);
  });
}

export function liveView(csrf: string, path: string, deliver: Deliver): Live {
  connect(csrf);
  if (hub) {
    const h = hub;
    const id = h.subscribe(path, deliver);
    return { close: () => h.unsubscribe(id) };
  }
  const local = `v${++n}`;
  views.set(local, deliver);
  port!.postMessage({ sub: local, path });
  return {
    close: () => {
      if (views.delete(local)) port!.postMessage({ unsub: local });
    },
  };
}
