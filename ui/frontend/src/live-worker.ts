// The shared worker of the dashboard's tabs: it holds the one /api/live WebSocket of the
// browser (a hub per session, by its URL), so that any number of open tabs use one
// connection for all their live views and leave the others to their fetches. A tab talks
// to it through its port: {hello: url}, {sub: localId, path}, {unsub: localId}, {alive},
// {bye}; a tab that has said nothing for 30 s (closed without its bye) loses its views.

import { Hub } from "./hub";

interface Tab { hub?: Hub; views: Map<string, string>; seen: number }
type Ask = { hello?: string; sub?: string; path?: string; unsub?: string; alive?: true; bye?: true };

declare const self: { onconnect: ((e: MessageEvent) => void) | null };

const hubs = new Map<string, Hub>();
const tabs = new Map<MessagePort, Tab>();

function drop(port: MessagePort): void {
  const tab = tabs.get(port);
  if (!tab) return;
  for (const id of tab.views.values()) tab.hub?.unsubscribe(id);
  tabs.delete(port);
}

self.onconnect = (e: MessageEvent) => {
  const port = e.ports[0];
  const tab: Tab = { views: new Map(), seen: Date.now() };
  tabs.set(port, tab);
  port.onmessage = (ev: MessageEvent<Ask>) => {
    const m = ev.data;
    tab.seen = Date.now();
    if (m.hello) {
      let hub = hubs.get(m.hello);
      if (!hub) { hub = new Hub(m.hello); hubs.set(m.hello, hub); }
      tab.hub = hub;
    } else if (m.sub && m.path && tab.hub) {
      const local = m.sub;
      const id = tab.hub.subscribe(m.path, (event, data) => {
        if (event === "end" || event === "error") tab.views.delete(local);
        port.postMessage({ sub: local, event, data });
      });
      tab.views.set(local, id);
    } else if (m.unsub) {
      const id = tab.views.get(m.unsub);
      tab.views.delete(m.unsub);
      if (id) tab.hub?.unsubscribe(id);
    } else if (m.bye) {
      drop(port);
    }
  };
  port.start();
};

setInterval(() => {
  const old = Date.now() - 30000;
  for (const [port, tab] of tabs) if (tab.seen < old) drop(port);
}, 10000);
