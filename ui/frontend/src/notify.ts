// What the pages share with the frame: messages at the corner of the page, and what a page
// hands back to stop its live streams when it goes.

import { h } from "./dom";

export type Cleanup = () => void;

// a message at the corner of the page, gone after a while
export function notify(text: string, error = false): void {
  const box = document.getElementById("toast")!;
  const el = h("div", { class: error ? "toast error" : "toast" }, text);
  box.appendChild(el);
  setTimeout(() => el.remove(), error ? 8000 : 3000);
}
