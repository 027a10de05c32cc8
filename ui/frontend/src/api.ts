// The dashboard's calls to berthd: JSON over fetch, with the session's secret in a header
// on every call (the cookie goes by itself, and alone opens nothing: session.ts), and the
// live streams.

import { Live, liveView } from "./live";
import { secret } from "./session";

export class ApiError extends Error {
  constructor(public status: number, message: string) { super(message); }
}

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { "Accept": "application/json", "X-CSRF-Token": secret() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, {
    method, headers, credentials: "same-origin", cache: "no-store",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await resp.text();
  let answer: unknown = null;
  try { answer = text ? JSON.parse(text) : null; } catch { answer = { message: text }; }
  if (!resp.ok) {
    const msg = (answer as { message?: string } | null)?.message ?? resp.statusText;
    throw new ApiError(resp.status, msg);
  }
  return answer as T;
}

export const get = <T>(path: string): Promise<T> => call<T>("GET", path);
export const post = <T>(path: string, body?: unknown): Promise<T> => call<T>("POST", path, body);
export const del = <T>(path: string): Promise<T> => call<T>("DELETE", path);

// A POST whose answer is a JSON line per message (a pull's progress), each handed to onLine
// as it comes; `body`, if given, goes as JSON (a pull's login).
export async function postLines<T>(path: string, onLine: (m: T) => void, body?: unknown): Promise<void> {
  const headers: Record<string, string> = { "X-CSRF-Token": secret() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, {
    method: "POST", headers, credentials: "same-origin", cache: "no-store",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!resp.ok || !resp.body) {
    let msg = resp.statusText;
    try { msg = ((await resp.json()) as { message?: string }).message ?? msg; } catch { /* not JSON */ }
    throw new ApiError(resp.status, msg);
  }
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line) onLine(JSON.parse(line) as T);
    }
  }
}

// A live view: what the SSE route at `path` streams, carried with every other view of the
// browser over one WebSocket (live.ts), so that many open tabs do not use up the six
// connections a browser opens to one host. The caller closes it when its page goes.
export function stream<T>(path: string, onData: (d: T) => void, onEnd?: () => void): Live {
  return liveView(secret(), path, (event, data) => {
    if (event === "") onData(data as T);
    else onEnd?.();
  });
}

// the terminal's WebSocket: a shell through exec ("terminal") or the container's own console
// ("attach")
export function terminalUrl(id: string, rows: number, cols: number, mode: "terminal" | "attach" = "terminal"): string {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const q = new URLSearchParams({ rows: String(rows), cols: String(cols), csrf: secret() });
  return `${proto}//${location.host}/api/containers/${encodeURIComponent(id)}/${mode}?${q}`;
}

// the whole log, as a download: a link cannot have headers, the secret goes in its query
export function logsUrl(id: string): string {
  return `/api/containers/${encodeURIComponent(id)}/logs.txt?${new URLSearchParams({ csrf: secret() })}`;
}

export interface Port { hostIp: string; hostPort: string; port: string; proto: string }
export interface ContainerRow {
  id: string; name: string; image: string; imageId: string; state: string; status: string;
  health: string; running: boolean; paused: boolean; created: number; startedAt: string;
  ports: Port[]; command: string;
}
export interface EnvVar { name: string; value: string; masked: boolean }
export interface Mount { type: string; source: string; destination: string; rw: boolean }
export interface NetAttach { name: string; id: string; aliases: string[]; ip: string; prefix: number; gateway: string; mac: string }
export interface ContainerDetail extends ContainerRow {
  general: [string, string][]; labels: [string, string][]; env: EnvVar[]; mounts: Mount[];
  networks: NetAttach[]; tty: boolean;
  healthLog: { start: string; exitCode: number; output: string }[]; failingStreak: number;
}
export interface StatsPoint {
  t: number; running: boolean; cpu: number; mem: number; memLimit: number; pids: number;
  rx: number; tx: number; blkRead: number; blkWrite: number;
}
export interface LogLine { s: "out" | "err"; t: string; l: string }
export interface ImageRow { id: string; tags: string[]; digests: string[]; created: number; size: number; containers: number; usedBy: string[] }
export interface HistoryRow { id: string; created: number; createdBy: string; size: number; comment: string; tags: string[] }
export interface NetworkRow {
  id: string; name: string; driver: string; created: string; internal: boolean; builtin: boolean;
  subnets: string[]; containers: { id: string; name: string; ip: string; prefix: number; ip6: string; mac: string }[];
}
export interface VolumeRow { name: string; driver: string; mountpoint: string; created: number; size: number; refCount: number; anonymous: boolean; usedBy: string[] }
export interface EventRow { time: number; type: string; action: string; id: string; name: string; attrs: Record<string, string> }
export interface DiskUsage { images: Usage; containers: Usage; volumes: Usage }
export interface Usage { count: number; active: number; size: number }
