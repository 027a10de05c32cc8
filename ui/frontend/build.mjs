// Builds the dashboard's bundle into the Python package (src/berth/ui/static/), with the
// licences of the libraries it holds. Run with `npm ci && npm run build` in this directory;
// the built files are committed, so that installing berth needs no npm.
import * as esbuild from "esbuild";
import { copyFileSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";

const out = "../../src/berth/ui/static";
for (const f of readdirSync(out)) if (f.startsWith("chunk-")) rmSync(`${out}/${f}`);   // the last build's
await esbuild.build({
  // the styles (with uPlot's and xterm's) are an entry of their own: app.css
  // the shared worker that holds the live views' one WebSocket is an entry of its own too
  entryPoints: [
    { in: "src/main.ts", out: "app" }, { in: "src/app.css", out: "app" },
    { in: "src/live-worker.ts", out: "live-worker" },
    // the login's page: keeps the session's secret (session.ts), then goes to the dashboard
    { in: "src/login.ts", out: "login" },
  ],
  bundle: true,
  minify: true,
  // the container page (xterm.js, uPlot) is a chunk of its own, loaded when first opened
  format: "esm",
  splitting: true,
  chunkNames: "chunk-[hash]",
  target: ["es2022"],
  outdir: out,
  legalComments: "none",
  logLevel: "info",
});
copyFileSync("index.html", `${out}/index.html`);
copyFileSync("favicon.svg", `${out}/favicon.svg`);

const libs = [
  ["uPlot", "node_modules/uplot/package.json", "node_modules/uplot/LICENSE"],
  ["xterm.js", "node_modules/@xterm/xterm/package.json", "node_modules/@xterm/xterm/LICENSE"],
  ["xterm.js fit add-on", "node_modules/@xterm/addon-fit/package.json", "node_modules/@xterm/addon-fit/LICENSE"],
];
let text = "The dashboard's bundle (app.js, app.css) holds these libraries, under these licences.\n";
for (const [name, pkg, lic] of libs) {
  const p = JSON.parse(readFileSync(pkg, "utf8"));
  text += `\n${"=".repeat(78)}\n${name} ${p.version} (${p.license}) ${p.homepage ?? ""}\n${"=".repeat(78)}\n\n`;
  text += readFileSync(lic, "utf8");
}
writeFileSync(`${out}/LICENSES.txt`, text);
