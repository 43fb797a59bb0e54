// Builds the dashboard's partial plotly.js bundle, plotly-dashboard.min.js, and bundle.json (its
// plotly.js version, trace types, size and sha256) beside this file. Run ./build.sh (npm ci, then this).
//
// Only plotly.js's core and the trace types dash_ui's figures draw (TRACES): 2.1 MB instead of the
// 4.8 MB plotly.min.js the plotly Python package ships, so about a third of the compile time on a
// first visit. The esbuild options follow plotly.js's own build (esbuild-config.js in the package).
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

// The trace types dash_ui draws; tests/test_plotly_bundle.py fails when a figure uses another.
export const TRACES = ["scatter", "scattergl", "scatter3d", "scatterpolar", "bar", "box", "heatmap"];

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const versionOf = (pkg) => JSON.parse(readFileSync(require.resolve(`${pkg}/package.json`), "utf8")).version;
const plotlyVersion = versionOf("plotly.js");
const out = join(here, "plotly-dashboard.min.js");

// Run twice in a page (it is also a plain <script> anyone may add), it must not build a second
// Plotly: hence the guard (esbuild runs a CommonJS module's body on its first require only).
//
// WebGL canvases are drawn at the screen's pixel ratio: plotly.js's default (plotGlPixelRatio 2,
// meant for image export) draws four times the pixels on an ordinary screen, which is what costs
// most when WebGL runs on the CPU (no GPU, or a headless browser).
const entry = `
if (!(window.Plotly && window.Plotly.newPlot)) {
  var Plotly = require("plotly.js/lib/core");
  Plotly.register([${TRACES.map((t) => `require("plotly.js/lib/${t}")`).join(", ")}]);
  Plotly.setPlotConfig({plotGlPixelRatio: Math.min(4, Math.max(1, window.devicePixelRatio || 1))});
  window.Plotly = Plotly;
}
`;

await build({
  stdin: { contents: entry, resolveDir: here, sourcefile: "plotly-dashboard.js", loader: "js" },
  outfile: out,
  format: "iife",
  bundle: true,
  minify: true,
  legalComments: "none",
  sourcemap: false,
  alias: { regl: "@plotly/regl" },
  // registry.js requires maplibre-gl's CSS for map traces only, which this bundle leaves out.
  loader: { ".css": "empty" },
  define: { global: "window", "define.amd": "false", "process.env.NODE_DEBUG": "false" },
  target: "es2016",
  banner: { js: `/* plotly.js v${plotlyVersion} (MIT License, Plotly, Inc.): partial bundle for dash_ui with ` +
                `${TRACES.join(", ")}; built by segmentation_core/charts/plotly_bundle/build.sh with esbuild ${versionOf("esbuild")}. */` },
  logLevel: "warning",
});

const code = readFileSync(out);
const manifest = {
  "plotly.js": plotlyVersion,
  esbuild: versionOf("esbuild"),
  traces: TRACES,
  file: "plotly-dashboard.min.js",
  bytes: code.length,
  sha256: createHash("sha256").update(code).digest("hex"),
};
writeFileSync(join(here, "bundle.json"), JSON.stringify(manifest, null, 2) + "\n");
console.log(`plotly-dashboard.min.js: plotly.js ${plotlyVersion} with ${TRACES.join(", ")}: ${code.length.toLocaleString()} bytes`);
