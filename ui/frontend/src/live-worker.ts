// The shared worker of the dashboard's tabs: it holds the one /api/live WebSocket of the
// browser (a hub per session, by its URL), so that any number of open tabs use one
// connection for all their live views and leave the others to their fetches. A tab talks
// to it through its port: {hello: url}, {tab: lockName}, {sub: localId, path}, {unsub:
// localId}. A port does not say when its tab closes; the tab holds a Web Lock of its own
// name for as long as it lives, and the worker's request of that lock is granted when the
// tab is gone: its views go then (a timer would drop a background tab, whose timers the
// browser slows to one a minute).

import { Hub } from "./hub";

interface Tab { hub?: Hub; views: Map<string, [Hub, string]> }
type Ask = { hello?: string; tab?: string; sub?: string; path?: string; unsub?: string };

declare const self: { onconnect: ((e: MessageEvent) => void) | null; navigator: Navigator };

const hubs = new Map<string, Hub>();
const tabs = new Map<MessagePort, Tab>();

// a hub no tab sends new views to (its session's secret was replaced by a new login's)
// goes with its last view
function release(hub: Hub | undefined): void {
  if (!hub || hub.size > 0) return;
  for (const t of tabs.values()) if (t.hub === hub) return;
  for (const [u, x] of hubs) if (x === hub) hubs.delete(u);
  hub.close();
}

function drop(port: MessagePort): void {
  const tab = tabs.get(port);
  if (!tab) return;
  tabs.delete(port);
  for (const [hub, id] of tab.views.values()) { hub.unsubscribe(id); release(hub); }
  release(tab.hub);
}

self.onconnect = (e: MessageEvent) => {
  const port = e.ports[0];
  const tab: Tab = { views: new Map() };
  tabs.set(port, tab);
  port.onmessage = (ev: MessageEvent<Ask>) => {
    const m = ev.data;
    if (m.hello) {
      let hub = hubs.get(m.hello);
      if (!hub) { hub = new Hub(m.hello); hubs.set(m.hello, hub); }
      const was = tab.hub;
      tab.hub = hub;
      if (was !== hub) release(was);
    } else if (m.tab) {
      if (self.navigator.locks) void self.navigator.locks.request(m.tab, () => drop(port));
    } else if (m.sub && m.path && tab.hub) {
      const local = m.sub;
      const hub = tab.hub;
      const id = hub.subscribe(m.path, (event, data) => {
        if (event === "end" || event === "error") tab.views.delete(local);
        port.postMessage({ sub: local, event, data });
      });
      tab.views.set(local, [hub, id]);
    } else if (m.unsub) {
      const view = tab.views.get(m.unsub);
      tab.views.delete(m.unsub);
      if (view) { view[0].unsubscribe(view[1]); release(view[0]); }
    }
  };
  port.start();
};
