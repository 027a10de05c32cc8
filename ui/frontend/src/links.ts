// Links in the terminal: xterm.js makes a link of each OSC 8 hyperlink that whatever runs in
// the container writes, so its target is the container's choice. Only an http(s) link opens,
// after the user saw its real target (the link's text may say something else), in a new
// window that gets no hold on the dashboard's (noopener) and no Referer (noreferrer). Any
// other scheme (javascript:, data:, file:, ...) does nothing, whatever the CSP would do.

import type { ILinkHandler } from "@xterm/xterm";

// the link's target if it is an http(s) URL, else null
export function safeLink(uri: string): string | null {
  let u: URL;
  try { u = new URL(uri); } catch { return null; }
  return u.protocol === "http:" || u.protocol === "https:" ? u.href : null;
}

export const linkHandler: ILinkHandler = {
  allowNonHttpProtocols: false,
  activate: (_event: MouseEvent, uri: string) => {
    const href = safeLink(uri);
    if (href === null) return;
    if (!window.confirm(`Open this link from the container's terminal in a new window?\n\n${href}`)) return;
    window.open(href, "_blank", "noopener,noreferrer");
  },
};
