// The session's secret: every request to berthd but the page's and the bundle's shows it
// (the cookie alone would not do: cookies do not isolate by port, so another service's page
// on the same host gets it too; berthd's auth.py). It is kept in localStorage, which is
// the dashboard's origin's own (scheme, host and port), so every tab of this address has
// it; the login's page puts it there (login.ts), log out takes it away.

const KEY = "berth-session";

export function secret(): string {
  try { return localStorage.getItem(KEY) ?? ""; } catch { return ""; }
}

export function keepSecret(value: string): void {
  localStorage.setItem(KEY, value);
}

export function forgetSecret(): void {
  try { localStorage.removeItem(KEY); } catch { /* storage off: nothing kept */ }
}
