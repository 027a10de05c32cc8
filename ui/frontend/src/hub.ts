// The one WebSocket (/api/live) that carries every live view of the browser, multiplexed:
// a view is a feed that berthd streams for an SSE route's path. The shared worker
// (live-worker.ts) keeps one hub for all the tabs; a browser without shared workers keeps
// one in each tab (live.ts).

export type Deliver = (event: string, data: unknown) => void;

interface LiveMessage { id: string; event: string; data: unknown }

export class Hub {
  private ws: WebSocket | undefined;
  private queue: string[] = [];
  private subs = new Map<string, Deliver>();
  private n = 0;
  private closed = false;

  constructor(private readonly url: string) {}

  get size(): number { return this.subs.size; }

  subscribe(path: string, deliver: Deliver): string {
    const id = `s${++this.n}`;
    this.subs.set(id, deliver);
    this.send({ sub: id, path });
    return id;
  }

  unsubscribe(id: string): void {
    if (this.subs.delete(id)) this.send({ unsub: id });
  }

  // the socket goes (no view is left on it)
  close(): void {
    this.closed = true;
    this.queue = [];
    this.ws?.close();
  }

  private send(msg: object): void {
    if (this.closed) return;
    const text = JSON.stringify(msg);
    if (this.ws?.readyState === WebSocket.OPEN) { this.ws.send(text); return; }
    this.queue.push(text);
    if (!this.ws) this.open();
  }

  private open(): void {
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => { for (const m of this.queue.splice(0)) ws.send(m); };
    ws.onmessage = (ev: MessageEvent<string>) => {
      let m: LiveMessage;
      try { m = JSON.parse(ev.data) as LiveMessage; } catch { return; }
      const deliver = this.subs.get(m.id);
      if (!deliver) return;
      if (m.event === "end" || m.event === "error") this.subs.delete(m.id);
      deliver(m.event, m.data);
    };
    ws.onclose = () => {
      // berthd went, or the session ended: every view ends (the page shows what it had)
      if (this.ws === ws) this.ws = undefined;
      this.queue = [];
      const subs = [...this.subs.values()];
      this.subs.clear();
      for (const d of subs) d("end", { closed: true });
    };
  }
}
